"""Scenario controls and watched accounts at every sandbox family (winj is covered whole
by test_scenario): hold_ready gives hold.ready, reserve_loan gives loan.renewal_blocked,
advance_days makes a loan due soon, change_password pauses the subscription."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from cryptography.fernet import Fernet

from fixtures.registry import start_simulator
from fixtures.scenario import apply
from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.watch.worker import Watcher
from tests.conftest import bearer

CASES = [("yamaguchi-pref", "1000000002", "Suou-Hanako2026"), ("ncip-consortium", "00052", "ncip-pass"),
         ("soap-demo", "2000000001", "soap-pass"), ("soap-kita", "3100000002", "kita-pass")]


def _events(client: Any, h: dict[str, str], sub: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/subscriptions/{sub}/events", headers=h).get_json()["events"])


@pytest.mark.parametrize(("lib", "card", "password"), CASES)
def test_family(sandbox: GatewayConfig, lib: str, card: str, password: str) -> None:
    sim = start_simulator(lib)
    cfg_lib = sandbox.libraries[lib]
    port = cfg_lib.base_url.split("//", 1)[1].split("/", 1)[0].split(":")[1]
    cfg_lib = cfg_lib.model_copy(update={"base_url": cfg_lib.base_url.replace(f":{port}", f":{sim.port}", 1)})
    cfg = sandbox.model_copy(update={"libraries": {lib: cfg_lib}})
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    gw = app.extensions["opacgw"]
    try:
        client = app.test_client()
        r = client.post("/v1/sessions", json={"library": lib, "card_number": card, "password": password})
        assert r.status_code == 201, r.get_json()
        h = bearer(r.get_json()["token"])
        sub = client.post("/v1/subscriptions", headers=h, json={"consent": True, "due_soon_days": 14}).get_json()["id"]
        watcher = Watcher(gw)

        def tick() -> None:
            with sqlite3.connect(gw.settings.database) as conn:
                conn.execute("UPDATE watch_accounts SET next_poll_at = 0")
            conn.close()
            watcher.run_once()

        tick()
        holds = client.get(f"/v1/libraries/{lib}/holds", headers=h).get_json()["holds"]
        waiting = [x for x in holds if x["status"] != "ready"]
        assert waiting, holds
        apply(sim.server.app, {"action": "hold_ready", "hold_id": waiting[0]["id"]})
        loans = client.get(f"/v1/libraries/{lib}/loans", headers=h).get_json()["loans"]
        renewable = [x for x in loans if x["renewable"]]
        assert renewable, loans
        apply(sim.server.app, {"action": "reserve_loan", "loan_id": renewable[0]["id"]})
        tick()
        got = _events(client, h, sub)
        assert [e["subject"]["id"] for e in got if e["type"] == "hold.ready"] == [waiting[0]["id"]]
        assert renewable[0]["id"] in [e["subject"]["id"] for e in got if e["type"] == "loan.renewal_blocked"]

        apply(sim.server.app, {"action": "advance_days", "days": 400})
        tick()
        assert any(e["type"] == "loan.overdue" and e["subject"]["id"] == renewable[0]["id"]
                   for e in _events(client, h, sub))

        apply(sim.server.app, {"action": "change_password", "card_number": card, "new_password": "Changed-2026x"})
        with sqlite3.connect(gw.settings.database) as conn:
            conn.execute("UPDATE watch_accounts SET upstream = NULL")
        conn.close()
        tick()
        assert [e["type"] for e in _events(client, h, sub)].count("subscription.paused") == 1
        polls = watcher.polls
        tick()
        assert watcher.polls == polls
    finally:
        gw.close()
        sim.stop()
