"""Issue 16, item 5: alert and shelf names at the winj portals.

"a\\nb" was created upstream as "a b" behind a 502 (a retrying client made duplicates).
Control characters are a 400 before any call; white space is folded the way the portal
folds it, so the name sent is the name listed and the gateway finds what it created.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from gateway.app import create_app

pytestmark = pytest.mark.e2e
LIB = "kumamoto-city"
COND = [{"field": "title", "value": "猫"}]


@pytest.fixture
def kumamoto(tmp_path) -> Iterator[tuple[Any, dict[str, str]]]:  # type: ignore[no-untyped-def]
    sim = start_sim(LIB)
    cfg = gateway_config({LIB: rewire(SANDBOX.libraries[LIB], sim.port)}, database=str(tmp_path / "gw.sqlite3"))
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    c = app.test_client()
    card, pw = demo(LIB)
    token = c.post("/v1/sessions", json={"library": LIB, "card_number": card, "password": pw}).get_json()["token"]
    yield c, {"Authorization": f"Bearer {token}"}
    app.extensions["opacgw"].close()
    sim.stop()


@pytest.mark.parametrize("bad", ["a\nb", "a\tb", "a\rb", "a\x00b"], ids=repr)
def test_control_characters_in_names_are_400_and_create_nothing(kumamoto, bad) -> None:
    c, h = kumamoto
    before_alerts = c.get(f"/v1/libraries/{LIB}/alerts", headers=h).get_json()["alerts"]
    before_shelves = c.get(f"/v1/libraries/{LIB}/shelves", headers=h).get_json()["shelves"]
    r = c.post(f"/v1/libraries/{LIB}/alerts", json={"name": bad, "conditions": COND}, headers=h)
    assert r.status_code == 400 and r.get_json()["code"] == "invalid_request"
    r = c.post(f"/v1/libraries/{LIB}/shelves", json={"name": bad}, headers=h)
    assert r.status_code == 400 and r.get_json()["code"] == "invalid_request"
    assert c.get(f"/v1/libraries/{LIB}/alerts", headers=h).get_json()["alerts"] == before_alerts
    assert c.get(f"/v1/libraries/{LIB}/shelves", headers=h).get_json()["shelves"] == before_shelves


@pytest.mark.parametrize("name", ["a  b", "全角\u3000スペース", " x\u00a0y ", "a\u3000\u3000b"], ids=repr)
def test_white_space_is_folded_as_the_portal_folds_it(kumamoto, name) -> None:
    c, h = kumamoto
    want = " ".join(name.split())
    r = c.post(f"/v1/libraries/{LIB}/alerts", json={"name": name, "conditions": COND}, headers=h)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["name"] == want
    r = c.post(f"/v1/libraries/{LIB}/shelves", json={"name": name}, headers=h)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["name"] == want
    # the same name again is the same shelf name to the portal: a conflict, not a second shelf
    r = c.post(f"/v1/libraries/{LIB}/shelves", json={"name": want}, headers=h)
    assert r.status_code == 409
    names = [s["name"] for s in c.get(f"/v1/libraries/{LIB}/shelves", headers=h).get_json()["shelves"]]
    assert names.count(want) == 1


def test_blank_names_are_400(kumamoto) -> None:
    c, h = kumamoto
    r = c.post(f"/v1/libraries/{LIB}/shelves", json={"name": "\u3000 "}, headers=h)
    assert r.status_code == 400
