"""The ISO 2709 feed reader (rmarc + lenient MARC-8) against plain pymarc (issue 17).

``read_iso2709`` must give exactly what pymarc + ``extract`` give — the same
records kept and skipped, the same match fields — on valid and on broken input,
except that a MARC-8 sequence pymarc cannot decode becomes U+FFFD and a warning.
"""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymarc.marc8 import MARC8ToUnicode

from fixtures.feeds.marcgen import encode_iso2709
from gateway.sdi.feed import FeedStats, _chunks, iter_iso2709, read_iso2709
from gateway.sdi.fields import extract
from gateway.sdi.marc8 import marc8_to_unicode
from tests.sdi.helpers import rec
from tests.sdi.test_sdi_property import marc_field

# text that MARC-8 (ASCII + EACC) can encode, for MARC-8 records
MARC8_TEXT = st.text(alphabet="アイウカガあいう亜伊宇AbB19X -,", max_size=6)


@st.composite
def feed(draw: st.DrawFn) -> bytes:
    records = []
    for _ in range(draw(st.integers(1, 4))):
        marc8 = draw(st.booleans())
        fields: list[tuple] = []
        if draw(st.booleans()):
            fields.append(("001", draw(st.sampled_from(["R1", "R2", "R3"]))))
        if marc8:
            for _ in range(draw(st.integers(1, 5))):
                tag = draw(st.sampled_from(["245", "100", "650", "264", "020", "880", "500"]))
                subs = [(draw(st.sampled_from("abx6")), draw(MARC8_TEXT)) for _ in range(draw(st.integers(0, 3)))]
                if tag == "880":
                    subs = [("6", draw(st.sampled_from(["245-01/$1", "100-02/$1", "020-01"])))] + subs
                fields.append((tag, " ", " ", subs))
        else:
            fields += draw(st.lists(marc_field(), min_size=1, max_size=5))
        records.append(encode_iso2709(fields, marc8=marc8))
    data = bytearray(b"".join(records))
    # damage: overwrite, delete or insert bytes anywhere (leaders, directories, data)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["set", "del", "ins"]))
        byte = draw(st.sampled_from([0x1B, 0x1D, 0x1E, 0x1F, 0x20, 0x24, 0x30, 0x31, 0x39, 0x61, 0xC3, 0xE1, 0xFF]))
        if kind == "set":
            data[pos] = byte
        elif kind == "del":
            del data[pos]
        else:
            data.insert(pos, byte)
    return bytes(data)


def _quietly(fn):  # pymarc writes MARC-8 complaints to stderr
    with contextlib.redirect_stderr(io.StringIO()) as err:
        return fn(), err.getvalue()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=feed())
def test_reader_equals_pymarc_on_valid_and_broken_records(data: bytes) -> None:
    """Record by record (both split the file on the terminator first).  The one
    documented difference: a record whose directory points a data field at a
    place after a subfield delimiter, where pymarc finds non-ASCII "indicators"
    beyond the first two bytes — rmarc reads it, pymarc skips it (README)."""
    for _number, raw in _chunks(data, FeedStats()):
        ours = FeedStats()
        got = list(read_iso2709(raw, ours))
        if ours.warnings:
            continue  # a MARC-8 record pymarc decoded with blanks or could not decode (see below)
        theirs = FeedStats()
        want, _err = _quietly(lambda raw=raw, theirs=theirs: [extract(r) for r in iter_iso2709(raw, theirs)])
        if got and not want and "UnicodeDecodeError: 'ascii' codec" in theirs.errors[0]:
            continue
        assert got == [item for item in want if item is not None]
        assert (ours.records, ours.malformed) == (len(got), theirs.malformed + (want == [None]))
        # the reasons are pymarc's, though not always the same words: a MARC-8 record
        # pymarc reads raw (to be decoded leniently) can fail one step earlier
        assert all(e.startswith("record 1: ") for e in ours.errors)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=feed())
def test_marc8_warnings_only_where_pymarc_fails(data: bytes) -> None:
    """A record with warnings is one pymarc skips, or reads with a blank for an
    undecodable sequence; every record is either kept or skipped, never both."""
    ours = FeedStats()
    got = list(read_iso2709(data, ours))
    theirs = FeedStats()
    want, _err = _quietly(lambda: [extract(r) for r in iter_iso2709(data, theirs)])
    kept = [item for item in want if item is not None]
    assert ours.malformed <= theirs.malformed + sum(item is None for item in want)
    assert len(got) >= len(kept)
    assert ours.records + ours.malformed == len(kept) + theirs.malformed + sum(item is None for item in want)


def test_cut_off_escape_keeps_the_record_with_a_warning() -> None:
    good = encode_iso2709([("001", "M1"), ("245", "1", "0", [("a", "アイウ")])], marc8=True)
    # the same record with its title's last byte replaced by "ESC $ ," (cut off)
    broken = good.replace(b"\x1b(B\x1e", b"\x1b$,\x1e", 1)
    assert broken != good
    stats = FeedStats()
    (item,) = read_iso2709(broken, stats)
    assert item.id == "M1" and item.title == "アイウ\ufffd"
    assert stats.warnings == 1 and stats.warning_details == [
        "record 1: 1 undecodable MARC-8 sequence(s) in 245 replaced by U+FFFD"]
    pym = FeedStats()
    assert _quietly(lambda: list(iter_iso2709(broken, pym)))[0] == [] and pym.malformed == 1


def test_a_bad_record_does_not_shift_the_next() -> None:
    one, two = rec(("001", "A"), ("245", "1", "0", [("a", "一")])), rec(("001", "B"), ("245", "1", "0", [("a", "二")]))
    bad = one[:12] + b"x" + one[13:]  # base address not a number
    stats = FeedStats()
    assert [r.id for r in read_iso2709(bad + two + one, stats)] == ["B", "A"]
    assert stats.malformed == 1 and stats.errors[0].startswith("record 1: ValueError")


# ------------------------------------------------------------------ MARC-8
MARC8_BYTES = st.binary(max_size=12) | st.lists(st.sampled_from(
    [b"\x1b", b"$", b"1", b"(", b",", b")", b"-", b"B", b"s", b"b", b"g", b"!", b"P", b"V", b"0", b"a",
     b"\xe1", b"\xe2", b"\x1b(B", b"\x1b$1", b"!0p", b"i$N", b"\x1bb", b"\x1bs", b"{69"]),
    max_size=10).map(b"".join)


@settings(max_examples=1500, deadline=None)
@given(data=MARC8_BYTES)
def test_marc8_decoding_equals_pymarc_where_pymarc_decodes(data: bytes) -> None:
    text, bad = marc8_to_unicode(data)  # never raises
    try:
        theirs, err = _quietly(lambda: MARC8ToUnicode(quiet=False).translate(data))
    except (IndexError, TypeError):
        return  # pymarc cannot decode it at all
    if len(data) >= 2 and data[-2] == 0x1B:
        return  # ends with a designation (ESC F): pymarc then reads past the end
    if err or "\x1b" in theirs:  # pymarc put a blank for a sequence, or kept an ESC
        assert bad > 0 and "\ufffd" in text
        return
    assert (text, bad) == (theirs, 0)
