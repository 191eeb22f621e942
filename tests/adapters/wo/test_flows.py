"""Flow tests of the wo adapter: scrubbed cassettes replayed (record_mode="none"), and
respx for what a cassette cannot show (timeouts, 500s, truncated pages, lost sessions).

Re-record with ``python -m fixtures.wo.record`` after a simulator change.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import respx

from adapters.base import UpstreamSession
from adapters.wo import WoAdapter
from core.errors import (
    Conflict,
    InvalidCredentials,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
)
from fixtures.wo.record import CASSETTES, REPLAY_BASE, cassette_vcr, scrub_request, scrub_response
from gateway.config import sandbox_config
from gateway.models import Email, HoldRequest, ProfileUpdate, SearchQuery

LIB = "yamaguchi-pref"


def make_adapter(transport: httpx.BaseTransport | None = None) -> WoAdapter:
    lib = sandbox_config().libraries[LIB].model_copy(update={"base_url": REPLAY_BASE, "timeout": 1.0})
    return WoAdapter(lib, transport=transport)


@pytest.fixture
def adapter() -> Iterator[WoAdapter]:
    ad = make_adapter()
    yield ad
    ad.close()


def replay(name: str):  # type: ignore[no-untyped-def]
    assert (CASSETTES / f"{name}.yaml").exists(), f"missing cassette {name}; run python -m fixtures.wo.record"
    return cassette_vcr("none").use_cassette(f"{name}.yaml")


# ---------------------------------------------------------------- cassettes
def test_cassettes_hold_no_secrets() -> None:
    for path in Path(CASSETTES).glob("*.yaml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in ("Suou-Hanako2026", "Taro-2026!", "Hanako-New-2027", "19900101", "19850412",
                       "usr_id=1000000001", "usr_id=1000000002"):
            assert secret not in text, (path.name, secret)
        assert "WOSID=SCRUBBED" in text or "catalog" in path.name


def test_cassettes_show_card_numbers_masked_only() -> None:
    """Record ids look like cards here (10 digits), so check the places a card goes:
    the usr_id form field and the 利用者番号 the portal prints."""
    import re
    from urllib.parse import unquote

    seen = 0
    for path in Path(CASSETTES).glob("*.yaml"):
        text = unquote(path.read_text(encoding="utf-8", errors="replace"))
        for value in re.findall(r"usr_id=([^&'\s]*)", text):
            seen += 1
            assert re.fullmatch(r"\*{6}\d{4}", value), (path.name, value)
        for shown in re.findall(r"利用者番号</dt><dd>([^<]*)", text):
            assert re.fullmatch(r"\*{6}\d{4}", shown), (path.name, shown)
    assert seen


def test_register_login_and_enet_request(adapter: WoAdapter) -> None:
    with replay("register-and-enet") as cassette:
        adapter.register_password("1000000001", date(1990, 1, 1), "Taro-2026!")
        session = adapter.login("1000000001", "Taro-2026!")
        assert session.data["ctkn"] == "SCRUBBED"
        made = adapter.create_lending_request(session, "1000000002", "hofu", None)
        assert (made.status, made.record_id, made.extra["pickup_library"]) == ("requested", "1000000002", "hofu")
        assert made.title == "赤松小三郎ともう一つの明治維新"
        assert [r.upstream_id for r in adapter.lending_requests(session)] == [made.upstream_id]
        adapter.cancel_lending_request(session, made.upstream_id)
        (after,) = adapter.lending_requests(session)
        assert after.status == "cancelled" and after.extra["upstream_state"] == "取消"
        assert cassette.all_played


def test_login_and_registration_refusals(adapter: WoAdapter) -> None:
    with replay("login-refusals"):
        with pytest.raises(InvalidCredentials) as no_pw:
            adapter.login("1000000001", "Taro-2026!")
        assert no_pw.value.extra["reason"] == "password_not_registered"
        assert "password-registrations" in no_pw.value.detail
        with pytest.raises(InvalidCredentials) as wrong:
            adapter.login("1000000002", "wrong-pass")
        assert "正しくありません" in wrong.value.extra["upstream_message"]
        with pytest.raises(InvalidCredentials):
            adapter.register_password("1000000001", date(1990, 1, 2), "Taro-2026!")
        with pytest.raises(Conflict):
            adapter.register_password("1000000002", date(1985, 4, 12), "Taro-2026!")


def test_loans_and_renewal(adapter: WoAdapter) -> None:
    with replay("loans-renew"):
        session = adapter.login("1000000002", "Suou-Hanako2026")
        loans = adapter.loans(session)
        assert len(loans) == 3
        renewable = [ln.id for ln in loans if ln.renewable]
        results = adapter.renew(session, None)
        assert [r.loan_id for r in results] == renewable
        assert all(r.ok and r.loan is not None and r.loan.times_renewed == 1 for r in results)


def test_holds_place_and_cancel(adapter: WoAdapter) -> None:
    with replay("holds"):
        session = adapter.login("1000000002", "Suou-Hanako2026")
        placed, refused = adapter.place_holds(
            session, HoldRequest(record_ids=["1000000003", "1000000021"], pickup_branch="kodomo"))
        assert placed.ok and placed.hold is not None
        assert (placed.hold.status, placed.hold.pickup_branch) == ("submitted", "こども室")
        assert not refused.ok and refused.error is not None and refused.error.code == "conflict"
        held = [h for h in adapter.holds(session) if h.record_id == "1000000003"]
        adapter.cancel_hold(session, held[0].id)


def test_profile_update_and_password_change(adapter: WoAdapter) -> None:
    with replay("profile"):
        session = adapter.login("1000000002", "Suou-Hanako2026")
        assert adapter.profile(session).emails[0].address == "hanako@example.jp"
        prof = adapter.update_profile(session, ProfileUpdate(emails=[Email(address="hanako@example.org")]), None)
        assert [e.address for e in prof.emails] == ["hanako@example.org"]
        adapter.change_password(session, "1000000002", "Suou-Hanako2026", "Hanako-New-2027")


def test_catalog(adapter: WoAdapter) -> None:
    with replay("catalog"):
        found = adapter.search(SearchQuery(q="サンタクロース"))
        assert found.total > 20 and len(found.records) == 20
        assert adapter.search(SearchQuery(title="悪意")).total >= 1
        rec = adapter.record("1000000001")
        assert rec.title == "アンパンマンのサンタクロース" and rec.holdings


def test_scrubbers_mask_cards_and_tokens() -> None:
    class Req:
        uri = "http://127.0.0.1:40123/wo/opc_srh/usr_login"
        headers: ClassVar[dict[str, str]] = {"Cookie": "WOSID=abc"}
        body = b"usr_id=1000000002&usr_pw=secret&wo_ctkn=tok"

    req = scrub_request(Req())
    assert req.uri == "http://127.0.0.1:18105/wo/opc_srh/usr_login"
    assert req.body == b"usr_id=%2A%2A%2A%2A%2A%2A0002&usr_pw=SCRUBBED&wo_ctkn=SCRUBBED"
    assert req.headers["Cookie"] == "WOSID=SCRUBBED"
    resp = scrub_response({"headers": {"Set-Cookie": ["WOSID=abc; Path=/wo/"]},
                           "body": {"string": b'<input type="hidden" name="wo_ctkn" value="tok">'}})
    assert resp["headers"]["Set-Cookie"] == ["WOSID=SCRUBBED; Path=/wo/"]
    assert b'value="SCRUBBED"' in resp["body"]["string"]


# ---------------------------------------------------------------- respx: what cassettes cannot show
SJIS = {"content-type": "text/html; charset=Shift_JIS"}
ENET_FORM = (
    '<html><body><h2 class="wo_ttl">e-Net貸出申込</h2><form><input type="hidden" name="wo_ctkn" value="t">'
    '<select name="sel_enet_uktr"><option value="35206">防府市立防府図書館</option></select></form></body></html>'
)
ENET_LIST = (
    '<html><body><h2 class="wo_ttl">e-Net貸出申込状況</h2><input type="hidden" name="wo_ctkn" value="t">'
    '<table id="tbl_enet"><tbody><tr><td class="c_chk"><input type="checkbox" name="chk_enet" value="E1"></td>'
    '<td class="c_enetno">E1</td><td class="c_ttl"><a href="/wo/opc_srh/srh_detail?bibid=1000000002">赤松</a></td>'
    '<td class="c_uktr" data-code="35206">防府市立防府図書館</td><td class="c_stat">受付中</td></tr></tbody></table>'
    "</body></html>"
)


def session() -> UpstreamSession:
    return UpstreamSession(card_number="1000000002", cookies={"WOSID": "x"}, data={"ctkn": "t"})


def html(text: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=text.encode("cp932"), headers=SJIS)


def test_enet_timeout_on_the_final_post_rereads_instead_of_posting_again() -> None:
    router = respx.Router(base_url=REPLAY_BASE, assert_all_called=False)
    router.get("/opc_srh/enet_entry").mock(return_value=html(ENET_FORM))
    posts = router.post("/opc_srh/enet_entry")
    posts.side_effect = [html(ENET_FORM.replace("e-Net貸出申込<", "e-Net貸出申込確認<")), httpx.ReadTimeout("slow")]
    router.get("/opc_srh/usr_enet").mock(return_value=html(ENET_LIST))
    ad = make_adapter(httpx.MockTransport(router.handler))
    made = ad.create_lending_request(session(), "1000000002", "hofu", None)
    assert made.upstream_id == "E1" and made.status == "requested"
    assert posts.call_count == 2  # confirm + execute, never a second execute


def test_timeout_with_nothing_taken_is_upstream_timeout() -> None:
    router = respx.Router(base_url=REPLAY_BASE, assert_all_called=False)
    router.get("/opc_srh/usr_enet").mock(side_effect=httpx.ConnectTimeout("down"))
    ad = make_adapter(httpx.MockTransport(router.handler))
    with pytest.raises(UpstreamTimeout):
        ad.lending_requests(session())


def test_server_error_and_truncated_pages() -> None:
    router = respx.Router(base_url=REPLAY_BASE, assert_all_called=False)
    router.get("/opc_srh/usr_lend").mock(return_value=html("<html><body>Internal Server Error", 500))
    router.get("/opc_srh/usr_rsv").mock(return_value=html('<html><body><h2 class="wo_ttl">予約状況照会</h2><table id="tb'))
    ad = make_adapter(httpx.MockTransport(router.handler))
    with pytest.raises(UpstreamError):
        ad.loans(session())
    with pytest.raises(UpstreamChanged):
        ad.holds(session())


def test_redirect_to_login_is_session_expired() -> None:
    router = respx.Router(base_url=REPLAY_BASE, assert_all_called=False)
    router.get("/opc_srh/usr_enet").mock(
        return_value=httpx.Response(302, headers={"location": "/wo/opc_srh/usr_login?tmo=1"}))
    router.get("/opc_srh/usr_lend").mock(
        return_value=html('<h2 class="wo_ttl">エラー</h2><p class="wo_msg wo_msg_err">不正な画面遷移です。</p>', 400))
    ad = make_adapter(httpx.MockTransport(router.handler))
    with pytest.raises(SessionExpired):
        ad.lending_requests(session())
    with pytest.raises(SessionExpired):
        ad.loans(session())


def test_cancel_refused_once_shipped_without_posting() -> None:
    shipped = ENET_LIST.replace('<input type="checkbox" name="chk_enet" value="E1">', "").replace("受付中", "発送済")
    router = respx.Router(base_url=REPLAY_BASE, assert_all_called=False)
    router.get("/opc_srh/usr_enet").mock(return_value=html(shipped))
    cancel = router.post("/opc_srh/usr_enet_cancel")
    ad = make_adapter(httpx.MockTransport(router.handler))
    with pytest.raises(Conflict):
        ad.cancel_lending_request(session(), "E1")
    assert cancel.call_count == 0
