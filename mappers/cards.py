"""Card (利用者番号) normalisation.

Patrons type the number the way it is printed on the card: with hyphens or spaces,
in full-width digits from a Japanese IME, or with the NW-7 (Codabar) start/stop letters
a barcode scanner emits (``A0000002377570B``).  Some libraries print leading zeros that
patrons leave out (Kumamoto: ``2377570`` is ``0000002377570``).
"""

from __future__ import annotations

import re
import unicodedata

from mappers import MappingError

__all__ = ["mask_card_number", "normalize_card_number"]

# Every dash a patron (or an IME) may type between digit groups.  After NFKC most
# become U+002D / U+2010..U+2015, but the long vowel mark and the minus sign survive.
_SEPARATORS = re.compile(r"[\s\u3000\-\u2010-\u2015\u2212\u30fc\uff0d\u2043\ufe63\u207b\u208b_・.]+")
# NW-7 start/stop characters (A, B, C, D) around the digits.
_CODABAR = re.compile(r"^[A-Da-d](\d+)[A-Da-d]$")
_ANY_MIN, _ANY_MAX = 4, 20


def normalize_card_number(raw: str, *, digits: int | None = None, pad: bool = False) -> str:
    """The canonical digits of a card number, or MappingError.

    ``digits`` is the length the library uses (None: any 4–20 digits); with ``pad`` a
    shorter number is padded with leading zeros.
    """
    if not isinstance(raw, str):
        raise MappingError("card number must be text")
    text = unicodedata.normalize("NFKC", raw)
    text = _SEPARATORS.sub("", text)
    m = _CODABAR.match(text)
    if m:
        text = m.group(1)
    if not text:
        raise MappingError("card number is empty")
    if not (text.isascii() and text.isdigit()):
        raise MappingError("card number must be digits")
    if digits is None:
        if not _ANY_MIN <= len(text) <= _ANY_MAX:
            raise MappingError(f"card number must have {_ANY_MIN}-{_ANY_MAX} digits")
        return text
    if len(text) > digits:
        raise MappingError(f"card number must have {digits} digits")
    if len(text) < digits:
        if not pad:
            raise MappingError(f"card number must have {digits} digits")
        text = text.zfill(digits)
    return text


def mask_card_number(card: str) -> str:
    """All but the last four characters replaced by ``*`` (``*********7570``)."""
    if len(card) <= 4:
        return "*" * len(card)
    return "*" * (len(card) - 4) + card[-4:]
