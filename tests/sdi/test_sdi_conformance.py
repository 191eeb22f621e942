"""SDI feed reading on third-party material (issue 17): pymarc's and marc4j's MARC
test files and real OAI-PMH answers, read from ``../shared/conformance/`` (see
SOURCES.md there).  Skipped when that material is absent; never copied here."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from gateway.sdi.engine import Engine
from gateway.sdi.feed import (
    FeedError,
    FeedStats,
    iter_iso2709,
    parse_oai_page,
    read_feed_bytes,
    sniff_format,
)
from gateway.sdi.fields import extract
from gateway.sdi.marc8 import marc8_to_unicode
from tests.conftest import SHARED
from tests.sdi.helpers import alert

MARC = SHARED / "conformance" / "marc"
OAI = SHARED / "conformance" / "oai"
pytestmark = pytest.mark.skipif(not MARC.is_dir() or not OAI.is_dir(),
                                reason="third-party conformance material (../shared/conformance) absent")

# file → (format, records kept, records skipped, MARC-8 warnings, record ids)
EXPECTED = {
    "marc4j/chinese_mangled_multibyte.mrc": ("marc21", 4, 0, 32, ["u6080510"] * 4),
    "marc4j/incomplete_esc_seq.mrc": ("marc21", 1, 0, 147, ["ocn436459302"]),
    "marc4j/oclc_63111280_export_as_UTF8_from_connexion.mrc": ("marc21", 1, 0, 0, ["ocm63111280"]),
    "pymarc/bad_eacc_encoding.dat": ("marc21", 1, 0, 3, ["ocn503001208"]),
    # records 1 and 8 are whole but have neither 001 nor 020; 2-7 are broken
    "pymarc/bad_records.mrc": ("marc21", 0, 8, 0, []),
    "pymarc/batch.xml": ("marcxml", 2, 0, 0, ["5637241", "12149120"]),
    "pymarc/marc8.dat": ("marc21", 1, 0, 0, ["2"]),
    "pymarc/utf8_invalid.mrc": ("marc21", 1, 0, 0, ["144917"]),
}
MARC_FILES = sorted(str(p.relative_to(MARC)) for p in MARC.glob("*/*") if p.suffix != ".txt") if MARC.is_dir() else []


def _read(name: str) -> tuple[list, FeedStats, str]:
    data = (MARC / name).read_bytes()
    stats = FeedStats()
    fmt = sniff_format(data)
    return list(read_feed_bytes(data, fmt, stats)), stats, fmt


def test_every_marc_file_has_an_expectation() -> None:
    assert MARC_FILES == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_marc_file_records_and_skips(name: str) -> None:
    fmt, kept, skipped, warnings, ids = EXPECTED[name]
    records, stats, got_fmt = _read(name)
    assert got_fmt == fmt
    assert (stats.records, stats.malformed, stats.warnings) == (kept, skipped, warnings), stats.as_dict()
    assert [r.id for r in records] == ids
    assert len(stats.errors) == skipped and len(stats.warning_details) == (1 if warnings else 0)


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if EXPECTED[n][0] == "marc21"])
def test_iso2709_reader_agrees_with_plain_pymarc(name: str) -> None:
    """Every record pymarc reads gives the same match fields, in the same place; the
    only record kept that pymarc cannot read is the one with a cut-off escape."""
    data = (MARC / name).read_bytes()
    pym_stats = FeedStats()
    pym = [extract(r) for r in iter_iso2709(data, pym_stats)]
    records, stats, _fmt = _read(name)
    if name == "marc4j/incomplete_esc_seq.mrc":
        assert pym == [] and pym_stats.malformed == 1 and "invalid multibyte" in pym_stats.errors[0]
        return
    pym = [r for r in pym if r is not None]
    if stats.warnings == 0:
        assert pym == records
        return
    # pymarc puts a blank where an undecodable sequence was (and writes to stderr);
    # here it is U+FFFD: every other occurrence is the same
    assert [(r.id, r.title) for r in pym] == [(r.id, r.title) for r in records]
    replaced = 0
    for theirs, ours in zip(pym, records):
        for their_occ, our_occ in zip(theirs.occurrences, ours.occurrences):
            assert len(their_occ) == len(our_occ)
            for a, b in zip(their_occ, our_occ):
                if "\ufffd" in b:
                    replaced += 1
                else:
                    assert a == b
    assert replaced > 0


def test_bad_records_never_shift_the_records_after_them() -> None:
    _records, stats, _fmt = _read("pymarc/bad_records.mrc")
    reasons = [e.split(": ", 1)[1] for e in stats.errors]
    assert [e.split(":")[0] for e in stats.errors] == [f"record {n}" for n in range(1, 9)]
    assert reasons[0] == reasons[7] == "without 001 and without ISBN"
    assert [r.split(":")[0] for r in reasons[1:7]] == [
        "BaseAddressInvalid", "BaseAddressNotFound", "RecordDirectoryInvalid", "UnicodeDecodeError",
        "ValueError", "NoFieldsFound"]
    # records 1 and 8 are read whole: the same fields as pymarc gives for them
    pym = list(iter_iso2709((MARC / "pymarc/bad_records.mrc").read_bytes(), FeedStats()))
    assert len(pym) == 2 and pym[0]["245"]["a"] == pym[1]["245"]["a"]


def test_oclc_japanese_record_matches_through_its_880() -> None:
    """The 880 holds 米国の統治の仕組 in MARC-8 EACC, followed by an undecodable sequence."""
    records, stats, _fmt = _read("pymarc/bad_eacc_encoding.dat")
    (record,) = records
    assert record.title == "Beikoku no tōchi no shikumi"  # 245, MARC-8 ANSEL: o + combining macron
    assert record.field("title")[1].startswith("米国の統治の仕組\ufffd")
    assert stats.warning_details == ["record 1: 3 undecodable MARC-8 sequence(s) in 880 replaced by U+FFFD"]
    matches = Engine([alert("jp", ("title", "contains", "米国の統治")),
                      alert("romaji", ("title", "contains", "beikoku no tochi")),
                      alert("miss", ("author", "contains", "米国"))]).run(records)
    assert [(m.alert_id, m.record_id) for m in matches] == [("jp", "ocn503001208")]


def test_incomplete_escape_sequence_keeps_the_record() -> None:
    records, stats, _fmt = _read("marc4j/incomplete_esc_seq.mrc")
    (record,) = records
    assert record.title.startswith("Qie ting feng yun")
    assert record.field("title")[1].startswith("窃听风云")  # its 880, EACC
    assert stats.warnings == 147 and stats.warning_details == [
        "record 1: 147 undecodable MARC-8 sequence(s) in 880 replaced by U+FFFD"]
    assert any("\ufffd" in text for occ in record.occurrences for text in occ)


def test_utf8_connexion_export_links_its_cjk_880s() -> None:
    """Four CJK 880s: linked to 100, 245, 246 and 260; 246 is no match field."""
    (record,), stats, _fmt = _read("marc4j/oclc_63111280_export_as_UTF8_from_connexion.mrc")
    assert stats.warnings == 0
    assert record.field("author") == ("Ye, Hanao,", "葉漢鰲,")
    assert record.field("title")[1] == "日本民俗·信仰·藝能·與中國文化 /"
    assert record.field("publisher") == ("Da xin shu ju,", "大新書局,")
    assert not any("日本民俗信仰藝能與中國文化" in t for occ in record.occurrences for t in occ)


def test_marc8_decoding_agrees_with_the_utf8_oracle_line_by_line() -> None:
    marc8 = (MARC / "pymarc" / "test_marc8.txt").read_bytes().split(b"\n")
    utf8 = (MARC / "pymarc" / "test_utf8.txt").read_text(encoding="utf-8").split("\n")
    assert len(marc8) == len(utf8) == 1516  # 1,515 lines and the empty string after the last newline
    differences = []
    for number, (m, u) in enumerate(zip(marc8, utf8), start=1):
        text, bad = marc8_to_unicode(m)
        if bad or text != unicodedata.normalize("NFC", u):
            differences.append(number)
    assert differences == []


# ------------------------------------------------------------------ OAI-PMH
def test_real_dspace_oai_dc_answer_is_read_and_its_records_skipped() -> None:
    """A ListRecords of oai_dc records: none has marc21 metadata, so each is skipped
    and counted, and the page still gives its responseDate (no resumptionToken)."""
    stats = FeedStats()
    page = parse_oai_page((OAI / "pyoai" / "00005.xml").read_bytes(), stats)
    assert (page.records, page.resumption_token, page.response_date) == ([], None, "2003-04-30T16:08:02Z")
    assert (stats.records, stats.malformed, stats.deleted) == (0, 16, 0)
    assert stats.errors[0] == "OAI record hdl:1765/308: no marc21 metadata"


def test_sickle_resumption_page_counts_deleted_and_gives_the_token() -> None:
    stats = FeedStats()
    page = parse_oai_page((OAI / "sickle" / "ListRecords.xml").read_bytes(), stats)
    assert page.resumption_token == "ListRecords2.xml" and page.complete_list_size == 8
    assert page.response_date == "2013-02-27T09:10:56Z"
    assert (stats.records, stats.malformed, stats.deleted) == (0, 1, 1)
    assert stats.errors == ["OAI record oai:test.example.com:1585322: no marc21 metadata"]


def test_bad_resumption_token_is_a_feed_error() -> None:
    with pytest.raises(FeedError, match="^OAI-PMH error badResumptionToken: This resumptionToken is invalid$"):
        parse_oai_page((OAI / "sickle" / "badResumptionToken.xml").read_bytes(), FeedStats())


def test_material_is_read_not_copied() -> None:
    project = Path(__file__).resolve().parents[2]
    names = {p.name for p in MARC.glob("*/*")} | {p.name for p in OAI.glob("*/*")}
    assert not [p for p in project.rglob("*") if p.name in names and ".git" not in p.parts]
