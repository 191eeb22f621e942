"""winj account screens: what a cassette cannot show (respx) — changed pages,
error pages, 5xx, timeouts (a write is never repeated: the profile is re-read),
and refusals that happen before any upstream request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from adapters.base import UpstreamSession
from adapters.winj.adapter import WinjAdapter
from core.errors import (
    InvalidRequest,
    LimitExceeded,
    NotFound,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.config import sandbox_config
from gateway.models import AlertCreate, AlertUpdate, ProfileUpdate

BASE = "http://winj.test/winj/opac"
PAGES = Path(__file__).resolve().parents[3] / "fixtures" / "winj" / "pages" / "account" / "kumamoto-city"
HTML = {"content-type": "text/html; charset=UTF-8"}


def saved(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def ok(html: str) -> httpx.Response:
    return httpx.Response(200, text=html, headers=HTML)


@pytest.fixture
def adapter() -> WinjAdapter:
    lib = sandbox_config().libraries["kumamoto-city"].model_copy(update={"base_url": BASE, "timeout": 2})
    a = WinjAdapter(lib)
    yield a
    a.close()


@pytest.fixture
def session() -> UpstreamSession:
    return UpstreamSession(card_number="0000002377570", cookies={"JSESSIONID": "x"}, data={"hid": "h"})


@pytest.fixture
def mock() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


# ------------------------------------------------------------------ profile reads
def test_profile_is_one_request(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.get("/user-info-change.do").mock(return_value=ok(saved("profile_form.html")))
    assert adapter.profile(session).pickup_branch == "本館"
    assert adapter.request_count == 1


def test_changed_profile_page(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.get("/user-info-change.do").mock(return_value=ok("<html><body><h1>利用者情報</h1><p>新画面</p></body></html>"))
    with pytest.raises(UpstreamChanged):
        adapter.profile(session)


def test_truncated_profile_page(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    html = saved("profile_form.html")
    mock.get("/user-info-change.do").mock(return_value=ok(html[: html.index("返却期限通知")]))
    with pytest.raises(UpstreamChanged):
        adapter.profile(session)


def test_redirect_to_login_is_session_expired(adapter: WinjAdapter, session: UpstreamSession,
                                              mock: respx.MockRouter) -> None:
    mock.get("/user-info-change.do").mock(
        return_value=httpx.Response(302, headers={"location": "/winj/opac/login.do?url=x"}))
    with pytest.raises(SessionExpired):
        adapter.profile(session)


def test_500_and_timeout(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    route = mock.get("/message-list.do")
    route.mock(return_value=httpx.Response(500, text="<html>Internal Server Error</html>"))
    with pytest.raises(UpstreamUnavailable):
        adapter.messages(session, False)
    route.mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        adapter.messages(session, False)


# ------------------------------------------------------------------ profile writes
def _update_routes(mock: respx.MockRouter, *, confirm: str, result: httpx.Response | Exception,
                   reread: str | None = None) -> respx.Route:
    form = mock.get("/user-info-change.do")
    pages = [ok(saved("profile_form.html"))] + ([ok(reread)] if reread else [])
    form.mock(side_effect=pages)
    mock.post("/user-info-confirm.do").mock(return_value=ok(confirm))
    update = mock.post("/user-info-update.do")
    if isinstance(result, Exception):
        update.mock(side_effect=result)
    else:
        update.mock(return_value=result)
    return update


def _history_off(html: str) -> str:
    return html.replace('name="chk_history" value="1" checked', 'name="chk_history" value="1"')


def test_result_without_success_text(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    _update_routes(mock, confirm=saved("profile_confirm.html"),
                   result=ok("<html><body><h1>利用者情報変更結果</h1><p>完了</p></body></html>"))
    with pytest.raises(UpstreamChanged):
        adapter.update_profile(session, ProfileUpdate(contact_method="メール"), None)


def test_result_with_an_error_line(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    _update_routes(mock, confirm=saved("profile_confirm.html"), result=ok(
        "<html><body><div id='message'><p class='error'>只今、変更を受け付けできません。</p></div></body></html>"))
    with pytest.raises(UpstreamError) as err:
        adapter.update_profile(session, ProfileUpdate(contact_method="メール"), None)
    assert err.value.extra["upstream_message"] == "只今、変更を受け付けできません。"


def test_form_refusal_is_invalid_request(adapter: WinjAdapter, session: UpstreamSession,
                                         mock: respx.MockRouter) -> None:
    update = _update_routes(mock, confirm=saved("profile_form_error.html"), result=ok(""))
    with pytest.raises(InvalidRequest) as err:
        adapter.update_profile(session, ProfileUpdate(contact_method="メール"), None)
    assert err.value.extra["upstream_message"] == "E-mail1の形式が正しくありません。"
    assert not update.called


def test_confirm_screen_showing_something_else_stops(adapter: WinjAdapter, session: UpstreamSession,
                                                     mock: respx.MockRouter) -> None:
    # asked for 龍田, the confirm screen shows 本館: nothing is confirmed
    update = _update_routes(mock, confirm=saved("profile_confirm.html"), result=ok(""))
    with pytest.raises(UpstreamChanged):
        adapter.update_profile(session, ProfileUpdate(pickup_branch="tatsuda"), None)
    assert not update.called


def test_timeout_on_update_then_reread_shows_it_stored(adapter: WinjAdapter, session: UpstreamSession,
                                                       mock: respx.MockRouter) -> None:
    confirm = saved("profile_confirm.html").replace(">残す<", ">残さない<")
    update = _update_routes(mock, confirm=confirm, result=httpx.ReadTimeout("slow"),
                            reread=_history_off(saved("profile_form.html")))
    profile = adapter.update_profile(session, ProfileUpdate(keep_history=False), None)
    assert profile.keep_history is False
    assert update.call_count == 1  # never repeated


def test_timeout_on_update_then_reread_shows_nothing(adapter: WinjAdapter, session: UpstreamSession,
                                                     mock: respx.MockRouter) -> None:
    confirm = saved("profile_confirm.html").replace(">残す<", ">残さない<")
    update = _update_routes(mock, confirm=confirm, result=httpx.ReadTimeout("slow"),
                            reread=saved("profile_form.html"))
    with pytest.raises(UpstreamTimeout):
        adapter.update_profile(session, ProfileUpdate(keep_history=False), None)
    assert update.call_count == 1


@pytest.mark.parametrize("changes, field", [
    (ProfileUpdate(pickup_branch="どこにもない館"), "pickup_branch"),
    (ProfileUpdate(contact_method="伝書鳩"), "contact_method"),
])
def test_unknown_choices_refused_before_any_request(adapter: WinjAdapter, session: UpstreamSession,
                                                    mock: respx.MockRouter, changes: ProfileUpdate,
                                                    field: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        adapter.update_profile(session, changes, None)
    assert err.value.extra["errors"][0]["field"] == field
    assert adapter.request_count == 0


def test_checkout_notice_where_the_library_has_none(adapter: WinjAdapter, session: UpstreamSession,
                                                    mock: respx.MockRouter) -> None:
    update = _update_routes(mock, confirm=saved("profile_confirm.html"), result=ok(""))
    with pytest.raises(InvalidRequest):
        adapter.update_profile(session, ProfileUpdate.model_validate(
            {"notifications": {"checkout": {"enabled": True}}}), None)
    assert not update.called


# ------------------------------------------------------------------ history, shelves
def test_changed_history_page(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    html = saved("history.html").replace('class="history-list"', 'class="rireki"')
    mock.get("/lend-history.do").mock(return_value=ok(html))
    with pytest.raises(UpstreamChanged):
        adapter.history(session, 1, 20)


def test_shelf_full_is_limit_exceeded(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.post("/bookshelf-add-confirm.do").mock(return_value=ok(
        "<html><body><div id='message'><p class='error'>1つの棚に登録可能な冊数は1000冊までです。</p></div></body></html>"))
    with pytest.raises(LimitExceeded) as err:
        adapter.add_shelf_item(session, "105", "1000000001")
    assert err.value.extra["limit"] == 1000 and "1000冊" in err.value.extra["upstream_message"]


def test_unknown_shelf_is_not_found(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.get("/bookshelf-detail.do").mock(return_value=ok(saved("shelf_missing.html")))
    with pytest.raises(NotFound):
        adapter.shelf_items(session, "999999")
    with pytest.raises(NotFound):  # not even asked upstream
        adapter.delete_shelf(session, "../etc")
    assert adapter.request_count == 1


def test_changed_shelf_list(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.get("/bookshelf-list.do").mock(return_value=ok("<html><body><h1>本棚一覧</h1></body></html>"))
    with pytest.raises(UpstreamChanged):
        adapter.shelves(session)


def test_long_shelf_name_refused_locally(adapter: WinjAdapter, session: UpstreamSession,
                                         mock: respx.MockRouter) -> None:
    with pytest.raises(InvalidRequest):
        adapter.create_shelf(session, "あ" * 33)
    assert adapter.request_count == 0


# ------------------------------------------------------------------ SDI: what the portal cannot express
@pytest.mark.parametrize("body, word", [
    ({"conditions": [{"field": "title", "op": "not_contains", "value": "x"}]}, "not_contains"),
    ({"conditions": [{"field": "title", "value": "a"}, {"field": "author", "value": "b"}], "match": "any"}, "any"),
    ({"conditions": [{"field": "isbn", "value": "978"}]}, "isbn"),
    ({"conditions": [{"field": "any", "value": "x"}]}, "'any'"),
    ({"conditions": [{"field": "title", "value": str(i)} for i in range(5)]}, "at most 4"),
    ({"conditions": [{"field": "title", "value": "x"}], "max_results": 7}, "max_results 7"),
    ({"conditions": [{"field": "title", "value": "x"}], "match": "any"}, "any"),
])
def test_inexpressible_alerts_refused_before_any_request(adapter: WinjAdapter, session: UpstreamSession,
                                                         mock: respx.MockRouter, body: dict, word: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        adapter.create_alert(session, AlertCreate.model_validate({"name": "n", **body}))
    assert word in err.value.detail
    with pytest.raises(InvalidRequest):
        adapter.update_alert(session, "106", AlertUpdate.model_validate(body))
    assert adapter.request_count == 0


def test_changed_sdi_form(adapter: WinjAdapter, session: UpstreamSession, mock: respx.MockRouter) -> None:
    mock.get("/sdi-list.do").mock(return_value=ok(saved("sdi_list.html")))
    mock.get("/sdi-input.do").mock(return_value=ok(saved("sdi_form.html").replace('id="sdi-form"', 'id="x"')))
    with pytest.raises(UpstreamChanged):
        adapter.alerts(session)



# ------------------------------------------------------------------ timeouts on the final step of shelf/SDI writes
def _confirm(*titles: str) -> str:
    items = "".join(f'<li class="confirm-item"><span class="title">{t}</span></li>' for t in titles)
    return f'<html><body><ul>{items}</ul><form id="shelf-confirm-form"></form></body></html>'


def _shelf_list(*shelves: tuple[str, str, int]) -> str:
    rows = "".join(f'<tr class="shelf"><td class="name"><a href="bookshelf-detail.do?shelf={no}">{name}</a></td>'
                   f'<td class="count">{n}冊</td></tr>' for no, name, n in shelves)
    return f'<html><body><table class="shelf-list">{rows}</table></body></html>'


@pytest.mark.parametrize("stored", [True, False])
def test_timeout_on_shelf_creation_is_re_read(adapter: WinjAdapter, session: UpstreamSession,
                                              mock: respx.MockRouter, stored: bool) -> None:
    mock.post("/bookshelf-create-confirm.do").mock(return_value=ok(_confirm("読みたい本")))
    commit = mock.post("/bookshelf-create.do").mock(side_effect=httpx.ReadTimeout("slow"))
    shelves = [("105", "明治維新", 2)] + ([("107", "読みたい本", 0)] if stored else [])
    mock.get("/bookshelf-list.do").mock(return_value=ok(_shelf_list(*shelves)))
    if stored:
        assert adapter.create_shelf(session, "読みたい本").id == "107"
    else:
        with pytest.raises(UpstreamTimeout):
            adapter.create_shelf(session, "読みたい本")
    assert commit.call_count == 1  # never repeated


def test_timeout_on_adding_to_a_shelf_is_re_read(adapter: WinjAdapter, session: UpstreamSession,
                                                 mock: respx.MockRouter) -> None:
    mock.post("/bookshelf-add-confirm.do").mock(return_value=ok(_confirm("悪意")))
    commit = mock.post("/bookshelf-add.do").mock(side_effect=httpx.ReadTimeout("slow"))
    items = saved("shelf_items.html")  # 明治維新 holds 1000000002 and 1000000003
    mock.get("/bookshelf-detail.do").mock(return_value=ok(items))
    assert adapter.add_shelf_item(session, "105", "1000000003").record_id == "1000000003"
    with pytest.raises(UpstreamTimeout):
        adapter.add_shelf_item(session, "105", "1000000099")
    assert commit.call_count == 2


def test_timeout_on_alert_deletion_is_re_read(adapter: WinjAdapter, session: UpstreamSession,
                                              mock: respx.MockRouter) -> None:
    confirm = '<html><body><form id="sdi-confirm-form"></form></body></html>'
    mock.post("/sdi-delete-confirm.do").mock(return_value=ok(confirm))
    commit = mock.post("/sdi-delete.do").mock(side_effect=httpx.ReadTimeout("slow"))
    mock.get("/sdi-list.do").mock(return_value=ok(saved("sdi_list.html")))  # still lists alert 106
    no = saved("sdi_list.html").split('name="hid_no" value="')[1].split('"')[0]
    with pytest.raises(UpstreamTimeout):
        adapter.delete_alert(session, no)
    adapter.delete_alert(session, "999")  # not listed any more: it was deleted
    assert commit.call_count == 2


def test_characters_a_shift_jis_portal_cannot_store(adapter: WinjAdapter, mock: respx.MockRouter) -> None:
    sjis = UpstreamSession(card_number="9999999999", cookies={"JSESSIONID": "x"},
                           data={"hid": "h", "charset": "Shift_JIS"})
    with pytest.raises(InvalidRequest) as err:
        adapter.create_shelf(sjis, "読みたい本📚")
    assert "Shift_JIS" in err.value.detail
    with pytest.raises(InvalidRequest):
        adapter.create_alert(sjis, AlertCreate.model_validate(
            {"name": "n", "conditions": [{"field": "title", "value": "🎅"}]}))
    assert adapter.request_count == 0
    # 髙 and ① are in cp932 (what browsers and portals mean by Shift_JIS)
    mock.post("/bookshelf-create-confirm.do").mock(return_value=ok("<html><body></body></html>"))
    with pytest.raises(UpstreamChanged):
        adapter.create_shelf(sjis, "髙橋①")
    assert adapter.request_count == 1
