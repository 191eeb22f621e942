"""Reading MARC feeds: ISO 2709 (``marc21``), MARCXML and OAI-PMH ListRecords pages.

Feeds come from library systems we do not control, so reading is permissive in the
way pymarc's batch reader is, but stricter about isolation: a record that cannot be
decoded is *skipped and counted* (``FeedStats.malformed``), never fatal, and never
drags its neighbours down with it.

* ISO 2709 is split on the record terminator (0x1D) before pymarc decodes each
  chunk, so a wrong record length in one leader cannot desynchronise the rest of
  the file (pymarc's ``MARCReader`` trusts the leader length).  pymarc picks the
  character set from leader position 9: ``a`` = UTF-8, blank = MARC-8 (including
  the EACC set Japanese MARC-8 records use).
* MARCXML and OAI-PMH are read with lxml (recovering parser, streaming for files)
  and each ``marc:record`` element is turned into a :class:`pymarc.Record`; a
  record element missing its leader or with a bad tag or subfield code is skipped.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pymarc
from lxml import etree
from rmarc._rmarc import decode_marc_raw

from gateway.sdi.fields import WANTED_TAGS, FeedRecord, RawField, extract, extract_raw, raw_fields
from gateway.sdi.marc8 import marc8_to_unicode

MARC_NS = "http://www.loc.gov/MARC21/slim"
OAI_NS = "http://www.openarchives.org/OAI/2.0/"
RECORD_TERMINATOR = b"\x1d"
MAX_ERRORS_KEPT = 20


class FeedError(Exception):
    """The feed as a whole cannot be read (HTTP error, OAI-PMH error response)."""


@dataclass
class FeedStats:
    records: int = 0  # records handed to the matcher
    malformed: int = 0  # skipped: undecodable, or neither 001 nor ISBN
    deleted: int = 0  # OAI-PMH headers with status="deleted"
    errors: list[str] = field(default_factory=list)
    # kept records with something replaced: undecodable MARC-8 sequences → U+FFFD
    warnings: int = 0
    warning_details: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.malformed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(reason)

    def warn(self, count: int, reason: str) -> None:
        self.warnings += count
        if len(self.warning_details) < MAX_ERRORS_KEPT:
            self.warning_details.append(reason)

    def as_dict(self) -> dict[str, object]:
        return {"records": self.records, "malformed": self.malformed, "deleted": self.deleted,
                "errors": list(self.errors), "warnings": self.warnings,
                "warning_details": list(self.warning_details)}


# ------------------------------------------------------------------ ISO 2709
def _pymarc_record(raw: bytes) -> pymarc.Record:
    return pymarc.Record(data=raw, to_unicode=True, force_utf8=False, hide_utf8_warnings=True,
                         utf8_handling="strict")


def iter_iso2709(data: bytes, stats: FeedStats) -> Iterator[pymarc.Record]:
    """Plain pymarc Records of an ISO 2709 byte string (UTF-8 or MARC-8 per record).

    The reference implementation and the benchmark's baseline; feeds are read
    with :func:`read_iso2709`.  pymarc's MARC-8 decoding is strict here: a record
    with an undecodable sequence is skipped.
    """
    for number, raw in _chunks(data, stats):
        try:
            record = _pymarc_record(raw)
        except Exception as exc:  # noqa: BLE001 - pymarc raises a dozen kinds; all mean "skip this one"
            stats.skip(f"record {number}: {type(exc).__name__}: {exc}"[:200])
            continue
        yield record


def _chunks(data: bytes, stats: FeedStats) -> Iterator[tuple[int, bytes]]:
    """(record number, bytes with terminator) of each record of an ISO 2709 file."""
    chunks = data.split(RECORD_TERMINATOR)
    last = len(chunks) - 1
    for number, chunk in enumerate(chunks, start=1):
        chunk = chunk.lstrip(b"\r\n")  # some exporters put a newline between records
        if not chunk:
            continue
        if number - 1 == last:
            stats.skip(f"record {number}: truncated (no record terminator)")
            continue
        yield number, chunk + RECORD_TERMINATOR


def read_iso2709(data: bytes, stats: FeedStats) -> Iterator[FeedRecord]:
    """The match fields of each record of an ISO 2709 byte string, parsed once.

    rmarc's decoder (Rust) splits a record into fields; only the fields matching
    looks at are then read (:func:`gateway.sdi.fields.extract_raw`).  UTF-8 records
    (leader/09 ``a``) are decoded by rmarc, strictly; MARC-8 records are split into
    raw bytes and their matched subfields decoded leniently
    (:mod:`gateway.sdi.marc8`): an undecodable sequence becomes U+FFFD and a
    warning, and the record is kept.  A record rmarc refuses, or would read
    differently (see ``_ODD_BYTES``), is handed to pymarc, which either reads it
    (then it is kept) or says why it is skipped — so the records kept and
    skipped, and the reasons, are pymarc's.
    """
    decode = decode_marc_raw
    odd = _ODD_BYTES.search
    for number, raw in _chunks(data, stats):
        utf8 = raw[9:10] == b"a"
        if odd(raw, 24):
            item = _pymarc_fallback(number, raw, utf8, stats)
        else:
            try:
                _leader, fields = decode(raw, utf8, False, "iso8859-1", "strict", True)
            except ValueError:
                item = _pymarc_fallback(number, raw, utf8, stats)
            else:
                if not utf8:
                    fields = _decode_marc8(number, fields, stats)
                item = extract_raw(fields)
                if item is None:
                    stats.skip(f"record {number}: without 001 and without ISBN")
        if item is not None:
            stats.records += 1
            yield item


# Records that go to pymarc without trying rmarc (one search over the record):
# * a non-ASCII byte right after a subfield delimiter: a subfield code that is not
#   ASCII, which rmarc hands back as raw bytes and pymarc guesses
#   (``pymarc.normalize_subfield_code``);
# * a non-ASCII byte between a field terminator and the next subfield delimiter:
#   in a data field that is where the indicators are, which pymarc decodes as
#   ASCII (a UnicodeDecodeError skips the record), while rmarc takes the first two
#   characters of whatever is there.  (Control fields with non-ASCII text match
#   too; pymarc then reads them.)
_ODD_BYTES = re.compile(rb"\x1f[\x80-\xff]|\x1e[^\x1e\x1f]*[\x80-\xff]")


def _pymarc_fallback(number: int, raw: bytes, utf8: bool, stats: FeedStats) -> FeedRecord | None:
    """pymarc reads the record or says why not.  MARC-8 records are read as raw
    bytes and decoded leniently here too, as on the rmarc path."""
    try:
        record = pymarc.Record(data=raw, to_unicode=utf8, force_utf8=False, hide_utf8_warnings=True,
                               utf8_handling="strict")
    except Exception as exc:  # noqa: BLE001 - pymarc raises a dozen kinds; all mean "skip this one"
        stats.skip(f"record {number}: {type(exc).__name__}: {exc}"[:200])
        return None
    fields = raw_fields(record)
    item = extract_raw(fields if utf8 else _decode_marc8(number, fields, stats))
    if item is None:
        stats.skip(f"record {number}: without 001 and without ISBN")
    return item


def _decode_marc8(number: int, fields: list[RawField], stats: FeedStats) -> list[RawField]:
    """The wanted fields of a MARC-8 record (bytes) decoded, the others dropped.

    Every data field is decoded, so that each undecodable sequence is counted —
    where pymarc would skip the record or put a blank, whatever the field."""
    out: list[RawField] = []
    bad_tags: list[str] = []
    bad = 0
    for tag, body in fields:
        if tag not in WANTED_TAGS:
            if body[0] == "data":
                n = sum(marc8_to_unicode(value)[1] for _code, value in body[3])
                if n:
                    bad += n
                    bad_tags.append(tag)
            continue
        if body[0] == "control":
            out.append((tag, ("control", body[1].decode("iso8859-1"))))  # as pymarc does
            continue
        subfields = []
        for code, value in body[3]:
            text, n = marc8_to_unicode(value)
            if n:
                bad += n
                bad_tags.append(tag)
            subfields.append((code, text))
        out.append((tag, ("data", body[1], body[2], subfields)))
    if bad:
        stats.warn(bad, f"record {number}: {bad} undecodable MARC-8 sequence(s) in "
                        f"{', '.join(dict.fromkeys(bad_tags))} replaced by U+FFFD")
    return out


# ------------------------------------------------------------------ MARCXML
def _text(el: etree._Element | None) -> str:
    return "" if el is None or el.text is None else el.text


def record_from_xml(el: etree._Element) -> pymarc.Record:
    """One ``marc:record`` element → pymarc Record; ValueError when malformed."""
    ns = el.tag[: el.tag.index("}") + 1] if el.tag.startswith("{") else ""
    leader_el = el.find(f"{ns}leader")
    leader = _text(leader_el)
    if len(leader) != 24:
        raise ValueError("leader missing or not 24 characters")
    record = pymarc.Record(leader=leader)
    for child in el:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        local = child.tag[len(ns):] if ns and child.tag.startswith(ns) else child.tag
        if local == "leader":
            continue
        tag = child.get("tag", "")
        if len(tag) != 3 or not tag.isalnum():
            raise ValueError(f"bad tag {tag!r}")
        if local == "controlfield":
            record.add_field(pymarc.Field(tag=tag, data=_text(child)))
        elif local == "datafield":
            subfields = []
            for sub in child:
                if not isinstance(sub.tag, str):
                    continue
                code = sub.get("code", "")
                if len(code) != 1:
                    raise ValueError(f"field {tag}: bad subfield code {code!r}")
                subfields.append(pymarc.Subfield(code, _text(sub)))
            ind1 = (child.get("ind1") or " ")[:1]
            ind2 = (child.get("ind2") or " ")[:1]
            record.add_field(pymarc.Field(tag=tag, indicators=pymarc.Indicators(ind1, ind2),
                                          subfields=subfields))
        else:
            raise ValueError(f"unexpected element {local!r}")
    if not record.fields:
        raise ValueError("no fields")
    return record


def iter_marcxml(source: bytes | io.BufferedIOBase, stats: FeedStats) -> Iterator[pymarc.Record]:
    """pymarc Records of a MARCXML document (``marc:collection`` or one record)."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    number = 0
    context = etree.iterparse(stream, events=("end",), tag=(f"{{{MARC_NS}}}record", "record"),
                              recover=True, huge_tree=True, resolve_entities=False, no_network=True)
    try:
        for _event, el in context:
            number += 1
            try:
                yield record_from_xml(el)
            except ValueError as exc:
                stats.skip(f"record {number}: {exc}")
            finally:
                el.clear()
                while el.getprevious() is not None:
                    del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        stats.skip(f"after record {number}: XML not well-formed: {exc}")


# ------------------------------------------------------------------ OAI-PMH
@dataclass
class OaiPage:
    records: list[pymarc.Record]
    resumption_token: str | None
    response_date: str | None
    complete_list_size: int | None = None


def parse_oai_page(data: bytes, stats: FeedStats) -> OaiPage:
    """One ListRecords response.  ``noRecordsMatch`` is an empty page, other
    OAI-PMH errors raise :class:`FeedError`."""
    parser = etree.XMLParser(recover=True, huge_tree=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"OAI-PMH response is not XML: {exc}") from None
    if root is None or root.tag != f"{{{OAI_NS}}}OAI-PMH":
        raise FeedError("not an OAI-PMH response")
    date = root.findtext(f"{{{OAI_NS}}}responseDate")
    error = root.find(f"{{{OAI_NS}}}error")
    if error is not None:
        code = error.get("code", "")
        if code == "noRecordsMatch":
            return OaiPage([], None, date)
        raise FeedError(f"OAI-PMH error {code}: {(error.text or '').strip()}")
    records: list[pymarc.Record] = []
    lst = root.find(f"{{{OAI_NS}}}ListRecords")
    if lst is None:
        raise FeedError("OAI-PMH response without ListRecords")
    for number, rec in enumerate(lst.iterfind(f"{{{OAI_NS}}}record"), start=1):
        header = rec.find(f"{{{OAI_NS}}}header")
        if header is not None and header.get("status") == "deleted":
            stats.deleted += 1
            continue
        marc = rec.find(f"{{{OAI_NS}}}metadata/{{{MARC_NS}}}record")
        if marc is None:
            identifier = header.findtext(f"{{{OAI_NS}}}identifier") if header is not None else "?"
            stats.skip(f"OAI record {identifier}: no marc21 metadata")
            continue
        try:
            records.append(record_from_xml(marc))
        except ValueError as exc:
            identifier = header.findtext(f"{{{OAI_NS}}}identifier") if header is not None else number
            stats.skip(f"OAI record {identifier}: {exc}")
    token_el = lst.find(f"{{{OAI_NS}}}resumptionToken")
    token = (token_el.text or "").strip() if token_el is not None else ""
    size = token_el.get("completeListSize") if token_el is not None else None
    return OaiPage(records, token or None, date, int(size) if size and size.isdigit() else None)


# ------------------------------------------------------------------ common
def feed_records(records: Iterable[pymarc.Record], stats: FeedStats) -> Iterator[FeedRecord]:
    """Extract match fields; records without 001 and ISBN are skipped and counted."""
    for record in records:
        try:
            item = extract(record)
        except Exception as exc:  # noqa: BLE001 - a field pymarc accepted but we cannot read
            stats.skip(f"record: {type(exc).__name__}: {exc}"[:200])
            continue
        if item is None:
            stats.skip("record without 001 and without ISBN")
            continue
        stats.records += 1
        yield item


def read_feed_bytes(data: bytes, fmt: str, stats: FeedStats) -> Iterator[FeedRecord]:
    """Records of a whole feed document in format ``marc21`` or ``marcxml``."""
    if fmt == "marc21":
        return read_iso2709(data, stats)
    if fmt == "marcxml":
        return feed_records(iter_marcxml(data, stats), stats)
    if fmt == "oai-pmh":
        page = parse_oai_page(data, stats)
        return feed_records(page.records, stats)
    raise ValueError(f"unknown feed format {fmt!r}")


def sniff_format(data: bytes) -> str:
    """``marcxml`` / ``oai-pmh`` for XML (by root element), else ``marc21``."""
    head = data[:2048].lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith(b"<"):
        return "oai-pmh" if b"OAI-PMH" in head else "marcxml"
    return "marc21"
