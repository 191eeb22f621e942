"""Japanese status words → API enumerations."""

from __future__ import annotations

import pytest

from mappers import MappingError
from mappers.status import hold_status, holding_status, renewal_reason

# (library, word, expected)
HOLDS = [
    ("kumamoto-city", "申込中", "submitted"),
    ("kumamoto-city", "予約中", "waiting"),
    ("kagoshima-pref", "順番待ち", "waiting"),
    ("kagoshima-pref", "準備中", "in_transit"),
    ("kagoshima-pref", "回送中", "in_transit"),
    ("amami", "他館確保", "in_transit"),
    ("amami", "利用可能", "ready"),
    ("niigata-city", "取置中", "ready"),
    ("niigata-city", "期限切れ", "expired"),
    ("yamaguchi-pref", "取消", "cancelled"),
    ("kumamoto-city", "\u3000予約中\u3000", "waiting"),  # cell padded with U+3000
    ("kumamoto-city", "[予約中]", "waiting"),
    ("niigata-city", "受取可", "ready"),
    ("niigata-city", "連絡済", "ready"),
    ("yamaguchi-pref", "予約取消", "cancelled"),
]


@pytest.mark.parametrize(("library", "word", "expected"), HOLDS)
def test_hold_status(library: str, word: str, expected: str) -> None:
    assert hold_status(word) == expected


@pytest.mark.parametrize("word", ["", "貸出中", "謎の状態"])
def test_hold_status_unknown(word: str) -> None:
    with pytest.raises(MappingError):
        hold_status(word)


@pytest.mark.parametrize(
    ("library", "word", "expected"),
    [
        ("kagoshima-pref", "貸出可", "available"),
        ("kagoshima-pref", "貸出中", "on_loan"),
        ("kumamoto-city", "館内のみ", "in_library_only"),
        ("kumamoto-city", "予約中", "reserved"),
        ("amami", "準備中", "in_preparation"),
        ("amami", "休館中", "closed"),
        ("niigata-city", "行方不明", "missing"),
        ("niigata-city", " 貸出可 ", "available"),
        ("yamaguchi-pref", "修理中", "unknown"),
        ("yamaguchi-pref", "", "unknown"),
    ],
)
def test_holding_status(library: str, word: str, expected: str) -> None:
    assert holding_status(word) == expected


@pytest.mark.parametrize(
    ("library", "message", "expected"),
    [
        ("kagoshima-pref", "返却期限を過ぎているため延長できません。", "overdue"),
        ("kumamoto-city", "延滞資料があるため延長できません", "overdue"),
        ("kagoshima-pref", "他の方の予約があるため延長できません。", "reserved"),
        ("amami", "延長済みです", "already_renewed"),
        ("niigata-city", "既に延長されています。", "already_renewed"),
        ("yamaguchi-pref", "延長回数の上限を超えています", "renewal_limit"),
        ("yamaguchi-pref", "延長できません", "other"),
        # The exact lines the simulators print after 「理由:」 / in the result table.
        ("kagoshima-pref", "理由:返却期限を過ぎています。", "overdue"),
        ("kagoshima-pref", "理由:他の利用者の予約が入っています。", "reserved"),
        ("kagoshima-pref", "理由:既に延長済です。", "already_renewed"),
        ("yamaguchi-pref", "延長できません（予約者がいます）", "reserved"),
        ("yamaguchi-pref", "延長できません（既に延長済です）", "already_renewed"),
        ("yamaguchi-pref", "延長できません（e-Net貸出の資料は延長回数の上限です）", "renewal_limit"),
        ("yamaguchi-pref", "延長できません（返却期限を過ぎています）", "overdue"),
        ("yamaguchi-pref", "", "other"),
    ],
)
def test_renewal_reason(library: str, message: str, expected: str) -> None:
    assert renewal_reason(message) == expected
