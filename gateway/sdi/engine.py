"""The SDI matching engine: every alert against a feed in one pass.

Instead of a loop of alerts × records, all normalised alert values go into one
Aho–Corasick automaton (pyahocorasick).  For each record the engine

1. normalises each occurrence once and joins a field's occurrences with ``"\\n"``
   (normalised text has no whitespace, so no pattern can match across two
   occurrences), then runs the automaton over each field's text: the hits are
   the set of (pattern, field) pairs present in the record;
2. evaluates only the alerts that have a hit, plus the few alerts that can match
   *without* a hit:

   * "default-true" alerts — ``match: all`` with only ``not_contains`` conditions,
     or ``match: any`` with at least one ``not_contains``.  Without a hit every
     ``not_contains`` holds, so such an alert matches at once with no evaluation;
     with a hit it is a candidate anyway.  Each closes after ``max_results``
     matches, so they cost O(max_results) records, not the whole feed;
   * alerts with a value that normalises to the empty string (it is a substring
     of every occurrence: "the field is present"), evaluated on every record;

3. reports, per alert and per run, the first ``max_results`` matching records in
   feed order, never a record already reported to that alert (earlier runs — the
   ``reported`` sets passed in — or earlier in this run).  An alert that is full
   stops being evaluated.

Matches come out in feed order, and for one record in alert order — the same
order as :mod:`gateway.sdi.reference`, which the property test compares against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import ahocorasick

from gateway.sdi.fields import ANY, FIELD_INDEX_WITH_ANY, FIELDS, FeedRecord
from gateway.sdi.normalize import NormalizeCache, normalize

EMPTY = -1  # pattern id of a value that normalises to ""
N_FIELDS = len(FIELDS)


class ConditionLike(Protocol):
    field: str
    op: str
    value: str


class AlertLike(Protocol):
    id: str
    conditions: Sequence[Any]
    match: str
    max_results: int
    active: bool


class Match(NamedTuple):
    alert_id: str
    record_id: str
    title: str


class NoConditions(ValueError):
    """An alert without conditions (the API answers 400; it would match nothing)."""


@dataclass(slots=True)
class _Compiled:
    index: int
    id: str
    match_all: bool
    conditions: tuple[tuple[int, int, bool], ...]  # (pattern id | EMPTY, field index, negated)
    max_results: int
    default_true: bool
    always: bool


def _cond_parts(cond: Any) -> tuple[str, str, str]:
    if isinstance(cond, Mapping):
        return cond["field"], cond.get("op", "contains"), cond["value"]
    return cond.field, cond.op, cond.value


def _alert_parts(alert: Any) -> tuple[str, Sequence[Any], str, int, bool]:
    if isinstance(alert, Mapping):
        return (alert["id"], alert.get("conditions") or [], alert.get("match", "all"),
                int(alert.get("max_results", 10)), bool(alert.get("active", True)))
    return alert.id, alert.conditions, alert.match, alert.max_results, alert.active


class Engine:
    """Compiled alerts.  Build once per run (or reuse across runs); ``run`` is pure
    apart from the ``reported`` sets it is given and extends."""

    def __init__(self, alerts: Iterable[AlertLike | Mapping[str, Any]]) -> None:
        self._patterns: dict[str, int] = {}
        self._by_pattern: list[list[int]] = []
        self._alerts: list[_Compiled] = []
        for alert in alerts:
            alert_id, conditions, match, max_results, active = _alert_parts(alert)
            if not conditions:
                raise NoConditions(f"alert {alert_id!r} has no conditions")
            if not active:
                continue  # inactive alerts match nothing
            index = len(self._alerts)
            compiled = []
            seen_patterns: set[int] = set()
            for cond in conditions:
                field, op, value = _cond_parts(cond)
                field_index = FIELD_INDEX_WITH_ANY[field]
                negated = op == "not_contains"
                if op not in ("contains", "not_contains"):
                    raise ValueError(f"alert {alert_id!r}: unknown op {op!r}")
                norm = normalize(value)
                if not norm:
                    compiled.append((EMPTY, field_index, negated))
                    continue
                pid = self._patterns.get(norm)
                if pid is None:
                    pid = self._patterns[norm] = len(self._patterns)
                    self._by_pattern.append([])
                if pid not in seen_patterns:
                    seen_patterns.add(pid)
                    self._by_pattern[pid].append(index)
                compiled.append((pid, field_index, negated))
            match_all = match == "all"
            negs = [c[2] for c in compiled]
            always = any(c[0] == EMPTY for c in compiled)
            default_true = not always and (all(negs) if match_all else any(negs))
            self._alerts.append(_Compiled(index, alert_id, match_all, tuple(compiled), max_results,
                                          default_true, always))
        self._automaton: Any = None
        if self._patterns:
            automaton = ahocorasick.Automaton()
            for value, pid in self._patterns.items():
                automaton.add_word(value, pid)
            automaton.make_automaton()
            self._automaton = automaton
        self._norm = NormalizeCache()

    @property
    def alert_count(self) -> int:
        return len(self._alerts)

    @property
    def pattern_count(self) -> int:
        return len(self._patterns)

    def run(self, records: Iterable[FeedRecord],
            reported: Mapping[str, set[str]] | None = None) -> list[Match]:
        return list(self.iter_matches(records, reported))

    def iter_matches(self, records: Iterable[FeedRecord],
                     reported: Mapping[str, set[str]] | None = None) -> Iterator[Match]:
        """Matches in feed order.  ``reported[alert_id]`` (records reported in earlier
        runs) is read, never modified; records reported now are tracked internally."""
        alerts = self._alerts
        remaining = [a.max_results for a in alerts]
        seen: list[set[str]] = [set((reported or {}).get(a.id, ())) for a in alerts]
        default_open = {a.index for a in alerts if a.default_true}
        always_open = {a.index for a in alerts if a.always}
        open_count = len(alerts)
        by_pattern = self._by_pattern
        automaton_iter = self._automaton.iter if self._automaton is not None else None
        norm = self._norm
        for record in records:
            if open_count == 0:
                continue  # keep consuming: the caller counts what was read
            # 1. hits: (pattern, field) pairs
            hits: list[set[int]] = [set(), set(), set(), set(), set(), set()]
            any_hits = hits[ANY]
            present = [bool(occ) for occ in record.occurrences]
            if automaton_iter is not None:
                for field_index, occurrences in enumerate(record.occurrences):
                    if not occurrences:
                        continue
                    if len(occurrences) == 1:
                        text = norm(occurrences[0])
                    else:
                        text = "\n".join([norm(o) for o in occurrences])
                    if not text:
                        continue
                    field_hits = hits[field_index]
                    for _end, pid in automaton_iter(text):
                        field_hits.add(pid)
                    any_hits |= field_hits
            # 2. candidates
            candidates: set[int] = set()
            for pid in any_hits:
                candidates.update(by_pattern[pid])
            if always_open:
                candidates |= always_open
            matched: list[int] = []
            for index in candidates:
                if remaining[index] <= 0:
                    continue
                alert = alerts[index]
                if _holds(alert, hits, present):
                    matched.append(index)
            if default_open:
                # No hit on any of its values: every not_contains holds → match.
                matched.extend(default_open - candidates)
            if not matched:
                continue
            matched.sort()
            record_id = record.id
            for index in matched:
                if record_id in seen[index] or remaining[index] <= 0:
                    continue
                seen[index].add(record_id)
                remaining[index] -= 1
                if remaining[index] == 0:
                    open_count -= 1
                    default_open.discard(index)
                    always_open.discard(index)
                yield Match(alerts[index].id, record_id, record.title)


def _holds(alert: _Compiled, hits: list[set[int]], present: list[bool]) -> bool:
    if alert.match_all:
        for pid, field_index, negated in alert.conditions:
            if pid == EMPTY:
                found = any(present) if field_index == ANY else present[field_index]
            else:
                found = pid in hits[field_index]
            if found == negated:
                return False
        return True
    for pid, field_index, negated in alert.conditions:
        if pid == EMPTY:
            found = any(present) if field_index == ANY else present[field_index]
        else:
            found = pid in hits[field_index]
        if found != negated:
            return True
    return False
