"""The gateway's database: SQLite (embedded, the default) or PostgreSQL, one interface.

``[gateway] database`` is an SQLite path (``opacgw.sqlite3``, ``:memory:``) or a
``postgresql://`` URL; ``OPACGW_DATABASE_URL`` overrides it.  Every store (sessions,
idempotency keys, gateway alerts and matches, harvest cursors, lending requests)
talks to a ``Database``:

    with db.tx() as tx:                       # one transaction: commit, or roll back on error
        tx.execute("SELECT ... WHERE a = ?", (a,)).fetchone()

SQL is written once with ``?`` placeholders in the dialect both servers speak
(``INSERT ... ON CONFLICT``, no ``rowid``); the PostgreSQL side turns ``?`` into
``%s``.  ``db.dialect`` names the few places that differ.

Connections are pooled, never one per request thread left open (the leak of #16.11):
SQLite keeps a few idle connections in a queue and closes the rest when they come
back; PostgreSQL uses psycopg_pool's ``ConnectionPool``.

The schema is versioned (``gateway.migrations``, plain SQL per dialect).  SQLite is
brought up to date when the gateway opens it, as the embedded default always did;
a PostgreSQL database is upgraded only by ``opacgw db upgrade``, and a server on an
out-of-date schema refuses to start, saying what to run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

ENV_DATABASE = "OPACGW_DATABASE_URL"


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message names the host, never the password."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...


class Database(Protocol):
    dialect: str  # "sqlite" | "postgresql"
    where: str  # for messages: a path, or host:port/dbname (never a password)

    def tx(self) -> contextlib.AbstractContextManager[Tx]: ...
    def close(self) -> None: ...


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def describe_url(url: str) -> str:
    """host:port/dbname of a URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


# ---------------------------------------------------------------------------- SQLite
class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self.conn.executemany(sql, [tuple(r) for r in rows]).rowcount


def sqlite_connect(path: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, uri=uri)
    memory = path == ":memory:" or "mode=memory" in path
    conn.execute("PRAGMA journal_mode=MEMORY" if memory else "PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


_memory_ids = itertools.count()


class SQLiteDatabase:
    """SQLite with a small pool: idle connections wait in a queue, extra ones are closed."""

    dialect = "sqlite"

    def __init__(self, path: str, *, idle: int = 8) -> None:
        self.where = path
        self._uri = False
        self._keep: sqlite3.Connection | None = None
        if path == ":memory:":
            # one in-memory database shared by the pool's connections (and kept alive)
            path = f"file:opacgw-mem-{os.getpid()}-{next(_memory_ids)}?mode=memory&cache=shared"
            self._uri = True
        self.path = path
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(maxsize=idle)
        self._closed = False
        if self._uri:
            self._keep = sqlite_connect(self.path, uri=True)

    def _get(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return sqlite_connect(self.path, uri=self._uri)

    def _put(self, conn: sqlite3.Connection) -> None:
        if self._closed:
            conn.close()
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        conn = self._get()
        try:
            with conn:  # commit, or roll back on an exception
                yield _SQLiteTx(conn)
        finally:
            self._put(conn)

    def idle_connections(self) -> int:
        return self._idle.qsize()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        if self._keep is not None:
            self._keep.close()
            self._keep = None


class SQLiteConnection:
    """One given sqlite3 connection as a Database (tools and tests that hold their own)."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.where = "<connection>"
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._lock, self.conn:
            yield _SQLiteTx(self.conn)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- PostgreSQL
class _PgTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(self._sql(sql), tuple(params))  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql), rows)
            return int(cur.rowcount)


class PostgresDatabase:
    """PostgreSQL through psycopg 3 and psycopg_pool."""

    dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16, timeout: float = 10.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.where = describe_url(url)
        try:  # one direct try first: a clear failure, not the pool's retries in the log
            psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.Error:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {self.where}") from None
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                                   kwargs={"connect_timeout": max(1, int(timeout))}, name="opacgw")
        try:
            self.pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            self.pool.close()
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {self.where}") from None

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        with self.pool.connection() as conn:  # commits on exit, rolls back on an exception
            yield _PgTx(conn)

    def close(self) -> None:
        self.pool.close()


def open_database(target: str) -> Database:
    """An SQLite path or a postgresql:// URL."""
    if is_postgres(target):
        return PostgresDatabase(target)
    return SQLiteDatabase(target)


def as_database(db: Database | sqlite3.Connection | str) -> Database:
    if isinstance(db, sqlite3.Connection):
        return SQLiteConnection(db)
    if isinstance(db, str):
        return open_database(db)
    return db
