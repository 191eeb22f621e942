"""winj adapter: parser tests on saved pages, and respx edge cases.

Saved pages (``fixtures/winj/pages/<library>/``) come from the simulator with
its clock frozen at 2026-11-24 10:00 JST, scrubbed (``python -m
tests.adapters.winj_flows`` re-saves them).  kagoshima-pref's pages are
Shift_JIS and niigata-city's EUC-JP, as served.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import respx

from adapters.base import UpstreamSession
from adapters.winj import WinjAdapter
from adapters.winj import pages as P
from core.errors import (
    AccountBlocked,
    Conflict,
    SessionExpired,
    UpstreamChanged,
    UpstreamMaintenance,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.models import HoldRequest
from tests.adapters.winj_flows import HOST, LIBRARIES, PAGES, TODAY, replay_library

BASE = f"http://{HOST}/winj/opac"


def page(library: str, name: str) -> str:
    raw = (PAGES / library / f"{name}.html").read_bytes()
    return P.decode_html(raw, None)


def raw(library: str, name: str) -> bytes:
    return (PAGES / library / f"{name}.html").read_bytes()


# ------------------------------------------------------------------ decoding
@pytest.mark.parametrize(("library", "charset"), [("kumamoto-city", "UTF-8"), ("kagoshima-pref", "Shift_JIS"),
                                                  ("amami", "UTF-8"), ("niigata-city", "EUC-JP")])
def test_pages_are_decoded_by_their_declared_charset(library: str, charset: str) -> None:
    content = raw(library, "lend_list")
    assert P.declared_charset(content, None) == charset
    assert P.declared_charset(content, f"text/html; charset={charset}") == charset
    text = P.decode_html(content, None)
    assert "借りている資料" in text and "\ufffd" not in text
    if charset != "UTF-8":
        with pytest.raises(UnicodeDecodeError):
            content.decode("utf-8")


def test_shift_jis_means_cp932() -> None:
    # ～ and ① exist only in Microsoft's Shift_JIS; real portals send them.
    content = "<meta charset=\"Shift_JIS\"><p>1～2 ①</p>".encode("cp932")
    assert "1～2 ①" in P.decode_html(content, "text/html; charset=Shift_JIS")


# ------------------------------------------------------------------ login pages
@pytest.mark.parametrize("library", LIBRARIES)
def test_login_pages(library: str) -> None:
    login = P.tree(page(library, "login"))
    assert P.is_login_page(login) and P.login_error(login) is None
    assert P.hid_session(login) == "SCRUBBED"  # scrubbed when saved
    failed = P.tree(page(library, "login_failed"))
    assert P.is_login_page(failed)
    assert "正しくありません" in (P.login_error(failed) or "")
    menu = P.tree(page(library, "mylibrary"))
    assert not P.is_login_page(menu) and "借りている資料" in P.page_text(menu)


def test_forced_change_screens_name_the_password_as_the_library_does() -> None:
    assert "仮パスワード" in P.page_text(P.tree(page("niigata-city", "password_forced")))
    amami = P.page_text(P.tree(page("amami", "password_forced")))
    assert "現パスワード" in amami and "初回ログイン" in amami


def test_maintenance_page() -> None:
    t = P.tree(page("kumamoto-city", "maintenance"))
    assert P.is_maintenance(t) and not P.is_login_page(t)


# ------------------------------------------------------------------ loans
def test_kagoshima_loans_carry_each_refusal_reason() -> None:
    loans = {l.title: l for l in P.parse_loans(page("kagoshima-pref", "lend_list"), "kagoshima-pref", TODAY)}
    assert len(loans) == 4
    assert loans["赤松小三郎ともう一つの明治維新"].renewable
    assert loans["赤松小三郎ともう一つの明治維新"].not_renewable_reason is None
    assert loans["悪意"].overdue and loans["悪意"].not_renewable_reason == "overdue"
    reasons = sorted(l.not_renewable_reason or "-" for l in loans.values())
    assert reasons == ["-", "already_renewed", "overdue", "reserved"]
    for loan in loans.values():
        assert loan.id == loan.item_id and loan.id.isdigit() and loan.record_id.isdigit()
        assert isinstance(loan.due_on, date) and loan.loaned_on is not None and loan.loaned_on < loan.due_on
        assert loan.author and "/" in loan.author


@pytest.mark.parametrize("library", LIBRARIES)
def test_loan_rows_give_session_relative_indexes(library: str) -> None:
    rows = P.parse_lend_rows(page(library, "lend_list"), library, TODAY)
    assert rows and [r.index for r in rows] == [str(i) for i in range(len(rows))]
    # the confirm screen lists the same items (all were picked when the page was saved)
    assert P.parse_extension_confirm(page(library, "lend_confirm")) == [r.loan.id for r in rows]


def test_kagoshima_renewal_result_page() -> None:
    done, lines = P.parse_extension_result(page("kagoshima-pref", "lend_result"))
    assert done
    ok = [l for l in lines if l.ok]
    assert len(ok) == 1 and ok[0].due_on == TODAY + timedelta(days=14)
    assert ok[0].times_renewed == 1 and ok[0].state == "延長済"  # renewed once: not again
    refusals = {P.reason_text(l.message) for l in lines if not l.ok}
    assert refusals == {"返却期限を過ぎています。", "他の利用者の予約が入っています。", "既に延長済です。"}


def test_truncated_loan_table_is_upstream_changed() -> None:
    html = page("kumamoto-city", "lend_list")
    cut = html[: html.rindex('<tr class="lend-row">')] + "</table>"
    with pytest.raises(UpstreamChanged):
        P.parse_loans(cut, "kumamoto-city", TODAY)


def test_missing_loan_table_is_upstream_changed_never_empty() -> None:
    with pytest.raises(UpstreamChanged):
        P.parse_loans(page("kumamoto-city", "mylibrary"), "kumamoto-city", TODAY)
    empty = page("kumamoto-city", "lend_list").replace("lend-list", "lend-tabelle")
    with pytest.raises(UpstreamChanged):
        P.parse_loans(empty, "kumamoto-city", TODAY)


def test_loan_without_item_number_is_upstream_changed() -> None:
    html = page("amami", "lend_list").replace('class="item-id"', 'class="x"')
    with pytest.raises(UpstreamChanged):
        P.parse_loans(html, "amami", TODAY)


# ------------------------------------------------------------------ holds, cart
@pytest.mark.parametrize("library", LIBRARIES)
def test_hold_list(library: str) -> None:
    holds = P.parse_holds(page(library, "reserve_list"), library)
    assert holds
    for h in holds:
        assert h.id.isdigit() and h.record_id.isdigit() and h.pickup_branch
        assert h.expires_on is None  # 9999/12/31
        if h.status == "ready":
            assert h.ready_until is not None and not h.cancelable
        if h.status == "waiting":
            assert h.position is not None


def test_hold_statuses_of_the_seeds() -> None:
    got = {h.status for lib in LIBRARIES for h in P.parse_holds(page(lib, "reserve_list"), lib)}
    assert {"waiting", "ready", "in_transit"} <= got


def test_unknown_hold_status_word_is_upstream_changed() -> None:
    html = page("kumamoto-city", "reserve_list").replace(">予約中<", ">謎の状態<")
    with pytest.raises(UpstreamChanged):
        P.parse_holds(html, "kumamoto-city")


@pytest.mark.parametrize("library", LIBRARIES)
def test_basket_page(library: str) -> None:
    basket = P.parse_basket(page(library, "basket"))
    lib = replay_library(library)
    assert set(basket.areas) == {b.name for b in lib.branches}
    assert set(basket.areas.values()) == {b.code for b in lib.branches}
    assert list(basket.contacts) == lib.contact_methods
    assert set(basket.indexes) == {i.record_id for i in basket.items}


def test_reservation_confirm_and_result_with_one_refusal() -> None:
    listed = P.parse_reserve_confirm(page("kumamoto-city", "reserve_confirm"))
    assert len(listed) == 2
    done, lines = P.parse_reserve_result(page("kumamoto-city", "reserve_result"))
    assert done and [l.record_id for l in lines] == listed
    ng = [l for l in lines if not l.ok]
    assert len(ng) == 1 and P.reason_text(ng[0].message) == "既に予約済です。"
    ok = [l for l in lines if l.ok]
    after = {h.id for h in P.parse_holds(page("kumamoto-city", "reserve_list_after"), "kumamoto-city")}
    assert ok[0].reserve_no in after


def test_overdue_patron_is_refused_at_the_basket() -> None:
    t = P.tree(page("kagoshima-pref", "reserve_blocked"))
    assert any(P.TXT_OVERDUE_BLOCK in e for e in P.error_lines(t))


def test_cancel_confirm_lists_the_reserve_number() -> None:
    nos = P.parse_selected_reserve_nos(page("niigata-city", "reserve_cancel_confirm"), P.SEL_CANCEL_ROW)
    first = P.parse_hold_rows(page("niigata-city", "reserve_list_after"), "niigata-city")
    assert nos == [next(r.hold.id for r in first if r.index)]
    assert all(r.hold.cancelable == bool(r.index) for r in first)


# ------------------------------------------------------------------ catalog
@pytest.mark.parametrize("library", LIBRARIES)
def test_search_result_page(library: str) -> None:
    res = P.parse_search(page(library, "search_list"), 1)
    assert res.total > 10 and len(res.records) == 10
    assert all("サンタクロース" in r.title or r.title for r in res.records)
    assert all(r.id.isdigit() for r in res.records)
    empty = P.parse_search(page(library, "search_empty"), 1)
    assert empty.total == 0 and empty.records == []


def test_search_page_without_hit_count_is_upstream_changed() -> None:
    html = page("kumamoto-city", "search_list").replace('id="hit-count"', 'id="hits"')
    with pytest.raises(UpstreamChanged):
        P.parse_search(html, 1)


@pytest.mark.parametrize("library", LIBRARIES)
def test_record_detail(library: str) -> None:
    rec = P.parse_record(page(library, "detail"), "x")
    assert rec is not None and rec.title and rec.holdings
    lib = replay_library(library)
    names = {b.name for b in lib.branches}
    for h in rec.holdings:
        assert h.status != "unknown" and h.branch in names
        assert (h.due_on is not None) == (h.status == "on_loan")
    assert P.parse_record(page(library, "detail_missing"), "0") is None


# ------------------------------------------------------------------ respx edge cases
@pytest.fixture
def adapter() -> WinjAdapter:
    a = WinjAdapter(replay_library("kumamoto-city"))
    a.today = lambda: TODAY  # type: ignore[method-assign]
    return a


def _session() -> UpstreamSession:
    return UpstreamSession("0000002377570", cookies={"JSESSIONID": "X"}, data={"hid": "H", "charset": "UTF-8"})


def _html(library: str, name: str, status: int = 200) -> httpx.Response:
    content = raw(library, name)
    return httpx.Response(status, content=content,
                          headers={"Content-Type": f"text/html; charset={P.declared_charset(content, None)}"})


@respx.mock
def test_timeout_is_upstream_timeout(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout) as exc:
        adapter.loans(_session())
    assert exc.value.status == 504


@respx.mock
def test_connection_reset_is_upstream_unavailable(adapter: WinjAdapter) -> None:
    route = respx.get(f"{BASE}/lend-list.do").mock(side_effect=httpx.RemoteProtocolError("reset by peer"))
    with pytest.raises(UpstreamUnavailable) as exc:
        adapter.loans(_session())
    assert exc.value.status == 503
    assert route.call_count == 1  # the adapter never retries: the gateway's one retry layer does


@respx.mock
def test_a_write_is_never_retried(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/reserve-list.do").mock(return_value=_html("kumamoto-city", "reserve_list"))
    cancel = respx.post(f"{BASE}/reserve-cancel.do").mock(side_effect=httpx.RemoteProtocolError("reset"))
    hold = next(h for h in P.parse_hold_rows(page("kumamoto-city", "reserve_list"), "kumamoto-city") if h.index)
    with pytest.raises(UpstreamUnavailable):
        adapter.cancel_hold(_session(), hold.hold.id)
    assert cancel.call_count == 1


@respx.mock
def test_http_500_is_upstream_unavailable(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(return_value=httpx.Response(500, text="<html>Internal Server Error</html>"))
    with pytest.raises(UpstreamUnavailable) as exc:
        adapter.loans(_session())
    assert exc.value.status == 503


@respx.mock
def test_truncated_body_is_upstream_changed(adapter: WinjAdapter) -> None:
    content = raw("kumamoto-city", "lend_list")
    respx.get(f"{BASE}/lend-list.do").mock(return_value=httpx.Response(
        200, content=content[: len(content) // 2], headers={"Content-Type": "text/html; charset=UTF-8"}))
    with pytest.raises(UpstreamChanged) as exc:
        adapter.loans(_session())
    assert exc.value.status == 502


@respx.mock
def test_missing_loan_table_is_502(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(return_value=_html("kumamoto-city", "mylibrary"))
    with pytest.raises(UpstreamChanged):
        adapter.loans(_session())


@respx.mock
def test_redirect_to_login_is_session_expired(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(return_value=httpx.Response(
        302, headers={"Location": "/winj/opac/login.do?url=/winj/opac/lend-list.do"}))
    with pytest.raises(SessionExpired):
        adapter.loans(_session())


@respx.mock
def test_login_form_instead_of_a_page_is_session_expired(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/reserve-list.do").mock(return_value=_html("kumamoto-city", "login"))
    with pytest.raises(SessionExpired):
        adapter.holds(_session())


@respx.mock
def test_maintenance_page_is_upstream_maintenance(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(return_value=_html("kumamoto-city", "maintenance", 503))
    with pytest.raises(UpstreamMaintenance) as exc:
        adapter.loans(_session())
    assert exc.value.status == 503 and exc.value.retry_after


@respx.mock
def test_warm_loan_list_costs_one_request(adapter: WinjAdapter) -> None:
    route = respx.get(f"{BASE}/lend-list.do").mock(return_value=_html("kumamoto-city", "lend_list"))
    loans = adapter.loans(_session())
    assert loans and route.call_count == 1 and adapter.request_count == 1


@respx.mock
def test_renewal_refuses_when_the_row_index_points_at_another_loan(adapter: WinjAdapter) -> None:
    respx.get(f"{BASE}/lend-list.do").mock(return_value=_html("kagoshima-pref", "lend_list"))
    # The confirm screen lists another item than the one asked for (the list
    # changed in between): the adapter must not confirm.
    other = page("kagoshima-pref", "lend_confirm")
    rows = P.parse_lend_rows(page("kagoshima-pref", "lend_list"), "kagoshima-pref", TODAY)
    target, wrong = rows[2].loan.id, rows[0].loan.id
    only_wrong = other
    for r in rows[1:]:
        only_wrong = only_wrong.replace(f'<td class="item-id">{r.loan.id}</td>', f'<td class="item-id">{wrong}</td>')
    respx.post(f"{BASE}/lend-extension-confirm.do").mock(return_value=httpx.Response(
        200, content=only_wrong.encode("cp932"), headers={"Content-Type": "text/html; charset=Shift_JIS"}))
    execute = respx.post(f"{BASE}/lend-extension.do").mock(return_value=_html("kagoshima-pref", "lend_result"))
    a = WinjAdapter(replay_library("kagoshima-pref"))
    results = a.renew(_session(), [target])
    assert execute.call_count == 0
    assert not results[0].ok and results[0].error is not None and results[0].error.code == "conflict"


@respx.mock
def test_hold_timeout_after_the_upstream_acted_is_read_back_not_repeated(adapter: WinjAdapter) -> None:
    before = page("kumamoto-city", "reserve_list")
    after = page("kumamoto-city", "reserve_list_after")
    new = {h.record_id for h in P.parse_holds(after, "kumamoto-city")} - \
        {h.record_id for h in P.parse_holds(before, "kumamoto-city")}
    rid = new.pop()
    lists = iter([before, after, after])
    respx.get(f"{BASE}/reserve-list.do").mock(side_effect=lambda req: httpx.Response(
        200, text=next(lists), headers={"Content-Type": "text/html; charset=UTF-8"}))
    link = f'<a href="/winj/opac/switch-detail.do?bibid={rid}">本</a>'
    basket = ('<p><span id="basket-count">1</span></p><table id="basket-list"><tr class="basket-row">'
              '<td class="chk"><input type="checkbox" name="chk_basket" value="0"></td>'
              f'<td class="title">{link}</td></tr></table>')
    respx.post(f"{BASE}/reserve-basket-add.do").mock(return_value=httpx.Response(
        200, text=basket, headers={"Content-Type": "text/html; charset=UTF-8"}))
    confirm = f'<table id="confirm-list"><tr class="confirm-row"><td class="title">{link}</td></tr></table>'
    respx.post(f"{BASE}/reserve-basket.do").mock(return_value=httpx.Response(
        200, text=confirm, headers={"Content-Type": "text/html; charset=UTF-8"}))
    final = respx.post(f"{BASE}/reserve-confirm.do").mock(side_effect=httpx.ReadTimeout("slow"))
    results = adapter.place_holds(_session(), HoldRequest(record_ids=[rid]))
    assert final.call_count == 1  # never re-posted
    assert results[0].ok and results[0].hold is not None and results[0].hold.record_id == rid
    # A retry now sees the hold and places nothing.
    again = adapter.place_holds(_session(), HoldRequest(record_ids=[rid]))
    assert final.call_count == 1
    assert not again[0].ok and again[0].error is not None and again[0].error.code == "conflict"


@respx.mock
def test_overdue_block_is_account_blocked() -> None:
    a = WinjAdapter(replay_library("kagoshima-pref"))
    respx.get(f"{BASE}/reserve-list.do").mock(return_value=_html("kagoshima-pref", "reserve_list"))
    basket = P.parse_basket(page("kagoshima-pref", "basket"))
    rid = basket.items[0].record_id
    respx.get(f"{BASE}/reserve-basket.do").mock(return_value=_html("kagoshima-pref", "basket"))
    respx.post(f"{BASE}/reserve-basket-add.do").mock(return_value=_html("kagoshima-pref", "basket"))
    respx.post(f"{BASE}/reserve-basket.do").mock(return_value=_html("kagoshima-pref", "reserve_blocked"))
    with pytest.raises(AccountBlocked) as exc:
        a.place_holds(_session(), HoldRequest(record_ids=[rid]))
    assert exc.value.extra["reason"] == "overdue" and "延滞本" in exc.value.extra["upstream_message"]


def test_conflict_is_raised_for_already_reserved_text() -> None:
    a = WinjAdapter(replay_library("kumamoto-city"))
    err = a._refusal("理由:既に予約済です。")
    assert isinstance(err, Conflict) and err.extra["upstream_message"] == "既に予約済です。"
    limit = a._refusal("理由:予約件数が上限（10件）を超えています。")
    assert limit.code == "limit_exceeded" and limit.extra["limit"] == 10


def test_saved_pages_hold_no_secret() -> None:
    from tests.adapters.winj_flows import ALL_CARDS

    for path in Path(PAGES).glob("*/*.html"):
        content = path.read_bytes()
        for card in ALL_CARDS:
            assert card.encode() not in content, path
        assert b'name="hid_session" value="SCRUBBED"' in content or b"hid_session" not in content, path


@respx.mock
def test_renewal_timeout_is_read_back_not_repeated() -> None:
    a = WinjAdapter(replay_library("kagoshima-pref"))
    a.today = lambda: TODAY  # type: ignore[method-assign]
    before = page("kagoshima-pref", "lend_list")
    rows = P.parse_lend_rows(before, "kagoshima-pref", TODAY)
    good = next(r for r in rows if r.loan.renewable)
    new_due = (good.loan.due_on + timedelta(days=5)).strftime("%Y/%m/%d")
    after = before.replace(good.loan.due_on.strftime("%Y/%m/%d") + "</td>", new_due + "</td>", 1)
    lists = iter([before, after])
    respx.get(f"{BASE}/lend-list.do").mock(side_effect=lambda req: httpx.Response(
        200, content=next(lists).encode("cp932"), headers={"Content-Type": "text/html; charset=Shift_JIS"}))
    only = page("kagoshima-pref", "lend_confirm")
    confirm = ('<table id="extension-list"><tr class="ext-row">'
               f'<td class="item-id">{good.loan.id}</td></tr></table>')
    assert good.loan.id in only
    respx.post(f"{BASE}/lend-extension-confirm.do").mock(return_value=httpx.Response(
        200, text=confirm, headers={"Content-Type": "text/html; charset=UTF-8"}))
    execute = respx.post(f"{BASE}/lend-extension.do").mock(side_effect=httpx.ReadTimeout("slow"))
    results = a.renew(_session(), [good.loan.id])
    assert execute.call_count == 1
    assert results[0].ok and results[0].loan is not None
    assert results[0].loan.due_on.strftime("%Y/%m/%d") == new_due
