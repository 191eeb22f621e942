"""End to end: the gateway's HTTP API in front of the NCIP responder on loopback.

The "done means" of issue #5 through the API: log in to ``ncip-consortium``, list
loans and holds, renew (success and each refusal), place and cancel a hold with a
pickup location from LookupAgency, and a consortium lending request routed over NCIP
whose status follows the responder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from fixtures.ncip import create_app as create_responder
from fixtures.registry import serve_app
from gateway.config import GatewayConfig, sandbox_config

pytestmark = pytest.mark.e2e
LIB = "ncip-consortium"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    responder = create_responder(LIB)
    responder.config["NCIP_STEP_SECONDS"] = 0  # lending progress driven by the admin endpoint
    server = serve_app(responder, name="ncip-e2e")
    sandbox = sandbox_config()
    lib = sandbox.libraries[LIB].model_copy(update={"base_url": server.url})
    cfg = GatewayConfig(
        gateway=sandbox.gateway.model_copy(update={"database": str(tmp_path / "gw.sqlite3"),
                                                   "read_cache_seconds": 0}),
        libraries={LIB: lib},
        consortia={"ncip-ill": sandbox.consortia["ncip-ill"]},
    )
    from gateway.app import create_app

    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    try:
        yield app.test_client(), responder
    finally:
        app.extensions["opacgw"].close()
        server.stop()


def login(c: Any, card: str = "52", password: str = "ncip-pass") -> dict[str, str]:
    r = c.post("/v1/sessions", json={"library": LIB, "card_number": card, "password": password})
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def test_login_loans_holds_and_renewals(env: Any) -> None:
    c, _ = env
    r = c.post("/v1/sessions", json={"library": LIB, "card_number": "52", "password": "wrong"})
    assert r.status_code == 401 and r.get_json()["code"] == "invalid_credentials"
    h = login(c)
    lib = c.get(f"/v1/libraries/{LIB}").get_json()
    assert lib["adapter"] == "ncip" and {"renew", "hold_place", "lending_request"} <= set(lib["capabilities"])
    patron = c.get(f"/v1/libraries/{LIB}/patron", headers=h).get_json()
    assert patron["name"] == "山田 花子" and patron["card_number_masked"] == "*0052"
    loans = {l["title"]: l for l in c.get(f"/v1/libraries/{LIB}/loans", headers=h).get_json()["loans"]}
    assert len(loans) == 4
    by_reason = {l["not_renewable_reason"]: l for l in loans.values()}
    assert set(by_reason) == {None, "reserved", "overdue", "renewal_limit"}
    holds = c.get(f"/v1/libraries/{LIB}/holds", headers=h).get_json()["holds"]
    assert sorted(x["status"] for x in holds) == ["ready", "waiting"]

    ok = c.post(f"/v1/libraries/{LIB}/loans/{by_reason[None]['id']}/renewal", headers=h)
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["loan"]["due_on"] > by_reason[None]["due_on"]
    for reason, ptype in (("reserved", "Item Has Outstanding Requests"), ("overdue", "Item Not Renewable"),
                          ("renewal_limit", "Maximum Renewals Exceeded")):
        r = c.post(f"/v1/libraries/{LIB}/loans/{by_reason[reason]['id']}/renewal", headers=h)
        body = r.get_json()
        assert (r.status_code, body["code"], body["reason"]) == (422, "not_renewable", reason), body
        assert body["ProblemType"] == ptype
    batch = c.post(f"/v1/libraries/{LIB}/renewals", json={"all": True}, headers=h).get_json()["results"]
    # "all" answers for every loan: the renewable one renewed, each other one with its reason
    assert sorted(x["ok"] for x in batch) == [False, False, False, True]
    assert {x["error"]["reason"] for x in batch if not x["ok"]} == {"reserved", "overdue", "renewal_limit"}


def test_hold_with_a_pickup_location_from_lookup_agency_then_cancel(env: Any) -> None:
    c, responder = env
    h = login(c)
    state = responder.config["ncip_state"]
    record_id = state.bibs[1].id
    # the configured branches carry the NCIP location names LookupAgency publishes
    branches = {b["id"]: b["name"] for b in c.get(f"/v1/libraries/{LIB}").get_json()["branches"]}
    assert branches == {"chuo": "中央図書館", "higashi": "東分館"}
    r = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [record_id], "pickup_branch": "higashi"}, headers=h)
    assert r.status_code == 201, r.get_json()
    [result] = r.get_json()["results"]
    assert result["ok"] and result["hold"]["pickup_branch"] == "東分館"
    hold_id = result["hold"]["id"]
    assert any(x["id"] == hold_id for x in c.get(f"/v1/libraries/{LIB}/holds", headers=h).get_json()["holds"])
    moved = c.patch(f"/v1/libraries/{LIB}/holds/{hold_id}", json={"pickup_branch": "chuo"}, headers=h)
    assert moved.status_code == 200 and moved.get_json()["pickup_branch"] == "中央図書館", moved.get_json()
    again = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [record_id]}, headers=h).get_json()
    assert again["results"][0]["error"]["code"] == "conflict"
    assert c.delete(f"/v1/libraries/{LIB}/holds/{hold_id}", headers=h).status_code == 204
    assert all(x["id"] != hold_id for x in c.get(f"/v1/libraries/{LIB}/holds", headers=h).get_json()["holds"])


def test_blocked_patron_cannot_place_holds(env: Any) -> None:
    c, responder = env
    h = login(c, "53")
    r = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [responder.config["ncip_state"].bibs[0].id]},
               headers=h)
    # a refusal of the patron as a whole is one 403, whatever the adapter
    assert r.status_code == 403 and r.get_json()["code"] == "account_blocked", r.get_json()
    msgs = c.get(f"/v1/libraries/{LIB}/messages", headers=h).get_json()["messages"]
    assert {m["subject"] for m in msgs} >= {"未納の料金: 300 JPY", "利用制限: Block Hold"}


def test_lending_request_routed_over_ncip(env: Any) -> None:
    c, responder = env
    h = login(c)
    state = responder.config["ncip_state"]
    cons = c.get("/v1/consortia").get_json()["consortia"]
    assert any(x["id"] == "ncip-ill" and x["supplying_libraries"] == [LIB] for x in cons)
    r = c.post("/v1/lending-requests", headers=h, json={
        "supplying_library": LIB, "record_id": state.bibs[2].id, "pickup_library": "ffl"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["status"] == "requested" and created["pickup_library"] == "ffl"
    upstream = next(x for x in state.requests.values() if x.type == "Loan" and x.user == "52")
    assert upstream.pickup == "藤ヶ丘図書館"
    for _ in range(2):  # accepted, shipped
        responder.test_client().post(f"/ncip/_admin/requests/{upstream.agency}/{upstream.id}/advance")
    got = c.get(f"/v1/lending-requests/{created['id']}", headers=h).get_json()
    assert got["status"] == "shipped"
    assert [x["status"] for x in got["history"]] == ["requested", "accepted", "shipped"]
    r = c.delete(f"/v1/lending-requests/{created['id']}", headers=h)
    assert r.status_code == 409
    # a second one, cancelled before it ships
    second = c.post("/v1/lending-requests", headers=h, json={
        "supplying_library": LIB, "record_id": state.bibs[3].id, "pickup_library": "ffl",
        "pickup_branch": "駅前分室"}).get_json()
    assert c.delete(f"/v1/lending-requests/{second['id']}", headers=h).status_code == 204
    listed = {x["id"]: x["status"] for x in c.get("/v1/lending-requests", headers=h).get_json()["requests"]}
    assert listed[second["id"]] == "cancelled" and listed[created["id"]] == "shipped"


def test_availability_by_isbn(env: Any) -> None:
    c, responder = env
    bib = next(b for b in responder.config["ncip_state"].bibs if b.isbn)
    r = c.get(f"/v1/availability?isbn={bib.isbn}&libraries={LIB}").get_json()
    [entry] = r["libraries"]
    assert entry["state"] == "ok" and len(entry["holdings"]) == 2
    assert {x["branch"] for x in entry["holdings"]} <= {"中央図書館", "東分館", "藤ヶ丘図書館", "駅前分室"}


def test_a_blocked_renewal_does_not_echo_the_card_number(env: Any) -> None:
    c, _ = env
    h = login(c, "53")
    loans = c.get(f"/v1/libraries/{LIB}/loans", headers=h).get_json()["loans"]
    assert loans
    r = c.post(f"/v1/libraries/{LIB}/loans/{loans[0]['id']}/renewal", headers=h)
    body = r.get_json()
    assert r.status_code in (403, 422) and body.get("ProblemElement") == "UserId", body
    assert body["ProblemValue"] == "**"  # "53" masked, never the card number itself
    assert '"53"' not in r.get_data(as_text=True) and " 53" not in r.get_data(as_text=True)


def test_a_hold_without_pickup_answers_the_default_pickup_branch(env: Any) -> None:
    c, responder = env
    h = login(c)
    record_id = responder.config["ncip_state"].bibs[1].id
    r = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [record_id]}, headers=h)
    assert r.status_code == 201, r.get_json()
    [result] = r.get_json()["results"]
    listed = {x["id"]: x for x in c.get(f"/v1/libraries/{LIB}/holds", headers=h).get_json()["holds"]}
    assert listed[result["hold"]["id"]]["pickup_branch"] == "中央図書館"
    assert result["hold"]["pickup_branch"] == "中央図書館"


def test_cancelling_a_cancelled_or_unknown_hold_is_404(env: Any) -> None:
    c, responder = env
    h = login(c)
    record_id = responder.config["ncip_state"].bibs[1].id
    hold = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [record_id]}, headers=h).get_json()
    hold_id = hold["results"][0]["hold"]["id"]
    assert c.delete(f"/v1/libraries/{LIB}/holds/{hold_id}", headers=h).status_code == 204
    again = c.delete(f"/v1/libraries/{LIB}/holds/{hold_id}", headers=h)
    assert (again.status_code, again.get_json()["code"]) == (404, "not_found"), again.get_json()
    unknown = c.delete(f"/v1/libraries/{LIB}/holds/NOPE.999999", headers=h)
    assert (unknown.status_code, unknown.get_json()["code"]) == (404, "not_found"), unknown.get_json()


def test_ordered_holds_are_refused_not_ignored(env: Any) -> None:
    c, responder = env
    h = login(c, "52")
    bibs = responder.config["ncip_state"].bibs
    r = c.post(f"/v1/libraries/{LIB}/holds", json={"record_ids": [bibs[0].id, bibs[1].id], "ordered": True},
               headers=h)
    assert r.status_code == 501 and r.get_json()["code"] == "not_supported"
