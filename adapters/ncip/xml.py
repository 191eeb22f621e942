"""NCIP 2.02 XML plumbing: strict building, schema validation, lenient reading.

Shared by the adapter (which builds initiation messages and reads responses) and by
the responder simulator in ``fixtures/ncip`` (which reads initiation messages and
builds responses).  Two halves with opposite attitudes:

- **sending is strict**: ``Builder`` emits elements in schema order with the
  ``ns1`` prefix, qualified ``ns1:version``/``ns1:Scheme`` attributes (the schema
  has ``attributeFormDefault="qualified"``), and ``validate()`` checks a message
  against the official 2.02 XSD when it is available;
- **reading is lenient**: ``read_message()`` drops HTTP status/header lines that
  some toolkits put before the XML, accepts a missing namespace prefix or a missing
  namespace declaration, and turns every tag into its local name so lookups do not
  depend on prefixes; ``find``/``findall``/``text`` search children by name, so
  elements out of schema order are still found.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

NS = "http://www.niso.org/2008/ncip"
VERSION = "http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"
NSMAP = {"ns1": NS}
SCHEMA_FILE = "conformance/ncip/ncip_v2_02.xsd"
ENV_SHARED = "OPACGW_SHARED"

_Q = "{%s}%s"


class NcipSyntaxError(ValueError):
    """The bytes are not an NCIP message (not XML, truncated, wrong root)."""


# ------------------------------------------------------------------ schema
# Relative to the project checkout (../shared next to it), never a machine path.
PROJECT_SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def shared_dir() -> Path | None:
    """The shared reference material: $OPACGW_SHARED, else ../shared next to the project;
    None when neither exists (schema validation is then skipped)."""
    if os.environ.get(ENV_SHARED):  # explicit: only there (set it to a missing path to test skips)
        p = Path(os.environ[ENV_SHARED])
        return p.resolve() if p.is_dir() else None
    return PROJECT_SHARED if PROJECT_SHARED.is_dir() else None


def schema_path() -> Path | None:
    base = shared_dir()
    if base is None:
        return None
    p = base / SCHEMA_FILE
    return p if p.is_file() else None


_schema_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _compiled(path: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(path, parser))


def schema() -> etree.XMLSchema | None:
    """The compiled 2.02 schema (cached), or None when the XSD is not on this machine."""
    p = schema_path()
    if p is None:
        return None
    with _schema_lock:  # lxml schemas are not safe to compile concurrently
        return _compiled(str(p))


def validation_errors(doc: etree._Element | bytes) -> list[str] | None:
    """Schema errors of a message; [] when valid; None when the XSD is absent."""
    s = schema()
    if s is None:
        return None
    if isinstance(doc, bytes | bytearray):
        doc = etree.fromstring(bytes(doc), _parser())
    with _schema_lock:
        ok = s.validate(doc)
        return [] if ok else [f"line {e.line}: {e.message}" for e in s.error_log]


# ------------------------------------------------------------------ building
class Builder:
    """Builds one NCIP message in schema order: ``b = Builder("LookupUser")``,
    ``b.add(b.body, "UserId", ...)``; ``b.tobytes()``."""

    def __init__(self, message: str) -> None:
        self.root = etree.Element(_Q % (NS, "NCIPMessage"), nsmap=NSMAP)
        self.root.set(_Q % (NS, "version"), VERSION)
        self.body = etree.SubElement(self.root, _Q % (NS, message))

    @staticmethod
    def add(parent: etree._Element, name: str, text: str | None = None, *, scheme: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, _Q % (NS, name))
        if text is not None:
            el.text = str(text)
        if scheme:
            el.set(_Q % (NS, "Scheme"), scheme)
        return el

    def tobytes(self) -> bytes:
        return etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", standalone=True)


def E(parent: etree._Element, name: str, text: Any = None, **kw: Any) -> etree._Element:
    """Shorthand for ``Builder.add``; ``None`` text makes an empty element."""
    return Builder.add(parent, name, None if text is None else str(text), **kw)


def header(parent: etree._Element, name: str, from_agency: str, to_agency: str) -> etree._Element:
    """InitiationHeader / ResponseHeader with From/To agency ids."""
    h = E(parent, name)
    E(E(h, "FromAgencyId"), "AgencyId", from_agency)
    E(E(h, "ToAgencyId"), "AgencyId", to_agency)
    return h


def id_element(parent: etree._Element, kind: str, value: str, agency: str | None = None,
               id_type: str | None = None) -> etree._Element:
    """UserId / ItemId / RequestId: AgencyId?, <kind>IdentifierType?, <kind>IdentifierValue."""
    el = E(parent, f"{kind}Id")
    if agency:
        E(el, "AgencyId", agency)
    if id_type:
        E(el, f"{kind}IdentifierType", id_type)
    E(el, f"{kind}IdentifierValue", value)
    return el


def fmt_datetime(d: date | datetime, tz: ZoneInfo | None = None) -> str:
    """xs:dateTime with offset; a bare date is midnight in ``tz``."""
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day, tzinfo=tz or UTC)
    elif d.tzinfo is None:
        d = d.replace(tzinfo=tz or UTC)
    return d.isoformat(timespec="seconds")


# ------------------------------------------------------------------ reading
def _parser() -> etree.XMLParser:
    # Never fetch DTDs or expand entities from an upstream's answer.
    return etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)


_PREAMBLE = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:HTTP/\d(?:\.\d)?\s+\d{3}[^\n]*\n(?:[^\n<]*\n)*?)\s*(?=<)", re.IGNORECASE)


def strip_preamble(raw: bytes) -> bytes:
    """Drop HTTP status and header lines written before the XML by some toolkits."""
    m = _PREAMBLE.match(raw)
    if m:
        return raw[m.end():]
    return raw.lstrip(b"\xef\xbb\xbf \t\r\n")


def localize(root: etree._Element) -> etree._Element:
    """Every tag and attribute becomes its local name (prefix or namespace missing → same tree)."""
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        el.tag = etree.QName(el).localname
        for key in list(el.attrib):
            if key.startswith("{"):
                value = el.attrib.pop(key)
                el.set(etree.QName(key).localname, value)
    etree.cleanup_namespaces(root)
    return root


def read_message(raw: bytes | str) -> etree._Element:
    """Parse an NCIP message leniently; returns the NCIPMessage element with local names.

    Raises NcipSyntaxError when the bytes are not (complete) XML or the root is not
    NCIPMessage.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    body = strip_preamble(raw)
    if not body.strip():
        raise NcipSyntaxError("empty body")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise NcipSyntaxError(f"not well-formed XML: {exc}") from None
    root = localize(root)
    if root.tag != "NCIPMessage":
        raise NcipSyntaxError(f"root element is {root.tag}, not NCIPMessage")
    return root


def message_body(root: etree._Element) -> etree._Element | None:
    """The one message element inside NCIPMessage (first child that is not Problem/Ext)."""
    for child in root:
        if isinstance(child.tag, str) and child.tag not in ("Problem", "Ext"):
            return child
    return None


def find(el: etree._Element | None, path: str) -> etree._Element | None:
    """First descendant along a ``/``-separated path of local names (any order)."""
    if el is None:
        return None
    return el.find(path)


def findall(el: etree._Element | None, path: str) -> list[etree._Element]:
    if el is None:
        return []
    return list(el.iterfind(path))


def text(el: etree._Element | None, path: str | None = None) -> str | None:
    """Stripped text at ``path`` (or of ``el``); blank → None."""
    if el is not None and path:
        el = el.find(path)
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


def first_text(el: etree._Element | None, paths: Iterable[str]) -> str | None:
    for p in paths:
        t = text(el, p)
        if t is not None:
            return t
    return None


_DATE_ONLY = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T?(\d{2}):?(\d{2}):?(\d{2})?)?$")


def parse_ncip_date(value: str | None, tz: ZoneInfo | None = None) -> date | None:
    """A date from what responders put in xs:dateTime fields, leniently.

    ``2014-11-20T01:00:00Z``, ``2020-08-31T23:59:59.999+02:00``, ``2014-11-14T16:22:46.016Z``,
    ``2020-09-09``, ``2020/09/09``, ``20200909``, ``2020-09-09 10:00:00``.  A UTC instant is
    converted to ``tz`` (toolkits write local midnight as e.g. ``...T23:00:00Z``); an
    explicit non-UTC offset or no offset keeps the calendar date as written.
    Blank → None; unreadable → ValueError.
    """
    if value is None:
        return None
    s = value.strip()
    if not s:
        return None
    m = _DATE_ONLY.match(s)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3]))
    m = _COMPACT.match(s)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3]))
    iso = s.replace(" ", "T", 1)
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    # Python < 3.11 disliked fractions other than 3/6 digits; normalise to 6 anyway.
    iso = re.sub(r"\.(\d+)", lambda m: "." + (m[1] + "000000")[:6], iso)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"unreadable NCIP date {value!r}") from None
    if dt.tzinfo is not None and dt.utcoffset() == UTC.utcoffset(None) and tz is not None:
        dt = dt.astimezone(tz)
    return dt.date()
