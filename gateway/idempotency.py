"""`Idempotency-Key` on any POST: a retry with the same key returns the first result.

The first request with a key is recorded as in progress; its answer is stored once
it is final.  A retry while the first is still running gets 409 ``conflict``; the same
key with a different request (method, path or body) is a 409 too.  Answers with a
5xx status are not stored, so the client may retry them — the adapters re-read
upstream state before writing again (a timed-out hold is found, not placed twice).
Keys are scoped by the session token (or, without one, by the request itself, so that
strangers never share a key space) and kept 24 hours.  Nothing secret is stored in
clear: the scope and the request fingerprint are HMACs under the gateway's secret
key (a login body holds a password), and the stored answer is encrypted (a login
answer holds a session token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request

from core.errors import Conflict, InvalidRequest

if TYPE_CHECKING:
    from gateway.runtime import Gateway

HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 3600
_KEEP_HEADERS = ("Content-Type", "Location", "Retry-After")


def _ensure(gw: Gateway) -> None:
    gw.db().execute(
        "CREATE TABLE IF NOT EXISTS idempotency (scope TEXT, key TEXT, fingerprint TEXT, state TEXT, "
        "status INTEGER, body BLOB, headers TEXT, created REAL, PRIMARY KEY (scope, key))"
    )


def install(app: Flask, gw: Gateway) -> None:
    @app.before_request
    def _replay() -> Response | None:
        if request.method != "POST":
            return None
        key = request.headers.get(HEADER)
        if key is None:
            return None
        if not 1 <= len(key) <= 255:
            raise InvalidRequest(f"{HEADER} must be 1–255 characters")
        mac_key = gw.crypto.hmac_key
        fingerprint = hmac.new(
            mac_key, request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data(cache=True),
            hashlib.sha256,
        ).hexdigest()
        auth = request.headers.get("Authorization", "")
        who = f"token:{auth}" if auth else f"client:{g.get('client', 'anonymous')}:{fingerprint}"
        scope = hmac.new(mac_key, who.encode(), hashlib.sha256).hexdigest()
        _ensure(gw)
        db = gw.db()
        with db:
            db.execute("DELETE FROM idempotency WHERE created < ?", (time.time() - TTL_SECONDS,))
            row = db.execute(
                "SELECT fingerprint, state, status, body, headers FROM idempotency WHERE scope=? AND key=?",
                (scope, key),
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, 'running', NULL, NULL, NULL, ?)",
                    (scope, key, fingerprint, time.time()),
                )
                g.idem = (scope, key)
                return None
        fp, state, status, body, headers = row
        if fp != fingerprint:
            raise Conflict(f"{HEADER} {key!r} was used for a different request")
        if state == "running":
            raise Conflict(f"a request with {HEADER} {key!r} is still in progress", retry_after=1)
        resp = Response(gw.crypto.fernet.decrypt(body), status=status)
        for name, value in json.loads(headers).items():
            resp.headers[name] = value
        resp.headers["Idempotent-Replayed"] = "true"
        return resp

    @app.after_request
    def _store(resp: Response) -> Response:
        idem = g.pop("idem", None)
        if idem is None:
            return resp
        db = gw.db()
        with db:
            if resp.status_code >= 500:
                db.execute("DELETE FROM idempotency WHERE scope=? AND key=?", idem)
            else:
                headers = {h: resp.headers[h] for h in _KEEP_HEADERS if h in resp.headers}
                db.execute(
                    "UPDATE idempotency SET state='done', status=?, body=?, headers=? WHERE scope=? AND key=?",
                    (resp.status_code, gw.crypto.fernet.encrypt(resp.get_data()), json.dumps(headers), *idem),
                )
        return resp

    @app.teardown_request
    def _forget(exc: BaseException | None) -> None:
        idem = g.pop("idem", None)
        if idem is not None:  # the request died before after_request
            with gw.db() as db:
                db.execute("DELETE FROM idempotency WHERE scope=? AND key=?", idem)
