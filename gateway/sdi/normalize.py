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

import re
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


def normalize_utf8(text: str) -> bytes:
    """``normalize(text).encode("utf-8", "surrogatepass")``, faster on long texts.

    The engine normalises a whole batch of records with one call.  Two steps of
    :func:`normalize` cost ~30 ns a character there, and are replaced by
    whole-buffer operations with the same result:

    * the kana fold (``str.translate`` makes an int and a lookup per character):
      :func:`fold_kana`;
    * whitespace removal (``str.split`` makes a string per word): on the UTF-8
      bytes.  ASCII whitespace bytes never occur inside a multi-byte sequence, so
      ``bytes.translate`` deletes them; the only other whitespace characters that
      can be left after NFKC (:data:`_WIDE_SPACES`, e.g. U+2028) are rare and
      removed with ``str.replace`` when present.
    """
    text = fold_kana(unicodedata.normalize("NFKC", text).casefold())
    for space in _WIDE_SPACES:
        if space in text:  # (a search for one character is fast: memchr)
            text = text.replace(space, "")
    return text.encode("utf-8", "surrogatepass").translate(None, _ASCII_SPACES)


_ASCII_SPACES = bytes(b for b in range(128) if chr(b).isspace())
# Whitespace beyond ASCII that NFKC leaves as it is (U+0085, U+1680, U+2028,
# U+2029).  The others (U+00A0, U+2000–U+200A, U+3000, ...) have compatibility
# decompositions to U+0020, so no NFKC output contains them; casefold neither
# makes nor changes whitespace.  (All whitespace is in the BMP.)
_WIDE_SPACES = tuple(chr(cp) for cp in range(128, 0x10000)
                     if chr(cp).isspace() and unicodedata.normalize("NFKC", chr(cp)) == chr(cp))


# fold_kana's byte tables: the high byte of a UTF-16 code unit is 0x30 → 1; the
# low byte is that of U+30A1–U+30F6 (0xA1–0xF6) → 0x60, the distance to hiragana.
_HIGH_IS_30 = bytes(1 if b == KATAKANA_FIRST >> 8 else 0 for b in range(256))
_LOW_IN_RANGE = bytes(0x60 if KATAKANA_FIRST & 0xFF <= b <= KATAKANA_LAST & 0xFF else 0 for b in range(256))


def fold_kana(text: str) -> str:
    """Katakana U+30A1–U+30F6 → hiragana, like ``text.translate(_KANA_TABLE)``.

    In UTF-16-LE every BMP character is two bytes, low then high, and the fold
    subtracts 0x60 from the low byte where the high byte is 0x30 and the low byte
    is 0xA1–0xF6.  Both tests are byte lookups (``bytes.translate`` on the low and
    the high bytes, taken with slices), their AND and the subtraction are done on
    the bytes read as one big integer: every byte of ``delta`` is 0 or 0x60 and
    only 0x60 where the low byte is ≥ 0xA1, so nothing carries or borrows from
    one byte into the next.  Characters beyond the BMP are surrogate pairs in
    UTF-16 (high bytes 0xD8–0xDF) and stay as they are.  A text with a lone
    surrogate (which UTF-16 could not give back unchanged) takes ``str.translate``.
    """
    try:
        data = text.encode("utf-16-le")
    except UnicodeEncodeError:
        return text.translate(_KANA_TABLE)
    low = data[0::2]
    delta = ((int.from_bytes(data[1::2].translate(_HIGH_IS_30), "little") * 0x60)
             & int.from_bytes(low.translate(_LOW_IN_RANGE), "little"))
    if not delta:
        return text
    out = bytearray(data)
    out[0::2] = (int.from_bytes(low, "little") - delta).to_bytes(len(low), "little")
    return out.decode("utf-16-le")


# "Hyphens dropped" from 020 $a: the ASCII hyphen-minus and its look-alikes that
# cataloguers and patrons paste (U+2010 hyphen, U+2011 non-breaking hyphen, U+FF0D
# full-width hyphen-minus).
HYPHENS = "-\u2010\u2011\uff0d"
_HYPHENS = str.maketrans("", "", HYPHENS)
# After NFKC: digits, hyphens and whitespace with at least one digit, maybe a final X.
_ISBN_SHAPED = re.compile(r"[0-9\-\u2010\u2011\s]*[0-9][0-9\-\u2010\u2011\s]*[Xx]?\s*")


def drop_hyphens(text: str) -> str:
    return text.translate(_HYPHENS)


def isbn_shaped(value: str) -> bool:
    """``978-4-1``, ``９７８４１``, ``4-06-264606-X``: what a patron types for an ISBN."""
    return _ISBN_SHAPED.fullmatch(unicodedata.normalize("NFKC", value)) is not None


def needle(condition_field: str, text_field: str, value: str) -> str:
    """The normalised value a condition on ``condition_field`` looks for in the
    occurrences of ``text_field`` (``any`` looks in all five).

    The isbn occurrences have their hyphens dropped, so a value looked for there
    is normalised the same way: always for an ``isbn`` condition, and for an
    ``any`` condition when the value is ISBN-shaped (then only in the isbn
    occurrences: in a title ``978-4`` keeps its hyphen).
    """
    if text_field == "isbn" and (condition_field == "isbn" or isbn_shaped(value)):
        value = drop_hyphens(value)
    return normalize(value)


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
