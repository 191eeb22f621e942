"""Storage of watched accounts: subscriptions, their accounts (credential, upstream state,
last snapshot, lease), events (one per deterministic key), webhook deliveries and the
per-library poll log that enforces ``max_polls_per_minute`` across workers.

``WatchStore`` is the interface; ``SQLWatchStore`` keeps it in the gateway's database
(``gateway.db``: SQLite, the embedded default, or PostgreSQL; the tables are migration 2
of ``gateway.migrations``).  A claim is one transaction that writes first (SQLite: the
write lock is taken before anything is read) or takes an advisory lock (PostgreSQL), so
two workers never lease the same row.  Credentials and snapshots arrive here
already encrypted (``gateway.watch.keys``): the store never sees a password.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.db import Database, as_database


@dataclass
class SubscriptionRow:
    id: str
    libraries: list[str]
    events: list[str]
    webhook_url: str | None
    secret: bytes  # encrypted signing secret
    calendar_hash: str
    due_soon_days: int
    auto_renew_days: int | None
    status: str  # active | paused | failing
    created_at: str
    owners: list[tuple[str, str]]  # (library, card_hash)


@dataclass
class WatchedAccount:
    subscription_id: str
    library: str
    card_hash: str
    card_masked: str
    credential: bytes | None  # encrypted {"card", "password"}; None once erased
    upstream: bytes | None
    snapshot: bytes | None
    status: str  # active | paused


@dataclass
class DeliveryRow:
    id: int
    event_seq: int
    subscription_id: str
    attempts: int
    first_failed_at: float | None


class WatchStore(Protocol):
    def create(self, sub: SubscriptionRow, accounts: list[WatchedAccount], now: float) -> None: ...
    def get(self, sub_id: str) -> SubscriptionRow | None: ...
    def by_calendar(self, calendar_hash: str) -> SubscriptionRow | None: ...
    def owned_by(self, owners: list[tuple[str, str]]) -> list[SubscriptionRow]: ...
    def update(self, sub_id: str, **fields: Any) -> None: ...
    def delete(self, sub_id: str) -> None: ...
    def accounts(self, sub_id: str) -> list[WatchedAccount]: ...
    def claim_due(self, owner: str, now: float, lease_seconds: float,
                  budgets: dict[str, int], limit: int) -> list[WatchedAccount]: ...
    def finish_poll(self, acc: WatchedAccount, owner: str, next_poll_at: float) -> None: ...
    def save_upstream(self, sub_id: str, library: str, upstream: bytes) -> None: ...
    def record(self, sub_id: str, library: str, snapshot: bytes | None,
               events: list[dict[str, Any]], deliver: bool) -> list[dict[str, Any]]: ...
    def pause(self, sub_id: str, library: str) -> None: ...
    def set_credential(self, sub_id: str, library: str, credential: bytes) -> None: ...
    def events(self, sub_id: str, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]: ...
    def claim_deliveries(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[DeliveryRow]: ...
    def event(self, seq: int) -> dict[str, Any] | None: ...
    def delivery_attempt(self, delivery_id: int, owner: str, now: float, outcome: str, status_code: int | None,
                         error: str | None, next_attempt_at: float | None) -> None: ...
    def deliveries(self, sub_id: str, limit: int) -> list[dict[str, Any]]: ...
    def polls_per_minute(self) -> dict[str, int]: ...




def _sub(row: tuple[Any, ...], owners: list[tuple[str, str]]) -> SubscriptionRow:
    return SubscriptionRow(row[0], json.loads(row[1]), json.loads(row[2]), row[3], bytes(row[4]), row[5],
                           row[6], row[7], row[8], row[9], owners)


_SUB = ("id, libraries, events, webhook_url, secret, calendar_hash, due_soon_days, auto_renew_days, status, "
        "created_at")
_ACC = "subscription_id, library, card_hash, card_masked, credential, upstream, snapshot, status"


def _acc(row: tuple[Any, ...]) -> WatchedAccount:
    b = lambda v: bytes(v) if v is not None else None  # noqa: E731
    return WatchedAccount(row[0], row[1], row[2], row[3], b(row[4]), b(row[5]), b(row[6]), row[7])


class SQLWatchStore:
    def __init__(self, db: Database | str) -> None:
        self.db = as_database(db)

    def _tx(self) -> Any:
        return self.db.tx()

    def _claim_lock(self, c: Any) -> None:
        if self.db.dialect == "postgresql":
            c.execute("SELECT pg_advisory_xact_lock(4242014)")

    # ------------------------------------------------------------ subscriptions
    def create(self, sub: SubscriptionRow, accounts: list[WatchedAccount], now: float) -> None:
        with self._tx() as c:
            c.execute(f"INSERT INTO subscriptions ({_SUB}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (sub.id, json.dumps(sub.libraries), json.dumps(sub.events), sub.webhook_url, sub.secret,
                       sub.calendar_hash, sub.due_soon_days, sub.auto_renew_days, sub.status, sub.created_at))
            c.executemany(f"INSERT INTO watch_accounts ({_ACC}, next_poll_at) VALUES (?,?,?,?,?,?,?,?,?)",
                          [(a.subscription_id, a.library, a.card_hash, a.card_masked, a.credential, a.upstream,
                            a.snapshot, a.status, now) for a in accounts])

    def _owners(self, sub_id: str) -> list[tuple[str, str]]:
        with self._tx() as c:
            return [(r[0], r[1]) for r in c.execute(
                "SELECT library, card_hash FROM watch_accounts WHERE subscription_id = ? ORDER BY library", (sub_id,))]

    def _one(self, where: str, arg: str) -> SubscriptionRow | None:
        with self._tx() as c:
            row = c.execute(f"SELECT {_SUB} FROM subscriptions WHERE {where} = ?", (arg,)).fetchone()
        return _sub(row, self._owners(row[0])) if row else None

    def get(self, sub_id: str) -> SubscriptionRow | None:
        return self._one("id", sub_id)

    def by_calendar(self, calendar_hash: str) -> SubscriptionRow | None:
        return self._one("calendar_hash", calendar_hash)

    def owned_by(self, owners: list[tuple[str, str]]) -> list[SubscriptionRow]:
        ids: set[str] = set()
        with self._tx() as c:
            for lib, ch in owners:
                ids.update(r[0] for r in c.execute(
                    "SELECT subscription_id FROM watch_accounts WHERE library = ? AND card_hash = ?", (lib, ch)))
        subs = [self.get(i) for i in ids]
        return sorted((s for s in subs if s is not None), key=lambda s: (s.created_at, s.id))

    def update(self, sub_id: str, **fields: Any) -> None:
        allowed = {"events", "webhook_url", "secret", "calendar_hash", "due_soon_days", "auto_renew_days", "status"}
        assert set(fields) <= allowed, fields
        cols = ", ".join(f"{k} = ?" for k in fields)
        vals = [json.dumps(v) if k == "events" else v for k, v in fields.items()]
        with self._tx() as c:
            c.execute(f"UPDATE subscriptions SET {cols} WHERE id = ?", (*vals, sub_id))
            if fields.get("status") == "active":
                c.execute("UPDATE watch_accounts SET status = 'active' WHERE subscription_id = ? "
                          "AND credential IS NOT NULL", (sub_id,))

    def delete(self, sub_id: str) -> None:
        """Erase the subscription, its credentials, snapshots, events and deliveries."""
        with self._tx() as c:
            for table in ("watch_attempts", "watch_deliveries", "watch_events", "watch_accounts"):
                c.execute(f"DELETE FROM {table} WHERE subscription_id = ?", (sub_id,))
            c.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))

    def accounts(self, sub_id: str) -> list[WatchedAccount]:
        with self._tx() as c:
            return [_acc(r) for r in c.execute(
                f"SELECT {_ACC} FROM watch_accounts WHERE subscription_id = ? ORDER BY library", (sub_id,))]

    # ------------------------------------------------------------ polling
    def claim_due(self, owner: str, now: float, lease_seconds: float,
                  budgets: dict[str, int], limit: int) -> list[WatchedAccount]:
        """Lease up to ``limit`` due accounts, each library within its polls-per-minute budget
        (counted over every worker in the poll log); a leased account is no one else's."""
        out: list[WatchedAccount] = []
        with self._tx() as c:
            self._claim_lock(c)
            c.execute("DELETE FROM watch_polls WHERE at < ?", (now - 120,))
            used = {lib: n for lib, n in c.execute(
                "SELECT library, COUNT(*) FROM watch_polls WHERE at > ? GROUP BY library", (now - 60,))}
            rows = c.execute(
                f"SELECT {_ACC} FROM watch_accounts a WHERE a.status = 'active' AND a.credential IS NOT NULL "
                "AND a.next_poll_at <= ? AND a.lease_until < ? "
                "AND (SELECT status FROM subscriptions s WHERE s.id = a.subscription_id) != 'paused' "
                "ORDER BY a.next_poll_at LIMIT ?", (now, now, limit * 4)).fetchall()
            for row in rows:
                acc = _acc(row)
                if used.get(acc.library, 0) >= budgets.get(acc.library, 0):
                    continue
                used[acc.library] = used.get(acc.library, 0) + 1
                c.execute("INSERT INTO watch_polls VALUES (?, ?)", (acc.library, now))
                c.execute("UPDATE watch_accounts SET lease_owner = ?, lease_until = ? "
                          "WHERE subscription_id = ? AND library = ?",
                          (owner, now + lease_seconds, acc.subscription_id, acc.library))
                out.append(acc)
                if len(out) >= limit:
                    break
        return out

    def finish_poll(self, acc: WatchedAccount, owner: str, next_poll_at: float) -> None:
        with self._tx() as c:
            c.execute("UPDATE watch_accounts SET lease_owner = NULL, lease_until = 0, next_poll_at = ? "
                      "WHERE subscription_id = ? AND library = ? AND lease_owner = ?",
                      (next_poll_at, acc.subscription_id, acc.library, owner))

    def save_upstream(self, sub_id: str, library: str, upstream: bytes) -> None:
        with self._tx() as c:
            c.execute("UPDATE watch_accounts SET upstream = ? WHERE subscription_id = ? AND library = ?",
                      (upstream, sub_id, library))

    def record(self, sub_id: str, library: str, snapshot: bytes | None,
               events: list[dict[str, Any]], deliver: bool) -> list[dict[str, Any]]:
        """Store the new snapshot and the events it gave in one transaction; an event whose
        key is already stored is dropped (emitted once).  Returns the events that are new."""
        fresh: list[dict[str, Any]] = []
        now = time.time()
        with self._tx() as c:
            if c.execute("SELECT 1 FROM subscriptions WHERE id = ?", (sub_id,)).fetchone() is None:
                return []  # deleted meanwhile
            if snapshot is not None:
                c.execute("UPDATE watch_accounts SET snapshot = ? WHERE subscription_id = ? AND library = ?",
                          (snapshot, sub_id, library))
            for ev in events:
                key = ev.pop("_key")
                row = c.execute("INSERT INTO watch_events (id, subscription_id, event_key, body) "
                                "VALUES (?, ?, ?, ?) ON CONFLICT (subscription_id, event_key) DO NOTHING "
                                "RETURNING seq", (ev["id"], sub_id, key, json.dumps(ev, ensure_ascii=False))).fetchone()
                if row is not None:
                    seq = row[0]
                    fresh.append(ev)
                    if deliver:
                        c.execute("INSERT INTO watch_deliveries (event_seq, subscription_id, next_attempt_at) "
                                  "VALUES (?, ?, ?)", (seq, sub_id, now))
        return fresh

    def set_credential(self, sub_id: str, library: str, credential: bytes) -> None:
        """A new password (a paused subscription resumed): the old upstream state goes."""
        with self._tx() as c:
            c.execute("UPDATE watch_accounts SET credential = ?, upstream = NULL, status = 'active' "
                      "WHERE subscription_id = ? AND library = ?", (credential, sub_id, library))

    def pause(self, sub_id: str, library: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE watch_accounts SET status = 'paused' WHERE subscription_id = ? AND library = ?",
                      (sub_id, library))
            c.execute("UPDATE subscriptions SET status = 'paused' WHERE id = ?", (sub_id,))

    def events(self, sub_id: str, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        with self._tx() as c:
            return [(r[0], json.loads(r[1])) for r in c.execute(
                "SELECT seq, body FROM watch_events WHERE subscription_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (sub_id, after, limit))]

    def event(self, seq: int) -> dict[str, Any] | None:
        with self._tx() as c:
            row = c.execute("SELECT body FROM watch_events WHERE seq = ?", (seq,)).fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------ deliveries
    def claim_deliveries(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[DeliveryRow]:
        with self._tx() as c:
            self._claim_lock(c)
            c.execute("UPDATE watch_deliveries SET lease_until = lease_until WHERE id = -1")  # SQLite: write lock now
            rows = c.execute("SELECT id, event_seq, subscription_id, attempts, first_failed_at FROM watch_deliveries "
                             "WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until < ? "
                             "ORDER BY id LIMIT ?", (now, now, limit)).fetchall()
            for r in rows:
                c.execute("UPDATE watch_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
                          (owner, now + lease_seconds, r[0]))
        return [DeliveryRow(*r) for r in rows]

    def delivery_attempt(self, delivery_id: int, owner: str, now: float, outcome: str, status_code: int | None,
                         error: str | None, next_attempt_at: float | None) -> None:
        """outcome: delivered | retry | failed (no more attempts)."""
        with self._tx() as c:
            row = c.execute("SELECT d.subscription_id, e.id FROM watch_deliveries d JOIN watch_events e "
                            "ON e.seq = d.event_seq WHERE d.id = ? AND d.lease_owner = ?",
                            (delivery_id, owner)).fetchone()
            if row is None:
                return  # lease lost, or the subscription was deleted
            c.execute("INSERT INTO watch_attempts VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (delivery_id, row[0], row[1], now, outcome, status_code, error))
            status = {"delivered": "delivered", "retry": "pending", "failed": "failed"}[outcome]
            c.execute("UPDATE watch_deliveries SET status = ?, attempts = attempts + 1, lease_owner = NULL, "
                      "lease_until = 0, next_attempt_at = COALESCE(?, next_attempt_at), "
                      "first_failed_at = CASE WHEN ? = 'delivered' THEN NULL "
                      "ELSE COALESCE(first_failed_at, ?) END WHERE id = ?",
                      (status, next_attempt_at, outcome, now, delivery_id))

    def deliveries(self, sub_id: str, limit: int) -> list[dict[str, Any]]:
        with self._tx() as c:
            return [{"event_id": r[0], "attempted_at": r[1], "outcome": r[2], "status_code": r[3], "error": r[4]}
                    for r in c.execute(
                        "SELECT event_id, at, outcome, status_code, error FROM watch_attempts "
                        "WHERE subscription_id = ? ORDER BY at DESC LIMIT ?", (sub_id, limit))]

    def polls_per_minute(self) -> dict[str, int]:
        now = time.time()
        with self._tx() as c:
            return {lib: n for lib, n in c.execute(
                "SELECT library, COUNT(*) FROM watch_polls WHERE at > ? GROUP BY library", (now - 60,))}
