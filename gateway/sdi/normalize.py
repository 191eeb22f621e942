"""Text normalisation for SDI matching (the exact semantics of issue 7 / README).

Alert values and record texts are normalised the same way, in this order:

1. Unicode NFKC (full-width ASCII → half-width, half-width katakana → full-width,
   compatibility characters decomposed),
2. ``str.casefold()``,
3. katakana U+30A1–U+30F6 → hiragana (code point − 0x60), so a reading typed in
   hiragana finds a katakana 880 reading and vice versa,
4. removal of every whitespace character (``str.isspace``), so word spacing never
   decides a match.

Because step 4 removes all whitespace, a normalised text never contains ``"\\n"``:
the engine uses it as a separator that no pattern can cross.
"""

from __future__ import annotations

import unicodedata

KATAKANA_FIRST = 0x30A1
KATAKANA_LAST = 0x30F6
_KANA = {cp: cp - 0x60 for cp in range(KATAKANA_FIRST, KATAKANA_LAST + 1)}
# str.translate looks every character up in its table; a dict raises (and clears)
# KeyError for each character it does not map, which dominates on Japanese text.
# A list over the BMP never misses (astral characters raise IndexError, a
# LookupError, and stay as they are) and is ~1.5× faster.
_KANA_TABLE = [chr(cp) for cp in range(0x10000)]
for _cp, _to in _KANA.items():
    _KANA_TABLE[_cp] = chr(_to)


def normalize(text: str) -> str:
    """NFKC → casefold → katakana to hiragana → drop all whitespace."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_KANA_TABLE)
    return "".join(text.split())


class NormalizeCache:
    """Memoised :func:`normalize` for feed texts (publishers and subjects repeat a lot).

    Bounded: cleared when full, so a huge feed cannot grow it without limit.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._cache: dict[str, str] = {}
        self._limit = limit

    def __call__(self, text: str) -> str:
        try:
            return self._cache[text]
        except KeyError:
            pass
        value = normalize(text)
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[text] = value
        return value
