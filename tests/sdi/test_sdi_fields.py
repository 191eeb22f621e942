"""Field extraction (245/1xx/7xx/6xx/260/264/020, linked 880s) and feed reading."""

from __future__ import annotations

import pymarc

from fixtures.catalog import load_records
from fixtures.feeds.marcgen import (
    catalog_fields,
    encode_iso2709,
    malformed_iso2709,
    malformed_marcxml,
    marc8_encode,
    marcxml_collection,
    marcxml_record,
)
from gateway.sdi.feed import FeedStats, parse_oai_page, read_feed_bytes, sniff_format
from gateway.sdi.fields import extract
from tests.sdi.helpers import pymarc_records, rec

SAMPLE = tuple(load_records()[:8])  # a few records of the shared sample set

FULL = rec(
    ("001", "R1"),
    ("020", " ", " ", [("a", "978-4-591-07690-3"), ("q", "pbk.")]),
    ("020", " ", " ", [("a", "4-06-264606-X")]),
    ("100", "1", " ", [("6", "880-01"), ("a", "やなせたかし"), ("d", "1919-2013")]),
    ("110", "2", " ", [("a", "フレーベル館編集部")]),
    ("111", "2", " ", [("a", "絵本会議")]),
    ("245", "1", "0", [("6", "880-02"), ("a", "アンパンマンの :"), ("b", "サンタクロース /"),
                        ("c", "やなせたかし作"), ("n", "第1巻"), ("p", "冬")]),
    ("260", " ", " ", [("a", "東京"), ("b", "フレーベル館"), ("c", "2003")]),
    ("264", " ", "1", [("b", "フレーベル館(発売)")]),
    ("600", "1", "4", [("a", "やなせ, たかし"), ("d", "1919-")]),
    ("610", "2", "4", [("a", "フレーベル館")]),
    ("611", "2", "4", [("a", "絵本会議")]),
    ("630", "0", "4", [("a", "アンパンマン")]),
    ("650", " ", "7", [("a", "クリスマス"), ("x", "絵本"), ("y", "20世紀"), ("z", "日本"), ("v", "図鑑"),
                        ("2", "ndlsh")]),
    ("651", " ", "7", [("a", "高知県")]),
    ("700", "1", " ", [("a", "作者二")]),
    ("710", "2", " ", [("a", "団体二")]),
    ("711", "2", " ", [("a", "会議二")]),
    ("880", "1", " ", [("6", "100-01/$1"), ("a", "ヤナセ, タカシ")]),
    ("880", "1", "0", [("6", "245-02/$1"), ("a", "アンパンマン ノ サンタクロース")]),
    ("880", " ", " ", [("6", "500-03/$1"), ("a", "注記は対象外")]),
    ("880", " ", " ", [("6", "020-04/$1"), ("a", "978-0-00-000000-2")]),
)


def test_every_field_and_subfield_rule() -> None:
    [record] = pymarc_records(FULL)
    item = extract(record)
    assert item is not None
    assert item.id == "R1"
    assert item.field("title") == ("アンパンマンの : サンタクロース / 第1巻 冬", "アンパンマン ノ サンタクロース")
    assert item.title == "アンパンマンの : サンタクロース / 第1巻 冬"  # display: 245 only, no $c
    assert item.field("author") == ("やなせたかし", "フレーベル館編集部", "絵本会議", "作者二", "団体二", "会議二",
                                    "ヤナセ, タカシ")
    assert item.field("subject") == ("やなせ, たかし", "フレーベル館", "絵本会議", "アンパンマン",
                                     "クリスマス 絵本 20世紀 日本 図鑑", "高知県")
    assert item.field("publisher") == ("フレーベル館", "フレーベル館(発売)")
    # hyphens dropped, $q not taken, an 880 linked to 020 is one more ISBN
    assert item.field("isbn") == ("9784591076903", "406264606X", "9780000000002")


def test_record_id_falls_back_to_first_isbn_then_skipped() -> None:
    data = (rec(("020", " ", " ", [("a", "978-4-06-264606-5 (文庫)")]), ("245", "1", "0", [("a", "悪意")]))
            + rec(("245", "1", "0", [("a", "識別子なし")])))
    stats = FeedStats()
    items = list(read_feed_bytes(data, "marc21", stats))
    assert [i.id for i in items] == ["9784062646065"]
    assert stats.records == 1 and stats.malformed == 1


def test_marc8_and_utf8_records_read_alike() -> None:
    fields = [("001", "M8"), ("245", "1", "0", [("a", "サンタクロースのおくりもの")]),
              ("100", "1", " ", [("a", "赤松小三郎")])]
    utf8 = encode_iso2709(fields)
    marc8 = encode_iso2709(fields, marc8=True)
    assert utf8[9:10] == b"a" and marc8[9:10] == b" "
    assert marc8_encode("あ") != "あ".encode()  # really EACC, not UTF-8 in disguise
    a, b = (list(read_feed_bytes(d, "marc21", FeedStats())) for d in (utf8, marc8))
    assert a == b
    assert a[0].field("title") == ("サンタクロースのおくりもの",)


def test_malformed_iso2709_records_are_skipped_and_counted_not_fatal() -> None:
    good = [encode_iso2709(catalog_fields(r)) for r in SAMPLE[:3]]
    bad = malformed_iso2709()
    data = good[0] + bad[0] + good[1] + bad[1] + bad[2] + good[2] + bad[3] + b"00042nam  truncated"
    stats = FeedStats()
    items = list(read_feed_bytes(data, "marc21", stats))
    assert [i.id for i in items] == [r.id for r in SAMPLE[:3]]
    assert stats.malformed == 5
    assert any("TruncatedRecord" in e for e in stats.errors)
    assert any("no record terminator" in e for e in stats.errors)


def test_marcxml_reads_like_iso2709_and_skips_malformed() -> None:
    xml = marcxml_collection([marcxml_record(catalog_fields(r)) for r in SAMPLE] + malformed_marcxml())
    iso = b"".join(encode_iso2709(catalog_fields(r)) for r in SAMPLE)
    stats = FeedStats()
    assert sniff_format(xml) == "marcxml" and sniff_format(iso) == "marc21"
    assert list(read_feed_bytes(xml, "marcxml", stats)) == list(read_feed_bytes(iso, "marc21", FeedStats()))
    assert stats.malformed == 3


def test_marcxml_not_well_formed_keeps_what_came_before() -> None:
    xml = marcxml_collection([marcxml_record(catalog_fields(r)) for r in SAMPLE[:2]])
    broken = xml[: xml.rindex(b"<marc:record>") + 40]  # cut inside the second record
    stats = FeedStats()
    items = list(read_feed_bytes(broken, "marcxml", stats))
    assert items[0].id == SAMPLE[0].id


def test_oai_page_deleted_and_missing_metadata() -> None:
    page = (b'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            b"<responseDate>2026-01-02T03:04:05Z</responseDate><ListRecords>"
            b'<record><header status="deleted"><identifier>x:1</identifier></header></record>'
            b"<record><header><identifier>x:2</identifier></header></record>"
            b"<record><header><identifier>x:3</identifier></header><metadata>"
            + marcxml_record(catalog_fields(SAMPLE[0])).replace(
                "<marc:record>", '<marc:record xmlns:marc="http://www.loc.gov/MARC21/slim">').encode()
            + b'</metadata></record><resumptionToken completeListSize="9">tok</resumptionToken>'
              b"</ListRecords></OAI-PMH>")
    stats = FeedStats()
    parsed = parse_oai_page(page, stats)
    assert parsed.resumption_token == "tok" and parsed.complete_list_size == 9
    assert parsed.response_date == "2026-01-02T03:04:05Z"
    assert [r["001"].data for r in parsed.records] == [SAMPLE[0].id]
    assert stats.deleted == 1 and stats.malformed == 1
    assert isinstance(parsed.records[0], pymarc.Record)
