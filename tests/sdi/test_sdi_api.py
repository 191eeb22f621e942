"""The Alerts API through the gateway app (Flask test client).

alpha/beta (fake adapter, no SDI of their own) get gateway alerts; gamma's adapter
declares ``alerts`` (like the winj portals) and keeps ``source: "library"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters import registry
from adapters.base import UpstreamSession
from core.errors import NotFound
from fixtures.feeds import acquired, create_app
from fixtures.registry import serve_app
from gateway.models import Alert, AlertCreate, AlertUpdate
from gateway.sdi import cli
from gateway.sdi.normalize import normalize
from tests import fakes
from tests.conftest import FAKE_CONFIG, bearer, login

CARD_A, CARD_B = "0000012345", "0000054321"
SANTA = {"name": "サンタの新着", "conditions": [{"field": "title", "op": "contains", "value": "サンタクロース"}],
         "max_results": 20}


class NativeSdiAdapter(fakes.FakeAdapter):
    """A fake whose library keeps SDI alerts itself."""

    family: ClassVar[str] = "fakesdi"
    capabilities: ClassVar[frozenset[str]] = fakes.FakeAdapter.capabilities | {"alerts"}
    ALERTS: ClassVar[dict[str, Alert]] = {}

    def alerts(self, session: UpstreamSession) -> list[Alert]:
        return list(self.ALERTS.values())

    def create_alert(self, session: UpstreamSession, alert: AlertCreate) -> Alert:
        made = Alert(id=f"L{len(self.ALERTS) + 1}", source="library", **alert.model_dump())
        self.ALERTS[made.id] = made
        return made

    def update_alert(self, session: UpstreamSession, alert_id: str, changes: AlertUpdate) -> Alert:
        if alert_id not in self.ALERTS:
            raise NotFound(f"no alert {alert_id}")
        new = self.ALERTS[alert_id].model_copy(update=changes.model_dump(exclude_unset=True))
        self.ALERTS[alert_id] = new
        return new

    def delete_alert(self, session: UpstreamSession, alert_id: str) -> None:
        if self.ALERTS.pop(alert_id, None) is None:
            raise NotFound(f"no alert {alert_id}")


GAMMA = """
[libraries.gamma]
name = "ガンマ市立図書館"
adapter = "fakesdi"
base_url = "http://127.0.0.1:9/opac"
"""


@pytest.fixture
def feed_server() -> Any:
    server = serve_app(create_app("feeds"), port=0, name="feeds")
    yield server
    server.stop()


@pytest.fixture
def setup(make_app: Any, tmp_path: Path, feed_server: Any) -> Any:
    registry.register(NativeSdiAdapter)
    NativeSdiAdapter.ALERTS.clear()
    # `extra` continues beta's table first: beta gets an OAI-PMH feed
    extra = f'feed = {{ url = "{feed_server.url}/feeds/beta/oai", format = "oai-pmh" }}\n' + GAMMA
    toml = FAKE_CONFIG.format(db=tmp_path / "gw.sqlite3", extra=extra)
    (tmp_path / "gw.toml").write_text(toml, encoding="utf-8")
    from gateway.config import loads_config

    app = make_app(config=loads_config(toml, "test.toml"))
    yield app, tmp_path / "gw.toml"
    registry.unregister("fakesdi")


def test_gateway_alert_crud_and_isolation(setup: Any) -> None:
    app, _ = setup
    c = app.test_client()
    a = bearer(login(c, ("beta", "12345678", fakes.PASSWORD)))
    other = bearer(login(c, ("beta", "87654321", fakes.PASSWORD)))
    base = "/v1/libraries/beta/alerts"
    r = c.post(base, json=SANTA, headers=a)
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    assert made["source"] == "gateway" and made["active"] is True and made["match"] == "all"
    assert c.get(base, headers=a).get_json()["alerts"] == [made]
    assert c.get(f"{base}/{made['id']}", headers=a).get_json() == made
    # another patron sees nothing of it
    assert c.get(base, headers=other).get_json()["alerts"] == []
    for method in ("get", "patch", "delete"):
        r = getattr(c, method)(f"{base}/{made['id']}", headers=other, json={"name": "x"} if method == "patch" else None)
        assert r.status_code == 404, method
    assert c.get(f"{base}/{made['id']}/matches", headers=other).status_code == 404
    # changes
    r = c.patch(f"{base}/{made['id']}", headers=a, json={"active": False, "memo": "クリスマス前に"})
    assert r.status_code == 200
    assert r.get_json() == {**made, "active": False, "memo": "クリスマス前に"}
    # validation
    bad = [{**SANTA, "conditions": []}, {**SANTA, "conditions": [{"field": "genre", "value": "x"}]},
           {**SANTA, "conditions": [{"field": "title", "value": " 　"}]},
           {**SANTA, "conditions": [{"field": "isbn", "value": "- －"}]},  # hyphens dropped: empty
           {**SANTA, "max_results": 0},
           {**SANTA, "colour": "red"}]
    for body in bad:
        r = c.post(base, json=body, headers=a)
        assert r.status_code == 400 and r.get_json()["code"] == "invalid_request" and r.get_json()["errors"], body
    assert c.patch(f"{base}/{made['id']}", headers=a, json={"conditions": []}).status_code == 400
    assert c.get(f"{base}/nope", headers=a).status_code == 404
    assert c.get("/v1/libraries/nowhere/alerts", headers=a).status_code == 404
    assert c.get(base).status_code == 401
    assert c.get("/v1/libraries/alpha/alerts", headers=a).status_code == 403
    # delete
    assert c.delete(f"{base}/{made['id']}", headers=a).status_code == 204
    assert c.get(f"{base}/{made['id']}", headers=a).status_code == 404


def test_gateway_alert_receives_matches_after_sdi_run(setup: Any, capsys: Any) -> None:
    app, config_path = setup
    c = app.test_client()
    a = bearer(login(c, ("beta", "12345678", fakes.PASSWORD)))
    made = c.post("/v1/libraries/beta/alerts", json=SANTA, headers=a).get_json()
    assert c.get(f"/v1/libraries/beta/alerts/{made['id']}/matches", headers=a).get_json() == {"matches": []}
    assert cli.main(["run", "--config", str(config_path), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["library"] == "beta" and report["matches"] > 0
    matches = c.get(f"/v1/libraries/beta/alerts/{made['id']}/matches", headers=a).get_json()["matches"]
    assert len(matches) == report["matches"] <= 20
    feed = {r.id: r for r in acquired("beta")}
    want = normalize("サンタクロース")
    for m in matches:
        rec = feed[m["record_id"]]
        assert want in normalize(f"{rec.title} {rec.subtitle or ''} {rec.volume or ''}") or \
            want in normalize(rec.title_kana or "")
    assert all(m["matched_at"] for m in matches)
    # inactive alerts are not matched by later runs
    c.patch(f"/v1/libraries/beta/alerts/{made['id']}", headers=a, json={"active": False})
    assert cli.main(["run", "--config", str(config_path), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == "no active gateway alerts"


def test_library_alerts_are_dispatched_to_the_adapter(setup: Any) -> None:
    app, _ = setup
    c = app.test_client()
    a = bearer(login(c, ("gamma", "0001", fakes.PASSWORD)))
    base = "/v1/libraries/gamma/alerts"
    r = c.post(base, json=SANTA, headers=a)
    assert r.status_code == 201 and r.get_json()["source"] == "library"
    alert_id = r.get_json()["id"]
    assert [x["id"] for x in c.get(base, headers=a).get_json()["alerts"]] == [alert_id]
    assert c.get(f"{base}/{alert_id}", headers=a).get_json()["name"] == SANTA["name"]
    assert c.patch(f"{base}/{alert_id}", headers=a, json={"active": False}).get_json()["active"] is False
    r = c.get(f"{base}/{alert_id}/matches", headers=a)
    assert r.status_code == 501 and r.get_json()["code"] == "not_supported"
    assert c.get(f"{base}/L99/matches", headers=a).status_code == 404
    assert c.delete(f"{base}/{alert_id}", headers=a).status_code == 204
    assert c.get(base, headers=a).get_json()["alerts"] == []
