"""Issue #14 through `opacgw serve` as a new user would: the worker runs inside it, the
scenario control changes the simulator, a local receiver gets one verified hold.ready
within three poll intervals; the calendar URL answers without a header; DELETE leaves no
credential in the database."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, request
from standardwebhooks import Webhook

from fixtures.registry import serve_app
from gateway.config import sandbox_config
from tests.test_sandbox_e2e import serve

pytestmark = pytest.mark.e2e

LIB, CARD, PASSWORD = "kagoshima-pref", "8000000001", "19800101"


def test_hold_ready_webhook_through_opacgw_serve(tmp_path: Path) -> None:
    got: list[tuple[float, dict[str, str], bytes]] = []
    lock = threading.Lock()
    recv = Flask("receiver")

    @recv.post("/hook")
    def hook() -> tuple[str, int]:
        with lock:
            got.append((time.monotonic(), {k.lower(): v for k, v in request.headers.items()}, request.get_data()))
        return "", 204

    receiver = serve_app(recv, name="receiver")
    interval = sandbox_config().gateway.poll_interval_seconds
    try:
        with serve(tmp_path) as (base, _, _):
            tok = httpx.post(base + "/v1/sessions", json={"library": LIB, "card_number": CARD, "password": PASSWORD},
                             timeout=30).json()["token"]
            h = {"Authorization": f"Bearer {tok}"}
            recs = httpx.get(base + f"/v1/libraries/{LIB}/records?q=の", headers=h, timeout=30).json()["records"]
            held = {x["record_id"] for x in httpx.get(base + f"/v1/libraries/{LIB}/holds", headers=h,
                                                      timeout=30).json()["holds"]}
            rid = next(r["id"] for r in recs if r["id"] not in held)
            placed = httpx.post(base + f"/v1/libraries/{LIB}/holds", json={"record_ids": [rid]}, headers=h,
                                timeout=30).json()
            hold_id = next(x["hold"]["id"] for x in placed["results"] if x["ok"])
            sub = httpx.post(base + "/v1/subscriptions", headers=h, timeout=30, json={
                "webhook_url": f"http://127.0.0.1:{receiver.port}/hook", "consent": True,
                "events": ["hold.ready"]}).json()
            db = tmp_path / sandbox_config().gateway.database

            def baselined() -> bool:
                with sqlite3.connect(db) as conn:
                    return bool(conn.execute("SELECT COUNT(*) FROM watch_accounts WHERE snapshot IS NOT NULL")
                                .fetchone()[0])

            deadline = time.monotonic() + 60
            while not baselined() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert baselined()
            r = httpx.post(base + f"/sandbox/simulators/{LIB}/scenario", timeout=30,
                           json={"action": "hold_ready", "hold_id": hold_id})
            assert r.status_code == 200, r.text
            changed = time.monotonic()
            while not got and time.monotonic() - changed < 3 * interval + 5:
                time.sleep(0.1)
            time.sleep(interval)  # a further poll must not send it again
            assert len(got) == 1
            at, headers, body = got[0]
            event: Any = Webhook(sub["signing_secret"]).verify(body, headers)
            assert event["type"] == "hold.ready" and event["subject"]["id"] == hold_id
            assert at - changed <= 3 * interval + 2  # within three poll intervals (and a little for the load)

            cal = httpx.get(sub["calendar_url"], timeout=30)
            assert cal.status_code == 200 and cal.text.startswith("BEGIN:VCALENDAR")

            assert httpx.delete(base + f"/v1/subscriptions/{sub['id']}", headers=h, timeout=30).status_code == 204
            with sqlite3.connect(db) as conn:
                assert conn.execute("SELECT COUNT(*) FROM watch_accounts").fetchone()[0] == 0
            assert httpx.get(sub["calendar_url"], timeout=30).status_code == 404
    finally:
        receiver.stop()
