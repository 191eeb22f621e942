"""End-to-end tests of the soap adapter against the SOAP simulators on loopback.

One behaviour, two vendors: every test is parametrised over ``soap-demo`` (LibraNet)
and ``soap-kita`` (OPAC-Link) and uses each library's sandbox configuration with only
the port changed — no code differs between them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.fernet import Fernet

from adapters.soap import SoapAdapter
from core.errors import CardNumberInvalid, Conflict, InvalidCredentials, SessionExpired
from fixtures.registry import serve_app
from fixtures.soap import DEMO_PATRONS, create_app
from fixtures.soap.data import HOLD_LIMIT, RENEWAL_DAYS, Circulation, holdable_record_id
from fixtures.soap.record import demo_flow
from gateway.config import GatewayConfig, LibraryConfig, sandbox_config
from gateway.models import HoldRequest

pytestmark = pytest.mark.e2e
CFG = sandbox_config()
LIBS = ("soap-demo", "soap-kita")


@pytest.fixture(scope="module", params=LIBS)
def server(request: Any) -> Any:
    lib = request.param
    app = create_app(lib)
    running = serve_app(app, name=lib)
    path = "/" + CFG.libraries[lib].base_url.split("/", 3)[3]
    config = CFG.libraries[lib].model_copy(update={"base_url": running.url + path})
    yield lib, config, app
    running.stop()


@pytest.fixture
def sim(server: Any) -> Any:
    """The module's simulator with its seeded state restored for each test."""
    lib, _config, app = server
    circ = app.config["circulation"]
    fresh = Circulation.seeded(lib)
    with circ.lock:
        circ.loans, circ.holds, circ.sessions = fresh.loans, fresh.holds, fresh.sessions
        circ.today, circ._serial = fresh.today, fresh._serial
    return server


def today() -> Any:
    return datetime.now(ZoneInfo("Asia/Tokyo")).date()


def test_demo_flow(sim: Any) -> None:
    lib, config, _ = sim
    out = demo_flow(SoapAdapter(config), lib)
    loans = out["loans"]
    assert {l.not_renewable_reason for l in loans} >= {None, "reserved", "overdue"}
    ok, refused = out["renewals"]
    assert (
        ok.ok and ok.loan is not None and ok.loan.due_on == today() + timedelta(days=RENEWAL_DAYS)
    )
    assert not refused.ok and refused.error is not None and refused.error.code == "not_renewable"
    placed, unknown = out["placed"]
    assert placed.ok and placed.hold is not None
    assert placed.hold.pickup_branch == config.branches[-1].name
    assert placed.hold.contact_method == config.contact_methods[1]
    assert unknown.error is not None and unknown.error.code == "not_found"
    assert [h.id for h in out["holds_after"]] == [h.id for h in out["holds"]]
    assert isinstance(out["wrong_password"], InvalidCredentials)
    assert isinstance(out["after_logout"], SessionExpired)


def test_upstream_calls_per_operation(sim: Any) -> None:
    """The numbers docs/readme/soap.md quotes (warm session, WSDL already loaded)."""
    lib, config, _ = sim
    adapter = SoapAdapter(config)
    card, password = DEMO_PATRONS[lib]
    session = adapter.login(card, password)
    assert adapter.request_count == 2  # WSDL once + the login call

    def cost(fn: Any, *args: Any) -> int:
        before = adapter.request_count
        fn(*args)
        return adapter.request_count - before

    loans = adapter.loans(session)
    assert cost(adapter.login, card, password) == 1
    assert cost(adapter.profile, session) == 1
    assert cost(adapter.loans, session) == 1
    assert cost(adapter.holds, session) == 1
    renewable = [l.id for l in loans if l.renewable]
    assert cost(adapter.renew, session, renewable) == 1 + len(renewable)
    assert (
        cost(
            adapter.place_holds,
            session,
            HoldRequest(record_ids=[holdable_record_id(lib)], pickup_branch=config.branches[0].id),
        )
        == 1
    )
    new = next(h for h in adapter.holds(session) if h.record_id == holdable_record_id(lib))
    assert cost(adapter.cancel_hold, session, new.id) == 1
    # without a pickup branch, the patron's home location is read first
    assert (
        cost(adapter.place_holds, session, HoldRequest(record_ids=[holdable_record_id(lib, 1)]))
        == 2
    )
    assert cost(adapter.logout, session) == 1


def test_hold_limit_is_limit_exceeded(sim: Any) -> None:
    lib, config, _ = sim
    adapter = SoapAdapter(config)
    session = adapter.login(*DEMO_PATRONS[lib])
    have = len(adapter.holds(session))
    ids = [holdable_record_id(lib, n) for n in range(HOLD_LIMIT - have + 1)]
    results = adapter.place_holds(
        session, HoldRequest(record_ids=ids, pickup_branch=config.branches[0].name)
    )
    assert [r.ok for r in results] == [True] * (HOLD_LIMIT - have) + [False]
    last = results[-1].error
    assert last is not None and last.code == "limit_exceeded"
    assert last.model_dump()["limit"] == config.hold_limit == HOLD_LIMIT


def test_locked_hold_is_conflict_where_the_vendor_locks_it(sim: Any) -> None:
    lib, config, _ = sim
    adapter = SoapAdapter(config)
    session = adapter.login(*DEMO_PATRONS[lib])
    ready = next(h for h in adapter.holds(session) if h.status == "ready")
    if ready.cancelable:
        adapter.cancel_hold(session, ready.id)
        assert ready.id not in {h.id for h in adapter.holds(session)}
    else:
        with pytest.raises(Conflict) as exc:
            adapter.cancel_hold(session, ready.id)
        assert exc.value.to_problem()["upstream_message"]


def test_simulator_speaks_soap_11_only(sim: Any) -> None:
    _lib, config, _ = sim
    envelope = b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>'
    r = httpx.post(
        config.base_url, content=envelope, headers={"Content-Type": "application/soap+xml"}
    )
    assert r.status_code == 415
    r = httpx.post(config.base_url, content=b"<not-xml", headers={"Content-Type": "text/xml"})
    assert r.status_code == 500 and b"Fault>" in r.content


def test_libranet_checks_soapaction() -> None:
    """The .asmx-style vendor dispatches on SOAPAction (OPAC-Link sends an empty one)."""
    running = serve_app(create_app("soap-demo"), name="soap-demo")
    url = running.url + "/LibraNet/CirculationService.asmx"

    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<ln:GetPickupLocations xmlns:ln="urn:libranet:circulation:2"/></soap:Body></soap:Envelope>'
    )
    ok = httpx.post(
        url,
        content=body,
        headers={
            "Content-Type": "text/xml",
            "SOAPAction": '"urn:libranet:circulation:2/GetPickupLocations"',
        },
    )
    assert ok.status_code == 200 and b"LocationName" in ok.content
    bad = httpx.post(
        url,
        content=body,
        headers={
            "Content-Type": "text/xml",
            "SOAPAction": '"urn:libranet:circulation:2/GetIssues"',
        },
    )
    running.stop()
    assert bad.status_code == 500 and b"SOAPAction" in bad.content


def test_branch_names_from_the_service_when_not_configured(sim: Any) -> None:
    """Without branch codes in the configuration the pickup-locations operation names them."""
    lib, config, _ = sim
    adapter = SoapAdapter(config.model_copy(update={"branches": []}))
    session = adapter.login(*DEMO_PATRONS[lib])
    names = {b.name for b in config.branches}
    assert {loan.branch for loan in adapter.loans(session)} <= names
    assert adapter.request_count == 4  # WSDL, login, pickup locations (once), loans
    adapter.holds(session)
    assert adapter.request_count == 5  # the locations are kept
    (result,) = adapter.place_holds(
        session,
        HoldRequest(record_ids=[holdable_record_id(lib)], pickup_branch=config.branches[2].name),
    )
    assert (
        result.ok
        and result.hold is not None
        and result.hold.pickup_branch == config.branches[2].name
    )


def test_card_number_is_normalised_and_checked(sim: Any) -> None:
    lib, config, _ = sim
    adapter = SoapAdapter(config)
    card, password = DEMO_PATRONS[lib]
    spaced = f"{card[:4]} {card[4:]}"
    assert adapter.login(spaced, password).card_number == card
    with pytest.raises(CardNumberInvalid):
        adapter.login("12", password)


# ---------------------------------------------------------------- through the gateway
@pytest.fixture
def gateway(sim: Any, tmp_path: Path) -> Any:
    lib, config, sim_app = sim
    from gateway.app import create_app as create_gateway

    settings = CFG.gateway.model_copy(
        update={"database": str(tmp_path / "gw.sqlite3"), "read_cache_seconds": 0}
    )
    cfg = GatewayConfig(gateway=settings, libraries={lib: config})
    app = create_gateway(cfg, secret_key=Fernet.generate_key().decode())
    yield lib, config, app.test_client(), sim_app
    app.extensions["opacgw"].close()


def _token(client: Any, lib: str) -> dict[str, str]:
    card, password = DEMO_PATRONS[lib]
    r = client.post(
        "/v1/sessions", json={"library": lib, "card_number": card, "password": password}
    )
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def test_http_flow(gateway: Any) -> None:
    """Done means (issue #6): log in, loans, holds, renew ok and refused, place and cancel."""
    lib, config, c, _ = gateway
    h = _token(c, lib)
    base = f"/v1/libraries/{lib}"
    library = c.get(base).get_json()
    assert "hold_update" in library["capabilities"]
    assert set(library["capabilities"]) >= {
        "login",
        "profile",
        "loans",
        "renew",
        "holds",
        "hold_place",
        "hold_cancel",
    }
    loans = c.get(f"{base}/loans", headers=h).get_json()["loans"]
    holds = c.get(f"{base}/holds", headers=h).get_json()["holds"]
    assert len(loans) == 4 and len(holds) == 3
    renewable = next(l for l in loans if l["renewable"])
    reserved = next(l for l in loans if l["not_renewable_reason"] == "reserved")

    r = c.post(f"{base}/loans/{renewable['id']}/renewal", headers=h)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["loan"]["due_on"] == (today() + timedelta(days=RENEWAL_DAYS)).isoformat()

    r = c.post(f"{base}/loans/{reserved['id']}/renewal", headers=h)
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert problem["code"] == "not_renewable" and problem["reason"] == "reserved"
    assert problem["upstream_message"]  # the library's own words
    assert r.headers["Content-Type"].startswith("application/problem+json")

    r = c.post(f"{base}/loans/NO-SUCH-LOAN/renewal", headers=h)
    assert r.status_code == 404, r.get_json()

    r = c.post(
        f"{base}/holds",
        headers=h,
        json={
            "record_ids": [holdable_record_id(lib)],
            "pickup_branch": config.branches[1].id,
            "contact_method": config.contact_methods[2],
        },
    )
    assert r.status_code == 201, r.get_json()
    (result,) = r.get_json()["results"]
    assert result["ok"], result
    hold = result["hold"]
    assert hold["pickup_branch"] == config.branches[1].name and hold["status"] == "submitted"

    r = c.post(f"{base}/holds", headers=h, json={"record_ids": [holdable_record_id(lib)]})
    assert r.get_json()["results"][0]["error"]["code"] == "conflict"  # already reserved

    assert c.delete(f"{base}/holds/{hold['id']}", headers=h).status_code == 204
    r = c.delete(f"{base}/holds/{hold['id']}", headers=h)
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    after = c.get(f"{base}/holds", headers=h).get_json()["holds"]
    assert [x["id"] for x in after] == [x["id"] for x in holds]

    waiting = next(x for x in holds if x["status"] == "waiting")
    r = c.patch(
        f"{base}/holds/{waiting['id']}",
        headers=h,
        json={
            "pickup_branch": config.branches[2].name,
            "contact_method": config.contact_methods[0],
        },
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["pickup_branch"] == config.branches[2].name
    assert r.get_json()["contact_method"] == config.contact_methods[0]
    ready = next(x for x in holds if x["status"] == "ready")
    r = c.patch(
        f"{base}/holds/{ready['id']}", headers=h, json={"pickup_branch": config.branches[2].id}
    )
    assert r.status_code == 409 and r.get_json()["code"] == "conflict", r.get_json()

    profile = c.get(f"{base}/patron", headers=h).get_json()
    assert profile["card_number_masked"].endswith(DEMO_PATRONS[lib][0][-4:])

    # logging out of the gateway ends the vendor's session too
    sessions = gateway_sim_sessions(gateway)
    assert len(sessions) == 1
    assert c.delete("/v1/sessions/current", headers=h).status_code == 204
    assert not sessions


def gateway_sim_sessions(gateway: Any) -> dict[str, str]:
    return gateway[3].config["circulation"].sessions  # type: ignore[no-any-return]


def test_concurrent_calls_share_one_wsdl_client(sim: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lib, config, _ = sim
    adapter = SoapAdapter(config)
    session = adapter.login(*DEMO_PATRONS[lib])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: adapter.loans(session), range(32)))
    assert all([l.id for l in r] == [l.id for l in results[0]] for r in results)
    assert adapter.request_count == 2 + 32  # one WSDL load, however many threads


def test_http_wrong_password_is_401_not_500(gateway: Any) -> None:
    lib, _, c, _ = gateway
    r = c.post(
        "/v1/sessions", json={"library": lib, "card_number": DEMO_PATRONS[lib][0], "password": "x"}
    )
    assert r.status_code == 401 and r.get_json()["code"] == "invalid_credentials"
    assert "x</" not in json.dumps(r.get_json())


def test_http_expired_upstream_session_logs_in_again(gateway: Any) -> None:
    lib, _, c, sim_app = gateway
    h = _token(c, lib)
    sim_app.config["circulation"].sessions.clear()  # the vendor forgets every session
    r = c.get(f"/v1/libraries/{lib}/loans", headers=h)
    assert r.status_code == 200, r.get_json()
    assert len(r.get_json()["loans"]) == 4


def test_http_ordered_batch_is_not_supported(gateway: Any) -> None:
    lib, _, c, _ = gateway
    h = _token(c, lib)
    r = c.post(
        f"/v1/libraries/{lib}/holds",
        headers=h,
        json={"record_ids": [holdable_record_id(lib), holdable_record_id(lib, 1)], "ordered": True},
    )
    assert r.status_code == 501 and r.get_json()["code"] == "not_supported"


def test_config_alone_differs() -> None:
    """The two libraries use the same adapter class; only their options differ."""
    a, b = (CFG.libraries[lib] for lib in LIBS)
    assert a.adapter == b.adapter == "soap"
    assert (
        a.options["operations"]["loans"]["operation"]
        != b.options["operations"]["loans"]["operation"]
    )
    assert isinstance(a, LibraryConfig)


def test_mapping_check_command(server: Any, tmp_path: Path, capsys: Any) -> None:
    """``python -m adapters.soap CONFIG --wsdl`` loads the WSDL and checks the operations."""
    from adapters.soap.__main__ import main

    lib, config, _ = server
    body = json.dumps(config.model_dump())
    good = tmp_path / "good.toml"
    good.write_text(_toml(lib, json.loads(body)), encoding="utf-8")
    assert main([str(good), "--wsdl"]) == 0
    assert f"{lib}: mapping OK (WSDL checked)" in capsys.readouterr().out
    data = json.loads(body)
    data["options"]["operations"]["loans"]["operation"] = "GetLoansV3"
    bad = tmp_path / "bad.toml"
    bad.write_text(_toml(lib, data), encoding="utf-8")
    assert main([str(bad), "--wsdl"]) == 1
    assert "GetLoansV3" in capsys.readouterr().err


def _toml(lib: str, data: dict[str, Any]) -> str:
    """A one-library configuration file (TOML accepts JSON-style inline values)."""
    lines = [f"[libraries.{lib}]"]
    for key, value in data.items():
        if key == "id" or value is None:
            continue
        lines.append(f"{key} = {_inline(value)}")
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(
                f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items() if v is not None
            )
            + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def test_optional_capability_follows_the_mapping() -> None:
    config = CFG.libraries["soap-demo"]
    options = json.loads(json.dumps(config.options))
    del options["operations"]["update_hold"]
    adapter = SoapAdapter(config.model_copy(update={"options": options}))
    assert "hold_update" not in adapter.capabilities
    assert "hold_update" in SoapAdapter(config).capabilities
    assert "hold_update" in SoapAdapter.capabilities  # the family can, this library cannot
