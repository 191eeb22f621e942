"""Dates as Japanese OPACs print them.

Seen upstream: ``2026/12/01``, ``2026-12-01``, ``2026.12.1``, ``2026年12月1日``,
Japanese eras (``令和8年12月1日``, ``令和元年5月1日``, ``R8.12.01``, ``H31.4.30``,
``平成31年4月30日``, ``昭和``/``S``), full-width digits, a trailing weekday
``(火)`` / ``（火）``, and ``9999/12/31`` meaning "no expiry".
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from mappers import MappingError

__all__ = ["ERAS", "parse_date", "parse_expiry", "parse_optional_date"]

# Era name → (first year in the Gregorian calendar, first day of the era).
ERAS: dict[str, tuple[int, date]] = {
    "令和": (2019, date(2019, 5, 1)),
    "平成": (1989, date(1989, 1, 8)),
    "昭和": (1926, date(1926, 12, 25)),
    "大正": (1912, date(1912, 7, 30)),
    "明治": (1868, date(1868, 1, 25)),
}
_ERA_LETTERS = {"R": "令和", "H": "平成", "S": "昭和", "T": "大正", "M": "明治"}

_WEEKDAY = re.compile(r"\s*[(（\[]\s*[月火水木金土日](?:曜日?)?\s*[)）\]]\s*$")
_WEEKDAY_BARE = re.compile(r"\s+[月火水木金土日]曜日?\s*$")
_WESTERN = re.compile(r"^(\d{4})\s*[/\-.年]\s*(\d{1,2})\s*[/\-.月]\s*(\d{1,2})\s*日?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ERA = re.compile(
    r"^(令和|平成|昭和|大正|明治|[RHSTMrhstm])\s*(\d{1,2}|元)\s*[/\-.年]\s*(\d{1,2})\s*[/\-.月]\s*(\d{1,2})\s*日?$"
)
# A time printed after the date ("2026/12/01 10:30", "2026-12-01T10:30:00") is dropped;
# with a UTC offset the calendar day depends on the zone, so that is not accepted here.
_TIME = re.compile(r"(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_NO_EXPIRY = {date(9999, 12, 31)}


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    text = _WEEKDAY.sub("", text)
    text = _WEEKDAY_BARE.sub("", text)
    text = _TIME.sub("", text.strip())
    text = _WEEKDAY.sub("", text)  # "2026/12/01(火) 10:30"
    return text.strip()


def _make(year: int, month: int, day: int, source: str) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise MappingError(f"not a calendar date: {source!r}") from exc


def parse_date(text: str) -> date:
    """A date from any of the upstream spellings; MappingError otherwise."""
    if not isinstance(text, str):
        raise MappingError("date must be text")
    s = _clean(text)
    if not s:
        raise MappingError("date is empty")
    m = _WESTERN.match(s) or _COMPACT.match(s)
    if m:
        return _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), text)
    m = _ERA.match(s)
    if m:
        era = m.group(1)
        era = _ERA_LETTERS.get(era.upper(), era)
        first_year, first_day = ERAS[era]
        era_year = 1 if m.group(2) == "元" else int(m.group(2))
        if era_year < 1:
            raise MappingError(f"no year 0 in an era: {text!r}")
        result = _make(first_year + era_year - 1, int(m.group(3)), int(m.group(4)), text)
        if result < first_day:
            raise MappingError(f"date before the start of {era}: {text!r}")
        # No upper bound: cards printed before 2019 say 平成33年 for 2021, and that is
        # still the date they mean.
        return result
    raise MappingError(f"unrecognised date: {text!r}")


def parse_optional_date(text: str | None) -> date | None:
    """Like parse_date, but blank (None, empty, whitespace, dashes) → None."""
    if text is None:
        return None
    s = unicodedata.normalize("NFKC", text).strip()
    if s in {"", "-", "--", "―", "ー", "−", "―――"} or set(s) <= {"-", "ー", "―", "−"}:
        return None
    return parse_date(s)


def parse_expiry(text: str | None) -> date | None:
    """An expiry date; blank or the sentinel ``9999/12/31`` (no expiry) → None."""
    value = parse_optional_date(text)
    if value is None or value in _NO_EXPIRY:
        return None
    return value
