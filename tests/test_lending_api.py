"""End to end through the gateway's HTTP API (Flask test client) against the wo simulator.

The simulator of 山口県立山口図書館 runs on loopback; its admin clock
(``POST /wo/_admin/advance``) moves e-Net requests along, and the gateway's
``/v1/lending-requests`` routes follow them into ISO 18626 statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from fixtures.registry import serve_app
from fixtures.wo import create_app as create_simulator
from gateway.config import GatewayConfig, sandbox_config

LIB = "yamaguchi-pref"
HANAKO = ("1000000002", "Suou-Hanako2026")
TARO = "1000000001"


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[Any]:
    server = serve_app(create_simulator(LIB), name="wo")
    yield server
    server.stop()


@pytest.fixture
def simulator(shared_simulator: Any) -> Any:
    """The module's simulator, reset to its seed state (stopping a server costs 0.5 s)."""
    httpx.post(shared_simulator.url + "/wo/_admin/reset").raise_for_status()
    return shared_simulator


def wo_config(tmp_path: Path, base_url: str) -> GatewayConfig:
    """The sandbox's yamaguchi-pref and its consortium, pointed at the test simulator."""
    cfg = sandbox_config()
    lib = cfg.libraries[LIB].model_copy(update={"base_url": base_url})
    settings = cfg.gateway.model_copy(update={"database": str(tmp_path / "gw.sqlite3"), "read_cache_seconds": 0})
    consortia = {k: c for k, c in cfg.consortia.items() if LIB in c.supplying_libraries}
    return cfg.model_copy(update={"gateway": settings, "libraries": {LIB: lib}, "consortia": consortia})


@pytest.fixture
def client(tmp_path: Path, simulator: Any) -> Iterator[Any]:
    from gateway.app import create_app

    app = create_app(wo_config(tmp_path, simulator.url + "/wo"), secret_key=Fernet.generate_key().decode())
    app.testing = True
    yield app.test_client()
    app.extensions["opacgw"].close()


def login(client: Any, card: str, password: str) -> dict[str, str]:
    r = client.post("/v1/sessions", json={"library": LIB, "card_number": card, "password": password})
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def advance(simulator: Any, **params: str) -> list[dict[str, Any]]:
    r = httpx.post(simulator.url + "/wo/_admin/advance", params=params)
    assert r.status_code == 200, r.text
    return r.json()["requests"]


def request_for(client: Any, auth: dict[str, str], record_id: str, pickup: str = "hofu") -> Any:
    return client.post("/v1/lending-requests", headers=auth,
                       json={"supplying_library": LIB, "record_id": record_id, "pickup_library": pickup})


def statuses(body: dict[str, Any]) -> list[str]:
    return [h["status"] for h in body["history"]]


# ---------------------------------------------------------------- consortia
def test_consortia_lists_yamaguchi_with_japanese_names_and_no_chuo(client: Any) -> None:
    r = client.get("/v1/consortia")
    assert r.status_code == 200
    (cons,) = r.get_json()["consortia"]
    assert cons["id"] == "yamaguchi-enet"
    assert cons["supplying_libraries"] == [LIB]
    names = {p["name"] for p in cons["pickup_libraries"]}
    assert {"下関市立中央図書館", "宇部市立図書館", "萩市立萩図書館", "防府市立防府図書館", "周南市立中央図書館",
            "山陽小野田市立中央図書館", "山口市立小郡図書館"} <= names
    assert "山口市立中央図書館" not in names


# ---------------------------------------------------------------- password registration
def test_register_then_login(client: Any) -> None:
    r = client.post("/v1/sessions", json={"library": LIB, "card_number": TARO, "password": "Taro-2026!"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "invalid_credentials"
    assert "password-registrations" in r.get_json()["detail"]

    body = {"card_number": TARO, "birth_date": "1990-01-01", "new_password": "Taro-2026!"}
    r = client.post(f"/v1/libraries/{LIB}/password-registrations", json=body)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["card_number_masked"] == "******0001"
    login(client, TARO, "Taro-2026!")

    r = client.post(f"/v1/libraries/{LIB}/password-registrations", json=body)
    assert r.status_code == 409
    assert r.get_json()["code"] == "conflict"


@pytest.mark.parametrize(
    ("password", "violation"),
    [("short1!", "min_length"), ("x" * 21, "max_length"), ("パスワード12345678", "charset"),
     ("has space 123", "charset")],
)
def test_registration_policy_checked_before_upstream(client: Any, simulator: Any, password: str,
                                                     violation: str) -> None:
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": TARO, "birth_date": "1990-01-01", "new_password": password})
    assert r.status_code == 422
    assert r.get_json()["code"] == "password_policy_violation"
    assert violation in r.get_json()["violations"]
    # the card is still unregistered: nothing reached the portal
    ok = client.post(f"/v1/libraries/{LIB}/password-registrations",
                     json={"card_number": TARO, "birth_date": "1990-01-01", "new_password": "Good-Pass1"})
    assert ok.status_code == 201


def test_registration_wrong_birth_date_and_bad_card(client: Any) -> None:
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": TARO, "birth_date": "1990-01-02", "new_password": "Good-Pass1"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "invalid_credentials"
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": "12-34", "birth_date": "1990-01-01", "new_password": "Good-Pass1"})
    assert r.status_code == 422
    assert r.get_json()["code"] == "card_number_invalid"
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": TARO, "birth_date": "1990-13-01", "new_password": "Good-Pass1"})
    assert r.status_code == 400 and r.get_json()["code"] == "invalid_request"
    # the seed's own form, 8 digits with a Western year, is accepted too
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": TARO, "birth_date": "19900101", "new_password": "Good-Pass1"})
    assert r.status_code == 201, r.get_json()


def test_registration_accepts_full_width_card_digits(client: Any) -> None:
    r = client.post(f"/v1/libraries/{LIB}/password-registrations",
                    json={"card_number": "１０００ ０００ ００１", "birth_date": "1990-01-01", "new_password": "Good-Pass1"})
    assert r.status_code == 201, r.get_json()


# ---------------------------------------------------------------- lending requests
def test_request_from_creation_to_completed(client: Any, simulator: Any) -> None:
    auth = login(client, *HANAKO)
    found = client.get(f"/v1/libraries/{LIB}/records", query_string={"q": "赤松小三郎"}).get_json()
    record_id = found["records"][0]["id"]

    r = request_for(client, auth, record_id, pickup="shimonoseki")
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["status"] == "requested"
    assert created["pickup_library"] == "shimonoseki"
    assert created["record_id"] == record_id and created["title"]
    rid = created["id"]

    seen = []
    for _ in range(6):
        advance(simulator)
        body = client.get(f"/v1/lending-requests/{rid}", headers=auth).get_json()
        seen.append(body["status"])
    assert seen == ["accepted", "shipped", "ready_for_pickup", "loaned", "returned", "completed"]
    assert statuses(body) == ["requested", *seen]
    stamps = [h["at"] for h in body["history"]]
    assert stamps == sorted(stamps)
    assert body["stale"] is False


def test_jumps_record_every_intermediate_state(client: Any, simulator: Any) -> None:
    auth = login(client, *HANAKO)
    rid = request_for(client, auth, "1000000002").get_json()["id"]
    advance(simulator, steps="3")  # 受付中 → 到着済(受取可) with nobody looking
    body = client.get(f"/v1/lending-requests/{rid}", headers=auth).get_json()
    assert body["status"] == "ready_for_pickup"
    assert statuses(body) == ["requested", "accepted", "shipped", "ready_for_pickup"]


def test_cancel_before_shipping_and_conflict_after(client: Any, simulator: Any) -> None:
    auth = login(client, *HANAKO)
    first = request_for(client, auth, "1000000002").get_json()["id"]
    second = request_for(client, auth, "1000000003", pickup="ube").get_json()["id"]
    advance(simulator, id=_upstream_id(simulator, 0))  # the first one is now 発送準備中 (accepted)

    assert client.delete(f"/v1/lending-requests/{first}", headers=auth).status_code == 204
    body = client.get(f"/v1/lending-requests/{first}", headers=auth).get_json()
    assert statuses(body) == ["requested", "accepted", "cancelled"]

    advance(simulator, id=_upstream_id(simulator, 1), steps="2")  # shipped
    r = client.delete(f"/v1/lending-requests/{second}", headers=auth)
    assert r.status_code == 409
    assert r.get_json()["code"] == "conflict"
    assert client.get(f"/v1/lending-requests/{second}", headers=auth).get_json()["status"] == "shipped"


def _upstream_id(simulator: Any, index: int) -> str:
    reqs = httpx.get(simulator.url + "/wo/_admin/enet").json()["requests"]
    return str(sorted(r["id"] for r in reqs)[index])


def test_refused_pickups(client: Any) -> None:
    auth = login(client, *HANAKO)
    r = request_for(client, auth, "1000000002", pickup="yamaguchi-chuo")
    assert r.status_code == 400
    assert r.get_json()["code"] == "invalid_request"
    assert "山口市立中央図書館" in r.get_json()["detail"]
    r = request_for(client, auth, "1000000002", pickup="山口市立中央図書館")
    assert r.status_code == 400
    r = request_for(client, auth, "1000000002", pickup="kumamoto-city")
    assert r.status_code == 400
    assert "not a pickup library" in r.get_json()["detail"]
    assert client.get("/v1/lending-requests", headers=auth).get_json()["requests"] == []


def test_pickup_by_japanese_name_and_unfilled(client: Any, simulator: Any) -> None:
    auth = login(client, *HANAKO)
    r = request_for(client, auth, "1000000003", pickup="萩市立萩図書館")
    assert r.status_code == 201
    assert r.get_json()["pickup_library"] == "hagi"
    advance(simulator, to="謝絶")
    body = client.get("/v1/lending-requests", headers=auth).get_json()["requests"][0]
    assert body["status"] == "unfilled"
    assert statuses(body) == ["requested", "unfilled"]


def test_list_with_histories_and_stale_when_upstream_down(tmp_path: Path) -> None:
    from gateway.app import create_app

    simulator = serve_app(create_simulator(LIB), name="wo-own")
    app = create_app(wo_config(tmp_path, simulator.url + "/wo"), secret_key=Fernet.generate_key().decode())
    client = app.test_client()
    auth = login(client, *HANAKO)
    a = request_for(client, auth, "1000000002").get_json()["id"]
    b = request_for(client, auth, "1000000003", pickup="iwakuni").get_json()["id"]
    advance(simulator, id=_upstream_id(simulator, 0), steps="2")
    listed = client.get("/v1/lending-requests", headers=auth).get_json()["requests"]
    by_id = {r["id"]: r for r in listed}
    assert set(by_id) == {a, b}
    assert statuses(by_id[a]) == ["requested", "accepted", "shipped"]
    assert statuses(by_id[b]) == ["requested"]

    simulator.stop()
    listed = client.get("/v1/lending-requests", headers=auth).get_json()["requests"]
    assert {r["id"] for r in listed} == {a, b}
    assert all(r["stale"] for r in listed)
    assert {r["id"]: r["status"] for r in listed} == {a: "shipped", b: "requested"}
    app.extensions["opacgw"].close()


def test_requests_are_private_and_need_an_account(client: Any) -> None:
    auth = login(client, *HANAKO)
    rid = request_for(client, auth, "1000000002").get_json()["id"]
    other = login(client, "1000000003", "Choshu!1868")
    assert client.get(f"/v1/lending-requests/{rid}", headers=other).status_code == 404
    assert client.get("/v1/lending-requests").status_code == 401
    assert client.get("/v1/lending-requests/lr_nope", headers=auth).status_code == 404


def test_overdue_patron_is_refused_by_the_portal(client: Any) -> None:
    auth = login(client, "1000000003", "Choshu!1868")
    r = request_for(client, auth, "1000000002")
    assert r.status_code == 403
    assert r.get_json()["code"] == "account_blocked"
    assert "延滞" in r.get_json()["upstream_message"]


def test_portal_side_requests_are_adopted(client: Any, simulator: Any) -> None:
    """A request made on the library's own portal shows up in the gateway's list."""
    from adapters.wo import WoAdapter

    cfg = sandbox_config().libraries[LIB].model_copy(update={"base_url": simulator.url + "/wo"})
    adapter = WoAdapter(cfg)
    session = adapter.login(*HANAKO)
    up = adapter.create_lending_request(session, "1000000002", "kudamatsu", None)
    adapter.close()
    auth = login(client, *HANAKO)
    listed = client.get("/v1/lending-requests", headers=auth).get_json()["requests"]
    assert [(r["pickup_library"], r["status"]) for r in listed] == [("kudamatsu", "requested")]
    assert up.upstream_id


def test_expired_portal_session_is_renewed_transparently(client: Any, simulator: Any) -> None:
    auth = login(client, *HANAKO)
    rid = request_for(client, auth, "1000000002").get_json()["id"]
    httpx.post(simulator.url + "/wo/_admin/expire-sessions").raise_for_status()
    body = client.get(f"/v1/lending-requests/{rid}", headers=auth).get_json()
    assert body["status"] == "requested" and body["stale"] is False
    httpx.post(simulator.url + "/wo/_admin/expire-sessions").raise_for_status()
    assert client.delete(f"/v1/lending-requests/{rid}", headers=auth).status_code == 204


@pytest.mark.e2e
def test_done_means_over_real_http(tmp_path: Path, simulator: Any) -> None:
    """The issue's walk-through over a real gateway server: register, log in, search,
    request, watch it reach ready_for_pickup then completed, cancel a second one, be
    refused 山口市立中央図書館, list everything with histories."""
    from gateway.app import create_app

    app = create_app(wo_config(tmp_path, simulator.url + "/wo"), secret_key=Fernet.generate_key().decode())
    server = serve_app(app, name="gateway")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as gwc:
            r = gwc.post(f"/v1/libraries/{LIB}/password-registrations",
                         json={"card_number": TARO, "birth_date": "1990-01-01", "new_password": "Taro-2026!"})
            assert r.status_code == 201
            r = gwc.post("/v1/sessions", json={"library": LIB, "card_number": TARO, "password": "Taro-2026!"})
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            rec = gwc.get(f"/v1/libraries/{LIB}/records", params={"q": "アンパンマンのサンタクロース"}).json()
            record_id = rec["records"][0]["id"]
            first = gwc.post("/v1/lending-requests", headers={**auth, "Idempotency-Key": "k1"},
                             json={"supplying_library": LIB, "record_id": record_id, "pickup_library": "shunan"})
            assert first.status_code == 201
            again = gwc.post("/v1/lending-requests", headers={**auth, "Idempotency-Key": "k1"},
                             json={"supplying_library": LIB, "record_id": record_id, "pickup_library": "shunan"})
            assert again.json()["id"] == first.json()["id"]
            rid = first.json()["id"]
            advance(simulator, steps="3")
            assert gwc.get(f"/v1/lending-requests/{rid}", headers=auth).json()["status"] == "ready_for_pickup"
            advance(simulator, steps="3")
            assert gwc.get(f"/v1/lending-requests/{rid}", headers=auth).json()["status"] == "completed"
            second = gwc.post("/v1/lending-requests", headers=auth,
                              json={"supplying_library": LIB, "record_id": "1000000003", "pickup_library": "ube"})
            assert gwc.delete(f"/v1/lending-requests/{second.json()['id']}", headers=auth).status_code == 204
            refused = gwc.post("/v1/lending-requests", headers=auth,
                               json={"supplying_library": LIB, "record_id": "1000000003",
                                     "pickup_library": "yamaguchi-chuo"})
            assert refused.status_code == 400 and "山口市立中央図書館" in refused.json()["detail"]
            listed = gwc.get("/v1/lending-requests", headers=auth).json()["requests"]
            assert {r["id"]: statuses(r)[-1] for r in listed} == {rid: "completed", second.json()["id"]: "cancelled"}
            assert len(statuses(next(r for r in listed if r["id"] == rid))) == 7
    finally:
        server.stop()
        app.extensions["opacgw"].close()
