"""Fan-out and the circuit breaker against real simulators on loopback: one stopped
library never hides the others; repeated failures open its circuit, which closes
again after the library recovers."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from fixtures.registry import serve_app, simulators
from gateway.app import create_app

pytestmark = pytest.mark.e2e
TEMPLATE = "kagoshima-pref"


@pytest.fixture
def three(tmp_path):
    sims = [start_sim(TEMPLATE) for _ in range(3)]
    libs = {f"lib-{i}": rewire(SANDBOX.libraries[TEMPLATE], s.port, f"lib-{i}") for i, s in enumerate(sims)}
    cfg = gateway_config(libs, database=str(tmp_path / "gw.sqlite3"), circuit_failures=2,
                         circuit_reset_seconds=0.5)
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    yield app, sims, list(libs)
    app.extensions["opacgw"].close()
    for s in sims:
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - already stopped
            pass


def test_stopped_library_is_reported_and_recovers(three) -> None:
    app, sims, libs = three
    c = app.test_client()
    card, password = demo(TEMPLATE)
    r = c.post("/v1/sessions", json={"accounts": [
        {"library": lib, "card_number": card, "password": password} for lib in libs]})
    assert r.status_code == 201
    h = {"Authorization": f"Bearer {r.get_json()['token']}"}

    port = sims[1].port
    sims[1].stop()
    body = c.get("/v1/loans", headers=h).get_json()
    by = {s["library"]: s for s in body["sources"]}
    assert by["lib-0"]["ok"] and by["lib-2"]["ok"]
    assert not by["lib-1"]["ok"] and by["lib-1"]["error"]["code"] == "upstream_unavailable"
    assert {l["library"] for l in body["loans"]} == {"lib-0", "lib-2"}

    # the circuit is open now: answered at once, with Retry-After, and the library is degraded
    r = c.get("/v1/libraries/lib-1/loans", headers=h)
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert c.get("/v1/libraries/lib-1").get_json()["status"] == "degraded"

    sims[1] = serve_app(simulators()[TEMPLATE](TEMPLATE), port=port, name="lib-1")
    time.sleep(0.6)
    r = c.get("/v1/libraries/lib-1/loans", headers=h)  # half-open probe succeeds
    assert r.status_code == 200, r.get_json()
    assert c.get("/v1/libraries/lib-1").get_json()["status"] == "up"
