"""Politeness and resilience: maintenance windows, the circuit breaker, the
concurrency cap, retries for reads only, the read cache and idempotency."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests import fakes
from tests.conftest import bearer, login
from tests.gateway.test_errors import assert_problem


def _window_now() -> str:
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    start = (now - timedelta(minutes=1)).strftime("%H:%M")
    end = (now + timedelta(minutes=2)).strftime("%H:%M")
    return f'maintenance = [{{ start = "{start}", end = "{end}" }}]'


def test_maintenance_window_answers_503_without_calling(make_app) -> None:
    app = make_app(extra=_window_now())  # applies to beta (the last table)
    c = app.test_client()
    r = c.post("/v1/sessions", json={"library": "beta", "card_number": "12345678", "password": fakes.PASSWORD})
    body = assert_problem(r, 503, "upstream_maintenance")
    assert 1 <= int(r.headers["Retry-After"]) <= 180
    assert body["library"] == "beta"
    assert fakes.upstream("beta").calls == []
    lib = c.get("/v1/libraries/beta").get_json()
    assert lib["status"] == "maintenance"


def test_circuit_opens_then_recovers(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.down = True
    for _ in range(2):  # each read is tried twice: 2 × 2 = 4 ≥ 3 failures
        assert_problem(client.get("/v1/libraries/alpha/loans", headers=bearer(token)), 503, "upstream_unavailable")
    calls = len(up.calls)
    r = client.get("/v1/libraries/alpha/loans", headers=bearer(token))
    assert_problem(r, 503, "upstream_unavailable")
    assert "Retry-After" in r.headers
    assert len(up.calls) == calls  # open: not called
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "degraded"
    up.down = False
    time.sleep(0.6)  # reset timeout 0.5 s → half-open probe
    assert client.get("/v1/libraries/alpha/loans", headers=bearer(token)).status_code == 200
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "up"


def test_business_errors_do_not_trip_the_circuit(client) -> None:
    for _ in range(5):
        r = client.post("/v1/sessions", json={"library": "alpha", "card_number": "12345", "password": "bad"})
        assert_problem(r, 401, "invalid_credentials")
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "up"


def test_reads_retry_writes_do_not(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.down = True
    up.calls.clear()
    client.get("/v1/libraries/alpha/loans", headers=bearer(token))
    assert up.calls == ["loans", "loans"]
    up.calls.clear()
    client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"]}, headers=bearer(token))
    assert up.calls == ["place_holds"]


def test_concurrency_cap_per_library(make_app) -> None:
    app = make_app()
    gw = app.extensions["opacgw"]
    guard = gw.guard("alpha")
    cap = gw.library("alpha").max_concurrency
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    fakes.upstream("alpha").delay = 0.1
    threads = [threading.Thread(target=lambda: app.test_client().get("/v1/libraries/alpha/loans",
                                                                     headers=bearer(token))) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert guard.max_in_flight == cap


def test_read_cache_and_write_invalidation(make_app) -> None:
    app = make_app()
    cfg = app.extensions["opacgw"].config
    app2 = make_app(config=cfg.model_copy(update={"gateway": cfg.gateway.model_copy(
        update={"read_cache_seconds": 30})}))
    c = app2.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.calls.clear()
    c.get("/v1/libraries/alpha/holds", headers=bearer(token))
    c.get("/v1/libraries/alpha/holds", headers=bearer(token))
    assert up.calls == ["holds"]
    c.post("/v1/libraries/alpha/holds", json={"record_ids": ["R9"]}, headers=bearer(token))
    holds = c.get("/v1/libraries/alpha/holds", headers=bearer(token)).get_json()["holds"]
    assert [h["record_id"] for h in holds] == ["R9"]
    assert up.calls == ["holds", "place_holds", "holds"]


def test_idempotency_key_replays_first_result(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    h = {**bearer(token), "Idempotency-Key": "k1"}
    r1 = client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"], "pickup_branch": "北分館"}, headers=h)
    r2 = client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"], "pickup_branch": "北分館"}, headers=h)
    assert r1.status_code == r2.status_code == 201
    assert r1.get_json() == r2.get_json()
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert len(fakes.upstream("alpha").holds) == 1
    r3 = client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R2"]}, headers=h)
    assert_problem(r3, 409, "conflict")


def test_idempotency_does_not_store_5xx(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    h = {**bearer(token), "Idempotency-Key": "k2"}
    up = fakes.upstream("alpha")
    up.down = True
    assert client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"]}, headers=h).status_code == 503
    up.down = False
    assert client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"]}, headers=h).status_code == 201


def test_branch_validation(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    r = client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"], "pickup_branch": "月面分館"},
                    headers=bearer(token))
    assert "本館" in assert_problem(r, 400, "invalid_request")["detail"]
    r = client.post("/v1/libraries/alpha/holds", json={"record_ids": ["R1"], "pickup_branch": "kita"},
                    headers=bearer(token))
    assert r.get_json()["results"][0]["hold"]["pickup_branch"] == "北分館"


def test_idempotency_stores_no_secret(app, tmp_path) -> None:
    c = app.test_client()
    body = {"library": "alpha", "card_number": "0000098765", "password": fakes.PASSWORD}
    r1 = c.post("/v1/sessions", json=body, headers={"Idempotency-Key": "login-1"})
    r2 = c.post("/v1/sessions", json=body, headers={"Idempotency-Key": "login-1"})
    assert r1.status_code == r2.status_code == 201
    assert r1.get_json()["token"] == r2.get_json()["token"]
    token = r1.get_json()["token"]
    for f in tmp_path.glob("gw.sqlite3*"):
        data = f.read_bytes()
        assert token.encode() not in data and fakes.PASSWORD.encode() not in data
        assert b"0000098765" not in data


def test_anonymous_clients_do_not_share_keys(client) -> None:
    a = {"library": "alpha", "card_number": "12345", "password": fakes.PASSWORD}
    b = {"library": "beta", "card_number": "12345678", "password": fakes.PASSWORD}
    assert client.post("/v1/sessions", json=a, headers={"Idempotency-Key": "1"}).status_code == 201
    r = client.post("/v1/sessions", json=b, headers={"Idempotency-Key": "1"})
    assert r.status_code == 201 and r.get_json()["accounts"][0]["library"] == "beta"


def test_bad_email_is_refused_before_any_upstream_call(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    calls = list(fakes.upstream("alpha").calls)
    r = client.patch("/v1/libraries/alpha/patron", json={"emails": [{"address": "not-an-address", "kind": "pc"}]},
                     headers=bearer(token))
    body = assert_problem(r, 400, "invalid_request")
    assert body["errors"][0]["field"] == "emails.0.address"
    assert fakes.upstream("alpha").calls == calls


def _guard(max_concurrency: int = 4, failures: int = 2, reset: float = 0.3):
    from core.config import LibraryConfig
    from gateway.resilience import UpstreamGuard

    lib = LibraryConfig.model_validate({"id": "lib", "name": "Lib", "adapter": "fake",
                                        "base_url": "http://127.0.0.1:9/", "max_concurrency": max_concurrency,
                                        "timeout": 5})
    return UpstreamGuard(lib, failures=failures, reset_seconds=reset)


class _Upstream:
    """Counts calls really running at once inside the guarded function."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.delay)
            return "ok"
        finally:
            with self.lock:
                self.now -= 1


def test_breaker_does_not_serialise_calls() -> None:
    """pybreaker's CircuitBreaker.call holds its lock across the call: the guard must not
    wrap the call in it, or a library sees one request at a time whatever its cap."""
    guard = _guard(max_concurrency=4)
    up = _Upstream(0.2)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(guard.call(up, read=True))) for _ in range(8)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert results == ["ok"] * 8
    assert up.peak == 4
    assert wall < 0.2 * 2 * 1.5  # two rounds of four, not eight one after the other


def test_half_open_lets_exactly_one_probe_through() -> None:
    from core.errors import UpstreamUnavailable, UpstreamUnreachable
    from gateway.resilience import CircuitOpen

    guard = _guard(failures=2, reset=0.2)

    def down() -> None:
        raise UpstreamUnreachable("down", library="lib")

    for _ in range(2):
        try:
            guard.call(down, read=False)
        except CircuitOpen:
            raise AssertionError("opened too early") from None
        except UpstreamUnavailable:
            pass
    assert guard.state == "open"
    try:
        guard.call(lambda: "never", read=False)
        raise AssertionError("an open circuit called")
    except CircuitOpen as exc:
        assert exc.retry_after >= 1
    time.sleep(0.25)
    up = _Upstream(0.2)
    outcomes: list[str] = []

    def one() -> None:
        try:
            outcomes.append(guard.call(up, read=False))
        except CircuitOpen:
            outcomes.append("refused")

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 4
    assert up.peak == 1
    assert guard.state == "closed"
    assert guard.call(lambda: "again", read=False) == "again"
