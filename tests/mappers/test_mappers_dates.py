"""Dates as the upstreams print them, one row per real spelling."""

from __future__ import annotations

from datetime import date

import pytest

from mappers import MappingError
from mappers.dates import parse_date, parse_expiry, parse_optional_date

# (library, printed, expected)
OK = [
    ("kumamoto-city", "2026/12/01", date(2026, 12, 1)),
    ("kumamoto-city", "2026/12/01(火)", date(2026, 12, 1)),
    ("kumamoto-city", "2026/12/01（火）", date(2026, 12, 1)),
    ("kumamoto-city", " 2026/12/01 ", date(2026, 12, 1)),
    ("kagoshima-pref", "2026.12.1", date(2026, 12, 1)),
    ("kagoshima-pref", "２０２６／１２／０１", date(2026, 12, 1)),
    ("amami", "2026年12月1日", date(2026, 12, 1)),
    ("amami", "2026年12月1日（火）", date(2026, 12, 1)),
    ("amami", "2026年 12月 1日", date(2026, 12, 1)),
    ("niigata-city", "令和8年12月1日", date(2026, 12, 1)),
    ("niigata-city", "令和元年5月1日", date(2019, 5, 1)),
    ("niigata-city", "令和８年１２月１日", date(2026, 12, 1)),
    ("niigata-city", "R8.12.01", date(2026, 12, 1)),
    ("niigata-city", "r8.12.1", date(2026, 12, 1)),
    ("yamaguchi-pref", "2026-12-01", date(2026, 12, 1)),
    ("yamaguchi-pref", "H31.4.30", date(2019, 4, 30)),
    ("yamaguchi-pref", "平成31年4月30日", date(2019, 4, 30)),
    ("yamaguchi-pref", "昭和64年1月7日", date(1989, 1, 7)),
    ("yamaguchi-pref", "S56.11.1", date(1981, 11, 1)),
    ("yamaguchi-pref", "20261201", date(2026, 12, 1)),
    ("kumamoto-city", "2026/12/01 火曜日", date(2026, 12, 1)),
    ("kagoshima-pref", "2028/02/29", date(2028, 2, 29)),
    # Cards printed before the 2019 era change carry Heisei years past its end.
    ("niigata-city", "平成33年3月31日", date(2021, 3, 31)),
    ("kumamoto-city", "2026/12/01 10:30", date(2026, 12, 1)),  # 予約日時 with a time
    ("kumamoto-city", "2026/12/01(火) 10:30", date(2026, 12, 1)),
    ("yamaguchi-pref", "2026-12-01T10:30:00", date(2026, 12, 1)),
]

# (library, printed)
BAD = [
    ("kumamoto-city", "2026/02/30"),
    ("kumamoto-city", "2026/13/01"),
    ("kumamoto-city", ""),
    ("kumamoto-city", "未定"),
    ("kagoshima-pref", "2026/12"),
    ("niigata-city", "令和0年5月1日"),
    ("niigata-city", "令和1年4月30日"),  # Reiwa began on 2019-05-01
    ("yamaguchi-pref", "X8.12.01"),
    ("yamaguchi-pref", "2027/02/29"),
    ("yamaguchi-pref", "2026-12-01T10:30:00+09:00"),  # the day depends on the zone
    ("kumamoto-city", "10:30"),
]


@pytest.mark.parametrize(("library", "printed", "expected"), OK)
def test_parse_date_ok(library: str, printed: str, expected: date) -> None:
    assert parse_date(printed) == expected


@pytest.mark.parametrize(("library", "printed"), BAD)
def test_parse_date_bad(library: str, printed: str) -> None:
    with pytest.raises(MappingError):
        parse_date(printed)


@pytest.mark.parametrize("blank", [None, "", "  ", "\u3000", "-", "－", "―"])
def test_optional_blank(blank: str | None) -> None:
    assert parse_optional_date(blank) is None


def test_optional_value() -> None:
    assert parse_optional_date("2026/12/01") == date(2026, 12, 1)
    with pytest.raises(MappingError):
        parse_optional_date("2026/02/30")


@pytest.mark.parametrize(
    ("library", "printed", "expected"),
    [
        ("kagoshima-pref", "9999/12/31", None),  # 予約有効期限 with no expiry
        ("kagoshima-pref", "9999.12.31", None),
        ("kagoshima-pref", "９９９９／１２／３１", None),
        ("kagoshima-pref", "", None),
        ("kumamoto-city", "2027/03/31", date(2027, 3, 31)),
    ],
)
def test_parse_expiry(library: str, printed: str, expected: date | None) -> None:
    assert parse_expiry(printed) == expected
