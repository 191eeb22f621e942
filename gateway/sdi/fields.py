"""Field extraction from MARC 21 bibliographic records for SDI matching.

Which MARC data count as which alert field (issue 7):

* ``title``     — 245 $a $b $n $p
* ``author``    — 100 / 110 / 111 / 700 / 710 / 711 $a
* ``subject``   — 600 / 610 / 611 / 630 / 650 / 651 $a $x $y $z $v
* ``publisher`` — 260 $b and 264 $b
* ``isbn``      — 020 $a with hyphens dropped
* ``any``       — every occurrence of all of the above.

One *occurrence* is one MARC field: the listed subfields, in the order they appear
in the field, joined with one space.  An 880 (alternate graphic representation)
whose $6 links to one of those tags (``$6 245-01/$1``) is one more occurrence of
the tag it links to — Japanese records carry the katakana reading of the title,
author and publisher there.  The record id is 001, else the first ISBN.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import itemgetter

import pymarc

from gateway.sdi.normalize import drop_hyphens

FIELDS: tuple[str, ...] = ("title", "author", "subject", "publisher", "isbn")
FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}
ANY = len(FIELDS)  # the pseudo-field "any"
FIELD_INDEX_WITH_ANY: dict[str, int] = {**FIELD_INDEX, "any": ANY}

TITLE, AUTHOR, SUBJECT, PUBLISHER, ISBN = range(len(FIELDS))

# tag → (field index, subfield codes taken)
TAGS: dict[str, tuple[int, frozenset[str]]] = {
    "245": (TITLE, frozenset("abnp")),
    **{t: (AUTHOR, frozenset("a")) for t in ("100", "110", "111", "700", "710", "711")},
    **{t: (SUBJECT, frozenset("axyzv")) for t in ("600", "610", "611", "630", "650", "651")},
    "260": (PUBLISHER, frozenset("b")),
    "264": (PUBLISHER, frozenset("b")),
    "020": (ISBN, frozenset("a")),
}

_TITLE_TRAILING = " /:;,.="


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """What the matcher needs of one record: id, display title, raw occurrences."""

    id: str
    title: str
    # occurrences[FIELD_INDEX[name]] = the raw occurrence texts of that field
    occurrences: tuple[tuple[str, ...], ...]

    def field(self, name: str) -> tuple[str, ...]:
        return self.occurrences[FIELD_INDEX[name]]


# A field as rmarc's decoder gives it: (tag, ("control", data)) or
# (tag, ("data", ind1, ind2, [(code, value), ...])).  pymarc Records (MARCXML,
# OAI-PMH) are turned into the same shape by :func:`raw_fields`.
RawField = tuple[str, tuple]
WANTED_TAGS = frozenset(TAGS) | {"001", "880"}  # the only fields extraction looks at


_tag_of = itemgetter(0)
_is_wanted = WANTED_TAGS.__contains__


def raw_fields(record: pymarc.Record) -> list[RawField]:
    return [(f.tag, ("control", f.data) if f.is_control_field()
             else ("data", f.indicator1, f.indicator2, [(s.code, s.value) for s in f.subfields]))
            for f in record.fields]


def extract(record: pymarc.Record) -> FeedRecord | None:
    """The occurrences of a pymarc Record, or None when it has neither 001 nor an ISBN."""
    return extract_raw(raw_fields(record))


def extract_raw(fields: list[RawField]) -> FeedRecord | None:
    """The record's occurrences, or None when it has neither 001 nor an ISBN."""
    occ: list[list[str]] = [[], [], [], [], []]
    control_001: str | None = None
    display: str | None = None
    tags = TAGS
    # only the wanted fields, chosen at C speed (a record has ~3x as many others)
    for tag, body in compress(fields, map(_is_wanted, map(_tag_of, fields))):
        if body[0] == "control":
            if tag == "001" and control_001 is None and body[1]:
                control_001 = body[1].strip() or None
            continue
        subfields = body[3]
        if tag == "880":
            spec = None
            for code, value in subfields:
                if code == "6":
                    spec = tags.get(value[:3])
                    break
        else:
            spec = tags.get(tag)
        if spec is None:
            continue
        index, codes = spec
        text = " ".join([value for code, value in subfields if code in codes])
        if index == ISBN:
            text = drop_hyphens(text)
        elif index == TITLE and tag == "245" and display is None:
            display = text.rstrip(_TITLE_TRAILING)
        occ[index].append(text)
    record_id = control_001
    if record_id is None:
        record_id = first_isbn(occ[ISBN])
    if record_id is None:
        return None
    return FeedRecord(record_id, display or "", tuple(map(tuple, occ)))


def first_isbn(isbn_occurrences: list[str] | tuple[str, ...]) -> str | None:
    """The first ISBN (its first word: `9784... (pbk.)` → `9784...`)."""
    for text in isbn_occurrences:
        words = text.split()
        if words:
            return words[0]
    return None
