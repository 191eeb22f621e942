"""Every mapper is total: any text gives a value, None or MappingError — nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappers import MappingError
from mappers.bibline import parse_bibline
from mappers.cards import mask_card_number, normalize_card_number
from mappers.dates import parse_date, parse_expiry, parse_optional_date
from mappers.status import hold_status, holding_status, renewal_reason

# Text biased towards what the upstreams print: digits (both widths), separators,
# era names, Japanese status words.
ALPHABET = st.sampled_from(
    list("0123456789０１２３４５６７８９/-.年月日 　ーー−‐–—()（）火ABCDabcdRHS令和平成元")
    + ["令和", "平成", "昭和", "予約中", "貸出可", "--", " / ", "9999", "\u3000"]
)
TEXT = st.one_of(st.text(), st.lists(ALPHABET, max_size=20).map("".join))

MAPPERS: list[Callable[[str], Any]] = [
    parse_date,
    parse_optional_date,
    parse_expiry,
    hold_status,
    holding_status,
    renewal_reason,
    parse_bibline,
    normalize_card_number,
    lambda t: normalize_card_number(t, digits=13, pad=True),
    lambda t: normalize_card_number(t, digits=10, pad=False),
]


@pytest.mark.parametrize("fn", MAPPERS)
@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_total(fn: Callable[[str], Any], text: str) -> None:
    try:
        value = fn(text)
    except MappingError:
        return  # the one allowed failure; any other exception fails the test
    # a value of the mapper's own kind, or None; never an exception object or a sentinel
    assert value is None or isinstance(value, (str, date, tuple)) or hasattr(value, "title"), value
    assert fn(text) == value  # pure: the same text gives the same value


@settings(max_examples=150, deadline=None)
@given(digits=st.integers(min_value=4, max_value=20), data=st.data())
def test_card_round_trip(digits: int, data: st.DataObject) -> None:
    card = data.draw(st.text(alphabet="0123456789", min_size=digits, max_size=digits))
    # Printed with hyphens every 4 digits, in full width, with NW-7 stop characters.
    hyphenated = "-".join(card[i : i + 4] for i in range(0, len(card), 4))
    wide = "".join(chr(ord(c) + 0xFEE0) for c in hyphenated)
    for typed in (card, hyphenated, wide, f"A{card}B"):
        assert normalize_card_number(typed, digits=digits) == card
    assert normalize_card_number(card.lstrip("0") or "0", digits=digits, pad=True) == card
    masked = mask_card_number(card)
    # Last four shown; a card of only four digits is masked entirely.
    assert masked == ("*" * (len(card) - 4) + card[-4:] if len(card) > 4 else "****")
