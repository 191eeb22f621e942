"""`Idempotency-Key` on any POST: a retry with the same key returns the first result.

The first request with a key is recorded as in progress, under a **lease** of
``idempotency_lease_seconds`` (configuration, default 120 s); its answer is stored
once it is final.  A retry while the lease runs gets 409 ``conflict`` (``Retry-After: 1``); the same key with a different request (method, path or body) is a
409 too.  When the lease has expired and no answer was stored (the process running
the request died or hung mid-confirm), the next request with that key takes the key
over and runs again: the adapters re-read the upstream before writing (the careful-
write rule of ``adapters.writes``, with the write intent recorded before the
confirm), so it answers what actually happened — the hold placed, the loan renewed —
instead of "in progress" for the key's whole life.  A stale process finishing late
does not overwrite the answer of the one that took over (each run owns its lease).

Answers with a 5xx status are not stored, nor answers whose batch results hold an
outcome the gateway could not learn (``mark_unsettled``), so the client may retry
them and learn what happened.  The patron session is authenticated **before** a
replay: a logged-out or expired token gets 401, never a stored answer.

Keys are scoped by the session token (or, without one, by the request itself, so
that strangers never share a key space) and kept 24 hours.  Nothing secret is stored
in clear: the scope and the request fingerprint are HMACs under the gateway's secret
key (a login body holds a password), and the stored answer is encrypted (a login
answer holds a session token).

Storage is one table of the gateway's database (SQLite or PostgreSQL) behind
``IdempotencyStore`` (``begin`` / ``finish`` / ``forget``), the only place that knows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from flask import Flask, Response, g, request

from core.errors import Conflict, InvalidRequest
from gateway.db import Database, SQLiteConnection

if TYPE_CHECKING:
    from gateway.runtime import Gateway

HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 3600
_KEEP_HEADERS = ("Content-Type", "Location", "Retry-After")

Outcome = Literal["run", "replay", "running", "mismatch"]


@dataclass(frozen=True)
class Begun:
    """What ``IdempotencyStore.begin`` decided for one request."""

    outcome: Outcome
    #: the lease owner id of this run (outcome "run")
    owner: str = ""
    #: the stored answer (outcome "replay")
    status: int = 0
    body: bytes = b""
    headers: str = "{}"
    #: seconds until the running lease expires (outcome "running")
    lease_left: float = 0.0
    #: this run took over a key whose lease had expired
    taken_over: bool = False


class IdempotencyStore:
    """Keys, their fingerprints, leases and stored (encrypted) answers in the gateway's
    database (SQLite or PostgreSQL).  ``begin`` is race-free across processes: the key is
    claimed by one ``INSERT ... ON CONFLICT DO NOTHING``, a lapsed lease by one conditional
    ``UPDATE``; whoever's statement changed the row runs."""

    def __init__(self, db: Database | Callable[[], sqlite3.Connection], *, lease_seconds: float,
                 ttl_seconds: float = TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if callable(db) and not hasattr(db, "tx"):  # a function giving one sqlite3 connection
            from gateway.migrations import ensure_current

            db = SQLiteConnection(db())
            ensure_current(db)
        self.db: Database = db  # type: ignore[assignment]
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def begin(self, scope: str, key: str, fingerprint: str) -> Begun:
        now = self.clock()
        owner = secrets.token_hex(8)
        with self.db.tx() as tx:
            tx.execute("DELETE FROM idempotency WHERE created < ?", (now - self.ttl_seconds,))
            claimed = tx.execute(
                "INSERT INTO idempotency (scope, key, fingerprint, state, created, lease_until, owner) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING",
                (scope, key, fingerprint, now, now + self.lease_seconds, owner),
            ).rowcount
        if claimed == 1:
            return Begun("run", owner=owner)
        with self.db.tx() as tx:
            row = tx.execute(
                "SELECT fingerprint, state, status, body, headers, lease_until FROM idempotency "
                "WHERE scope=? AND key=?", (scope, key),
            ).fetchone()
            if row is None:  # forgotten meanwhile: the client may simply retry
                return Begun("running", lease_left=0.0)
            fp, state, status, body, headers, lease_until = row
            if fp != fingerprint:
                return Begun("mismatch")
            if state == "done":
                return Begun("replay", status=status, body=bytes(body), headers=headers)
            lease_until = float(lease_until if lease_until is not None else 0.0)
            if lease_until > now:
                return Begun("running", lease_left=lease_until - now)
            # The run holding the key is gone (died or hung past its lease): take over.
            took = tx.execute(
                "UPDATE idempotency SET lease_until=?, owner=? WHERE scope=? AND key=? AND state='running' "
                "AND (lease_until IS NULL OR lease_until <= ?)",
                (now + self.lease_seconds, owner, scope, key, now),
            ).rowcount
        if took != 1:  # another request took it over first
            return Begun("running", lease_left=self.lease_seconds)
        return Begun("run", owner=owner, taken_over=True)

    def finish(self, scope: str, key: str, owner: str, status: int, body: bytes, headers: str) -> None:
        """Store the final answer, if this run still owns the key."""
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE idempotency SET state='done', status=?, body=?, headers=?, lease_until=NULL "
                "WHERE scope=? AND key=? AND owner=? AND state='running'",
                (status, body, headers, scope, key, owner),
            )

    def forget(self, scope: str, key: str, owner: str) -> None:
        """Drop the key (no final answer): the client may retry it; only this run's key."""
        with self.db.tx() as tx:
            tx.execute("DELETE FROM idempotency WHERE scope=? AND key=? AND owner=? AND state='running'",
                       (scope, key, owner))


def mark_unsettled() -> None:
    """The answer holds an outcome the gateway could not learn (a per-item 5xx problem in a
    batch): do not store it, so a retry with the key runs again and re-reads upstream."""
    g.idem_unsettled = True


def _authenticate(app: Flask, gw: Gateway) -> None:
    """The view's own authentication, before any replay (a logged-out token gets 401)."""
    view = app.view_functions.get(request.endpoint or "")
    auth = getattr(view, "_opacgw_spec", {}).get("auth") if view is not None else None
    if auth == "patron" or (auth == "patron-or-client" and request.headers.get("Authorization")):
        gw.current()


def install(app: Flask, gw: Gateway) -> None:
    store = IdempotencyStore(gw.database, lease_seconds=gw.settings.idempotency_lease_seconds)
    app.extensions["opacgw_idempotency"] = store

    @app.before_request
    def _replay() -> Response | None:
        if request.method != "POST":
            return None
        key = request.headers.get(HEADER)
        if key is None:
            return None
        if not 1 <= len(key) <= 255:
            raise InvalidRequest(f"{HEADER} must be 1–255 characters")
        _authenticate(app, gw)
        mac_key = gw.crypto.hmac_key
        fingerprint = hmac.new(
            mac_key, request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data(cache=True),
            hashlib.sha256,
        ).hexdigest()
        auth = request.headers.get("Authorization", "")
        who = f"token:{auth}" if auth else f"client:{g.get('client', 'anonymous')}:{fingerprint}"
        scope = hmac.new(mac_key, who.encode(), hashlib.sha256).hexdigest()
        begun = store.begin(scope, key, fingerprint)
        if begun.outcome == "run":
            g.idem = (scope, key, begun.owner)
            return None
        if begun.outcome == "mismatch":
            raise Conflict(f"{HEADER} {key!r} was used for a different request")
        if begun.outcome == "running":
            raise Conflict(f"a request with {HEADER} {key!r} is still in progress", retry_after=1)
        resp = Response(gw.crypto.fernet.decrypt(begun.body), status=begun.status)
        for name, value in json.loads(begun.headers).items():
            resp.headers[name] = value
        resp.headers["Idempotent-Replayed"] = "true"
        return resp

    @app.after_request
    def _store(resp: Response) -> Response:
        idem = g.pop("idem", None)
        if idem is None:
            return resp
        scope, key, owner = idem
        if resp.status_code >= 500 or g.pop("idem_unsettled", False):
            store.forget(scope, key, owner)
        else:
            headers = {h: resp.headers[h] for h in _KEEP_HEADERS if h in resp.headers}
            store.finish(scope, key, owner, resp.status_code, gw.crypto.fernet.encrypt(resp.get_data()),
                         json.dumps(headers))
        return resp

    @app.teardown_request
    def _forget(exc: BaseException | None) -> None:
        idem = g.pop("idem", None)
        if idem is not None:  # the request died before after_request
            store.forget(*idem)
