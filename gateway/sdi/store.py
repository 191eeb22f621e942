"""Gateway-side SDI storage in the gateway's database (SQLite or PostgreSQL, ``gateway.db``).

Alerts are owned by (library, card_hash) — the gateway's keyed hash of the card
number, never the number itself.  A match row exists once per (alert, record):
that primary key is what makes "never report a record to an alert twice" hold
across runs.  ``sdi_harvests`` keeps, per library, the OAI-PMH ``from`` for the
next incremental harvest and the counts of the last run.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.db import Database, as_database
from gateway.models import Alert, AlertCondition, AlertCreate, AlertMatch, AlertUpdate
from gateway.sdi.engine import Match


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _database(conn: Database | sqlite3.Connection) -> Database:
    if isinstance(conn, sqlite3.Connection):  # a tool's or test's own connection: bring it up to date
        from gateway.migrations import ensure_current

        db = as_database(conn)
        ensure_current(db)
        return db
    return conn


@dataclass(frozen=True)
class HarvestState:
    library: str
    next_from: str | None
    last_run_at: str | None
    records: int | None
    malformed: int | None
    matches: int | None


class AlertStore:
    def __init__(self, db: Database | sqlite3.Connection) -> None:
        self.db = _database(db)
        #: insertion order: SQLite's rowid, PostgreSQL's identity column
        self._seq = "rowid" if self.db.dialect == "sqlite" else "seq"

    # ---------------------------------------------------------------- alerts
    @staticmethod
    def _alert(row: tuple) -> Alert:
        (alert_id, name, memo, conditions, match, max_results, active) = row
        return Alert(id=alert_id, name=name, memo=memo,
                     conditions=[AlertCondition(**c) for c in json.loads(conditions)],
                     match=match, max_results=max_results, active=bool(active), source="gateway")

    _COLS = "id, name, memo, conditions, match, max_results, active"

    def list(self, library: str, card_hash: str) -> list[Alert]:
        with self.db.tx() as tx:
            rows = tx.execute(
                f"SELECT {self._COLS} FROM sdi_alerts WHERE library = ? AND card_hash = ? "
                f"ORDER BY created_at, {self._seq}", (library, card_hash)).fetchall()
        return [self._alert(r) for r in rows]

    def get(self, library: str, card_hash: str, alert_id: str) -> Alert | None:
        with self.db.tx() as tx:
            row = tx.execute(
                f"SELECT {self._COLS} FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?",
                (alert_id, library, card_hash)).fetchone()
        return self._alert(row) if row else None

    def create(self, library: str, card_hash: str, new: AlertCreate) -> Alert:
        alert_id = "ga-" + secrets.token_urlsafe(9)
        now = _now().isoformat()
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO sdi_alerts (id, library, card_hash, name, memo, conditions, match, max_results,"
                " active, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (alert_id, library, card_hash, new.name, new.memo,
                 json.dumps([c.model_dump() for c in new.conditions], ensure_ascii=False),
                 new.match, new.max_results, int(new.active), now, now))
        alert = self.get(library, card_hash, alert_id)
        assert alert is not None
        return alert

    def update(self, library: str, card_hash: str, alert_id: str, changes: AlertUpdate) -> Alert | None:
        current = self.get(library, card_hash, alert_id)
        if current is None:
            return None
        patch = changes.model_dump(exclude_unset=True)
        merged = current.model_copy(update={k: v for k, v in patch.items()
                                            if k != "conditions" and (v is not None or k == "memo")})
        conditions = patch.get("conditions")
        conds = ([AlertCondition(**c) for c in conditions] if conditions is not None else current.conditions)
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE sdi_alerts SET name = ?, memo = ?, conditions = ?, match = ?, max_results = ?, active = ?,"
                " updated_at = ? WHERE id = ?",
                (merged.name, merged.memo, json.dumps([c.model_dump() for c in conds], ensure_ascii=False),
                 merged.match, merged.max_results, int(merged.active), _now().isoformat(), alert_id))
        return self.get(library, card_hash, alert_id)

    def delete(self, library: str, card_hash: str, alert_id: str) -> bool:
        with self.db.tx() as tx:
            tx.execute("DELETE FROM sdi_matches WHERE alert_id IN "
                       "(SELECT id FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?)",
                       (alert_id, library, card_hash))
            deleted = tx.execute("DELETE FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?",
                                 (alert_id, library, card_hash)).rowcount
        return deleted > 0

    def active_alerts(self, library: str) -> list[Alert]:
        with self.db.tx() as tx:
            rows = tx.execute(
                f"SELECT {self._COLS} FROM sdi_alerts WHERE library = ? AND active = 1 "
                f"ORDER BY created_at, {self._seq}", (library,)).fetchall()
        return [self._alert(r) for r in rows]

    # ---------------------------------------------------------------- matches
    def matches(self, alert_id: str) -> list[AlertMatch]:
        with self.db.tx() as tx:
            rows = tx.execute(
                f"SELECT record_id, title, matched_at FROM sdi_matches WHERE alert_id = ? ORDER BY {self._seq}",
                (alert_id,)).fetchall()
        return [AlertMatch(record_id=r, title=t, matched_at=datetime.fromisoformat(m)) for r, t, m in rows]

    def reported(self, alert_ids: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {a: set() for a in alert_ids}
        if not out:
            return out
        with self.db.tx() as tx:
            rows = tx.execute("SELECT alert_id, record_id FROM sdi_matches").fetchall()
        for alert_id, record_id in rows:
            if alert_id in out:
                out[alert_id].add(record_id)
        return out

    def add_matches(self, matches: Iterable[Match], matched_at: datetime | None = None) -> int:
        stamp = (matched_at or _now()).isoformat()
        with self.db.tx() as tx:
            return tx.executemany(
                "INSERT INTO sdi_matches (alert_id, record_id, title, matched_at) VALUES (?,?,?,?) "
                "ON CONFLICT (alert_id, record_id) DO NOTHING",
                [(m.alert_id, m.record_id, m.title, stamp) for m in matches])

    # ---------------------------------------------------------------- harvests
    def harvest_state(self, library: str) -> HarvestState | None:
        with self.db.tx() as tx:
            row = tx.execute(
                "SELECT library, next_from, last_run_at, records, malformed, matches FROM sdi_harvests"
                " WHERE library = ?", (library,)).fetchone()
        return HarvestState(*row) if row else None

    def save_harvest(self, library: str, *, next_from: str | None, records: int, malformed: int,
                     matches: int) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO sdi_harvests (library, next_from, last_run_at, records, malformed, matches)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT (library) DO UPDATE SET next_from = excluded.next_from,"
                " last_run_at = excluded.last_run_at, records = excluded.records,"
                " malformed = excluded.malformed, matches = excluded.matches",
                (library, next_from, _now().isoformat(), records, malformed, matches))
