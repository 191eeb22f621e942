"""Consortium lending requests (e-Net 貸出サービス and the like): state machine and persistence.

A lending request asks a *supplying* library (here 山口県立山口図書館) to send an item
to a *pickup* library of its consortium (a municipal library), where the patron
collects and returns it.  The gateway keeps its own record of every request —
status, history of transitions with timestamps — in its database, keyed by the
patron's card hash, so a client can list its requests even while the supplying
library's system is down (they are then marked ``stale``, never lost).

The vocabulary is ISO 18626's, as API.md fixes it::

    requested → accepted → shipped → ready_for_pickup → loaned → returned → completed
        │           │                        └──────────────→ returned   (never collected)
        └───────────┴──→ cancelled | unfilled

Upstreams report states coarsely and late: when a refresh shows the request several
states further on, each intermediate legal transition is recorded (at the time it
was observed).  A report that no legal path explains (e.g. back from ``shipped`` to
``accepted``) is logged and ignored: the gateway never writes an impossible history.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.db import Database, as_database
from gateway.models import LendingRequest, LendingTransition, UpstreamLending

log = logging.getLogger("opacgw.lending")

STATUSES: tuple[str, ...] = (
    "requested", "accepted", "shipped", "ready_for_pickup", "loaned", "returned", "completed",
    "cancelled", "unfilled",
)
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"accepted", "cancelled", "unfilled"}),
    "accepted": frozenset({"shipped", "cancelled", "unfilled"}),
    "shipped": frozenset({"ready_for_pickup"}),
    # an item nobody collects goes back to the supplying library
    "ready_for_pickup": frozenset({"loaned", "returned"}),
    "loaned": frozenset({"returned"}),
    "returned": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "unfilled": frozenset(),
}
MAIN_LINE: tuple[str, ...] = STATUSES[:7]
#: a patron may cancel only before the item is shipped
CANCELLABLE: frozenset[str] = frozenset({"requested", "accepted"})
TERMINAL: frozenset[str] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(ValueError):
    """No legal sequence of transitions leads from one status to the other."""


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def path(current: str, target: str) -> list[str]:
    """The shortest legal sequence of statuses after ``current`` ending in ``target``.

    ``[]`` when they are equal; IllegalTransition when no legal path exists.
    """
    if current not in TRANSITIONS or target not in TRANSITIONS:
        raise IllegalTransition(f"unknown status {current!r} or {target!r}")
    if current == target:
        return []
    if target in TRANSITIONS[current]:
        return [target]
    # a jump along the main line is the usual story (an upstream polled late); prefer it
    # over the shorter "never collected" detour ready_for_pickup → returned
    if current in MAIN_LINE and target in MAIN_LINE and MAIN_LINE.index(current) < MAIN_LINE.index(target):
        return list(MAIN_LINE[MAIN_LINE.index(current) + 1 : MAIN_LINE.index(target) + 1])
    prev: dict[str, str] = {current: ""}
    queue = deque([current])
    while queue:
        node = queue.popleft()
        for nxt in sorted(TRANSITIONS[node], key=STATUSES.index):
            if nxt in prev:
                continue
            prev[nxt] = node
            if nxt == target:
                steps = [nxt]
                while prev[steps[-1]] != current:
                    steps.append(prev[steps[-1]])
                return steps[::-1]
            queue.append(nxt)
    raise IllegalTransition(f"no legal transition from {current!r} to {target!r}")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class StoredRequest:
    id: str
    card_hash: str
    supplying_library: str
    pickup_library: str
    pickup_branch: str | None
    record_id: str
    title: str
    status: str
    upstream_id: str
    history: list[tuple[str, datetime]] = field(default_factory=list)
    created_at: datetime = field(default_factory=now_utc)
    updated_at: datetime = field(default_factory=now_utc)
    stale: bool = False

    @classmethod
    def new(cls, card_hash: str, supplying: str, pickup: str, branch: str | None, up: UpstreamLending,
            at: datetime | None = None) -> StoredRequest:
        at = at or now_utc()
        req = cls(
            id="lr_" + secrets.token_urlsafe(12),
            card_hash=card_hash, supplying_library=supplying, pickup_library=pickup, pickup_branch=branch,
            record_id=up.record_id, title=up.title, status="requested", upstream_id=up.upstream_id,
            history=[("requested", at)], created_at=at, updated_at=at,
        )
        req.advance(up.status, at)
        return req

    def advance(self, target: str, at: datetime | None = None) -> bool:
        """Move to ``target`` through every legal intermediate status; False if nothing changed.

        Raises IllegalTransition when no legal path exists (the record is unchanged).
        """
        steps = path(self.status, target)
        if not steps:
            return False
        at = at or now_utc()
        for step in steps:
            self.history.append((step, at))
        self.status = target
        self.updated_at = at
        return True

    def to_model(self) -> LendingRequest:
        return LendingRequest(
            id=self.id, supplying_library=self.supplying_library, pickup_library=self.pickup_library,
            pickup_branch=self.pickup_branch, record_id=self.record_id, title=self.title,
            status=self.status,  # type: ignore[arg-type]
            history=[LendingTransition(status=s, at=a) for s, a in self.history],  # type: ignore[arg-type]
            created_at=self.created_at, updated_at=self.updated_at, stale=self.stale,
        )


class LendingStore:
    """The gateway's table of lending requests (SQLite or PostgreSQL, ``gateway.db``)."""

    def __init__(self, db: Database | sqlite3.Connection) -> None:
        if isinstance(db, sqlite3.Connection):  # a tool's or test's own connection: bring it up to date
            from gateway.migrations import ensure_current

            db = as_database(db)
            ensure_current(db)
        self.db: Database = db

    @staticmethod
    def _row(row: tuple[Any, ...]) -> StoredRequest:
        history = [(s, datetime.fromisoformat(a)) for s, a in json.loads(row[9])]
        return StoredRequest(
            id=row[0], card_hash=row[1], supplying_library=row[2], pickup_library=row[3], pickup_branch=row[4],
            record_id=row[5], title=row[6], status=row[7], upstream_id=row[8], history=history,
            created_at=datetime.fromisoformat(row[10]), updated_at=datetime.fromisoformat(row[11]),
        )

    _COLUMNS = ("id, card_hash, supplying_library, pickup_library, pickup_branch, record_id, title, status, "
                "upstream_id, history, created_at, updated_at")

    def save(self, req: StoredRequest) -> None:
        history = json.dumps([(s, a.isoformat()) for s, a in req.history])
        with self.db.tx() as tx:
            tx.execute(
                f"INSERT INTO lending_requests ({self._COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status=excluded.status, history=excluded.history, "
                "title=excluded.title, updated_at=excluded.updated_at",
                (req.id, req.card_hash, req.supplying_library, req.pickup_library, req.pickup_branch,
                 req.record_id, req.title, req.status, req.upstream_id, history,
                 req.created_at.isoformat(), req.updated_at.isoformat()),
            )

    def for_cards(self, card_hashes: list[str]) -> list[StoredRequest]:
        if not card_hashes:
            return []
        marks = ",".join("?" * len(card_hashes))
        with self.db.tx() as tx:
            rows = tx.execute(
                f"SELECT {self._COLUMNS} FROM lending_requests WHERE card_hash IN ({marks}) "
                "ORDER BY created_at DESC, id", card_hashes,
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, request_id: str, card_hashes: list[str]) -> StoredRequest | None:
        return next((r for r in self.for_cards(card_hashes) if r.id == request_id), None)

    def by_upstream(self, supplying: str, card_hash: str, upstream_id: str) -> StoredRequest | None:
        with self.db.tx() as tx:
            row = tx.execute(
                f"SELECT {self._COLUMNS} FROM lending_requests WHERE supplying_library=? AND card_hash=? "
                "AND upstream_id=?", (supplying, card_hash, upstream_id),
            ).fetchone()
        return self._row(row) if row else None


def reconcile(req: StoredRequest, up: UpstreamLending, at: datetime | None = None) -> bool:
    """Bring a stored request up to what the upstream reports; True if it changed."""
    try:
        changed = req.advance(up.status, at)
    except IllegalTransition:
        log.warning("upstream reports an impossible lending transition library=%s request=%s %s→%s; kept %s",
                    req.supplying_library, req.id, req.status, up.status, req.status)
        return False
    if up.title and up.title != req.title:
        req.title = up.title
        changed = True
    return changed
