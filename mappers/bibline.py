"""The one-line bibliographic description OPAC result lists print.

``title / author -- publisher -- year -- class``; any part after the title may be
missing (no author, no class), spaces may be full-width, and ``--`` may be printed as
``－－`` or ``—``.  WebOPAC (鹿児島県立) prints the title on its own line and then
``関 良基 / 著 -- 作品社 -- 2016.12 -- 289.1`` — the author statement itself contains
`` / `` before the role — so callers holding the title separately pass ``title=`` and
the whole head is the author statement.  The year is kept as printed (``2016.12``,
``1996.9``, ``2001``; brackets dropped): its first four characters are the year.
A status word the list prints after the class (``289.1 貸出可``) is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mappers import MappingError

__all__ = ["BibLine", "parse_bibline"]


@dataclass(frozen=True)
class BibLine:
    title: str
    author: str | None = None
    publisher: str | None = None
    year: str | None = None
    classification: str | None = None


_PART_SEP = re.compile(r"\s*(?:--|—|―{1,2}|‐‐|−−)\s*")
_AUTHOR_SEP = re.compile(r"\s+/\s*|\s*/\s+")
_YEAR = re.compile(r"^\[?(\d{4}(?:\.\d{1,2})?)\]?(?:年)?$")
_CLASS = re.compile(r"^[0-9A-Z]{1,4}(?:\.[0-9A-Za-z]+)?(?:/\S*)?$")


def _norm(text: str) -> str:
    # NFKC folds full-width spaces and －－ to ASCII; keep the Japanese text otherwise.
    s = unicodedata.normalize("NFKC", text)
    return " ".join(s.split())


def parse_bibline(line: str, *, title: str | None = None) -> BibLine:
    """Split one result-list line; MappingError if there is no title.

    With ``title`` the line carries no title (``author -- publisher -- year -- class``).
    """
    if not isinstance(line, str):
        raise MappingError("bibline must be text")
    s = _norm(line)
    if not s:
        raise MappingError("empty bibliographic line")
    parts = [p.strip() for p in _PART_SEP.split(s)]
    head, rest = parts[0], [p for p in parts[1:] if p]
    if title is not None:
        title, author = _norm(title), head
    elif "/" in head:
        m = _AUTHOR_SEP.search(head)
        if m:
            title, author = head[: m.start()].strip(), head[m.end() :].strip()
        else:
            title, _, author = head.partition("/")
            title, author = title.strip(), author.strip()
    else:
        title, author = head, ""
    if not title:
        raise MappingError(f"bibliographic line without a title: {line!r}")

    publisher: str | None = None
    year: str | None = None
    classification: str | None = None
    for part in rest:
        if year is not None and " " in part:
            part = part.split(" ", 1)[0]  # "289.1 貸出可": the status word follows
        ym = _YEAR.match(part)
        if year is None and ym:
            year = ym.group(1)
        elif year is not None and classification is None and _CLASS.match(part):
            classification = part
        elif publisher is None and year is None:
            publisher = part
        elif classification is None and _CLASS.match(part):
            classification = part
    return BibLine(
        title=title,
        author=author or None,
        publisher=publisher,
        year=year,
        classification=classification,
    )
