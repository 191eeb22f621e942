"""The "done means" of issue #14 against the kagoshima-pref winj simulator, with the worker
driven step by step (``Watcher.run_once``) and a local webhook receiver that verifies the
Standard Webhooks signature."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask, request
from standardwebhooks import Webhook

from fixtures.registry import serve_app, start_simulator
from fixtures.scenario import apply
from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.watch.worker import Watcher
from tests.conftest import bearer

LIB = "kagoshima-pref"
CARD, PASSWORD = "8000000001", "19800101"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/hook")
        def hook() -> tuple[str, int]:
            with self.lock:
                self.got.append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
            return "", self.status

        self.server = serve_app(app, name="receiver")
        self.url = f"http://127.0.0.1:{self.server.port}/hook"

    def events(self, secret: str) -> list[dict[str, Any]]:
        wh = Webhook(secret)
        return [wh.verify(body, headers) for headers, body in self.got]


@pytest.fixture
def world(sandbox: GatewayConfig) -> Any:
    sim = start_simulator(LIB)
    inner = sim.server.app.wsgi_app
    seen = sim.server.app.config["TEST_REQUESTS"] = []

    def counting(environ: Any, start_response: Any) -> Any:
        seen.append(environ.get("PATH_INFO", ""))
        return inner(environ, start_response)

    sim.server.app.wsgi_app = counting
    lib = sandbox.libraries[LIB]
    lib = lib.model_copy(update={"base_url": lib.base_url.replace("18102", str(sim.port))})
    cfg = sandbox.model_copy(update={"libraries": {LIB: lib}})
    key = Fernet.generate_key().decode()
    app = create_app(cfg, secret_key=key)
    app.testing = True
    app.config["TEST_SECRET"] = key
    receiver = Receiver()
    yield app, sim, receiver
    app.extensions["opacgw"].close()
    receiver.server.stop()
    sim.stop()


def _login(client: Any, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/v1/sessions", json={"library": LIB, "card_number": CARD, "password": password})
    assert r.status_code == 201, r.get_json()
    return bearer(r.get_json()["token"])


def _tick(watcher: Watcher, db: str) -> None:
    """Make every account due now and run one round of the worker."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE watch_accounts SET next_poll_at = 0")
    conn.close()
    watcher.run_once()


def test_consent_is_required(world: Any) -> None:
    app, _, _ = world
    client = app.test_client()
    h = _login(client)
    r = client.post("/v1/subscriptions", json={}, headers=h)
    assert r.status_code == 400
    assert r.get_json()["errors"][0]["field"] == "consent"
    assert "password" in r.get_json()["detail"]


def test_done_means(world: Any) -> None:
    app, sim, receiver = world
    gw = app.extensions["opacgw"]
    db = gw.settings.database
    state = sim.server.app.extensions["winj"]
    client = app.test_client()
    h = _login(client)
    placed = client.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [_holdable(client, h)]}, headers=h)
    assert placed.status_code in (200, 201, 207), placed.get_json()
    hold_id = next(x["hold"]["id"] for x in placed.get_json()["results"] if x["ok"])

    r = client.post("/v1/subscriptions", headers=h, json={
        "webhook_url": receiver.url, "consent": True, "auto_renew": {"days_before": 2}})
    assert r.status_code == 201, r.get_json()
    sub = r.get_json()
    secret = sub["signing_secret"]
    assert secret.startswith("whsec_") and sub["calendar_url"].endswith(".ics")
    assert "signing_secret" not in client.get(f"/v1/subscriptions/{sub['id']}", headers=h).get_json() \
        or client.get(f"/v1/subscriptions/{sub['id']}", headers=h).get_json()["signing_secret"] is None

    watcher = Watcher(gw)
    _tick(watcher, db)  # baseline snapshot
    baseline = len(receiver.got)

    # hold_ready -> exactly one verified hold.ready
    apply(sim.server.app, {"action": "hold_ready", "hold_id": hold_id})
    _tick(watcher, db)
    _tick(watcher, db)
    ready = [e for e in receiver.events(secret)[baseline:] if e["type"] == "hold.ready"]
    assert len(ready) == 1 and ready[0]["subject"]["id"] == hold_id

    # reserve_loan on a renewable loan -> loan.renewal_blocked
    loans = client.get(f"/v1/libraries/{LIB}/loans", headers=h).get_json()["loans"]
    renewable = [l for l in loans if l["renewable"]]
    assert renewable
    apply(sim.server.app, {"action": "reserve_loan", "loan_id": renewable[0]["id"]})
    _tick(watcher, db)
    assert [e for e in receiver.events(secret) if e["type"] == "loan.renewal_blocked"
            and e["subject"]["id"] == renewable[0]["id"]]

    # auto-renew: another renewable loan due tomorrow -> loan.renewed, GET loans shows it
    state.loans[CARD][0].reserved_by_others = False  # only one loan: take the reservation back
    today = state.today()
    due = state.loans[CARD][0].due_on
    apply(sim.server.app, {"action": "advance_days", "days": (due - today).days - 1})
    _tick(watcher, db)
    renewed = [e for e in receiver.events(secret) if e["type"] == "loan.renewed"]
    assert len(renewed) == 1 and renewed[0]["data"]["automatic"] is True
    loans = client.get(f"/v1/libraries/{LIB}/loans", headers={**h, "Cache-Control": "no-cache"}).get_json()["loans"]
    assert any(l["due_on"] == renewed[0]["data"]["due_on"] for l in loans)
    assert date.fromisoformat(renewed[0]["data"]["due_on"]) > today + timedelta(days=1)

    # the calendar URL needs no header
    path = sub["calendar_url"].split("://", 1)[1].split("/", 1)[1]
    cal = client.get("/" + path)
    assert cal.status_code == 200 and b"BEGIN:VCALENDAR" in cal.data
    assert renewed[0]["data"]["due_on"].replace("-", "").encode() in cal.data

    # events page and SSE agree; deliveries list their outcome
    page = client.get(f"/v1/subscriptions/{sub['id']}/events", headers=h).get_json()
    assert {e["id"] for e in page["events"]} >= {e["id"] for e in receiver.events(secret)}
    assert client.get(f"/v1/subscriptions/{sub['id']}/events?after={page['next']}", headers=h).get_json()["events"] == []
    dl = client.get(f"/v1/subscriptions/{sub['id']}/deliveries", headers=h).get_json()["deliveries"]
    assert dl and all(d["outcome"] == "delivered" for d in dl)

    # restart: a new gateway on the same database (same keys) sends nothing again
    sent = len(receiver.got)
    app2 = create_app(gw.config, secret_key=app.config["TEST_SECRET"])
    watcher2 = Watcher(app2.extensions["opacgw"])
    _tick(watcher2, db)
    _tick(watcher2, db)
    assert watcher2.polls == 2
    assert len(receiver.got) == sent

    # change_password upstream -> subscription.paused, and no more logins
    apply(sim.server.app, {"action": "change_password", "card_number": CARD, "new_password": "newpass99"})
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE watch_accounts SET upstream = NULL")  # the library ended the session too
    _tick(watcher2, db)
    paused = [e for e in receiver.events(secret) if e["type"] == "subscription.paused"]
    assert len(paused) == 1
    logins = _logins(sim)
    assert client.get(f"/v1/subscriptions/{sub['id']}", headers=h).get_json()["status"] == "paused"
    polls = watcher2.polls
    _tick(watcher2, db)
    assert watcher2.polls == polls

    # DELETE: no more polls, credential gone from the database
    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=h).status_code == 204
    _tick(watcher2, db)
    assert watcher2.polls == polls and _logins(sim) == logins
    app2.extensions["opacgw"].close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM watch_accounts").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM subscriptions").fetchone()[0] == 0


def _holdable(client: Any, h: dict[str, str]) -> str:
    held = {x["record_id"] for x in client.get(f"/v1/libraries/{LIB}/holds", headers=h).get_json()["holds"]}
    loaned = {x["record_id"] for x in client.get(f"/v1/libraries/{LIB}/loans", headers=h).get_json()["loans"]}
    found = client.get(f"/v1/libraries/{LIB}/records?q=の", headers=h).get_json()
    for rec in found.get("records", []):
        if rec["id"] not in held | loaned:
            return str(rec["id"])
    raise AssertionError(json.dumps(found, ensure_ascii=False)[:500])


def _logins(sim: Any) -> int:
    """Every request the simulator saw (a login or any other): none may follow a pause."""
    return len(sim.server.app.config["TEST_REQUESTS"])
