"""winj through the gateway's HTTP API (Flask test client) against the simulators
on loopback — the "done means" walk of the winj issue for the core flows:
renewals at kagoshima-pref, holds at kumamoto-city (pickup 龍田, ordered batch,
cancel, Idempotency-Key), Niigata's forced password change, the catalog.
"""

from __future__ import annotations

from fixtures.winj import base_path

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from fixtures.registry import serve_app
from gateway.config import GatewayConfig, sandbox_config

pytestmark = pytest.mark.e2e

LIBS = ("kumamoto-city", "kagoshima-pref", "niigata-city")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    from fixtures.winj import create_app as sim_app
    from fixtures.winj.portal import EXT_KEY
    from gateway.app import create_app

    sandbox = sandbox_config()
    servers, states, libs = [], {}, {}
    for lib_id in LIBS:
        app = sim_app(lib_id)
        states[lib_id] = app.extensions[EXT_KEY]
        states[lib_id].library = states[lib_id].library.model_copy(update={"maintenance": []})
        server = serve_app(app, name=lib_id)
        servers.append(server)
        # No maintenance window here (it depends on the hour the suite runs);
        # the window is tested against the simulator directly.
        libs[lib_id] = sandbox.libraries[lib_id].model_copy(
            update={"base_url": server.url + base_path(lib_id), "maintenance": []})
    db = tmp_path_factory.mktemp("winj-api") / "gw.sqlite3"
    cfg = GatewayConfig(gateway=sandbox.gateway.model_copy(update={"database": str(db), "read_cache_seconds": 0}),
                        libraries=libs)
    gw = create_app(cfg, secret_key=Fernet.generate_key().decode())
    yield gw, states
    gw.extensions["opacgw"].close()
    for s in servers:
        s.stop()


def _token(c: Any, library: str, card: str, password: str) -> dict[str, str]:
    r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": password})
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def test_kagoshima_renewals(gateway: Any) -> None:
    app, states = gateway
    c = app.test_client()
    h = _token(c, "kagoshima-pref", "9999999999", "20211030")
    loans = {l["title"]: l for l in c.get("/v1/libraries/kagoshima-pref/loans", headers=h).get_json()["loans"]}
    good = loans["赤松小三郎ともう一つの明治維新"]
    assert good["renewable"]
    r = c.post(f"/v1/libraries/kagoshima-pref/loans/{good['id']}/renewal", headers=h)
    assert r.status_code == 200, r.get_json()
    today = states["kagoshima-pref"].today()
    assert r.get_json()["loan"]["due_on"] == (today + timedelta(days=14)).isoformat()
    reasons = {}
    for title, loan in loans.items():
        if title == good["title"]:
            continue
        r = c.post(f"/v1/libraries/kagoshima-pref/loans/{loan['id']}/renewal", headers=h)
        assert r.status_code == 422 and r.get_json()["code"] == "not_renewable", r.get_json()
        reasons[title] = r.get_json()["reason"]
    assert sorted(reasons.values()) == ["already_renewed", "overdue", "reserved"]
    batch = c.post("/v1/libraries/kagoshima-pref/renewals", headers=h, json={"all": True}).get_json()["results"]
    assert batch == [] or all(not x["ok"] for x in batch)


def test_kumamoto_holds(gateway: Any) -> None:
    app, _ = gateway
    c = app.test_client()
    h = _token(c, "kumamoto-city", "2377570", "0808")
    held = {x["record_id"] for x in c.get("/v1/libraries/kumamoto-city/holds", headers=h).get_json()["holds"]}
    found = c.get("/v1/libraries/kumamoto-city/records?title=サンタクロース&page=2").get_json()
    ids = [r["id"] for r in found["records"] if r["id"] not in held]
    r = c.post("/v1/libraries/kumamoto-city/holds", headers={**h, "Idempotency-Key": "k-1"},
               json={"record_ids": ids[:1], "pickup_branch": "龍田"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()["results"][0]
    assert first["ok"] and first["hold"]["pickup_branch"] == "龍田"
    again = c.post("/v1/libraries/kumamoto-city/holds", headers={**h, "Idempotency-Key": "k-1"},
                   json={"record_ids": ids[:1], "pickup_branch": "龍田"})
    assert again.get_json()["results"][0]["hold"]["id"] == first["hold"]["id"]
    holds = c.get("/v1/libraries/kumamoto-city/holds", headers=h).get_json()["holds"]
    assert [x["record_id"] for x in holds].count(ids[0]) == 1
    batch = c.post("/v1/libraries/kumamoto-city/holds", headers=h,
                   json={"record_ids": ids[1:3], "ordered": True}).get_json()["results"]
    assert all(x["ok"] for x in batch) and batch[0]["hold"]["order_group"] == batch[1]["hold"]["order_group"]
    r = c.delete(f"/v1/libraries/kumamoto-city/holds/{batch[0]['hold']['id']}", headers=h)
    assert r.status_code == 204, r.get_json()
    r = c.patch(f"/v1/libraries/kumamoto-city/holds/{first['hold']['id']}", headers=h,
                json={"pickup_branch": "honkan"})
    assert r.status_code == 200 and r.get_json()["pickup_branch"] == "本館", r.get_json()
    dup = c.post("/v1/libraries/kumamoto-city/holds", headers=h, json={"record_ids": ids[:1]})
    res = dup.get_json()["results"][0]
    assert not res["ok"] and res["error"]["code"] == "conflict" and res["error"]["upstream_message"]
    r = c.post("/v1/libraries/kumamoto-city/cart", headers=h, json={"record_id": ids[5]})
    assert r.status_code in (200, 201), r.get_json()
    assert ids[5] in [i["record_id"] for i in c.get("/v1/libraries/kumamoto-city/cart", headers=h).get_json()["items"]]
    assert c.delete(f"/v1/libraries/kumamoto-city/cart/{ids[5]}", headers=h).status_code == 204


def test_niigata_temporary_password(gateway: Any) -> None:
    app, _ = gateway
    c = app.test_client()
    r = c.post("/v1/sessions", json={"library": "niigata-city", "card_number": "0300000000", "password": "12345678"})
    assert r.status_code == 409 and r.get_json()["code"] == "password_change_required"
    r = c.put("/v1/libraries/niigata-city/password",
              json={"card_number": "0300000000", "current_password": "12345678", "new_password": "ab"})
    assert r.status_code == 422 and r.get_json()["code"] == "password_policy_violation"
    r = c.put("/v1/libraries/niigata-city/password",
              json={"card_number": "0300000000", "current_password": "12345678", "new_password": "4321"})
    assert r.status_code == 204, r.get_json()
    h = _token(c, "niigata-city", "0300000000", "4321")
    assert c.get("/v1/libraries/niigata-city/loans", headers=h).status_code == 200


def test_catalog(gateway: Any) -> None:
    app, _ = gateway
    c = app.test_client()
    r = c.get("/v1/libraries/kagoshima-pref/records?title=サンタクロース")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] > 10 and len(body["records"]) == 10
    rec = c.get(f"/v1/libraries/kagoshima-pref/records/{body['records'][0]['id']}").get_json()
    assert rec["holdings"] and rec["holdings"][0]["status"] in {
        "available", "on_loan", "in_library_only", "reserved", "in_preparation", "closed", "missing"}
    assert c.get("/v1/libraries/kagoshima-pref/records/0000000000").status_code == 404
