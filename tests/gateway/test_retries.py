"""One retry layer for reads (gateway.resilience, ``read_retries``): a warm read on a
flaky upstream costs at most ``1 + read_retries`` upstream requests at every family —
never the 2×2 of an adapter retry loop nested in the gateway's — and logins and writes
are never retried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from gateway.app import create_app

pytestmark = pytest.mark.e2e

#: one sandbox library of each family
FAMILIES = {"winj": "kumamoto-city", "wo": "yamaguchi-pref", "soap": "soap-demo", "ncip": "ncip-consortium"}


class Flaky(httpx.BaseTransport):
    """Wraps an adapter's transport: counts requests; while ``down``, every request
    fails as a dropped connection would, before reaching the library."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.down = False
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.down:
            raise httpx.RemoteProtocolError("server closed the connection", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        pass


@pytest.fixture(params=sorted(FAMILIES))
def flaky(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    def make(read_retries: int) -> tuple[Any, Flaky, dict[str, str]]:
        library = FAMILIES[request.param]
        sim = start_sim(library)
        sims.append(sim)
        cfg = gateway_config({library: rewire(SANDBOX.libraries[library], sim.port)},
                             database=str(tmp_path / f"gw{len(sims)}.sqlite3"),
                             read_retries=read_retries, circuit_failures=100)
        app = create_app(cfg)
        apps.append(app)
        adapter = app.extensions["opacgw"].adapter(library)
        wrapper = Flaky(adapter._transport)
        adapter._transport = wrapper
        return app, wrapper, {"library": library}

    sims: list[Any] = []
    apps: list[Any] = []
    yield make
    for app in apps:
        app.extensions["opacgw"].close()
    for sim in sims:
        sim.stop()


def _login(c: Any, library: str) -> dict[str, str]:
    card, password = demo(library)
    r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": password})
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


@pytest.mark.parametrize("read_retries", [0, 1, 2])
def test_a_warm_read_on_a_flaky_upstream_costs_at_most_one_plus_retries_requests(flaky, read_retries) -> None:
    app, up, ids = flaky(read_retries)
    c = app.test_client()
    h = _login(c, ids["library"])
    assert c.get(f"/v1/libraries/{ids['library']}/loans", headers=h).status_code == 200
    up.requests.clear()
    assert c.get(f"/v1/libraries/{ids['library']}/loans", headers=h).status_code == 200
    per_read = len(up.requests)  # a warm read when all is well (1 at every family today)
    assert per_read >= 1

    up.down = True
    up.requests.clear()
    r = c.get(f"/v1/libraries/{ids['library']}/loans", headers=h)
    assert r.status_code == 503 and r.get_json()["code"] == "upstream_unavailable"
    # each attempt stops at its first failed request: exactly one request per attempt
    assert len(up.requests) == 1 + read_retries, up.requests


def test_a_dropped_connection_on_a_read_is_retried_once(flaky) -> None:
    app, up, ids = flaky(1)
    c = app.test_client()
    h = _login(c, ids["library"])
    up.requests.clear()
    real = up.handle_request
    failures = iter([True])

    def once(request: httpx.Request) -> httpx.Response:
        up.down = next(failures, False)
        return real(request)

    up.handle_request = once  # type: ignore[method-assign]
    r = c.get(f"/v1/libraries/{ids['library']}/loans", headers=h)
    assert r.status_code == 200, r.get_json()
    assert up.requests[0] == up.requests[1]  # the failed request, then the same once more


def test_logins_are_never_retried(flaky) -> None:
    app, up, ids = flaky(2)
    c = app.test_client()
    up.down = True
    card, password = demo(ids["library"])
    r = c.post("/v1/sessions", json={"library": ids["library"], "card_number": card, "password": password})
    assert r.status_code == 503
    assert len(up.requests) == 1, up.requests


def test_writes_are_never_retried(flaky) -> None:
    app, up, ids = flaky(2)
    c = app.test_client()
    h = _login(c, ids["library"])
    loans = c.get(f"/v1/libraries/{ids['library']}/loans", headers=h).get_json()["loans"]
    assert loans
    up.down = True
    up.requests.clear()
    r = c.post(f"/v1/libraries/{ids['library']}/renewals", json={"loan_ids": [loans[0]["id"]]}, headers=h)
    # the renewal's first request fails: the write is over (a 503, or its item's problem)
    assert r.status_code in (200, 503), r.get_json()
    if r.status_code == 200:
        assert r.get_json()["results"][0]["ok"] is False
    assert len(up.requests) == 1, up.requests
