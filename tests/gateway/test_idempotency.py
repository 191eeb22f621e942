"""Idempotency-Key: authentication before replay (#16.6) and the lease of an in-progress
key (#16.7): a key whose run died or hung is taken over after its lease, never 409 for 24 h."""

from __future__ import annotations

import sqlite3
import threading
import time

from gateway.idempotency import IdempotencyStore
from tests import fakes
from tests.conftest import bearer, login
from tests.gateway.test_errors import assert_problem

HOLD = {"record_ids": ["R1"]}


def test_logged_out_token_gets_401_not_a_replay(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    h = {**bearer(token), "Idempotency-Key": "k1"}
    assert client.post("/v1/libraries/alpha/holds", json=HOLD, headers=h).status_code == 201
    assert client.delete("/v1/sessions/current", headers=bearer(token)).status_code == 204
    r = client.post("/v1/libraries/alpha/holds", json=HOLD, headers=h)
    assert_problem(r, 401, "unauthenticated")
    assert "Idempotent-Replayed" not in r.headers


def test_unknown_token_with_a_key_is_401(client) -> None:
    r = client.post("/v1/libraries/alpha/holds", json=HOLD,
                    headers={**bearer("not-a-token"), "Idempotency-Key": "k9"})
    assert_problem(r, 401, "unauthenticated")


def test_a_login_with_a_key_ignores_a_stale_token(client) -> None:
    """POST /v1/sessions takes no patron token: a stale one beside a key is no 401."""
    body = {"library": "alpha", "card_number": "12345", "password": fakes.PASSWORD}
    h = {**bearer("stale-token"), "Idempotency-Key": "login-k"}
    r1 = client.post("/v1/sessions", json=body, headers=h)
    r2 = client.post("/v1/sessions", json=body, headers=h)
    assert r1.status_code == r2.status_code == 201
    assert r2.headers["Idempotent-Replayed"] == "true"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_lease_expiry_hands_the_key_over(tmp_path) -> None:
    conn = sqlite3.connect(tmp_path / "i.sqlite3", check_same_thread=False)
    clock = _Clock()
    store = IdempotencyStore(lambda: conn, lease_seconds=30, clock=clock)
    first = store.begin("s", "k", "fp")
    assert first.outcome == "run" and not first.taken_over
    clock.now += 29
    assert store.begin("s", "k", "fp").outcome == "running"
    assert store.begin("s", "k", "other").outcome == "mismatch"
    clock.now += 2  # the first run's lease is over: it died or hangs
    second = store.begin("s", "k", "fp")
    assert second.outcome == "run" and second.taken_over and second.owner != first.owner
    assert store.begin("s", "k", "fp").outcome == "running"  # the new run holds a fresh lease
    # the stale run finishing late neither stores nor deletes the new run's key
    store.finish("s", "k", first.owner, 201, b"stale", "{}")
    store.forget("s", "k", first.owner)
    assert store.begin("s", "k", "fp").outcome == "running"
    store.finish("s", "k", second.owner, 201, b"fresh", "{}")
    replay = store.begin("s", "k", "fp")
    assert replay.outcome == "replay" and replay.body == b"fresh"


def test_store_upgrades_an_old_table(tmp_path) -> None:
    """A database of the version before leases: its running rows can be taken over."""
    conn = sqlite3.connect(tmp_path / "old.sqlite3", check_same_thread=False)
    conn.execute("CREATE TABLE idempotency (scope TEXT, key TEXT, fingerprint TEXT, state TEXT, "
                 "status INTEGER, body BLOB, headers TEXT, created REAL, PRIMARY KEY (scope, key))")
    conn.execute("INSERT INTO idempotency VALUES ('s', 'k', 'fp', 'running', NULL, NULL, NULL, ?)", (time.time(),))
    conn.commit()
    store = IdempotencyStore(lambda: conn, lease_seconds=30)
    assert store.begin("s", "k", "fp").taken_over


def test_a_hung_run_is_taken_over_after_its_lease(make_app) -> None:
    app = make_app()
    app.extensions["opacgw_idempotency"].lease_seconds = 0.3
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    h = {**bearer(token), "Idempotency-Key": "k-hang"}
    up = fakes.upstream("alpha")
    up.delay = 1.5  # the first run hangs in the upstream call
    first: dict[str, object] = {}

    def run_first() -> None:
        first["r"] = app.test_client().post("/v1/libraries/alpha/holds", json=HOLD, headers=h)

    t = threading.Thread(target=run_first)
    t.start()
    deadline = time.monotonic() + 5
    while "place_holds" not in up.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    up.delay = 0.0
    r = c.post("/v1/libraries/alpha/holds", json=HOLD, headers=h)
    assert_problem(r, 409, "conflict")
    assert r.headers["Retry-After"] == "1"
    time.sleep(0.4)  # the lease is over; the first run still hangs
    taken = c.post("/v1/libraries/alpha/holds", json=HOLD, headers=h)
    assert taken.status_code == 201, taken.get_json()
    assert "Idempotent-Replayed" not in taken.headers
    t.join()
    # the late first run did not overwrite the answer of the run that took over
    again = c.post("/v1/libraries/alpha/holds", json=HOLD, headers=h)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == taken.get_json()
