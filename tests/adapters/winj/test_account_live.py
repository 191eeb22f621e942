"""winj account screens end to end against the simulators on loopback: every flow
at every library, the rules the simulator enforces (history only from the day
after 「残す」, 1,000-item shelves, read messages, maintenance), and the same
through the gateway's HTTP API."""

from __future__ import annotations

from fixtures.winj import base_path

from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.errors import InvalidRequest, LimitExceeded, SessionExpired, UpstreamMaintenance
from fixtures.winj.portal import EXT_KEY
from gateway.models import Email, ProfileUpdate
from tests.adapters.winj.test_account_flows import ACCOUNTS, FLOWS, FRESH, LIBRARIES, live_adapter

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_flow_live(library: str, flow: str) -> None:
    with live_adapter(library) as (adapter, _app):
        FLOWS[flow](adapter, *ACCOUNTS[library])


@pytest.mark.parametrize("library", LIBRARIES)
def test_warm_reads_cost_one_request(library: str) -> None:
    with live_adapter(library) as (adapter, _app):
        s = adapter.login(*ACCOUNTS[library])
        for call in (lambda: adapter.profile(s), lambda: adapter.history(s, 1, 50),
                     lambda: adapter.messages(s, True), lambda: adapter.shelves(s)):
            before = adapter.request_count
            call()
            assert adapter.request_count - before == 1


def _cookies(s: Any) -> httpx.Cookies:
    jar = httpx.Cookies()
    for k, v in s.cookies.items():
        jar.set(k, v)
    return jar


def test_history_is_kept_only_from_the_day_after_opting_in() -> None:
    from fixtures.winj.state import LoanItem

    with live_adapter("kumamoto-city") as (adapter, app):
        st = app.extensions[EXT_KEY]
        s = adapter.login(*FRESH["kumamoto-city"])
        assert adapter.profile(s).keep_history is False
        assert adapter.history(s, 1, 50).total == 0
        assert adapter.update_profile(s, ProfileUpdate(keep_history=True), None).keep_history is True
        today = st.today()
        rec = st.catalog.held
        st.loans[s.card_number] = [
            LoanItem("3990000001", rec[0].id, rec[0].title, rec[0].author, "本館", today, today + timedelta(days=14)),
            LoanItem("3990000002", rec[1].id, rec[1].title, rec[1].author, "本館", today + timedelta(days=1),
                     today + timedelta(days=15)),
        ]
        noon = st.now()
        st.clock = lambda: noon + timedelta(days=2)
        h = adapter.history(s, 1, 50)
        assert [e.record_id for e in h.entries] == [rec[1].id]  # the loan of the opt-in day is not kept
        assert h.entries[0].returned_on is None
        # opting out hides it; opting in again starts afresh
        adapter.update_profile(s, ProfileUpdate(keep_history=False), None)
        assert adapter.history(s, 1, 50).total == 0
        adapter.update_profile(s, ProfileUpdate(keep_history=True), None)
        assert adapter.history(s, 1, 50).total == 0


def test_history_page_sizes_beyond_the_portals() -> None:
    with live_adapter("kagoshima-pref") as (adapter, _app):
        s = adapter.login(*ACCOUNTS["kagoshima-pref"])
        big = adapter.history(s, 2, 200)  # the portal pages by at most 100
        small = adapter.history(s, 3, 100)
        assert big.total == 1000 and len(big.entries) == 200
        assert big.entries[:100] == small.entries
        last = adapter.history(s, 5, 200)
        assert len(last.entries) == 200 and adapter.history(s, 6, 200).entries == []


def test_opening_a_message_marks_it_read() -> None:
    with live_adapter("kagoshima-pref") as (adapter, _app):
        s = adapter.login(*ACCOUNTS["kagoshima-pref"])
        unread = adapter.messages(s, False)
        with httpx.Client(base_url=adapter.library.base_url, cookies=_cookies(s)) as c:
            assert c.get(f"message-detail.do?no={unread[0].id}").status_code == 200
        assert [m.id for m in adapter.messages(s, False)] == [m.id for m in unread[1:]]
        assert next(m for m in adapter.messages(s, True) if m.id == unread[0].id).read is True


def test_the_portal_top_shows_only_the_newest_message() -> None:
    with live_adapter("kumamoto-city") as (adapter, _app):
        s = adapter.login(*ACCOUNTS["kumamoto-city"])
        newest = adapter.messages(s, True)[0]
        with httpx.Client(base_url=adapter.library.base_url, cookies=_cookies(s)) as c:
            top = c.get("mylibrary.do").text
        panel = top[top.index('id="panel-messages"'):]
        assert newest.subject in panel and "他を見る" in panel
        assert all(m.subject not in panel for m in adapter.messages(s, True)[1:])


def test_a_full_shelf_refuses_the_1001st_record() -> None:
    from fixtures.winj.account import EXT
    from fixtures.winj.account_state import ShelfEntry

    with live_adapter("kagoshima-pref") as (adapter, app):
        s = adapter.login(*ACCOUNTS["kagoshima-pref"])
        shelf = adapter.create_shelf(s, "x" * 32)  # 32 characters is allowed
        st = app.extensions[EXT_KEY]
        acct = app.extensions[EXT].account(st.patron(s.card_number))
        target = next(b for b in acct.shelves if str(b.no) == shelf.id)
        held = st.catalog.held
        target.items = [ShelfEntry(f"F{i:09d}", st.today()) for i in range(999)]
        adapter.add_shelf_item(s, shelf.id, held[0].id)  # the 1,000th
        with pytest.raises(LimitExceeded) as err:
            adapter.add_shelf_item(s, shelf.id, held[1].id)
        assert err.value.extra["limit"] == 1000
        assert len(adapter.shelf_items(s, shelf.id)) == 1000  # ten portal pages


def test_concurrent_writes_of_one_patron_do_not_cross() -> None:
    # one pending confirm per web session upstream: interleaved writes would commit
    # each other's item; the adapter runs a patron's account writes one at a time
    from concurrent.futures import ThreadPoolExecutor

    with live_adapter("kumamoto-city") as (adapter, app):
        s = adapter.login(*ACCOUNTS["kumamoto-city"])
        shelf = adapter.create_shelf(s, "並行")
        ids = [r.id for r in app.extensions[EXT_KEY].catalog.held[:8]]
        with ThreadPoolExecutor(8) as pool:
            added = list(pool.map(lambda rid: adapter.add_shelf_item(s, shelf.id, rid), ids))
        assert [a.record_id for a in added] == ids
        assert sorted(i.record_id for i in adapter.shelf_items(s, shelf.id)) == sorted(ids)


def test_the_simulator_itself_refuses_a_33_character_name() -> None:
    with live_adapter("amami") as (adapter, _app):
        s = adapter.login(*ACCOUNTS["amami"])
        with httpx.Client(base_url=adapter.library.base_url, cookies=_cookies(s)) as c:
            r = c.post("bookshelf-create-confirm.do", data={"txt_name": "あ" * 33, "hid_session": s.data["hid"]})
        assert "32文字以内" in r.text and "本棚作成確認" not in r.text


def test_mail_contact_without_an_address_is_refused_by_the_portal() -> None:
    with live_adapter("kumamoto-city") as (adapter, _app):
        s = adapter.login(*FRESH["kumamoto-city"])
        with pytest.raises(InvalidRequest) as err:
            adapter.update_profile(s, ProfileUpdate(contact_method="メール"), None)
        assert "メールアドレスが登録されていない" in err.value.extra["upstream_message"]
        with pytest.raises(InvalidRequest):  # a notice needs an address of its kind
            adapter.update_profile(s, ProfileUpdate.model_validate(
                {"notifications": {"due_reminder": {"enabled": True, "days_before": 2}}}), None)


def test_confirmation_mail_when_the_library_option_asks_for_it() -> None:
    from fixtures.winj.account import EXT

    with live_adapter("niigata-city") as (adapter, app):
        opts = dict(adapter.library.options, profile_confirm_mail=True)
        adapter.library = adapter.library.model_copy(update={"options": opts})
        adapter.options = adapter.options_model.model_validate(opts)
        s = adapter.login(*ACCOUNTS["niigata-city"])
        adapter.update_profile(s, ProfileUpdate(emails=[Email(address="satsuki@example.jp", kind="pc")]), None)
        st = app.extensions[EXT_KEY]
        outbox = app.extensions[EXT].account(st.patron(s.card_number)).outbox
        assert outbox[-1] == ("利用者情報登録完了のお知らせ", "satsuki@example.jp")  # seed 004's mail


def test_maintenance_window_and_lost_session() -> None:
    with live_adapter("kumamoto-city") as (adapter, app):
        st = app.extensions[EXT_KEY]
        s = adapter.login(*ACCOUNTS["kumamoto-city"])
        noon = st.now()
        st.clock = lambda: noon.replace(hour=4, minute=30)
        with pytest.raises(UpstreamMaintenance):
            adapter.profile(s)
        st.clock = lambda: noon
        st.expire_all_sessions()
        with pytest.raises(SessionExpired):
            adapter.shelves(s)


# ------------------------------------------------------------------ through the gateway
@pytest.fixture
def gateway_client(tmp_path: Any) -> Any:
    """The gateway app over a kagoshima-pref simulator (Shift_JIS) on loopback."""
    from cryptography.fernet import Fernet

    from fixtures.registry import serve_app
    from fixtures.winj import create_app as create_sim
    from gateway.app import create_app
    from gateway.config import sandbox_config
    from tests.adapters.winj.test_account_flows import noon_today

    sim = create_sim("kagoshima-pref")
    frozen = noon_today("kagoshima-pref")
    sim.extensions[EXT_KEY].clock = lambda: frozen
    server = serve_app(sim, name="kagoshima-pref")
    cfg = sandbox_config()
    lib = cfg.libraries["kagoshima-pref"].model_copy(update={"base_url": server.url + base_path("kagoshima-pref")})
    settings = cfg.gateway.model_copy(update={"database": str(tmp_path / "gw.sqlite3")})
    cfg = cfg.model_copy(update={"gateway": settings, "libraries": {"kagoshima-pref": lib}})
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    app.testing = True
    try:
        yield app.test_client()
    finally:
        app.extensions["opacgw"].close()
        server.stop()


def test_through_the_gateway(gateway_client: Any) -> None:
    c = gateway_client
    card, password = ACCOUNTS["kagoshima-pref"]
    r = c.post("/v1/sessions", json={"library": "kagoshima-pref", "card_number": card, "password": password})
    assert r.status_code == 201, r.get_json()
    h = {"Authorization": f"Bearer {r.get_json()['token']}"}
    base = "/v1/libraries/kagoshima-pref"
    lib = c.get(base).get_json()
    assert {"profile", "profile_update", "history", "messages", "shelves", "alerts"} <= set(lib["capabilities"])

    # profile: e-mail and due-reminder days, read back
    r = c.patch(f"{base}/patron", headers=h, json={
        "emails": [{"address": "new@example.jp", "kind": "pc"}],
        "notifications": {"due_reminder": {"enabled": True, "days_before": 3}},
        "pickup_branch": "kodomo"})
    assert r.status_code == 200, r.get_json()
    got = c.get(f"{base}/patron", headers=h).get_json()
    assert got["emails"] == [{"address": "new@example.jp", "kind": "pc"}]
    assert got["notifications"]["due_reminder"] == {"enabled": True, "days_before": 3}
    assert got["pickup_branch"] == "本館こども" and got["notifications"]["checkout"] == {"enabled": True}
    assert card not in str(got) and got["name"] == "鹿児島 一郎"
    bad = c.patch(f"{base}/patron", headers=h, json={"emails": [{"address": "x@", "kind": "pc"}]})
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_request"
    # refused by the gateway before any upstream call (the portal's own check is tested above)
    assert bad.get_json()["errors"][0]["field"] == "emails.0.address"

    # history, messages
    hist = c.get(f"{base}/history?page=2&per_page=25", headers=h).get_json()
    assert hist["total"] == 1000 and len(hist["entries"]) == 25
    msgs = c.get(f"{base}/messages?include_read=true", headers=h).get_json()["messages"]
    assert len(msgs) == 4

    # shelves: create, fill, move, export, delete
    meiji = c.get(f"{base}/shelves", headers=h).get_json()["shelves"][0]
    items = c.get(f"{base}/shelves/{meiji['id']}/items", headers=h).get_json()["items"]
    r = c.post(f"{base}/shelves", headers=h, json={"name": "読みたい本"})
    assert r.status_code == 201
    new = r.get_json()
    assert c.post(f"{base}/shelves", headers=h, json={"name": "読みたい本"}).status_code == 409
    assert c.post(f"{base}/shelves/{new['id']}/items", headers=h,
                  json={"record_id": items[0]["record_id"]}).status_code == 201
    r = c.post(f"{base}/shelves/{meiji['id']}/items/{items[1]['record_id']}/move", headers=h,
               json={"to_shelf_id": new["id"]})
    assert r.status_code in (200, 204), r.get_json()
    csv_r = c.get(f"{base}/shelves/{new['id']}/export?format=csv", headers=h)
    assert csv_r.status_code == 200 and csv_r.mimetype == "text/csv"
    assert csv_r.get_data(as_text=True).splitlines()[0].startswith("record_id,title")
    assert len(csv_r.get_data(as_text=True).strip().splitlines()) == 3
    assert c.delete(f"{base}/shelves/{new['id']}", headers=h).status_code == 204
    assert c.get(f"{base}/shelves/{new['id']}/items", headers=h).status_code == 404

    # SDI alerts: create, pause, delete; what the portal cannot express is 400
    r = c.post(f"{base}/alerts", headers=h, json={
        "name": "サンタ", "conditions": [{"field": "title", "op": "contains", "value": "サンタクロース"}]})
    assert r.status_code == 201, r.get_json()
    alert = r.get_json()
    assert alert["source"] == "library" and alert["active"] is True
    r = c.patch(f"{base}/alerts/{alert['id']}", headers=h, json={"active": False})
    assert r.status_code == 200 and r.get_json()["active"] is False
    listed = c.get(f"{base}/alerts", headers=h).get_json()["alerts"]
    assert any(a["id"] == alert["id"] and a["active"] is False for a in listed)
    r = c.post(f"{base}/alerts", headers=h, json={
        "name": "x", "conditions": [{"field": "title", "op": "not_contains", "value": "y"}]})
    assert r.status_code == 400 and "not_contains" in r.get_json()["detail"]
    assert c.delete(f"{base}/alerts/{alert['id']}", headers=h).status_code == 204
    assert all(a["id"] != alert["id"] for a in c.get(f"{base}/alerts", headers=h).get_json()["alerts"])

