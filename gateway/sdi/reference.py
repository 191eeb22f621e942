"""The plain reference implementation of the SDI semantics (for tests and the benchmark).

Deliberately naive and written straight from the rules in issue 7 / the README,
sharing nothing with the engine but :func:`normalize`: its own field extraction
from the pymarc record, a loop over records, for each record a loop over alerts,
for each condition a loop over occurrences with ``in``.  The property test asserts
that :class:`gateway.sdi.engine.Engine` produces exactly the same matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import pymarc

from gateway.sdi.engine import Match, NoConditions, _alert_parts, _cond_parts
from gateway.sdi.normalize import normalize

HYPHENS = "-\u2010\u2011\uff0d"  # dropped from 020 $a
SPEC = {
    "title": {"245": "abnp"},
    "author": {t: "a" for t in ("100", "110", "111", "700", "710", "711")},
    "subject": {t: "axyzv" for t in ("600", "610", "611", "630", "650", "651")},
    "publisher": {"260": "b", "264": "b"},
    "isbn": {"020": "a"},
}


def occurrences(record: pymarc.Record, field_name: str) -> list[str]:
    """Raw texts of every occurrence of a field (880s linked by $6 included)."""
    if field_name == "any":
        return [text for name in SPEC for text in occurrences(record, name)]
    tags = SPEC[field_name]
    out = []
    for field in record.fields:
        if field.is_control_field():
            continue
        tag = field.tag
        if tag == "880":
            six = [s.value for s in field.subfields if s.code == "6"]
            if not six:
                continue
            tag = six[0][:3]
        if tag not in tags:
            continue
        text = " ".join(s.value for s in field.subfields if s.code in tags[tag])
        if field_name == "isbn":
            for hyphen in HYPHENS:
                text = text.replace(hyphen, "")
        out.append(text)
    return out


def record_id(record: pymarc.Record) -> str | None:
    for field in record.fields:
        if field.tag == "001" and field.data and field.data.strip():
            return field.data.strip()
    for text in occurrences(record, "isbn"):
        if text.split():
            return text.split()[0]
    return None


def display_title(record: pymarc.Record) -> str:
    for field in record.fields:
        if field.tag == "245" and not field.is_control_field():
            return " ".join(s.value for s in field.subfields if s.code in "abnp").rstrip(" /:;,.=")
    return ""


def looks_like_isbn(value: str) -> bool:
    """Digits, hyphens and spaces (full-width too), at least one digit, maybe a final X."""
    text = unicodedata.normalize("NFKC", value).rstrip()
    if text[-1:] in ("X", "x"):
        text = text[:-1]
    return (any(c in "0123456789" for c in text)
            and all(c in "0123456789" or c in HYPHENS or c.isspace() for c in text))


def value_for(condition_field: str, field_name: str, value: str) -> str:
    """The normalised value looked for in the occurrences of field_name: in the isbn
    field hyphens are dropped from the value as they are from the field (always
    for an isbn condition, for an any condition when the value looks like an ISBN)."""
    if field_name == "isbn" and (condition_field == "isbn" or looks_like_isbn(value)):
        for hyphen in HYPHENS:
            value = value.replace(hyphen, "")
    return normalize(value)


def condition_holds(record: pymarc.Record, cond: Any) -> bool:
    field, op, value = _cond_parts(cond)
    names = list(SPEC) if field == "any" else [field]
    found = any(value_for(field, name, value) in normalize(text)
                for name in names for text in occurrences(record, name))
    return found if op == "contains" else not found


def alert_matches(record: pymarc.Record, alert: Any) -> bool:
    _id, conditions, match, _max, active = _alert_parts(alert)
    if not active:
        return False
    results = [condition_holds(record, c) for c in conditions]
    return all(results) if match == "all" else any(results)


def reference_matches(records: Iterable[pymarc.Record], alerts: list[Any],
                      reported: Mapping[str, set[str]] | None = None) -> list[Match]:
    for alert in alerts:
        if not _alert_parts(alert)[1]:
            raise NoConditions(f"alert {_alert_parts(alert)[0]!r} has no conditions")
    already = {(_alert_parts(a)[0]): set((reported or {}).get(_alert_parts(a)[0], ())) for a in alerts}
    count = {(_alert_parts(a)[0]): 0 for a in alerts}
    out: list[Match] = []
    for record in records:
        rid = record_id(record)
        if rid is None:
            continue  # skipped as malformed
        for alert in alerts:
            alert_id, _c, _m, max_results, _a = _alert_parts(alert)
            if count[alert_id] >= max_results or rid in already[alert_id]:
                continue
            if alert_matches(record, alert):
                out.append(Match(alert_id, rid, display_title(record)))
                already[alert_id].add(rid)
                count[alert_id] += 1
    return out
