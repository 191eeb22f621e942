"""The shared HTML kit of the screen-scraping adapters (winj, wo, ...).

Three things every portal parser needs, written once:

- **decoding** (``decode_page``): by the charset the page declares (BOM, then the
  HTTP ``Content-Type``, then ``<meta charset>`` / ``http-equiv``); a page that declares
  nothing is decoded as UTF-8 when it is valid UTF-8, else by a detector
  (charset-normalizer).  When the detector is not confident the page is
  ``UpstreamChanged`` (502): replacement characters are never served as titles.
  ``Shift_JIS`` is read as Windows-31J (cp932), which is what the portals emit.
- **clean text** (``clean``, ``text``): ``&nbsp;``, full-width spaces, tabs and line
  breaks collapse to one space; zero-width characters go.
- **selectors with fallbacks** (``required``, ``optional``, ``rows``, ...): each takes a
  tuple of selectors tried in order (the first that matches wins), so a portal
  that renamed a class can be served by adding the new name in front.  A required
  node that is missing raises ``UpstreamChanged`` whose detail names the screen and
  the field; the mapped helpers (``required_date``, ``optional_date``,
  ``required_int``) do the same for values that do not map.

``Screen`` binds the screen's name (and library) once, so a parser reads
``s.required_text(row, COL_ID, "hold number")``.

A list is never "empty" because nothing matched: ``rows`` returns no rows only when
the caller has positively recognised the portal's own "no items" notice (or a count
of 0); otherwise it is layout drift and ``UpstreamChanged``.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from charset_normalizer import from_bytes
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from core.errors import UpstreamChanged
from mappers import MappingError
from mappers.dates import parse_date, parse_expiry, parse_optional_date

__all__ = [
    "Decoded",
    "HTMLParser",
    "Node",
    "Screen",
    "Selectors",
    "changed",
    "clean",
    "declared_charset",
    "decode",
    "decode_page",
    "expiry_date",
    "mapped",
    "optional",
    "optional_attr",
    "optional_date",
    "optional_int",
    "optional_text",
    "py_codec",
    "required",
    "required_attr",
    "required_date",
    "required_int",
    "required_text",
    "rows",
    "text",
    "texts",
    "tree",
]

T = TypeVar("T")
#: one selector, or fallbacks tried in order
Selectors = str | tuple[str, ...]
#: anything with ``css`` / ``css_first``: a parsed page or one of its nodes
Searchable = Node | HTMLParser

# ------------------------------------------------------------------ decoding
_CHARSET_HDR = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-.:]+)", re.IGNORECASE)
_CHARSET_META = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?([A-Za-z0-9_\-.:]+)", re.IGNORECASE)
#: how much of the page to scan for a <meta charset> (the HTML standard's prescan is 1024 bytes)
META_SCAN_BYTES = 4096
#: detector results with more "chaos" than this (charset-normalizer's mess ratio) are refused
MAX_CHAOS = 0.1
#: undecodable bytes tolerated in a page whose declared charset is otherwise right
MAX_STRAY_BYTES = 2
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "UTF-16BE"),
)
# the portals say Shift_JIS but emit Windows-31J (NEC/IBM extensions such as ①, ～)
_ALIASES = {"shift_jis": "cp932", "sjis": "cp932", "x_sjis": "cp932", "windows_31j": "cp932",
            "ms_kanji": "cp932", "csshiftjis": "cp932", "euc_jp": "euc_jp", "x_euc_jp": "euc_jp"}


@dataclass(frozen=True)
class Decoded:
    """A decoded page and the charset it was read in (forms are posted back in it)."""

    text: str
    charset: str
    #: where the charset came from: "bom", "header", "meta", "utf-8" (undeclared, valid UTF-8)
    #: or "detected"
    source: str


def py_codec(charset: str) -> str | None:
    """The Python codec for a charset name, or None when Python does not know it."""
    c = charset.strip().lower().replace("-", "_")
    c = _ALIASES.get(c, c)
    try:
        return codecs.lookup(c).name
    except LookupError:
        return None


def declared_charset(content: bytes, content_type: str | None = None) -> tuple[str, str] | None:
    """(charset, where) the page declares: its BOM, the HTTP header, else its meta tag."""
    for bom, name in _BOMS:
        if content.startswith(bom):
            return name, "bom"
    if content_type:
        m = _CHARSET_HDR.search(content_type)
        if m and py_codec(m.group(1)):
            return m.group(1), "header"
    meta = _CHARSET_META.search(content[:META_SCAN_BYTES])
    if meta:
        name = meta.group(1).decode("ascii")
        if py_codec(name):
            return name, "meta"
    return None


def decode_page(content: bytes, content_type: str | None = None, *, what: str = "page",
                library: str | None = None) -> Decoded:
    """Bytes of a page → text, by its declared charset, else UTF-8 or a confident detection.

    An undeclared page whose encoding cannot be recognised with confidence is
    ``UpstreamChanged``, never text with replacement characters; so is a page that is
    not in the charset it declares, unless a confident detection reads it.
    """
    declared = declared_charset(content, content_type)
    if declared is not None:
        name, source = declared
        codec = py_codec(name) or "utf-8"
        body = content
        if source == "bom":
            body = content[len(next(b for b, n in _BOMS if n == name)):]
        try:
            return Decoded(body.decode(codec), name, source)
        except UnicodeDecodeError:
            pass
        # A few stray bytes are the portal's and do not refuse the page.  More means the
        # declaration is wrong (a UTF-8 header on a Shift_JIS page): a confident detection
        # reads it; anything else would be mojibake, so it is 502.
        text = body.decode(codec, errors="replace")
        if text.count("\ufffd") <= MAX_STRAY_BYTES:
            return Decoded(text, name, source)
        detected = _detect(body)
        if detected is None:
            raise UpstreamChanged(f"the {what} is not in the {name} it declares", library=library)
        return detected
    try:
        return Decoded(content.decode("utf-8"), "UTF-8", "utf-8")
    except UnicodeDecodeError:
        pass
    detected = _detect(content)
    if detected is None:
        raise UpstreamChanged(
            f"the {what} declares no charset and its encoding could not be recognised", library=library)
    return detected


def _detect(content: bytes) -> Decoded | None:
    """A confident detection (charset-normalizer) that decodes cleanly, else None."""
    best = from_bytes(content).best()
    if best is None or best.chaos > MAX_CHAOS:
        return None
    codec = py_codec(best.encoding) or best.encoding
    try:
        return Decoded(content.decode(codec), best.encoding, "detected")
    except (UnicodeDecodeError, LookupError):
        return None


def decode(content: bytes, content_type: str | None = None, *, what: str = "page",
           library: str | None = None) -> str:
    """``decode_page(...).text``."""
    return decode_page(content, content_type, what=what, library=library).text


def tree(page: str | bytes) -> HTMLParser:
    """A parsed page (bytes are decoded first, see ``decode``)."""
    if isinstance(page, bytes):
        page = decode(page)
    return HTMLParser(page)


# ------------------------------------------------------------------ text
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def clean(value: str | None) -> str:
    """Collapse every run of whitespace (``&nbsp;``, full-width spaces, tabs, line breaks)
    to one space, drop zero-width characters, and trim."""
    if not value:
        return ""
    return " ".join(value.translate(_INVISIBLE).split())


def text(node: Node | None, *, separator: str = " ") -> str:
    """The clean text of a node; "" for no node."""
    return "" if node is None else clean(node.text(separator=separator))


# ------------------------------------------------------------------ errors
def _where(screen: str | None) -> str:
    return f"the {screen} page changed: " if screen else "the portal's page changed: "


def changed(what: str, *, screen: str | None = None, library: str | None = None) -> UpstreamChanged:
    """The error for a page that cannot be understood, naming the screen and what is wrong."""
    return UpstreamChanged(_where(screen) + what, library=library)


def _tuple(selectors: Selectors) -> tuple[str, ...]:
    return (selectors,) if isinstance(selectors, str) else tuple(selectors)


# ------------------------------------------------------------------ selectors
def optional(node: Searchable | None, selectors: Selectors) -> Node | None:
    """The first node matching the first selector that matches anything, else None."""
    if node is None:
        return None
    for sel in _tuple(selectors):
        found = node.css_first(sel)
        if found is not None:
            return found
    return None


def required(node: Searchable | None, selectors: Selectors, what: str, *, screen: str | None = None,
             library: str | None = None) -> Node:
    """Like ``optional``, but a missing node is ``UpstreamChanged`` naming ``what``."""
    found = optional(node, selectors)
    if found is None:
        raise changed(f"no {what} (looked for {' | '.join(_tuple(selectors))})", screen=screen, library=library)
    return found


def optional_text(node: Searchable | None, selectors: Selectors) -> str | None:
    """The clean text of the first match; None when nothing matches or the text is blank."""
    return text(optional(node, selectors)) or None


def required_text(node: Searchable | None, selectors: Selectors, what: str, *, screen: str | None = None,
                  library: str | None = None) -> str:
    """The clean, non-blank text of the first match, else ``UpstreamChanged``."""
    value = text(required(node, selectors, what, screen=screen, library=library))
    if not value:
        raise changed(f"{what} is blank", screen=screen, library=library)
    return value


def optional_attr(node: Searchable | None, selectors: Selectors, attr: str) -> str | None:
    """An attribute of the first match; None when nothing matches or it is blank."""
    found = optional(node, selectors)
    value = found.attributes.get(attr) if found is not None else None
    return value or None


def required_attr(node: Searchable | None, selectors: Selectors, attr: str, what: str, *,
                  screen: str | None = None, library: str | None = None) -> str:
    value = required(node, selectors, what, screen=screen, library=library).attributes.get(attr)
    if not value:
        raise changed(f"{what} has no {attr}", screen=screen, library=library)
    return value


def rows(node: Searchable | None, selectors: Selectors, what: str, *,
         empty: bool | Callable[[], bool], count: int | None = None,
         screen: str | None = None, library: str | None = None) -> list[Node]:
    """The rows of a list: every match of the first selector that matches anything.

    No rows is an empty list only when ``empty`` says the page positively shows the
    portal's own "no items" notice (or a count of 0); otherwise the layout drifted and
    it is ``UpstreamChanged``.  With ``count`` (the number the page itself prints) a
    shorter or longer list is drift too.
    """
    found: list[Node] = []
    if node is not None:
        for sel in _tuple(selectors):
            found = list(node.css(sel))
            if found:
                break
    if not found:
        if empty() if callable(empty) else empty:
            return []
        raise changed(f"no {what} and no notice that there are none", screen=screen, library=library)
    if count is not None and count != len(found):
        raise changed(f"{len(found)} {what} where the page says {count}", screen=screen, library=library)
    return found


# ------------------------------------------------------------------ mapped values
def mapped(fn: Callable[[str], T], value: str, what: str, *, screen: str | None = None,
           library: str | None = None) -> T:
    """``fn(value)``; a ``MappingError`` / ``ValueError`` is ``UpstreamChanged`` naming ``what``."""
    try:
        return fn(value)
    except (MappingError, ValueError) as exc:
        raise changed(f"unreadable {what} {value!r}", screen=screen, library=library) from exc


def required_date(value: str, what: str, *, screen: str | None = None, library: str | None = None) -> date:
    """A date in any spelling ``mappers.dates`` reads, else ``UpstreamChanged``."""
    return mapped(parse_date, value, what, screen=screen, library=library)


def optional_date(value: str | None, what: str, *, screen: str | None = None,
                  library: str | None = None) -> date | None:
    """Blank → None; a date otherwise; anything else is ``UpstreamChanged``."""
    if value is None:
        return None
    return mapped(parse_optional_date, value, what, screen=screen, library=library)


def expiry_date(value: str | None, what: str, *, screen: str | None = None,
                library: str | None = None) -> date | None:
    """Like ``optional_date``, and the "no expiry" sentinel (9999/12/31) → None."""
    if value is None:
        return None
    return mapped(parse_expiry, value, what, screen=screen, library=library)


_DIGITS = re.compile(r"\d+")


def optional_int(value: str | None) -> int | None:
    """The first run of digits (full-width too, thousands commas dropped), else None."""
    m = _DIGITS.search(unicodedata.normalize("NFKC", value or "").replace(",", ""))
    return int(m.group(0)) if m else None


def required_int(value: str | None, what: str, *, screen: str | None = None,
                 library: str | None = None) -> int:
    number = optional_int(value)
    if number is None:
        raise changed(f"unreadable {what} {value!r}", screen=screen, library=library)
    return number


# ------------------------------------------------------------------ one screen
@dataclass(frozen=True)
class Screen:
    """The helpers above bound to one screen's name (and library) for their errors."""

    name: str
    library: str | None = None

    def changed(self, what: str) -> UpstreamChanged:
        return changed(what, screen=self.name, library=self.library)

    def required(self, node: Searchable | None, selectors: Selectors, what: str) -> Node:
        return required(node, selectors, what, screen=self.name, library=self.library)

    def required_text(self, node: Searchable | None, selectors: Selectors, what: str) -> str:
        return required_text(node, selectors, what, screen=self.name, library=self.library)

    def required_attr(self, node: Searchable | None, selectors: Selectors, attr: str, what: str) -> str:
        return required_attr(node, selectors, attr, what, screen=self.name, library=self.library)

    def rows(self, node: Searchable | None, selectors: Selectors, what: str, *,
             empty: bool | Callable[[], bool], count: int | None = None) -> list[Node]:
        return rows(node, selectors, what, empty=empty, count=count, screen=self.name, library=self.library)

    def mapped(self, fn: Callable[[str], T], value: str, what: str) -> T:
        return mapped(fn, value, what, screen=self.name, library=self.library)

    def required_date(self, value: str, what: str) -> date:
        return required_date(value, what, screen=self.name, library=self.library)

    def optional_date(self, value: str | None, what: str) -> date | None:
        return optional_date(value, what, screen=self.name, library=self.library)

    def expiry_date(self, value: str | None, what: str) -> date | None:
        return expiry_date(value, what, screen=self.name, library=self.library)

    def required_int(self, value: str | None, what: str) -> int:
        return required_int(value, what, screen=self.name, library=self.library)


def texts(nodes: Iterable[Node]) -> list[str]:
    """The non-blank clean texts of some nodes."""
    return [t for t in (text(n) for n in nodes) if t]
