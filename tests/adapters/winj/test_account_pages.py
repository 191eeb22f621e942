"""Parsers of the winj account screens, on pages saved from the simulators
(``fixtures/winj/pages/account/<library>/``; regenerate with
``python -m tests.adapters.winj.test_account_flows``).  niigata-city's pages are
Shift_JIS (the one legacy-charset portal kept so decoding by the declared charset stays
tested; real sites serve UTF-8), the others UTF-8."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.winj import account_pages as ap
from adapters.html import decode as decode_html
from core.errors import UpstreamChanged

PAGES = Path(__file__).resolve().parents[3] / "fixtures" / "winj" / "pages" / "account"
LIBRARIES = ("kumamoto-city", "kagoshima-pref", "amami", "niigata-city")
CHARSETS = {"kumamoto-city": "UTF-8", "kagoshima-pref": "UTF-8", "amami": "UTF-8", "niigata-city": "Shift_JIS"}
TZ = ZoneInfo("Asia/Tokyo")


def page(library: str, name: str) -> str:
    raw = (PAGES / library / name).read_bytes()
    return decode_html(raw, None if name.endswith(".html") else f"text/plain; charset={CHARSETS[library]}")


# ------------------------------------------------------------------ profile
@pytest.mark.parametrize("library", LIBRARIES)
def test_profile_form_reads_every_setting(library: str) -> None:
    p = ap.parse_profile(page(library, "profile_form.html"), "*********7570", library)
    assert p.card_number_masked == "*********7570"
    assert p.name and " " in p.name  # 氏名 as the portal prints it (熊本 太郎)
    assert len(p.emails) == 1 and p.emails[0].kind == "pc" and "@" in p.emails[0].address
    assert p.notifications.hold_ready.enabled is True
    assert p.notifications.registration.enabled is False
    assert p.notifications.due_reminder.enabled is False and p.notifications.due_reminder.days_before == 1
    assert p.keep_history is True
    assert p.phone_contact == "携帯電話"
    # library differences are in the page, not in the parser
    assert (p.notifications.checkout is not None) == (library in ("kagoshima-pref", "amami"))
    assert (p.card_expires_on is not None) == (library == "niigata-city")
    assert p.pickup_branch == {"kumamoto-city": "本館", "kagoshima-pref": "本館一般", "amami": "奄美図書館",
                               "niigata-city": "中央図書館"}[library]
    assert p.contact_method in ("不要", "連絡不要")


def test_niigata_card_expiry() -> None:
    p = ap.parse_profile(page("niigata-city", "profile_form.html"), "******0001")
    assert p.card_expires_on == date(2029, 3, 31)


def test_fresh_patron_has_no_email_no_history_no_phone() -> None:
    p = ap.parse_profile(page("kumamoto-city", "profile_form_fresh.html"), "*********4567")
    assert p.emails == [] and p.keep_history is False and p.phone_contact is None
    assert not p.notifications.hold_ready.enabled and not p.notifications.due_reminder.enabled


def test_profile_form_serialises_like_a_browser() -> None:
    form = ap.find_profile_form(page("kumamoto-city", "profile_form.html"))
    assert form.get("cmb_area") == "01" and form.label_of("cmb_area") == "本館"
    assert form.has("chk_history") and not form.has("chk_regist_mb")
    assert form.get("rdo_limit") == "0" and form.radios["rdo_limit"] == ["1", "0"]
    assert form.value_for_label("cmb_area", "龍田") == "03"
    assert form.value_for_label("cmb_area", "存在しない館") is None
    form.set("chk_history", None)
    assert not form.has("chk_history")


def test_profile_form_error_lines() -> None:
    html = page("kumamoto-city", "profile_form_error.html")
    assert ap.form_errors(html) == ["E-mail1の形式が正しくありません。"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_profile_confirm_and_result(library: str) -> None:
    shown = ap.parse_profile_confirm(page(library, "profile_confirm.html"))
    assert shown.pickup and shown.contact and shown.keep_history is True
    assert shown.mail_option and "@" in shown.mail_option
    assert ap.profile_update_done(page(library, "profile_result.html"))
    assert not ap.profile_update_done(page(library, "profile_confirm.html"))
    wording = "申請受付確認メールを送信する" if library == "niigata-city" else "申請確認メールを送信する"
    assert wording in page(library, "profile_confirm.html")


@pytest.mark.parametrize("wording", ["利用者情報変更申し込みを受け付けました。", "利用者情報変更申し込みを受付しました。",
                                     "利用者情報変更申し込みを受付ました。", "利用者情報変更申込みを受け付けました。"])
def test_result_wordings_of_the_seed(wording: str) -> None:
    # seed 002 prints the success line three different ways
    assert ap.profile_update_done(f"<html><body><div id='message'><p class='msg'>{wording}</p></div></body></html>")


def test_a_page_without_the_form_is_upstream_changed() -> None:
    with pytest.raises(UpstreamChanged):
        ap.parse_profile("<html><body><h1>利用者情報</h1><p>メンテナンス</p></body></html>", "****")
    without_rows = page("kumamoto-city", "profile_form.html").replace('name="chk_limit_pc"', 'name="x"')
    with pytest.raises(UpstreamChanged):
        ap.parse_profile(without_rows, "****")


# ------------------------------------------------------------------ history
@pytest.mark.parametrize("library", LIBRARIES)
def test_history_page(library: str) -> None:
    h = ap.parse_history(page(library, "history.html"), library)
    assert h.kept and h.total == 1000 and len(h.entries) == 20
    e = h.entries[0]
    assert e.record_id.isdigit() and e.title and e.loaned_on <= date.today()
    assert any(x.author for x in h.entries)
    assert all(x.returned_on is None or x.returned_on >= x.loaned_on for x in h.entries)


def test_history_not_kept_is_empty_not_an_error() -> None:
    h = ap.parse_history(page("kumamoto-city", "history_off.html"))
    assert (h.kept, h.total, h.entries) == (False, 0, [])


def test_history_without_list_is_upstream_changed() -> None:
    with pytest.raises(UpstreamChanged):
        ap.parse_history("<html><body><h1>借りたことがある資料</h1></body></html>")


# ------------------------------------------------------------------ messages
@pytest.mark.parametrize("library", LIBRARIES)
def test_messages(library: str) -> None:
    unread = ap.parse_messages(page(library, "messages_unread.html"), TZ)
    everything = ap.parse_messages(page(library, "messages_all.html"), TZ)
    assert [m.read for m in unread] == [False, False]
    assert len(everything) == 4 and sum(m.read for m in everything) == 2
    assert everything[0].sent_at.tzinfo is TZ and everything[0].sent_at > everything[-1].sent_at
    assert unread[0].subject == "返却期限が近づいています" and unread[0].body


def test_no_messages_and_changed_messages_page() -> None:
    empty = "<html><body><div id='message'><p class='msg'>未読の通知メッセージはありません。</p></div></body></html>"
    assert ap.parse_messages(empty, TZ) == []
    with pytest.raises(UpstreamChanged):
        ap.parse_messages("<html><body><table class='other'></table></body></html>", TZ)


# ------------------------------------------------------------------ shelves
@pytest.mark.parametrize("library", LIBRARIES)
def test_shelves_and_items(library: str) -> None:
    shelves = ap.parse_shelves(page(library, "shelves.html"))
    assert [(s.name, s.item_count) for s in shelves] == [("明治維新", 2)]
    assert shelves[0].id.isdigit()
    items = ap.parse_shelf_items(page(library, "shelf_items.html"))
    assert items.name == "明治維新" and items.total == 2
    assert [i.title for i in items.items] == ["赤松小三郎ともう一つの明治維新", "悪意"]
    assert items.items[0].author == "関 良基 / 著" and items.items[0].added_on is not None


def test_empty_shelf_list() -> None:
    assert ap.parse_shelves(page("kumamoto-city", "shelves_empty.html")) == []


def test_shelf_confirm_screen() -> None:
    listed = ap.parse_confirm_items(page("kumamoto-city", "shelf_delete_confirm.html"))
    assert [i.title for i in listed] == ["明治維新（2冊）"]


def test_missing_shelf_page_is_a_refusal_not_a_list() -> None:
    html = page("kumamoto-city", "shelf_missing.html")
    assert ap.form_errors(html) == ["指定された本棚は存在しません。"]
    with pytest.raises(UpstreamChanged):
        ap.parse_shelf_items(html)


@pytest.mark.parametrize("library", LIBRARIES)
def test_download_becomes_csv(library: str) -> None:
    text = page(library, "shelf_download.txt")
    csv_text = ap.shelf_download_to_csv(text)
    rows = csv_text.splitlines()
    assert rows[0] == ",".join(ap.EXPORT_COLUMNS)
    assert rows[1].split(",")[1] == "赤松小三郎ともう一つの明治維新"
    assert rows[1].split(",")[4] == "2016.12" and rows[1].split(",")[6].count("-") == 2
    with pytest.raises(UpstreamChanged):
        ap.shelf_download_to_csv("<html>エラー</html>")


# ------------------------------------------------------------------ SDI
@pytest.mark.parametrize("library", LIBRARIES)
def test_sdi_list_and_form(library: str) -> None:
    rows = ap.parse_sdi_list(page(library, "sdi_list.html"))
    assert [(r.title, r.active) for r in rows] == [("パソコン", True)]
    alert = ap.parse_sdi_form(page(library, "sdi_form.html"), rows[0].active)
    assert alert.id == rows[0].id and alert.name == "パソコン" and alert.memo is None
    assert [(c.field, c.op, c.value) for c in alert.conditions] == [("title", "contains", "パソコン")]
    assert (alert.match, alert.max_results, alert.active, alert.source) == ("all", 10, True, "library")


def test_sdi_empty_list_and_changed_list() -> None:
    assert ap.parse_sdi_list(page("kumamoto-city", "sdi_empty.html")) == []
    with pytest.raises(UpstreamChanged):
        ap.parse_sdi_list("<html><body><h1>新着図書お知らせメール</h1></body></html>")
