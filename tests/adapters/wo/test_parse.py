"""Parsers of the wo portal (山口県立山口図書館) on saved pages (fixtures/wo/pages/).

The pages were captured from the simulator on 2026-11-24 (JST) with
``python -m fixtures.wo.capture_pages``; they are read as the portal serves them:
Shift_JIS-labelled Windows-31J bytes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from adapters.wo import parse
from core.errors import UpstreamChanged

PAGES = Path(__file__).resolve().parents[3] / "fixtures" / "wo" / "pages"
TODAY = date(2026, 11, 24)
LIB = "yamaguchi-pref"


def page(name: str) -> str:
    return parse.decode((PAGES / name).read_bytes(), "text/html; charset=Shift_JIS")


def test_decode_uses_windows_31j_for_shift_jis_and_falls_back_to_meta() -> None:
    raw = "①～ 山口".encode("cp932")  # NEC extensions that strict Shift_JIS cannot decode
    assert parse.decode(raw, "text/html; charset=Shift_JIS") == "①～ 山口"
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">' + "山口".encode("euc_jp")
    assert parse.decode(meta, None).endswith("山口")
    assert parse.decode("山口".encode(), None) == "山口"


def test_an_undeclared_shift_jis_loans_page_gives_the_right_titles() -> None:
    """#16.10: no charset in the header or the page: detected, never mojibake."""
    raw = (PAGES / "lend.html").read_bytes().replace(b"; charset=Shift_JIS", b"")
    loans = parse.parse_loans(parse.decode(raw, "text/html"), LIB, TODAY)
    assert [l.title for l in loans] == [l.title for l in parse.parse_loans(page("lend.html"), LIB, TODAY)]
    assert loans and all("\ufffd" not in l.title for l in loans)
    assert "羅生門・鼻" in {l.title for l in loans}


def test_pages_are_scrubbed() -> None:
    for p in PAGES.glob("*.html"):
        text = page(p.name)
        for marker in ('name="wo_ctkn" value="', 'name="reg_key" value="'):
            if marker in text:
                assert text.split(marker, 1)[1].startswith("SCRUBBED"), p.name


def test_loans() -> None:
    loans = parse.parse_loans(page("lend.html"), LIB, TODAY)
    assert [ln.id for ln in loans] == ["1000050003", "1000050002", "1000050004"]
    reserved, ok, renewed = loans
    assert ok.renewable and ok.not_renewable_reason is None
    assert ok.title == "注文の多い料理店" and ok.record_id == "1000000018"
    assert ok.loaned_on == date(2026, 11, 14) and ok.due_on == date(2026, 11, 28)
    assert (reserved.renewable, reserved.not_renewable_reason) == (False, "reserved")
    assert (renewed.renewable, renewed.not_renewable_reason, renewed.times_renewed) == (False, "already_renewed", 1)
    assert not any(ln.overdue for ln in loans)
    assert all(ln.overdue for ln in parse.parse_loans(page("lend.html"), LIB, date(2026, 12, 31)))


def test_renewal_results() -> None:
    ok, missing = parse.parse_renewal_results(page("ext_result.html"))
    assert (ok.item_id, ok.ok, ok.due_on) == ("1000050002", True, date(2026, 12, 8))
    assert (missing.ok, missing.due_on) == (False, None)
    assert parse.refusal_reason("延長できません（予約者がいます）") == "reserved"
    assert parse.refusal_reason("延長できません（返却期限を過ぎています）") == "overdue"
    assert parse.refusal_reason("延長できません（既に延長済です）") == "already_renewed"
    assert parse.refusal_reason("延滞中") == "overdue"


def test_holds() -> None:
    waiting, ready, submitted = parse.parse_holds(page("rsv.html"), LIB)
    assert (waiting.id, waiting.status, waiting.position, waiting.cancelable) == ("R00001201", "waiting", 2, True)
    assert waiting.pickup_branch == "本館" and waiting.contact_method == "Eメール"
    assert (ready.status, ready.ready_until, ready.cancelable, ready.pickup_branch) == (
        "ready", date(2026, 11, 30), False, "こども室")
    assert submitted.status == "submitted" and submitted.placed_on == date(2026, 11, 23)
    assert parse.parse_hold_number(page("rsv_done.html")) == "R00001204"


def test_profile() -> None:
    assert "1000000002" not in page("usr_info.html")  # the portal itself masks the card number
    prof = parse.parse_profile(page("usr_info.html"), "******0002")
    assert prof.name == "周防 花子"
    assert [e.address for e in prof.emails] == ["hanako@example.jp"]
    assert prof.card_expires_on == date(2028, 3, 31)  # printed in the era: R10.03.31
    assert prof.notifications.due_reminder.enabled and prof.notifications.due_reminder.days_before == 2
    assert prof.contact_method == "Eメール" and prof.pickup_branch == "本館"


def test_search_results_and_paging() -> None:
    first = parse.parse_search(page("srh_rslt.html"), 1)
    assert first.total == 74 and len(first.records) == 20
    assert first.records[0].title == "アンパンマンのサンタクロース"
    assert first.records[0].isbn and first.records[0].isbn.isdigit()
    second = parse.parse_search(page("srh_rslt_p2.html"), 2)
    assert second.page == 2 and second.records[0].id == "1000001018"
    none = parse.parse_search(page("srh_none.html"), 1)
    assert (none.total, none.records) == (0, [])


def test_record_detail() -> None:
    rec = parse.parse_record(page("srh_detail.html"))
    assert rec.id == "1000000002"
    assert rec.title == "赤松小三郎ともう一つの明治維新 : テロに葬られた立憲主義の夢"
    assert rec.isbn == "9784861826115" and rec.classification == "289.1"
    assert [(h.branch, h.status, h.call_number) for h in rec.holdings] == [("本館", "available", "289.1/セ")]


def test_enet_requests_map_to_iso18626() -> None:
    codes = {"35201": "shimonoseki", "35206": "hofu", "35202": "ube"}
    reqs = parse.parse_enet_requests(page("enet_list.html"), codes)
    assert [(r.upstream_id, r.status) for r in reqs] == [
        ("E2026112400003", "requested"), ("E2026112400002", "unfilled"), ("E2026112400001", "ready_for_pickup")]
    first = reqs[0]
    assert first.extra["pickup_library"] == "ube" and first.extra["pickup_name"] == "宇部市立図書館"
    assert first.extra["cancelable"] is True and reqs[2].extra["cancelable"] is False
    assert first.record_id == "1000000003" and first.title == "悪意"
    assert first.extra["requested_at"].startswith("2026-11-24T")
    assert parse.parse_enet_requests(page("enet_empty.html")) == []
    assert parse.parse_enet_number(page("enet_done.html")) == "E2026112400003"


@pytest.mark.parametrize(
    ("word", "status"),
    [("受付中", "requested"), ("発送準備中", "accepted"), ("発送済", "shipped"), ("到着済(受取可)", "ready_for_pickup"),
     ("到着済（受取可）", "ready_for_pickup"), ("貸出中", "loaned"), ("返却済", "returned"), ("完了", "completed"),
     ("取消", "cancelled"), ("謝絶", "unfilled")],
)
def test_enet_state_words(word: str, status: str) -> None:
    assert parse.enet_status(word) == status


def test_unknown_enet_state_is_upstream_changed() -> None:
    with pytest.raises(UpstreamChanged):
        parse.enet_status("紛失")


def test_enet_form_offers_no_yamaguchi_chuo() -> None:
    options = parse.select_options(page("enet_entry.html"), parse.SEL_ENET_PICKUP)
    assert len(options) == 23 and options["35201"] == "下関市立中央図書館"
    assert "山口市立中央図書館" not in options.values()
    info = parse.page_info(page("enet_refused_pickup.html"))
    assert "山口市立中央図書館" in info.errors[0]


def test_page_info_messages() -> None:
    assert parse.page_info(page("login.html")).is_login
    assert "パスワードが登録されていません" in parse.page_info(page("login_no_password.html")).errors[0]
    assert parse.page_info(page("menu.html")).ctkn == "SCRUBBED"
    assert parse.MSG_BAD_TOKEN in parse.page_info(page("bad_token.html")).errors[0]
    assert "取り消しできません" in parse.page_info(page("enet_cancel_refused.html")).errors[0]
    assert parse.page_info(page("pwreg_done.html")).oks == ("パスワードの登録が完了しました。",)


def test_registration_steps() -> None:
    assert parse.parse_registration_key(page("pwreg_step2.html")) == "SCRUBBED"
    assert parse.parse_registration_key(page("pwreg_error.html")) is None
    assert "8文字以上20文字以下" in parse.page_info(page("pwreg_policy.html")).errors[0]


@pytest.mark.parametrize(
    "fn",
    [lambda p: parse.parse_loans(p, LIB, TODAY), lambda p: parse.parse_holds(p, LIB), parse.parse_record,
     lambda p: parse.parse_search(p, 1), parse.parse_enet_requests, parse.parse_enet_number,
     parse.parse_hold_number, lambda p: parse.parse_profile(p, "x"), parse.parse_renewal_results],
)
def test_a_foreign_page_is_upstream_changed_never_empty(fn: object) -> None:
    foreign = "<html><body><h2 class='wo_ttl'>メンテナンス中</h2><p>ただいまシステムメンテナンス中です。</p></body></html>"
    with pytest.raises(UpstreamChanged):
        fn(foreign)  # type: ignore[operator]


def test_menu_page_is_not_a_loan_list() -> None:
    with pytest.raises(UpstreamChanged):
        parse.parse_loans(page("menu.html"), LIB, TODAY)


def test_selectors_are_named_constants() -> None:
    """DESIGN rule: every selector is a named constant at the top of the module, so no
    css()/css_first()/_cell()/select_options()/selected_option() call takes a literal."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "adapters" / "wo"
    calls = {"css", "css_first", "_cell", "select_options", "selected_option"}
    inline = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in calls and any(isinstance(a, ast.Constant | ast.JoinedStr) for a in node.args):
                    inline.append(f"{path.name}:{node.lineno}")
    assert inline == []
