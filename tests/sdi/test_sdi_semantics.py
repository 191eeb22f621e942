"""The matching semantics of issue 7, row by row, for the engine and the reference."""

from __future__ import annotations

import pytest

from gateway.sdi.engine import Engine, Match, NoConditions
from gateway.sdi.feed import FeedStats, read_feed_bytes
from gateway.sdi.reference import reference_matches
from tests.sdi.helpers import alert, pymarc_records, rec

SANTA = rec(("001", "S1"), ("020", " ", " ", [("a", "978-4-591-07690-3")]),
            ("100", "1", " ", [("6", "880-01"), ("a", "やなせたかし")]),
            ("245", "1", "0", [("6", "880-02"), ("a", "アンパンマンのサンタクロース")]),
            ("264", " ", "1", [("b", "フレーベル館")]),
            ("650", " ", "7", [("a", "クリスマス"), ("x", "絵本")]),
            ("880", "1", " ", [("6", "100-01/$1"), ("a", "ヤナセ, タカシ")]),
            ("880", "1", "0", [("6", "245-02/$1"), ("a", "アンパンマン ノ サンタクロース")]))
AKUI = rec(("001", "S2"), ("100", "1", " ", [("a", "東野圭吾")]), ("245", "1", "0", [("a", "悪意")]),
           ("260", " ", " ", [("b", "講談社")]), ("650", " ", "7", [("a", "推理小説")]),
           ("880", "1", "0", [("6", "245-01/$1"), ("a", "アクイ")]))
MEIJI = rec(("001", "S3"), ("100", "1", " ", [("a", "関良基")]),
            ("245", "1", "0", [("a", "赤松小三郎ともう一つの明治維新"), ("b", "テロに葬られた立憲主義の夢")]),
            ("264", " ", "1", [("b", "作品社")]), ("650", " ", "7", [("a", "明治維新")]))
FEED = SANTA + AKUI + MEIJI

# (alert conditions, match, expected record ids)
ROWS = [
    ([("title", "contains", "サンタ")], "all", ["S1"]),
    ([("title", "contains", "さんたくろーす")], "all", ["S1"]),  # hiragana finds katakana
    ([("title", "contains", "ｱﾝﾊﾟﾝﾏﾝ")], "all", ["S1"]),  # half-width katakana
    ([("title", "contains", "あくい")], "all", ["S2"]),  # only the 880 reading has it
    ([("author", "contains", "セ，タ")], "all", ["S1"]),  # full-width comma → "," of the 880 "ヤナセ, タカシ"
    ([("author", "contains", "せ;た")], "all", []),
    ([("title", "contains", "ノサンタ")], "all", ["S1"]),  # whitespace removed in text
    ([("title", "contains", "サンタ クロース")], "all", ["S1"]),  # and in values
    ([("subject", "contains", "クリスマス絵本")], "all", ["S1"]),  # $a and $x of one occurrence
    ([("subject", "contains", "絵本推理")], "all", []),  # never across occurrences or records
    ([("publisher", "contains", "講談社")], "all", ["S2"]),  # 260 $b
    ([("publisher", "contains", "作品社")], "all", ["S3"]),  # 264 $b
    ([("isbn", "contains", "9784591076903")], "all", ["S1"]),  # hyphens dropped
    # ... and from isbn values, which are normalised as the field is (issue 17)
    ([("isbn", "contains", "978-4")], "all", ["S1"]),
    ([("isbn", "contains", "978-4-591")], "all", ["S1"]),
    ([("isbn", "contains", "９７８４５９１")], "all", ["S1"]),  # full-width digits
    ([("isbn", "contains", "978 4 591")], "all", ["S1"]),
    ([("isbn", "contains", "978\u20104\uff0d591")], "all", ["S1"]),  # hyphen look-alikes
    ([("isbn", "contains", "978-4-592")], "all", []),
    ([("any", "contains", "978-4-591")], "all", ["S1"]),  # ISBN-shaped: also on any
    ([("any", "contains", "９７８－４")], "all", ["S1"]),
    ([("isbn", "not_contains", "978-4")], "all", ["S2", "S3"]),
    ([("any", "contains", "明治維新")], "all", ["S3"]),
    ([("title", "contains", "明治維新"), ("subject", "contains", "明治維新")], "all", ["S3"]),
    ([("title", "contains", "悪意"), ("author", "contains", "関")], "all", []),
    ([("title", "contains", "悪意"), ("author", "contains", "関")], "any", ["S2", "S3"]),
    ([("title", "not_contains", "サンタ")], "all", ["S2", "S3"]),
    ([("any", "not_contains", "明治"), ("any", "not_contains", "悪")], "all", ["S1"]),
    ([("title", "not_contains", "サンタ"), ("author", "contains", "やなせ")], "any", ["S1", "S2", "S3"]),
    ([("title", "contains", "赤松"), ("subject", "not_contains", "明治")], "all", []),
    ([("title", "contains", "テロ")], "all", ["S3"]),  # 245 $b
    ([("author", "contains", "サンタ")], "all", []),  # field matters
    ([("isbn", "not_contains", "9")], "all", ["S2", "S3"]),  # no occurrence → not_contains holds
]


def _engine(alerts: list[dict], feed: bytes = FEED, reported: dict | None = None) -> list[Match]:
    return Engine(alerts).run(read_feed_bytes(feed, "marc21", FeedStats()), reported)


def _reference(alerts: list[dict], feed: bytes = FEED, reported: dict | None = None) -> list[Match]:
    return reference_matches(pymarc_records(feed), alerts, reported)


@pytest.mark.parametrize(("conds", "match", "expected"), ROWS)
def test_semantics_table(conds: list, match: str, expected: list[str]) -> None:
    alerts = [alert("a1", *conds, match=match)]
    for impl in (_engine, _reference):
        assert [m.record_id for m in impl(alerts)] == expected, impl.__name__


def test_inactive_alert_matches_nothing() -> None:
    alerts = [alert("off", ("any", "not_contains", "zzz"), active=False), alert("on", ("title", "contains", "悪意"))]
    assert _engine(alerts) == _reference(alerts) == [Match("on", "S2", "悪意")]


def test_alert_without_conditions_is_rejected() -> None:
    with pytest.raises(NoConditions):
        Engine([alert("empty")])
    with pytest.raises(NoConditions):
        _reference([alert("empty")])


def test_max_results_first_in_feed_order_and_never_twice() -> None:
    alerts = [alert("every", ("any", "not_contains", "zzz"), max_results=2),
              alert("sec", ("author", "contains", "関"), max_results=1)]
    first = _engine(alerts)
    assert first == _reference(alerts)
    assert [(m.alert_id, m.record_id) for m in first] == [("every", "S1"), ("every", "S2"), ("sec", "S3")]
    reported = {"every": {"S1", "S2"}, "sec": {"S3"}}
    second = _engine(alerts, reported=reported)
    assert second == _reference(alerts, reported=reported) == [Match("every", "S3", second[0].title)]
    # a record repeated in one feed is reported once
    assert [m.record_id for m in _engine(alerts, SANTA + SANTA)] == ["S1"]


def test_matches_come_in_feed_order_then_alert_order() -> None:
    alerts = [alert("z", ("any", "contains", "し")), alert("a", ("any", "contains", "の"))]
    got = [(m.record_id, m.alert_id) for m in _engine(alerts)]
    assert got == [(m.record_id, m.alert_id) for m in _reference(alerts)]
    assert got == sorted(got, key=lambda p: (p[0], "za".index(p[1])))


def test_value_normalising_to_empty_means_field_present() -> None:
    alerts = [alert("e1", ("isbn", "contains", " \u3000")), alert("e2", ("isbn", "not_contains", " "))]
    assert _engine(alerts) == _reference(alerts)
    assert [(m.alert_id, m.record_id) for m in _engine(alerts)] == [("e1", "S1"), ("e2", "S2"), ("e2", "S3")]


def test_isbn_shaped_any_value_keeps_its_hyphen_outside_the_isbn_field() -> None:
    feed = (rec(("001", "R1"), ("245", "1", "0", [("a", "講座 1-2")]))
            + rec(("001", "R2"), ("020", " ", " ", [("a", "4-12-345678-9")]), ("245", "1", "0", [("a", "x")])))
    cases = [
        (("any", "contains", "1-2"), ["R1", "R2"]),  # title "1-2", ISBN 4123456789 has "12"
        (("title", "contains", "1-2"), ["R1"]),
        (("isbn", "contains", "1-2"), ["R2"]),
        (("title", "contains", "12"), []),
        (("any", "contains", "講座1-2"), ["R1"]),  # not ISBN-shaped
        (("any", "contains", "x-4"), []),  # not ISBN-shaped: "x4" is not looked for in the ISBN
        (("any", "contains", "12345678-9"), ["R2"]),
        (("any", "contains", "412345678-9 "), ["R2"]),
    ]
    for cond, expected in cases:
        alerts = [alert("a", cond)]
        for impl in (_engine, _reference):
            assert [m.record_id for m in impl(alerts, feed)] == expected, (cond, impl.__name__)
