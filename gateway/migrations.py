"""Versioned schema migrations, plain SQL per dialect (SQLite, PostgreSQL).

Each migration is a version number, a description and one SQL script per dialect;
``schema_version`` holds the versions applied.  ``upgrade(db)`` applies the missing
ones in order, each in its own transaction (PostgreSQL also takes an advisory lock,
so two processes upgrading at once apply each migration once).

Plain SQL rather than SQLAlchemy Core + Alembic: the stores already speak SQL through
one small ``Database`` interface with two drivers; a migration is a short script per
dialect that a reviewer reads as it runs, and nothing needs an ORM's metadata or a
second copy of the schema in Python.

An SQLite database written before migrations existed (its tables made by ``CREATE
TABLE IF NOT EXISTS`` on first use) is adopted as version 1: the first script only
creates what is missing, then adds the idempotency lease columns if the table is older.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.db import Database

_V1_SQLITE = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_accounts (
    token_hash TEXT NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    library TEXT NOT NULL,
    card_hash TEXT NOT NULL,
    card_number_masked TEXT NOT NULL,
    upstream BLOB NOT NULL,
    PRIMARY KEY (token_hash, library)
);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT, key TEXT, fingerprint TEXT, state TEXT, status INTEGER, body BLOB, headers TEXT,
    created REAL, lease_until REAL, owner TEXT,
    PRIMARY KEY (scope, key)
);
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
CREATE TABLE IF NOT EXISTS lending_requests (
    id TEXT PRIMARY KEY,
    card_hash TEXT NOT NULL,
    supplying_library TEXT NOT NULL,
    pickup_library TEXT NOT NULL,
    pickup_branch TEXT,
    record_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    history TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (supplying_library, card_hash, upstream_id)
);
CREATE INDEX IF NOT EXISTS lending_requests_card ON lending_requests (card_hash, created_at);
"""

# The same tables; `seq` gives rows the insertion order SQLite's rowid gives.
_V1_POSTGRES = """
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE session_accounts (
    token_hash TEXT NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    library TEXT NOT NULL,
    card_hash TEXT NOT NULL,
    card_number_masked TEXT NOT NULL,
    upstream BYTEA NOT NULL,
    PRIMARY KEY (token_hash, library)
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE TABLE idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT, state TEXT, status INTEGER, body BYTEA,
    headers TEXT, created DOUBLE PRECISION, lease_until DOUBLE PRECISION, owner TEXT,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency (created);
CREATE TABLE sdi_alerts (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
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
CREATE INDEX sdi_alerts_owner ON sdi_alerts (library, card_hash);
CREATE TABLE sdi_matches (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    alert_id   TEXT NOT NULL REFERENCES sdi_alerts (id) ON DELETE CASCADE,
    record_id  TEXT NOT NULL,
    title      TEXT NOT NULL,
    matched_at TEXT NOT NULL,
    PRIMARY KEY (alert_id, record_id)
);
CREATE TABLE sdi_harvests (
    library     TEXT PRIMARY KEY,
    next_from   TEXT,
    last_run_at TEXT,
    records     INTEGER,
    malformed   INTEGER,
    matches     INTEGER
);
CREATE TABLE lending_requests (
    id TEXT PRIMARY KEY,
    card_hash TEXT NOT NULL,
    supplying_library TEXT NOT NULL,
    pickup_library TEXT NOT NULL,
    pickup_branch TEXT,
    record_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    history TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (supplying_library, card_hash, upstream_id)
);
CREATE INDEX lending_requests_card ON lending_requests (card_hash, created_at);
"""


# Watched accounts (#14, gateway.watch.store): subscriptions, their accounts (credential,
# upstream state, snapshot, lease), events unique per (subscription, key), deliveries and
# their attempts, and the poll log that keeps each library within max_polls_per_minute.
_V2_SQLITE = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    libraries TEXT NOT NULL,
    events TEXT NOT NULL,
    webhook_url TEXT,
    secret BLOB NOT NULL,
    calendar_hash TEXT NOT NULL UNIQUE,
    due_soon_days INTEGER NOT NULL,
    auto_renew_days INTEGER,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_accounts (
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    library TEXT NOT NULL,
    card_hash TEXT NOT NULL,
    card_masked TEXT NOT NULL,
    credential BLOB,
    upstream BLOB,
    snapshot BLOB,
    status TEXT NOT NULL DEFAULT 'active',
    next_poll_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, library)
);
CREATE INDEX IF NOT EXISTS watch_due ON watch_accounts(next_poll_at);
CREATE INDEX IF NOT EXISTS watch_owner ON watch_accounts(library, card_hash);
CREATE TABLE IF NOT EXISTS watch_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    event_key TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (subscription_id, event_key)
);
CREATE TABLE IF NOT EXISTS watch_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq INTEGER NOT NULL UNIQUE REFERENCES watch_events(seq) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    first_failed_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON watch_deliveries(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS watch_attempts (
    delivery_id INTEGER NOT NULL REFERENCES watch_deliveries(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_sub ON watch_attempts(subscription_id, at);
CREATE TABLE IF NOT EXISTS watch_polls (
    library TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS polls_lib ON watch_polls(library, at);
"""

_V2_POSTGRES = """
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    libraries TEXT NOT NULL,
    events TEXT NOT NULL,
    webhook_url TEXT,
    secret BYTEA NOT NULL,
    calendar_hash TEXT NOT NULL UNIQUE,
    due_soon_days INTEGER NOT NULL,
    auto_renew_days INTEGER,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE watch_accounts (
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    library TEXT NOT NULL,
    card_hash TEXT NOT NULL,
    card_masked TEXT NOT NULL,
    credential BYTEA,
    upstream BYTEA,
    snapshot BYTEA,
    status TEXT NOT NULL DEFAULT 'active',
    next_poll_at DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, library)
);
CREATE INDEX watch_due ON watch_accounts(next_poll_at);
CREATE INDEX watch_owner ON watch_accounts(library, card_hash);
CREATE TABLE watch_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    event_key TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (subscription_id, event_key)
);
CREATE TABLE watch_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq INTEGER NOT NULL UNIQUE REFERENCES watch_events(seq) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    first_failed_at DOUBLE PRECISION
);
CREATE INDEX deliveries_due ON watch_deliveries(status, next_attempt_at);
CREATE TABLE watch_attempts (
    delivery_id BIGINT NOT NULL REFERENCES watch_deliveries(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT
);
CREATE INDEX attempts_sub ON watch_attempts(subscription_id, at);
CREATE TABLE watch_polls (
    library TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX polls_lib ON watch_polls(library, at);
"""

@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: str
    postgresql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, idempotency keys, gateway alerts and matches, harvest cursors, lending requests",
              _V1_SQLITE, _V1_POSTGRES),
    Migration(2, "watched accounts: subscriptions, events, deliveries, poll log", _V2_SQLITE, _V2_POSTGRES),
)
LATEST = MIGRATIONS[-1].version
UPGRADE_COMMAND = "opacgw db upgrade --config FILE"


class SchemaOutOfDate(Exception):
    """The database's schema is older (or newer) than this gateway's."""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def current_version(db: Database) -> int:
    with db.tx() as tx:
        if db.dialect == "sqlite":
            found = tx.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
        else:
            found = tx.execute("SELECT to_regclass('schema_version')").fetchone()
            found = found if found and found[0] else None
        if not found:
            return 0
        row = tx.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)


def upgrade(db: Database) -> list[int]:
    """Apply every missing migration; the versions applied."""
    applied: list[int] = []
    with db.tx() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT "
                   "NOT NULL, applied_at TEXT NOT NULL)")
    for m in MIGRATIONS:
        with db.tx() as tx:
            if db.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(4242013)")
            if tx.execute("SELECT 1 FROM schema_version WHERE version = ?", (m.version,)).fetchone():
                continue
            for stmt in _statements(m.sqlite if db.dialect == "sqlite" else m.postgresql):
                tx.execute(stmt)
            if m.version == 1 and db.dialect == "sqlite":
                _adopt_legacy_sqlite(tx)
            tx.execute("INSERT INTO schema_version VALUES (?, ?, CURRENT_TIMESTAMP)", (m.version, m.description))
            applied.append(m.version)
    return applied


def _adopt_legacy_sqlite(tx) -> None:  # type: ignore[no-untyped-def]
    cols = {row[1] for row in tx.execute("PRAGMA table_info(idempotency)")}
    for col, kind in (("lease_until", "REAL"), ("owner", "TEXT")):
        if col not in cols:  # written by a version before leases: in-progress rows get no lease
            tx.execute(f"ALTER TABLE idempotency ADD COLUMN {col} {kind}")


def ensure_current(db: Database) -> None:
    """SQLite: upgrade in place (embedded).  PostgreSQL: refuse an out-of-date schema."""
    if db.dialect == "sqlite":
        version = current_version(db)
        if version > LATEST:
            raise SchemaOutOfDate(f"the database {db.where} has schema version {version}, newer than this "
                                  f"gateway's {LATEST}: run a newer gateway")
        if version < LATEST:
            upgrade(db)
        return
    version = current_version(db)
    if version < LATEST:
        raise SchemaOutOfDate(f"the database {db.where} has schema version {version}, this gateway needs "
                              f"{LATEST}: run `{UPGRADE_COMMAND}` first")
    if version > LATEST:
        raise SchemaOutOfDate(f"the database {db.where} has schema version {version}, newer than this "
                              f"gateway's {LATEST}: run a newer gateway")
