"""Gateway sessions: opaque tokens, sliding expiry, encrypted upstream state.

A session token is 32 random bytes (256 bits), given to the client once; the store
keeps only its SHA-256.  Each account of a session stores the adapter's
``UpstreamSession`` (cookies, hidden form tokens, the card number) encrypted with
Fernet.  Passwords are never written anywhere: the ``CredentialVault`` keeps them,
encrypted, in this process's memory only, for transparent re-login when an
upstream session expires.  A gateway restarted, or another worker process, cannot
re-login; the client then gets 401 ``unauthenticated`` and logs in again.

``SessionStore`` is the interface; ``SQLSessionStore`` implements it on the gateway's
database (SQLite by default, or PostgreSQL: ``gateway.db``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.db import Database, SQLiteDatabase, sqlite_connect


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class StoredAccount:
    library: str
    card_hash: str
    card_number_masked: str
    upstream: bytes  # Fernet token of the UpstreamSession JSON


@dataclass
class SessionRecord:
    token_hash: str
    created_at: datetime
    expires_at: datetime
    accounts: list[StoredAccount] = field(default_factory=list)

    def account(self, library: str) -> StoredAccount | None:
        for a in self.accounts:
            if a.library == library:
                return a
        return None


class SessionStore(Protocol):
    def create(self, record: SessionRecord) -> None: ...
    def get(self, token_hash: str, now: datetime) -> SessionRecord | None: ...
    def touch(self, token_hash: str, expires_at: datetime) -> None: ...
    def update_upstream(self, token_hash: str, library: str, upstream: bytes) -> None: ...
    def delete(self, token_hash: str) -> None: ...
    def purge(self, now: datetime) -> int: ...


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


class SQLSessionStore:
    """Sessions in the gateway's database (SQLite or PostgreSQL, ``gateway.db``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, record: SessionRecord) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO sessions (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                (record.token_hash, _iso(record.created_at), _iso(record.expires_at)),
            )
            tx.executemany(
                "INSERT INTO session_accounts (token_hash, position, library, card_hash, card_number_masked,"
                " upstream) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (record.token_hash, i, a.library, a.card_hash, a.card_number_masked, a.upstream)
                    for i, a in enumerate(record.accounts)
                ],
            )

    def get(self, token_hash: str, now: datetime) -> SessionRecord | None:
        with self.db.tx() as tx:
            row = tx.execute(
                "SELECT created_at, expires_at FROM sessions WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                return None
            expires = datetime.fromisoformat(row[1])
            if expires > now:
                accounts = [
                    StoredAccount(lib, ch, masked, bytes(up))
                    for lib, ch, masked, up in tx.execute(
                        "SELECT library, card_hash, card_number_masked, upstream FROM session_accounts "
                        "WHERE token_hash = ? ORDER BY position",
                        (token_hash,),
                    ).fetchall()
                ]
                return SessionRecord(token_hash, datetime.fromisoformat(row[0]), expires, accounts)
        self.delete(token_hash)
        return None

    def touch(self, token_hash: str, expires_at: datetime) -> None:
        with self.db.tx() as tx:
            tx.execute("UPDATE sessions SET expires_at = ? WHERE token_hash = ?", (_iso(expires_at), token_hash))

    def update_upstream(self, token_hash: str, library: str, upstream: bytes) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE session_accounts SET upstream = ? WHERE token_hash = ? AND library = ?",
                (upstream, token_hash, library),
            )

    def delete(self, token_hash: str) -> None:
        with self.db.tx() as tx:
            tx.execute("DELETE FROM session_accounts WHERE token_hash = ?", (token_hash,))
            tx.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def purge(self, now: datetime) -> int:
        with self.db.tx() as tx:
            expired = [r[0] for r in tx.execute("SELECT token_hash FROM sessions WHERE expires_at <= ?",
                                                (_iso(now),)).fetchall()]
            for th in expired:
                tx.execute("DELETE FROM session_accounts WHERE token_hash = ?", (th,))
                tx.execute("DELETE FROM sessions WHERE token_hash = ?", (th,))
        return len(expired)


class SQLiteSessionStore(SQLSessionStore):
    """Sessions in an SQLite file of their own (brought up to the current schema)."""

    def __init__(self, path: str) -> None:
        from gateway.migrations import ensure_current

        db = SQLiteDatabase(path)
        ensure_current(db)
        super().__init__(db)


def connect(path: str) -> sqlite3.Connection:
    return sqlite_connect(path)


class Crypto:
    """Fernet encryption of upstream state, and keyed hashes of card numbers.

    ``key`` is one Fernet key or a list ``[new, old, ...]`` (MultiFernet: encrypts with
    the first, decrypts with any, so a rotation loses no session).  Card-number hashes
    (and request MACs) use ``hash_key`` — their own key, so rotating the encryption keys
    never orphans gateway alerts or lending requests; without one they derive from the
    oldest key of the list (what a single-key gateway always used: set ``card_hash_key``
    to that key before dropping it)."""

    def __init__(self, key: str | bytes | list[str] | list[bytes], hash_key: str | bytes | None = None) -> None:
        keys = [key] if isinstance(key, (str, bytes)) else list(key)
        if not keys:
            raise ValueError("no secret key")
        self.fernet = MultiFernet([Fernet(k) for k in keys])
        base = hash_key if hash_key is not None else keys[-1]
        raw = base.encode() if isinstance(base, str) else base
        self._hash_key = hashlib.sha256(b"opacgw-card-hash:" + raw).digest()
        #: key for other HMACs of request data (idempotency fingerprints)
        self.hmac_key = hashlib.sha256(b"opacgw-request-mac:" + raw).digest()

    def seal(self, data: dict[str, Any]) -> bytes:
        return self.fernet.encrypt(json.dumps(data, separators=(",", ":")).encode())

    def open(self, token: bytes) -> dict[str, Any] | None:
        try:
            return json.loads(self.fernet.decrypt(token))
        except (InvalidToken, ValueError):
            return None

    def card_hash(self, library: str, card_number: str) -> str:
        """A keyed hash: card numbers are low-entropy, a plain hash could be brute-forced."""
        return hmac.new(self._hash_key, f"{library}\x00{card_number}".encode(), hashlib.sha256).hexdigest()


class CredentialVault:
    """Passwords for transparent re-login: encrypted, in memory, never on disk."""

    def __init__(self, crypto: Crypto) -> None:
        self._crypto = crypto
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], tuple[bytes, float]] = {}

    def put(self, token_hash: str, library: str, password: str, expires: float) -> None:
        with self._lock:
            self._data[(token_hash, library)] = (self._crypto.fernet.encrypt(password.encode()), expires)

    def get(self, token_hash: str, library: str) -> str | None:
        with self._lock:
            item = self._data.get((token_hash, library))
        if item is None:
            return None
        token, _ = item
        try:
            return self._crypto.fernet.decrypt(token).decode()
        except InvalidToken:
            return None

    def extend(self, token_hash: str, expires: float) -> None:
        with self._lock:
            for key, (tok, _) in list(self._data.items()):
                if key[0] == token_hash:
                    self._data[key] = (tok, expires)

    def drop(self, token_hash: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == token_hash]:
                del self._data[key]

    def purge(self) -> None:
        now = time.time()
        with self._lock:
            for key in [k for k, (_, exp) in self._data.items() if exp < now]:
                del self._data[key]


def expiry(now: datetime, minutes: int) -> datetime:
    return now + timedelta(minutes=minutes)
