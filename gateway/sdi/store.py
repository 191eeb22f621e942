"""Gateway-side SDI storage in the gateway's SQLite database.

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

from gateway.models import Alert, AlertCondition, AlertCreate, AlertMatch, AlertUpdate
from gateway.sdi.engine import Match

SCHEMA = """
CREATE TABLE IF NOT EXISTS sdi_alerts (
    id          TEXT PRIMARY KEY,
    library     TEXT NOT NULL,
    card_hash   TEXT NOT NULL,
    name        TEXT NOT NULL,
    memo        TEXT,
    conditions  TEXT NOT NULL,
    match       TEXT NOT NULL,
    max_results INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sdi_alerts_owner ON sdi_alerts (library, card_hash);
CREATE TABLE IF NOT EXISTS sdi_matches (
    alert_id   TEXT NOT NULL REFERENCES sdi_alerts (id) ON DELETE CASCADE,
    record_id  TEXT NOT NULL,
    title      TEXT NOT NULL,
    matched_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, record_id)
);
CREATE TABLE IF NOT EXISTS sdi_harvests (
    library     TEXT PRIMARY KEY,
    next_from   TEXT,
    last_run_at TEXT,
    records     INTEGER,
    malformed   INTEGER,
    matches     INTEGER
);
"""

def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ensure_schema(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sdi_harvests'").fetchone()
    if row is None:
        conn.executescript(SCHEMA)
        conn.commit()


@dataclass(frozen=True)
class HarvestState:
    library: str
    next_from: str | None
    last_run_at: str | None
    records: int | None
    malformed: int | None
    matches: int | None


class AlertStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        ensure_schema(conn)

    # ---------------------------------------------------------------- alerts
    @staticmethod
    def _alert(row: tuple) -> Alert:
        (alert_id, name, memo, conditions, match, max_results, active) = row
        return Alert(id=alert_id, name=name, memo=memo,
                     conditions=[AlertCondition(**c) for c in json.loads(conditions)],
                     match=match, max_results=max_results, active=bool(active), source="gateway")

    _COLS = "id, name, memo, conditions, match, max_results, active"

    def list(self, library: str, card_hash: str) -> list[Alert]:
        rows = self.conn.execute(
            f"SELECT {self._COLS} FROM sdi_alerts WHERE library = ? AND card_hash = ? ORDER BY created_at, rowid",
            (library, card_hash)).fetchall()
        return [self._alert(r) for r in rows]

    def get(self, library: str, card_hash: str, alert_id: str) -> Alert | None:
        row = self.conn.execute(
            f"SELECT {self._COLS} FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?",
            (alert_id, library, card_hash)).fetchone()
        return self._alert(row) if row else None

    def create(self, library: str, card_hash: str, new: AlertCreate) -> Alert:
        alert_id = "ga-" + secrets.token_urlsafe(9)
        now = _now().isoformat()
        with self.conn:
            self.conn.execute(
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
        with self.conn:
            self.conn.execute(
                "UPDATE sdi_alerts SET name = ?, memo = ?, conditions = ?, match = ?, max_results = ?, active = ?,"
                " updated_at = ? WHERE id = ?",
                (merged.name, merged.memo, json.dumps([c.model_dump() for c in conds], ensure_ascii=False),
                 merged.match, merged.max_results, int(merged.active), _now().isoformat(), alert_id))
        return self.get(library, card_hash, alert_id)

    def delete(self, library: str, card_hash: str, alert_id: str) -> bool:
        with self.conn:
            self.conn.execute("DELETE FROM sdi_matches WHERE alert_id IN "
                              "(SELECT id FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?)",
                              (alert_id, library, card_hash))
            cur = self.conn.execute("DELETE FROM sdi_alerts WHERE id = ? AND library = ? AND card_hash = ?",
                                    (alert_id, library, card_hash))
        return cur.rowcount > 0

    def active_alerts(self, library: str) -> list[Alert]:
        rows = self.conn.execute(
            f"SELECT {self._COLS} FROM sdi_alerts WHERE library = ? AND active = 1 ORDER BY created_at, rowid",
            (library,)).fetchall()
        return [self._alert(r) for r in rows]

    # ---------------------------------------------------------------- matches
    def matches(self, alert_id: str) -> list[AlertMatch]:
        rows = self.conn.execute(
            "SELECT record_id, title, matched_at FROM sdi_matches WHERE alert_id = ? ORDER BY rowid",
            (alert_id,)).fetchall()
        return [AlertMatch(record_id=r, title=t, matched_at=datetime.fromisoformat(m)) for r, t, m in rows]

    def reported(self, alert_ids: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {a: set() for a in alert_ids}
        if not out:
            return out
        for alert_id, record_id in self.conn.execute("SELECT alert_id, record_id FROM sdi_matches"):
            if alert_id in out:
                out[alert_id].add(record_id)
        return out

    def add_matches(self, matches: Iterable[Match], matched_at: datetime | None = None) -> int:
        stamp = (matched_at or _now()).isoformat()
        with self.conn:
            cur = self.conn.executemany(
                "INSERT OR IGNORE INTO sdi_matches (alert_id, record_id, title, matched_at) VALUES (?,?,?,?)",
                [(m.alert_id, m.record_id, m.title, stamp) for m in matches])
        return cur.rowcount

    # ---------------------------------------------------------------- harvests
    def harvest_state(self, library: str) -> HarvestState | None:
        row = self.conn.execute(
            "SELECT library, next_from, last_run_at, records, malformed, matches FROM sdi_harvests"
            " WHERE library = ?", (library,)).fetchone()
        return HarvestState(*row) if row else None

    def save_harvest(self, library: str, *, next_from: str | None, records: int, malformed: int,
                     matches: int) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO sdi_harvests (library, next_from, last_run_at, records, malformed, matches)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT (library) DO UPDATE SET next_from = excluded.next_from,"
                " last_run_at = excluded.last_run_at, records = excluded.records,"
                " malformed = excluded.malformed, matches = excluded.matches",
                (library, next_from, _now().isoformat(), records, malformed, matches))
