"""Property: the engine equals the plain reference implementation of the semantics.

Random MARC records (Japanese kana/kanji, half- and full-width forms, combining
marks that NFKC composes, spaces, hyphens; 880 fields linked to random tags;
missing and repeated ids) and random alerts (every field and op, all/any,
inactive, small max_results, earlier reports), written as ISO 2709 and read back.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.sdi.engine as engine_module
from fixtures.feeds.marcgen import encode_iso2709
from gateway.sdi.engine import Engine
from gateway.sdi.feed import FeedStats, read_feed_bytes
from gateway.sdi.reference import reference_matches
from tests.sdi.helpers import pymarc_records

ALPHABET = "アイウカガあいう亜伊宇ＡａAbB1１9Xｘｱｲｶﾞﾞ\u3099 　-‐－ヴゔｰー,\x00\x01\x02"
TAGS = ["245", "100", "110", "111", "700", "710", "711", "600", "610", "611", "630", "650", "651",
        "260", "264", "020", "500"]
FIELDS = ["title", "author", "subject", "publisher", "isbn", "any"]

text = st.text(alphabet=ALPHABET, max_size=6)
subfield = st.tuples(st.sampled_from("abnpxyzvcq"), text)


@st.composite
def marc_field(draw: st.DrawFn) -> tuple:
    tag = draw(st.sampled_from(TAGS + ["880", "880"]))
    subs = draw(st.lists(subfield, min_size=0, max_size=4))
    if tag == "880":
        linked = draw(st.sampled_from(TAGS))
        subs = [("6", f"{linked}-01/$1")] + subs
    return (tag, " ", " ", subs)


@st.composite
def marc_record(draw: st.DrawFn) -> bytes:
    fields: list[tuple] = []
    if draw(st.booleans()):
        fields.append(("001", draw(st.sampled_from(["R1", "R2", "R3", "R4", "R5", "R6"]))))
    fields += draw(st.lists(marc_field(), min_size=1, max_size=6))
    return encode_iso2709(fields)


@st.composite
def alerts(draw: st.DrawFn) -> list[dict]:
    n = draw(st.integers(1, 5))
    out = []
    for i in range(n):
        conds = draw(st.lists(st.fixed_dictionaries({
            "field": st.sampled_from(FIELDS),
            "op": st.sampled_from(["contains", "not_contains"]),
            "value": st.text(alphabet=ALPHABET, min_size=1, max_size=3)}), min_size=1, max_size=3))
        out.append({"id": f"a{i}", "conditions": conds, "match": draw(st.sampled_from(["all", "any"])),
                    "max_results": draw(st.integers(1, 4)), "active": draw(st.booleans() | st.just(True))})
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(marc_record(), min_size=0, max_size=8), alert_list=alerts(),
       earlier=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["R1", "R2", "R3"])), max_size=3))
def test_engine_equals_reference(records: list[bytes], alert_list: list[dict], earlier: list) -> None:
    feed = b"".join(records)
    reported: dict[str, set[str]] = {}
    for index, rid in earlier:
        reported.setdefault(f"a{index}", set()).add(rid)
    got = Engine(alert_list).run(read_feed_bytes(feed, "marc21", FeedStats()), reported)
    want = reference_matches(pymarc_records(feed), alert_list, reported)
    assert got == want


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(marc_record(), min_size=0, max_size=8), alert_list=alerts(),
       earlier=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["R1", "R2", "R3"])), max_size=3))
def test_engine_equals_reference_across_batches(records: list[bytes], alert_list: list[dict],
                                                earlier: list) -> None:
    """The same with batches of 2 records: alerts fill up and leave the index
    between batches, default-true alerts stay open over several."""
    feed = b"".join(records)
    reported: dict[str, set[str]] = {}
    for index, rid in earlier:
        reported.setdefault(f"a{index}", set()).add(rid)
    with patch.object(engine_module, "BATCH", 2):
        got = Engine(alert_list).run(read_feed_bytes(feed, "marc21", FeedStats()), reported)
    want = reference_matches(pymarc_records(feed), alert_list, reported)
    assert got == want
