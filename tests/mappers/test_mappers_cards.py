"""Card numbers as patrons type them, one row per real quirk of a library."""

from __future__ import annotations

import pytest

from mappers import MappingError
from mappers.cards import mask_card_number, normalize_card_number

# (library, typed, digits, pad, expected)
OK = [
    ("kumamoto-city", "0000002377570", 13, True, "0000002377570"),
    ("kumamoto-city", "2377570", 13, True, "0000002377570"),  # leading zeros left out
    ("kumamoto-city", "0000-0023-77570", 13, True, "0000002377570"),  # as printed
    ("kumamoto-city", "００００００２３７７５７０", 13, True, "0000002377570"),  # IME full-width
    ("kumamoto-city", "A0000002377570B", 13, True, "0000002377570"),  # NW-7 scanner
    ("kumamoto-city", "a0000002377570d", 13, True, "0000002377570"),  # lower-case stop chars
    ("kumamoto-city", "Ａ００００００２３７７５７０Ｂ", 13, True, "0000002377570"),
    ("kumamoto-city", " 0000 0023 77570 ", 13, True, "0000002377570"),
    ("kumamoto-city", "0000\u30000023\u300077570", 13, True, "0000002377570"),  # U+3000
    ("kumamoto-city", "0000ー0023ー77570", 13, True, "0000002377570"),  # long vowel mark
    ("kumamoto-city", "0000−0023−77570", 13, True, "0000002377570"),  # U+2212 minus
    ("kumamoto-city", "0000‐0023–77570", 13, True, "0000002377570"),  # hyphen, en dash
    ("kumamoto-city", "0000—0023―77570", 13, True, "0000002377570"),  # em dash, bar
    ("kumamoto-city", "0000－0023－77570", 13, True, "0000002377570"),  # full-width minus
    ("kagoshima-pref", "9999999999", 10, False, "9999999999"),
    ("kagoshima-pref", "９９９９９９９９９９", 10, False, "9999999999"),
    ("amami", "2000-123-456", 10, False, "2000123456"),  # printed with hyphens
    ("amami", "2000123456", 10, False, "2000123456"),  # typed without
    ("niigata-city", "0300000000", 10, True, "0300000000"),
    ("niigata-city", "300000000", 10, True, "0300000000"),
    ("yamaguchi-pref", "123456789", None, False, "123456789"),  # any 4–20 digits
    ("yamaguchi-pref", "1234", None, False, "1234"),
    ("yamaguchi-pref", "C12345678D", None, False, "12345678"),
]

# (library, typed, digits, pad)
BAD = [
    ("kumamoto-city", "00000023775701", 13, True),  # 14 digits
    ("kumamoto-city", "０００００００２３７７５７０", 13, True),  # 14 full-width digits
    ("kumamoto-city", "", 13, True),
    ("kumamoto-city", "   ", 13, True),
    ("kumamoto-city", "0000002377570X", 13, True),
    ("kumamoto-city", "A000000237757", 13, True),  # start char without stop char
    ("kumamoto-city", "E0000002377570E", 13, True),  # E is not an NW-7 start char
    ("kagoshima-pref", "999999999", 10, False),  # short and no padding
    ("kagoshima-pref", "99999999999", 10, False),
    ("amami", "2000-123-45a", 10, False),
    ("niigata-city", "03000000000", 10, True),
    ("yamaguchi-pref", "123", None, False),
    ("yamaguchi-pref", "1" * 21, None, False),
    ("yamaguchi-pref", "١٢٣٤٥", None, False),  # Arabic-Indic digits are not card digits
]


@pytest.mark.parametrize(("library", "typed", "digits", "pad", "expected"), OK)
def test_normalize_ok(library: str, typed: str, digits: int | None, pad: bool, expected: str) -> None:
    assert normalize_card_number(typed, digits=digits, pad=pad) == expected


@pytest.mark.parametrize(("library", "typed", "digits", "pad"), BAD)
def test_normalize_bad(library: str, typed: str, digits: int | None, pad: bool) -> None:
    with pytest.raises(MappingError):
        normalize_card_number(typed, digits=digits, pad=pad)


def test_mapping_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_card_number("x", digits=10)


@pytest.mark.parametrize(
    ("card", "masked"),
    [
        ("0000002377570", "*********7570"),
        ("9999999999", "******9999"),
        ("1234", "****"),
        ("12", "**"),
    ],
)
def test_mask(card: str, masked: str) -> None:
    assert mask_card_number(card) == masked
