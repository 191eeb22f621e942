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
from bisect import bisect_right
from itertools import accumulate, islice
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import ahocorasick

from gateway.sdi.fields import ANY, FIELD_INDEX_WITH_ANY, FIELDS, FeedRecord
from gateway.sdi.normalize import NormalizeCache, normalize

EMPTY = -1  # pattern id of a value that normalises to ""
BATCH = 256  # records normalised together
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
        self._alerts: list[_Compiled] = []
        # hit key = pattern id * 8 + field index (ANY = 5): which alerts a hit concerns
        self._single: dict[int, list[int]] = {}  # alerts of one `contains`: a hit IS a match
        self._multi: dict[int, list[int]] = {}  # other alerts: a hit makes them candidates
        for alert in alerts:
            alert_id, conditions, match, max_results, active = _alert_parts(alert)
            if not conditions:
                raise NoConditions(f"alert {alert_id!r} has no conditions")
            if not active:
                continue  # inactive alerts match nothing
            index = len(self._alerts)
            compiled = []
            for cond in conditions:
                field, op, value = _cond_parts(cond)
                field_index = FIELD_INDEX_WITH_ANY[field]
                if op not in ("contains", "not_contains"):
                    raise ValueError(f"alert {alert_id!r}: unknown op {op!r}")
                norm = normalize(value)
                if not norm:
                    compiled.append((EMPTY, field_index, op == "not_contains"))
                    continue
                pid = self._patterns.get(norm)
                if pid is None:
                    pid = self._patterns[norm] = len(self._patterns)
                compiled.append((pid * 8 + field_index, field_index, op == "not_contains"))
            match_all = match == "all"
            negs = [c[2] for c in compiled]
            always = any(c[0] == EMPTY for c in compiled)
            default_true = not always and (all(negs) if match_all else any(negs))
            item = _Compiled(index, alert_id, match_all, tuple(compiled), max_results, default_true, always)
            self._alerts.append(item)
            if not always:
                target = self._single if (len(compiled) == 1 and not negs[0]) else self._multi
                for key in {c[0] for c in compiled}:
                    target.setdefault(key, []).append(index)
        self._automaton: Any = None
        if self._patterns:
            automaton = ahocorasick.Automaton()
            for value, pid in self._patterns.items():
                automaton.add_word(_bytes_as_str(value), pid * 8)
            automaton.make_automaton()
            self._automaton = automaton
        # The fast path normalises a whole record at once, occurrences separated by
        # U+0000 and fields by U+0001 (neither is whitespace, both are NFKC-stable
        # starters that compose with nothing, so normalising the joined text equals
        # joining the normalised occurrences).  A value containing one would break
        # that, so such alert sets take the per-occurrence path.
        self._joined_ok = not any(("\x00" in v or "\x01" in v) for v in self._patterns)
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

    def _field_texts(self, record: FeedRecord) -> list[str]:
        """Normalised text per field, occurrences separated by U+0000, as UTF-8
        bytes spelled as latin-1 code points (see :func:`_bytes_as_str`)."""
        norm = self._norm
        return [_bytes_as_str("\x00".join([norm(o) for o in occ])) for occ in record.occurrences]

    def _batch_hits(self, batch: list[FeedRecord]) -> dict[int, set[int]]:
        """Hit keys of each record of a batch that has any: {batch index: keys}.

        The whole batch is normalised with one :func:`normalize` call and scanned
        with one automaton pass: occurrences are joined with U+0000 and fields (of
        all records, five per record) with U+0001.  Neither is whitespace, both are
        NFKC-stable starters that compose with nothing and casefold and the kana
        fold leave alone, so normalising the joined text equals joining the
        normalised parts, and no pattern can match across them.  A batch whose
        texts already contain one of them (never seen in MARC, but possible) — or
        alert values that do — take the per-field path instead.
        """
        automaton_iter = self._automaton.iter
        hit_sets: dict[int, set[int]] = {}
        occs = [occ for r in batch for occ in r.occurrences]
        flat = list(map("\x00".join, occs))
        big = "\x01".join(flat)
        separators_ok = (self._joined_ok and big.count("\x01") == len(flat) - 1
                         and big.count("\x00") == sum(map(len, occs)) - sum(map(bool, occs)))
        if separators_ok:
            text = _bytes_as_str(normalize(big))
            # bounds[j] = offset where field j + 1 starts; a hit ending at `end` is in field bisect(bounds, end)
            bounds = list(accumulate(map((1).__add__, map(len, text.split("\x01")))))
            for end, base in automaton_iter(text):
                record_index, field_index = divmod(bisect_right(bounds, end), N_FIELDS)
                keys = hit_sets.get(record_index)
                if keys is None:
                    keys = hit_sets[record_index] = set()
                keys.add(base + field_index)
                keys.add(base + ANY)
            return hit_sets
        for record_index, record in enumerate(batch):
            keys = set()
            for field_index, field_text in enumerate(self._field_texts(record)):
                if field_text:
                    for _end, base in automaton_iter(field_text):
                        keys.add(base + field_index)
                        keys.add(base + ANY)
            if keys:
                hit_sets[record_index] = keys
        return hit_sets

    def iter_matches(self, records: Iterable[FeedRecord],
                     reported: Mapping[str, set[str]] | None = None) -> Iterator[Match]:
        """Matches in feed order.  ``reported[alert_id]`` (records reported in earlier
        runs) is read, never modified; records reported now are tracked internally.
        Records are consumed in batches of :data:`BATCH`."""
        alerts = self._alerts
        remaining = [a.max_results for a in alerts]
        seen: list[set[str]] = [set((reported or {}).get(a.id, ())) for a in alerts]
        # Per-run copies: a full alert is taken out of the indexes, so it costs nothing after.
        # key → (alerts for which this hit is a match, alerts for which it makes a candidate)
        trig: dict[int, tuple[list[int], list[int]]] = {}
        for key, lst in self._single.items():
            trig.setdefault(key, ([], []))[0].extend(lst)
        for key, lst in self._multi.items():
            trig.setdefault(key, ([], []))[1].extend(lst)
        default_open = {a.index for a in alerts if a.default_true}
        always_open = {a.index for a in alerts if a.always}
        open_count = len(alerts)
        no_hits: set[int] = set()
        it = iter(records)
        while True:
            batch = list(islice(it, BATCH))
            if not batch:
                return
            if open_count == 0:
                continue  # keep consuming: the caller counts what was read
            hit_sets = self._batch_hits(batch) if self._automaton is not None else {}
            # Records without a hit matter only to alerts that can match without one.
            indexes: Iterable[int] = range(len(batch)) if (default_open or always_open) else hit_sets
            for record_index in indexes:
                record = batch[record_index]
                hits = hit_sets.get(record_index, no_hits)
                # direct matches and candidates
                matched: set[int] = set()
                candidates: set[int] = set()
                for key in hits:
                    t = trig.get(key)
                    if t is not None:
                        if t[0]:
                            matched.update(t[0])
                        if t[1]:
                            candidates.update(t[1])
                if always_open:
                    candidates |= always_open
                if candidates:
                    present = [bool(occ) for occ in record.occurrences] if always_open else None
                    for index in candidates:
                        if _holds(alerts[index], hits, present):
                            matched.add(index)
                if default_open:
                    # None of its keys hit: every not_contains holds, no contains does → match.
                    matched |= default_open - candidates
                if not matched:
                    continue
                record_id = record.id
                for index in sorted(matched):
                    if record_id in seen[index]:
                        continue
                    seen[index].add(record_id)
                    remaining[index] -= 1
                    if remaining[index] == 0:
                        open_count -= 1
                        self._close(alerts[index], trig, default_open, always_open)
                    yield Match(alerts[index].id, record_id, record.title)

    @staticmethod
    def _close(alert: _Compiled, trig: dict[int, tuple[list[int], list[int]]],
               default_open: set[int], always_open: set[int]) -> None:
        default_open.discard(alert.index)
        always_open.discard(alert.index)
        for key in {c[0] for c in alert.conditions if c[0] != EMPTY}:
            for lst in trig.get(key, ((), ())):
                if alert.index in lst:
                    lst.remove(alert.index)  # type: ignore[attr-defined]


def _bytes_as_str(text: str) -> str:
    """UTF-8 bytes of ``text`` as a str of code points < 256.

    pyahocorasick finds a node's child by a linear scan, so an automaton over
    thousands of kanji is slow at every node with many children (the root above
    all).  Over UTF-8 bytes no node has more than 256 children, and UTF-8 is
    self-synchronising: a pattern can only match at character boundaries, so the
    matches are exactly those of the text.  Measured: 5-20× faster on Japanese.
    """
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _found(key: int, field_index: int, hits: set[int], present: list[bool] | None) -> bool:
    if key != EMPTY:
        return key in hits
    assert present is not None
    return any(present) if field_index == ANY else present[field_index]


def _holds(alert: _Compiled, hits: set[int], present: list[bool] | None) -> bool:
    if alert.match_all:
        for key, field_index, negated in alert.conditions:
            if _found(key, field_index, hits, present) == negated:
                return False
        return True
    for key, field_index, negated in alert.conditions:
        if _found(key, field_index, hits, present) != negated:
            return True
    return False
