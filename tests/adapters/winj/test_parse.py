"""Parsers of the winj core screens, on pages saved from the simulators
(``fixtures/winj/pages/<library>/``; ``python -m tests.adapters.winj.flows`` re-saves
them), and the adapter's answers to transport faults and odd pages (respx)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx

from adapters import html as H
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
from core.models import HoldRequest
from tests.adapters.winj.flows import LIBRARIES, PAGES, TODAY, replay_library


def raw(library: str, name: str) -> bytes:
    return (PAGES / library / f"{name}.html").read_bytes()


def page(library: str, name: str) -> str:
    return H.decode(raw(library, name))


def lend(library: str, name: str = "lend_list") -> list[P.LendRow]:
    return P.parse_lend_items(P.tree(page(library, name)), library, TODAY)[0]


def holds(library: str, name: str = "reserve_list") -> list[P.HoldRow]:
    return P.parse_hold_items(P.tree(page(library, name)), library)[0]


# ------------------------------------------------------------------ decoding, login
@pytest.mark.parametrize("library", LIBRARIES)
def test_pages_are_decoded_by_their_declared_charset(library: str) -> None:
    d = H.decode_page(raw(library, "login"))
    assert d.source == "meta" and "利用者カードの番号" in d.text
    assert (d.charset == "Shift_JIS") == (library == "niigata-city")


@pytest.mark.parametrize("library", LIBRARIES)
def test_login_pages(library: str) -> None:
    t = P.tree(page(library, "login"))
    form = P.parse_login_form(t)
    assert form is not None and form.submit[0] == "submit_btn_login" and "ログイン" in form.submit[1]
    assert form.action.startswith("/") and "login.do" in form.action
    failed = P.tree(page(library, "login_failed"))
    assert P.is_login_page(failed) and "誤り" in (P.login_error(failed) or "")


def test_a_cold_login_lands_on_the_top_page_with_a_login_link() -> None:
    t = P.tree(page("kagoshima-pref", "login_cold"))
    assert P.parse_login_form(t) is None
    assert "login.do" in (P.login_link(t) or "")


def test_maintenance_and_timeout_pages() -> None:
    assert P.is_maintenance(P.tree(page("kumamoto-city", "maintenance")))
    for library in LIBRARIES:
        assert P.is_timeout(P.tree(page(library, "timeout")))


# ------------------------------------------------------------------ loans
def test_kagoshima_loans_carry_each_refusal_reason() -> None:
    rows = lend("kagoshima-pref")
    reasons = sorted(r.loan.not_renewable_reason or "" for r in rows)
    assert reasons == ["", "already_renewed", "overdue", "reserved"]
    assert [r.loan.renewable for r in rows].count(True) == 1
    for r in rows:
        assert (r.extend is not None) == r.loan.renewable
        assert r.loan.loaned_on and r.loan.due_on and r.loan.item_id and r.loan.record_id.isdigit()
        assert r.material_type == "図書" and "【" not in r.loan.title


@pytest.mark.parametrize("library", LIBRARIES)
def test_loan_rows_give_session_relative_indexes_and_clean_fields(library: str) -> None:
    rows = lend(library)
    assert rows
    for r in rows:
        if r.extend:
            assert r.idx is not None and "submit_btn_extend" in r.extend and "hid_session=SCRUBBED" in r.extend
        assert r.loan.author and "/" not in r.loan.title
        assert r.loan.branch


def test_twenty_five_loans_on_three_pages() -> None:
    rows, lp = P.parse_lend_items(P.tree(page("kumamoto-city", "lend_list_p1")), "kumamoto-city", TODAY)
    assert len(rows) == 10 and lp.total == 25 and 50 in lp.page_sizes and lp.next_href
    rows3, lp3 = P.parse_lend_items(P.tree(page("kumamoto-city", "lend_list_p3")), "kumamoto-city", TODAY)
    assert len(rows3) == 5 and lp3.total == 25 and lp3.next_href is None
    assert {r.idx for r in rows3 if r.idx} <= {str(i) for i in range(20, 25)}


def test_renewal_confirm_and_result() -> None:
    c = P.parse_extension_confirm(page("kagoshima-pref", "lend_confirm"))
    assert re.fullmatch(r"\d{10}", c.lenid) and c.item_id and c.title and "【" not in c.title
    assert c.submit == ("submit_btn_confirm", "貸出延長する")
    r = P.parse_extension_result(page("kagoshima-pref", "lend_result"))
    assert r.ok and r.due_on == TODAY + timedelta(days=14)


def test_a_loan_without_its_due_date_or_id_is_upstream_changed() -> None:
    html = page("kumamoto-city", "lend_list")
    with pytest.raises(UpstreamChanged, match="due date"):
        P.parse_lend_items(P.tree(html.replace("返却予定日:", "返却:")), "kumamoto-city", TODAY)
    no_id = re.sub(r"資料番号:\d+", "", html).replace("bibid=", "x=")
    with pytest.raises(UpstreamChanged, match="loan id"):
        P.parse_lend_items(P.tree(no_id), "kumamoto-city", TODAY)
    # a renamed title class is served by the fallbacks (the h4.link-image link) ...
    renamed = P.parse_lend_items(P.tree(html.replace('class="title"', 'class="name"')), "kumamoto-city", TODAY)[0]
    assert [r.loan.title for r in renamed] == [r.loan.title for r in lend("kumamoto-city")]
    # ... no title at all is not
    with pytest.raises(UpstreamChanged, match="title"):
        P.parse_lend_items(P.tree(re.sub(r'<h4 class="link-image">.*?</h4>', "", html, flags=re.S)),
                           "kumamoto-city", TODAY)


@pytest.mark.parametrize("variant", ["返却期限日:", "返却期限:", "返却予定日："])
def test_every_due_label_and_date_spelling_is_read(variant: str) -> None:
    html = page("kumamoto-city", "lend_list")
    first = lend("kumamoto-city")[0].loan.due_on
    text = html.replace("返却予定日:", variant).replace(first.strftime("%Y/%m/%d"), f"{first.year}.{first.month}.{first.day}")
    rows = P.parse_lend_items(P.tree(text), "kumamoto-city", TODAY)[0]
    assert rows[0].loan.due_on == first


# ------------------------------------------------------------------ holds
@pytest.mark.parametrize("library", LIBRARIES)
def test_hold_list(library: str) -> None:
    rows = holds(library, "reserve_list")
    for r in rows:
        h = r.hold
        assert h.id.isdigit() and h.record_id.isdigit() and h.title and "【" not in h.title
        assert h.pickup_branch and h.placed_on and h.status
        assert (r.index != "") == h.cancelable
        if h.status == "waiting":
            assert h.position


def test_every_rank_format_is_read() -> None:
    base = "<div id=\"main\"><h2 class=\"nav-hdg\">1 ～ 1 件（全1 件）</h2><ol class=\"list-book\"><li><div class=\"report\">" \
           "<h4 class=\"link-image\"><a href=\"x?bibid=1000000001\"><span class=\"title\">【図書】本</span></a></h4>" \
           "<div class=\"column info\"><p>著者 -- 出版</p><p>予約日:2026.11.01受取館:本館</p><p>{}</p>" \
           "<p>予約番号:700001</p></div></div></li></ol></div>"
    for line, status, rank in (("予約状態：返却待ち順番：4", "waiting", 4), ("予約中 (3位)", "waiting", 3),
                               ("予約中(12位)", "waiting", 12), ("順番待ち （7位）", "waiting", 7),
                               ("予約状態：利用可能取置期限日:2026.12.01", "ready", None),
                               ("受取館へ回送中", "in_transit", None), ("予約状態:返却待ち 予約順位：2位", "waiting", 2)):
        h = P.parse_hold_items(P.tree(base.format(line)), "x")[0][0].hold
        assert (h.status, h.position) == (status, rank), line
        assert h.pickup_branch == "本館" and h.placed_on is not None


def test_unknown_hold_status_word_is_upstream_changed() -> None:
    html = page("kumamoto-city", "reserve_list")
    word = holds("kumamoto-city")[0]
    assert word
    changed = re.sub(r"<p>(予約中|利用可能|準備中) ?", "<p>謎状態 ", html, count=1)
    with pytest.raises(UpstreamChanged, match="status"):
        P.parse_hold_items(P.tree(changed), "kumamoto-city")


def test_cancel_confirm_lists_the_reserve_number() -> None:
    nos = P.parse_selected_reserve_nos(page("kumamoto-city", "reserve_cancel_confirm"), P.SEL_CANCEL_ROW)
    assert len(nos) == 1 and nos[0].isdigit()


# ------------------------------------------------------------------ basket and reservation
@pytest.mark.parametrize("library", LIBRARIES)
def test_basket_page(library: str) -> None:
    b = P.parse_basket(page(library, "basket"))
    assert ("hid_aplph", "W") in b.hidden and b.areas and b.contacts and b.contact_field == "cmb_ctttp"
    assert b.buttons["normal"][0] == "submit_btn_reservation" and "delete" in b.buttons and "bulk" in b.buttons
    assert b.expiry == ("chk_limit" if library == "amami" else "triple")
    assert all(i.record_id in b.entries for i in b.items)


def test_reservation_confirm_and_result_with_one_refusal() -> None:
    c = P.parse_reserve_confirm(page("kumamoto-city", "reserve_confirm"))
    assert len(c.records) == 2 and all(r.isdigit() for r in c.records) and ("hid_aplph", "W") in c.hidden
    assert c.submit == ("submit_btn_confirm", "予約する") and c.email_field is None
    done, lines = P.parse_reserve_result(page("kumamoto-city", "reserve_result"))
    assert done and sorted(line.ok for line in lines) == [False, True]
    refused = next(line for line in lines if not line.ok)
    assert refused.message == "理由:既に予約済です。" and refused.record_id in c.records


def test_overdue_patron_is_refused_at_the_basket() -> None:
    t = P.tree(page("kagoshima-pref", "reserve_blocked"))
    assert any(P.TXT_OVERDUE_BLOCK in e for e in P.error_lines(t))


def test_basket_delete_confirm() -> None:
    d = P.parse_basket_delete(page("kumamoto-city", "basket_delete"))
    assert len(d.ids) == 1 and d.action.endswith("reserve-basket-delete.do")


# ------------------------------------------------------------------ catalog
@pytest.mark.parametrize("library", LIBRARIES)
def test_search_result_pages(library: str) -> None:
    res = P.parse_search(page(library, "search_list"), 1)
    assert res.total > 10 and len(res.records) == 10
    assert all(r.id.isdigit() and r.title and "【" not in r.title for r in res.records)
    assert P.parse_search(page(library, "search_empty"), 1).records == []
    one = P.parse_search(page(library, "search_one"), 1)
    assert one.total == 1 and len(one.records) == 1 and one.records[0].isbn


@pytest.mark.parametrize("library", LIBRARIES)
def test_record_detail(library: str) -> None:
    rec = P.parse_record(page(library, "detail"), None)
    assert rec is not None and rec.id.isdigit() and rec.title and rec.holdings
    assert all(h.status != "unknown" for h in rec.holdings)
    assert rec.isbn is None or re.fullmatch(r"\d{13}|\d{9}[\dX]", rec.isbn)
    assert P.parse_record(page(library, "detail_missing"), "0") is None


def test_saved_pages_hold_no_secret() -> None:
    from tests.adapters.winj.flows import ALL_CARDS

    for path in Path(PAGES).glob("*/*.html"):
        content = path.read_bytes()
        for card in ALL_CARDS:
            assert card.encode() not in content, path
        assert not re.search(rb'hid_session(=|" value=")(?!SCRUBBED)', content), path
        assert not re.search(rb"[0-9A-F]{32}", content), path


# ------------------------------------------------------------------ respx edge cases
@pytest.fixture
def adapter() -> WinjAdapter:
    a = WinjAdapter(replay_library("kumamoto-city"))
    a.today = lambda: TODAY  # type: ignore[method-assign]
    return a


def _session() -> UpstreamSession:
    return UpstreamSession(card_number="0000002377570", cookies={"JSESSIONID": "X"}, data={"hid": "H"})


def _html(library: str, name: str, status: int = 200) -> httpx.Response:
    content = raw(library, name)
    d = H.decode_page(content)
    return httpx.Response(status, content=content, headers={"Content-Type": f"text/html; charset={d.charset}"})


LEND = r".*/lend-list\.do$"


def test_timeout_is_upstream_timeout(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=LEND).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(UpstreamTimeout) as exc:
            adapter.loans(_session())
    assert exc.value.status == 504


def test_http_500_is_upstream_unavailable(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=LEND).mock(return_value=httpx.Response(500, text="<html>Internal Server Error</html>"))
        with pytest.raises(UpstreamUnavailable):
            adapter.loans(_session())


def test_a_write_is_never_retried(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=r".*/reserve-list\.do$").mock(return_value=_html("kumamoto-city", "reserve_list"))
        cancel = respx.post(url__regex=r".*/reserve-cancel\.do").mock(side_effect=httpx.RemoteProtocolError("reset"))
        hold = next(h for h in holds("kumamoto-city") if h.index)
        with pytest.raises(UpstreamUnavailable):
            adapter.cancel_hold(_session(), hold.hold.id)
    assert cancel.call_count == 1


def test_truncated_body_is_upstream_changed(adapter: WinjAdapter) -> None:
    content = raw("kumamoto-city", "lend_list")
    cut = content[: content.index(b"</li>") + 5]
    with respx.mock:
        respx.get(url__regex=LEND).mock(return_value=httpx.Response(
            200, content=cut, headers={"Content-Type": "text/html; charset=UTF-8"}))
        with pytest.raises(UpstreamChanged) as exc:
            adapter.loans(_session())
    assert exc.value.status == 502


def test_another_page_instead_of_the_loan_list_is_502_never_empty(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=LEND).mock(return_value=_html("kumamoto-city", "mylibrary"))
        with pytest.raises(UpstreamChanged, match="借りている資料"):
            adapter.loans(_session())


def test_redirect_to_login_and_the_timeout_page_are_session_expired(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=LEND).mock(return_value=httpx.Response(
            302, headers={"Location": "/winj/opac/login.do?lang=ja&dispatch=/opac/lend-list.do"}))
        with pytest.raises(SessionExpired):
            adapter.loans(_session())
    for name in ("login", "timeout"):
        with respx.mock:
            respx.get(url__regex=r".*/reserve-list\.do$").mock(return_value=_html("kumamoto-city", name))
            with pytest.raises(SessionExpired):
                adapter.holds(_session())


def test_maintenance_page_is_upstream_maintenance(adapter: WinjAdapter) -> None:
    with respx.mock:
        respx.get(url__regex=LEND).mock(return_value=_html("kumamoto-city", "maintenance", 503))
        with pytest.raises(UpstreamMaintenance) as exc:
            adapter.loans(_session())
    assert exc.value.status == 503 and exc.value.retry_after


def test_warm_loan_list_costs_one_request(adapter: WinjAdapter) -> None:
    with respx.mock:
        route = respx.get(url__regex=LEND).mock(return_value=_html("kumamoto-city", "lend_list"))
        assert adapter.loans(_session()) and route.call_count == 1 and adapter.request_count == 1


def test_hold_timeout_after_the_upstream_acted_is_read_back_not_repeated(adapter: WinjAdapter) -> None:
    before = page("kumamoto-city", "reserve_list")
    after = page("kumamoto-city", "reserve_list_after")
    new = {h.hold.record_id for h in holds("kumamoto-city", "reserve_list_after")} - \
        {h.hold.record_id for h in holds("kumamoto-city")}
    rid = sorted(new)[0]
    lists = iter([before, after, after])
    basket = page("kumamoto-city", "basket").replace('value="1000000', 'value="0000000')  # not our record
    basket = re.sub(r'<ol class="list-book result hook-check-all">.*?</ol>', (
        '<ol class="list-book result hook-check-all"><li><div class="report"><div class="lyt-image">'
        f'<p><label><input type="checkbox" name="chk_check" value="{rid}"></label></p>'
        f'<h4 class="link-image"><a href="x?bibid={rid}"><span class="title">本</span></a></h4></div></div></li></ol>'),
        basket, flags=re.S)
    basket = re.sub(r"該当件数は\d+件です", "該当件数は1件です", basket)
    confirm = re.sub(r'<ol class="list-book result">.*?</ol>', (
        f'<ol class="list-book result"><li><h4 class="link-image"><a href="x?bibid={rid}"><span class="title">本</span>'
        '</a></h4></li></ol>'), page("kumamoto-city", "reserve_confirm"), flags=re.S)
    with respx.mock:
        respx.get(url__regex=r".*/reserve-list\.do$").mock(side_effect=lambda req: httpx.Response(
            200, text=next(lists), headers={"Content-Type": "text/html; charset=UTF-8"}))
        respx.post(url__regex=r".*/switch-detail\.do").mock(return_value=httpx.Response(
            200, text=basket, headers={"Content-Type": "text/html; charset=UTF-8"}))
        respx.post(url__regex=r".*/reserve-basket\.do").mock(return_value=httpx.Response(
            200, text=confirm, headers={"Content-Type": "text/html; charset=UTF-8"}))
        final = respx.post(url__regex=r".*/reserve-confirm\.do").mock(side_effect=httpx.ReadTimeout("slow"))
        results = adapter.place_holds(_session(), HoldRequest(record_ids=[rid]))
        assert final.call_count == 1  # never re-posted
        assert results[0].ok and results[0].hold is not None and results[0].hold.record_id == rid
        again = adapter.place_holds(_session(), HoldRequest(record_ids=[rid]))  # a retry places nothing
        assert final.call_count == 1
        assert not again[0].ok and again[0].error is not None and again[0].error.code == "conflict"


def test_overdue_block_is_account_blocked() -> None:
    a = WinjAdapter(replay_library("kagoshima-pref"))
    basket = P.parse_basket(page("kagoshima-pref", "basket"))
    rid = basket.items[0].record_id
    with respx.mock:
        respx.get(url__regex=r".*/reserve-list\.do$").mock(return_value=_html("kagoshima-pref", "reserve_list"))
        respx.get(url__regex=r".*/reserve-basket\.do$").mock(return_value=_html("kagoshima-pref", "basket"))
        respx.post(url__regex=r".*/switch-detail\.do$").mock(return_value=_html("kagoshima-pref", "basket"))
        respx.post(url__regex=r".*/reserve-basket\.do$").mock(return_value=_html("kagoshima-pref", "reserve_blocked"))
        with pytest.raises(AccountBlocked) as exc:
            a.place_holds(_session(), HoldRequest(record_ids=[rid]))
    assert exc.value.extra["reason"] == "overdue" and "延滞本" in exc.value.extra["upstream_message"]


def test_conflict_is_raised_for_already_reserved_text() -> None:
    a = WinjAdapter(replay_library("kumamoto-city"))
    err = a._refusal("理由:既に予約済です。")
    assert isinstance(err, Conflict) and err.extra["upstream_message"] == "既に予約済です。"
    limit = a._refusal("理由:予約件数が上限（10件）を超えています。")
    assert limit.code == "limit_exceeded" and limit.extra["limit"] == 10


def test_renewal_timeout_is_read_back_not_repeated() -> None:
    a = WinjAdapter(replay_library("kagoshima-pref"))
    a.today = lambda: TODAY  # type: ignore[method-assign]
    before = page("kagoshima-pref", "lend_list")
    good = next(r for r in lend("kagoshima-pref") if r.loan.renewable)
    old = a.layout.fmt_date(good.loan.due_on)
    new_due = good.loan.due_on + timedelta(days=5)
    after = before.replace(f"返却期限:{old}", f"返却期限:{a.layout.fmt_date(new_due)}", 1)
    lists = iter([before, after])
    with respx.mock:
        respx.get(url__regex=LEND).mock(side_effect=lambda req: httpx.Response(
            200, text=next(lists), headers={"Content-Type": "text/html; charset=UTF-8"}))
        respx.get(url__regex=r".*submit_btn_extend.*").mock(return_value=_html("kagoshima-pref", "lend_confirm"))
        commit = respx.post(url__regex=r".*/lend-extension-confirm\.do").mock(side_effect=httpx.ReadTimeout("slow"))
        results = a.renew(_session(), [good.loan.id])
    assert commit.call_count == 1
    assert results[0].ok and results[0].loan is not None and results[0].loan.due_on == new_due
