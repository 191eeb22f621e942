"""Library alerts end to end: gateway → winj adapter → winj simulator on loopback.

kumamoto-city's portal keeps its own SDI, so the Alerts API answers
``source: "library"`` and the matches of such an alert are 501.
"""

from __future__ import annotations

from fixtures.winj import base_path

from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from fixtures.registry import start_simulator
from gateway.config import LibraryConfig, sandbox_config

pytestmark = pytest.mark.e2e
LIB = "kumamoto-city"


@pytest.fixture(params=["wall-clock", "ci-clock"])
def client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from gateway.app import create_app

    if request.param == "ci-clock":
        # CI runs at about 04:50 JST, inside Kumamoto's 04:00–05:00 maintenance window
        def ci_now(self: LibraryConfig) -> datetime:
            return datetime.combine(datetime.now(self.tz).date(), time(4, 50), self.tz)

        monkeypatch.setattr(LibraryConfig, "now", ci_now)
    server = start_simulator(LIB)
    cfg = sandbox_config()
    # maintenance windows have tests of their own; this one must pass at any hour
    lib = cfg.libraries[LIB].model_copy(update={"base_url": server.url + base_path(LIB), "maintenance": []})
    cfg = cfg.model_copy(update={"libraries": {LIB: lib},
                                 "gateway": cfg.gateway.model_copy(update={"database": str(tmp_path / "gw.db")})})
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    try:
        yield app.test_client()
    finally:
        app.extensions["opacgw"].close()
        server.stop()


def test_winj_alerts_stay_with_the_library(client: Any) -> None:
    r = client.post("/v1/sessions", json={"library": LIB, "card_number": "2377570", "password": "0808"})
    assert r.status_code == 201, r.get_json()
    h = {"Authorization": f"Bearer {r.get_json()['token']}"}
    base = f"/v1/libraries/{LIB}/alerts"
    before = client.get(base, headers=h).get_json()["alerts"]
    assert all(a["source"] == "library" for a in before)
    r = client.post(base, headers=h, json={"name": "サンタ", "conditions": [{"field": "title", "value": "サンタ"}]})
    assert r.status_code == 201 and r.get_json()["source"] == "library"
    alert_id = r.get_json()["id"]
    assert alert_id in {a["id"] for a in client.get(base, headers=h).get_json()["alerts"]}
    r = client.get(f"{base}/{alert_id}/matches", headers=h)
    assert r.status_code == 501 and r.get_json()["code"] == "not_supported"
    assert client.patch(f"{base}/{alert_id}", headers=h, json={"active": False}).get_json()["active"] is False
    assert client.delete(f"{base}/{alert_id}", headers=h).status_code == 204
    assert client.get(f"{base}/{alert_id}", headers=h).status_code == 404
    assert client.post(base, headers=h, json={"name": "x", "conditions": []}).status_code == 400
