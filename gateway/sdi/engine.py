"""The SDI matching engine: every alert against a feed in one pass.

Instead of a loop of alerts × records, the normalised alert values go into
Aho–Corasick automata (ahocorasick-rs), one per field, and the feed is scanned once:

1. Each field has its own automaton, holding the values of the conditions on
   that field and on ``any``: a title value is never looked for in an author
   text, so there are fewer hits.  A hit is a *key*, ``pattern id * 8 + field``.
2. Records are taken in batches.  A batch's occurrences are laid out as one text
   per field (U+0000 between occurrences, U+0001 between records), the five texts
   are joined with U+0002, normalised with one call to UTF-8 bytes
   (:func:`gateway.sdi.normalize.normalize_utf8`) and split again, and each is
   scanned with one automaton pass.  UTF-8 is self-synchronising, so a pattern
   matches only at character boundaries.  A hit's offset says which record it is
   in (bisect over the record boundaries).
3. An index from key to alerts says what a hit means: for an alert with a single
   ``contains`` condition the hit *is* a match; for any other alert it makes the
   alert a *candidate*, and only candidates are evaluated (their conditions are
   looked up in the batch's set of hit keys).  ``any`` conditions are indexed
   under the keys of all five fields; ``match: all`` alerts under one contains
   condition, moved to the rarest one after the first batch (``_reanchor``).
   Hits of keys that concern no open alert are dropped, and the rest become
   sorted (record, alert) pairs, with ``map``/``compress``/``sorted`` at C speed;
   Python code runs per pair, not per hit.
4. Two kinds of alert can match a record with no hit at all:

   * "default-true" alerts — ``match: all`` with only ``not_contains`` conditions,
     or ``match: any`` with at least one ``not_contains``.  Without a hit of its
     values every ``not_contains`` holds, so such an alert matches without
     evaluation; with a hit it is a candidate like any other.  Each closes after
     ``max_results`` matches, so it costs O(max_results) records, not the feed;
   * alerts with a value that normalises to the empty string (a substring of
     every occurrence: "the field is present"), evaluated on every record.

5. Per alert and per run the first ``max_results`` matching records in feed
   order are reported, never a record already reported to that alert (in earlier
   runs — the ``reported`` sets passed in — or earlier in this run).  A full
   alert is removed from the index and costs nothing more.

Matches come out in feed order, and for one record in alert order — the same
order as :mod:`gateway.sdi.reference`, which the property tests compare against.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import accumulate, chain, compress, islice, repeat
from operator import add, itemgetter, mul
from typing import Any, NamedTuple, Protocol

import ahocorasick_rs

from gateway.sdi.fields import ANY, FIELD_INDEX_WITH_ANY, FIELDS, FeedRecord
from gateway.sdi.normalize import NormalizeCache, needle, normalize_utf8

# Records normalised and scanned together.  Bigger batches keep the automata in
# cache: between two batches the feed reader (pymarc) runs and evicts them.  4,096
# measured ~5 % faster than 1,024 on the benchmark; a batch's texts are a few MiB.
BATCH = 4096
N_FIELDS = len(FIELDS)
STEP = 8  # key = pattern id * STEP + field index

# Separators of the batch texts (see Engine._scan).  None is whitespace, each is an
# NFKC-stable starter that composes with nothing, and casefold and the kana fold
# leave them alone, so normalising the joined text equals joining the normalised
# parts.
OCC_SEP = "\x00"  # between the occurrences of one field of one record
REC_SEP = "\x01"  # between records, in one field's text
FIELD_SEP = "\x02"  # between the five field texts, only while normalising
REC_SEP_B, FIELD_SEP_B = REC_SEP.encode(), FIELD_SEP.encode()


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


# Match(a, r, t) goes through a Python-level __new__; this makes the same tuple directly.
_new_match = partial(tuple.__new__, Match)


class NoConditions(ValueError):
    """An alert without conditions (the API answers 400; it would match nothing)."""


class _Cond(NamedTuple):
    keys: tuple[int, ...]  # hit keys that make it "found"; () for an empty value
    field: int  # field index (ANY = 5)
    negated: bool


class _Compiled(NamedTuple):
    index: int
    id: str
    match_all: bool
    conditions: tuple[_Cond, ...]
    max_results: int
    default_true: bool
    always: bool
    # A hit on one of these keys makes the alert a match (`single`: one contains
    # condition, or `any` with only contains conditions) or a candidate to evaluate.
    trigger_keys: tuple[int, ...]
    single: bool


def _cond_parts(cond: Any) -> tuple[str, str, str]:
    if isinstance(cond, Mapping):
        return cond["field"], cond.get("op", "contains"), cond["value"]
    return cond.field, cond.op, cond.value


def _alert_parts(alert: Any) -> tuple[str, Sequence[Any], str, int, bool]:
    if isinstance(alert, Mapping):
        return (alert["id"], alert.get("conditions") or [], alert.get("match", "all"),
                int(alert.get("max_results", 10)), bool(alert.get("active", True)))
    return alert.id, alert.conditions, alert.match, alert.max_results, alert.active


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class Engine:
    """Compiled alerts.  Build once per run (or reuse across runs); ``run`` and
    ``iter_matches`` do not modify the engine."""

    def __init__(self, alerts: Iterable[AlertLike | Mapping[str, Any]]) -> None:
        self._patterns: dict[str, int] = {}
        # per field: normalised value → key, the words of that field's automaton
        words: list[dict[str, int]] = [{} for _ in FIELDS]
        self._alerts: list[_Compiled] = []
        for alert in alerts:
            alert_id, conditions, match, max_results, active = _alert_parts(alert)
            if not conditions:
                raise NoConditions(f"alert {alert_id!r} has no conditions")
            if not active:
                continue  # inactive alerts match nothing
            compiled = []
            lengths = []
            for cond in conditions:
                field, op, value = _cond_parts(cond)
                field_index = FIELD_INDEX_WITH_ANY[field]
                if op not in ("contains", "not_contains"):
                    raise ValueError(f"alert {alert_id!r}: unknown op {op!r}")
                # the normalised value looked for in each field the condition looks at
                # (an ISBN value loses its hyphens where the isbn field has lost them)
                targets = range(N_FIELDS) if field_index == ANY else (field_index,)
                norms = [needle(field, FIELDS[f], value) for f in targets]
                keys: tuple[int, ...] = ()
                if all(norms):
                    pids = []
                    for norm in norms:
                        pid = self._patterns.get(norm)
                        if pid is None:
                            pid = self._patterns[norm] = len(self._patterns)
                        pids.append(pid)
                    keys = tuple(pid * STEP + f for pid, f in zip(pids, targets))
                    for key, norm in zip(keys, norms):
                        words[key % STEP][norm] = key
                compiled.append(_Cond(keys, field_index, op == "not_contains"))
                lengths.append(min(map(len, norms)))
            match_all = match == "all"
            negs = [c.negated for c in compiled]
            always = any(not c.keys for c in compiled)
            default_true = not always and (all(negs) if match_all else any(negs))
            if always:
                trigger: tuple[int, ...] = ()
            elif match_all and not default_true:
                # Every contains must hit, so one of them is enough to index it by:
                # the longest value, likely the rarest — fewer candidates to evaluate.
                anchor = max((i for i, c in enumerate(compiled) if not c.negated), key=lengths.__getitem__)
                trigger = compiled[anchor].keys
            else:
                # `any` (some contains hit) and default-true alerts (no key hit ⇒ match)
                # need every key.
                trigger = tuple(dict.fromkeys(k for c in compiled for k in c.keys))
            # A hit of a trigger key is a match by itself for a single contains
            # condition, and for `any` with only contains conditions.
            single = not always and not any(negs) and (len(compiled) == 1 or not match_all)
            self._alerts.append(_Compiled(len(self._alerts), alert_id, match_all, tuple(compiled),
                                          max_results, default_true, always, trigger, single))
        # One automaton per field (None when no condition looks at the field), over
        # UTF-8 bytes, with the key of each of its patterns.
        self._automata: list[tuple[Any, list[int]] | None] = []
        for field_words in words:
            if field_words:
                automaton = ahocorasick_rs.BytesAhoCorasick(list(map(_utf8, field_words)))
                self._automata.append((automaton, list(field_words.values())))
            else:
                self._automata.append(None)
        self._scanned = [f for f, a in enumerate(self._automata) if a is not None]
        self._tests = [_test(a) for a in self._alerts]
        # alerts whose anchor can move (see _reanchor)
        self._multi_all = [a for a in self._alerts if a.match_all and not a.default_true and not a.always
                           and sum(not c.negated for c in a.conditions) > 1]
        # Keys are < stride; batch keys carry the record's place in the batch:
        # key + record index * stride.
        self._stride = STEP * (len(self._patterns) + 1)
        # The index, by key (see iter_matches, which takes a copy per run).
        lists: dict[int, tuple[list[int], list[int]]] = {}
        for a in self._alerts:
            slot = 0 if a.single else 1
            for key in a.trigger_keys:
                entry = lists.get(key)
                if entry is None:
                    entry = lists[key] = ([], [])
                entry[slot].append(a.index)
        self._trig: list[_Entry | None] = [None] * self._stride
        for key, (single, other) in lists.items():
            self._trig[key] = (tuple(single), tuple(other))
        # See _scan: alert values containing a separator force the per-occurrence path.
        self._joined_ok = not any((OCC_SEP in v or REC_SEP in v) for v in self._patterns)
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

    # ---------------------------------------------------------------- scanning

    def _scan(self, batch: list[FeedRecord]) -> tuple[list[int], list[int]]:
        """(record index in batch, key) of every hit of a batch.

        One text per scanned field: the field's occurrences of every record of the
        batch, U+0000 between occurrences, U+0001 between records.  The texts are
        joined with U+0002 and normalised with one :func:`normalize_utf8` call
        (see the separators above: that equals normalising each occurrence), then
        each is scanned with one pass of its field's automaton.  No pattern
        contains U+0000 or U+0001, so no hit spans two occurrences or records.

        A record text that already contains U+0001 or U+0002 (never seen in MARC,
        but possible) would shift the records: then the split gives more parts
        than expected and the batch takes the per-occurrence path.  A U+0000 in a
        text is harmless: no pattern contains it, in the batch text or alone.
        """
        if not self._joined_ok:
            return self._scan_each(batch)
        occurrences = [r.occurrences for r in batch]
        big = FIELD_SEP.join([REC_SEP.join(map(OCC_SEP.join, map(itemgetter(f), occurrences)))
                              for f in self._scanned])
        texts = normalize_utf8(big).split(FIELD_SEP_B)
        parts = [text.split(REC_SEP_B) for text in texts]
        if len(texts) != len(self._scanned) or any(len(p) != len(batch) for p in parts):
            return self._scan_each(batch)
        records: list[int] = []
        keys: list[int] = []
        for f, text, record_texts in zip(self._scanned, texts, parts):
            automaton, key_of = self._automata[f]
            hits = automaton.find_matches_as_indexes(text, overlapping=True)  # (pattern, start, end)
            if not hits:
                continue
            # bounds[i] = where record i + 1 starts: a hit starting at `start` is in record bisect(bounds, start)
            bounds = list(accumulate(map((1).__add__, map(len, record_texts))))
            records += map(bisect_right, repeat(bounds, len(hits)), map(itemgetter(1), hits))
            keys += map(key_of.__getitem__, map(itemgetter(0), hits))
        return records, keys

    def _scan_each(self, batch: list[FeedRecord]) -> tuple[list[int], list[int]]:
        """The careful path of :meth:`_scan`: each occurrence normalised and scanned on its own."""
        norm = self._norm
        records, keys = [], []
        for record_index, record in enumerate(batch):
            for f in self._scanned:
                automaton, key_of = self._automata[f]
                for occurrence in record.occurrences[f]:
                    for pattern, _start, _end in automaton.find_matches_as_indexes(_utf8(norm(occurrence)),
                                                                                   overlapping=True):
                        records.append(record_index)
                        keys.append(key_of[pattern])
        return records, keys

    # ---------------------------------------------------------------- matching
    def _reanchor(self, hits: Counter[int], remaining: list[int], trig: list[_Entry | None],
                  triggers: list[tuple[int, ...]]) -> None:
        """Index each open ``match: all`` alert under its rarest contains condition.

        At compile time the anchor is the longest value, a guess.  After the first
        full batch the hit counts say which of an alert's contains conditions hits
        least; indexing it there makes fewer candidates to evaluate (about a third
        as many on the benchmark).  Any contains condition is a valid anchor, so
        the matches are the same.
        """
        for a in self._multi_all:
            index = a.index
            if remaining[index] <= 0:
                continue
            best = min((c.keys for c in a.conditions if not c.negated),
                       key=lambda keys: (sum(hits[k] for k in keys), keys != triggers[index]))
            if best == triggers[index]:
                continue
            for key in triggers[index]:
                single, other = trig[key] or ((), ())
                other = tuple(i for i in other if i != index)
                trig[key] = (single, other) if single or other else None
            for key in best:
                single, other = trig[key] or ((), ())
                trig[key] = (single, other + (index,))
            triggers[index] = best

    def iter_matches(self, records: Iterable[FeedRecord],
                     reported: Mapping[str, set[str]] | None = None) -> Iterator[Match]:
        """Matches in feed order.  ``reported[alert_id]`` (records reported in earlier
        runs) is read, never modified; records reported now are tracked internally.
        Records are consumed in batches of :data:`BATCH`."""
        alerts = self._alerts
        tests = self._tests
        remaining = [a.max_results for a in alerts]
        seen: list[set[str]] = [set((reported or {}).get(a.id, ())) for a in alerts]
        stride = self._stride
        # trig[key] = (alerts for which a hit of the key is a match, alerts for which it
        # makes a candidate), or None when it concerns no open alert.  A per-run copy,
        # because a full alert is taken out of it.
        trig = list(self._trig)
        # the keys each alert is indexed under in this run (see _reanchor)
        triggers = [a.trigger_keys for a in alerts]
        default_open = {a.index for a in alerts if a.default_true}
        always_open = {a.index for a in alerts if a.always}
        open_count = n_alerts = len(alerts)
        anchored = False
        it = iter(records)
        while True:
            batch = list(islice(it, BATCH))
            if not batch:
                return
            if open_count == 0:
                continue  # keep consuming: the caller counts what was read
            rec_of_hit, keys = self._scan(batch) if self._scanned else ([], [])
            if not anchored and len(batch) == BATCH:
                anchored = True
                self._reanchor(Counter(keys), remaining, trig, triggers)
            # What the hits mean, as (record, alert) pairs coded as one int,
            # record index * n_alerts + alert index, so that sorting them gives feed
            # order and alert order.  Hits of keys that concern no open alert are
            # dropped by compress; all of this runs at C speed.
            entries = list(map(trig.__getitem__, keys))
            hit_records = list(map(mul, compress(rec_of_hit, entries), repeat(n_alerts)))
            entries = list(filter(None, entries))
            matched = _pairs(hit_records, list(map(itemgetter(0), entries)))
            candidates = _pairs(hit_records, list(map(itemgetter(1), entries)))
            if always_open:  # evaluated on every record
                candidates.update(r + a for r in range(0, len(batch) * n_alerts, n_alerts) for a in always_open)
            batch_keys: set[int] = set()
            if candidates:
                # every hit's key, offset by its record's place in the batch: what _holds looks up
                batch_keys = set(map(add, keys, map(mul, rec_of_hit, repeat(stride))))
            for index in default_open:
                # Where none of its keys hit, every not_contains holds and no contains
                # does → a match.  Only the first `remaining` such records (by new
                # record id) can be reported, so the others are not even listed.
                listed: set[str] = set()
                for record_index in range(len(batch)):
                    pair = record_index * n_alerts + index
                    record_id = batch[record_index].id
                    if pair not in candidates and record_id not in seen[index] and record_id not in listed:
                        matched.add(pair)
                        listed.add(record_id)
                        if len(listed) >= remaining[index]:
                            break
            # Matches and candidates in one sorted list (pair * 2, + 1 for a candidate):
            # a candidate is evaluated only when its turn comes and the alert is still
            # open, so alerts that fill up within the batch cost no evaluations.
            for code in sorted(chain(map(mul, matched, repeat(2)), map(add, map(mul, candidates, repeat(2)),
                                                                          repeat(1)))):
                record_index, index = divmod(code >> 1, n_alerts)
                # (an alert may have filled up earlier in this batch)
                if remaining[index] <= 0:
                    continue
                record = batch[record_index]
                if record.id in seen[index]:
                    continue
                if code & 1 and not _holds(tests[index], batch_keys, record_index * stride, record):
                    continue
                seen[index].add(record.id)
                remaining[index] -= 1
                if remaining[index] == 0:
                    open_count -= 1
                    _close(index, triggers[index], trig, default_open, always_open)
                yield _new_match((alerts[index].id, record.id, record.title))


def _pairs(hit_records: list[int], alert_lists: list[tuple[int, ...]]) -> set[int]:
    """{record part + alert index} for every hit and every alert of its list."""
    return set(map(add, chain.from_iterable(map(repeat, hit_records, map(len, alert_lists))),
                   chain.from_iterable(alert_lists)))


_Entry = tuple[tuple[int, ...], tuple[int, ...]]  # (alerts matched, alerts made candidates)
# How _holds evaluates an alert: (want, ((key or -1, negated, condition), ...)); see _test.
_Test = tuple[bool, tuple[tuple[int, bool, _Cond], ...]]


def _test(alert: _Compiled) -> _Test:
    """An alert's conditions as plain tuples for :func:`_holds` (the hot path).

    ``want`` is True for ``any`` (it succeeds on the first true condition) and False
    for ``all`` (it fails on the first false one).  A condition with one key (a
    non-empty value on one field, the usual case) carries that key; the others
    (``any`` field, empty value) carry -1 and are looked at by :func:`_found`.
    """
    return (not alert.match_all,
            tuple((c.keys[0] if len(c.keys) == 1 else -1, c.negated, c) for c in alert.conditions))


def _close(index: int, trigger_keys: tuple[int, ...], trig: list[_Entry | None],
           default_open: set[int], always_open: set[int]) -> None:
    """Take a full alert out of the index: its keys' hits no longer concern it."""
    default_open.discard(index)
    always_open.discard(index)
    for key in trigger_keys:
        entry = trig[key]
        if entry is None:
            continue
        single = tuple(i for i in entry[0] if i != index)
        other = tuple(i for i in entry[1] if i != index)
        # a key that concerns no open alert is dropped before the per-hit loop
        trig[key] = (single, other) if single or other else None


def _found(cond: _Cond, batch_keys: set[int], offset: int, record: FeedRecord) -> bool:
    if cond.keys:  # an `any` condition: a hit in one of the five fields
        return not batch_keys.isdisjoint(map(add, cond.keys, repeat(offset)))
    # an empty value is a substring of every occurrence: "the field is present"
    occ = record.occurrences
    return any(occ) if cond.field == ANY else bool(occ[cond.field])


def _holds(test: _Test, batch_keys: set[int], offset: int, record: FeedRecord) -> bool:
    """Whether an alert's conditions hold for the record at ``offset`` of the batch."""
    want, conditions = test
    for key, negated, cond in conditions:
        found = (key + offset in batch_keys) if key >= 0 else _found(cond, batch_keys, offset, record)
        if (found != negated) == want:
            return want
    return not want
