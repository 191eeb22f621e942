"""The winj simulator enforces the portal's rules itself (Flask test client, no
adapter): charsets, login redirects, the forced password change, the maintenance
window, password policy, Kagoshima's renewal rules, the overdue hold block, the cart
limit, staff approval of web holds, per-library context paths, latency.  The 14
behaviours of REAL_WINJ.md's list are in ``test_behaviours.py``.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import timedelta

import pytest

from fixtures.winj import DEMO_ACCOUNTS, LIBRARIES, base_path, create_app
from tests.adapters.winj.flows import FROZEN
from tests.adapters.winj.test_behaviours import Browser, browser


def demo(library: str, n: int = 0) -> tuple[str, str]:
    card, password, _ = DEMO_ACCOUNTS[library][n]
    return card, password


@pytest.mark.parametrize("library", LIBRARIES)
def test_pages_declare_and_use_the_library_charset(library: str) -> None:
    b = Browser(library)
    r = b.get("login.do")
    charset = b.state.layout.charset
    assert r.headers["content-type"] == f"text/html; charset={charset}"
    assert f"charset={charset}" in b.text(r)
    assert ("Shift_JIS" == charset) == (library == "niigata-city")  # the one legacy-charset portal


def test_context_paths_are_the_librarys_own() -> None:
    assert [base_path(lib) for lib in LIBRARIES] == ["/winj/opac", "/kento/opac", "/opac", "/winj/opac"]
    k = Browser("kagoshima-pref")
    assert k.c.get("/kento/opac/top.do").status_code == 200
    assert k.c.get("/winj/opac/top.do").status_code == 404
    r = browser("kagoshima-pref", *demo("kagoshima-pref"))
    assert r.state.sessions  # logged in under /kento/opac
    # dispatch is relative to the context root: /opac/..., served under /kento
    b = Browser("kagoshima-pref")
    b.get("top.do")
    b.get("login.do?dispatch=/opac/reserve-list.do")
    card, password = demo("kagoshima-pref")
    res = b.post("login.do?dispatch=/opac/reserve-list.do", {"txt_usercd": card, "txt_password": password})
    assert urllib.parse.urlsplit(res.headers["Location"]).path == "/kento/opac/reserve-list.do"


def test_doubled_slashes_are_tolerated_only_where_the_layout_says_so() -> None:
    k = Browser("kumamoto-city")  # 愛知-style tolerance
    assert k.c.get("/winj//opac/login.do").status_code == 200
    n = Browser("niigata-city")
    assert n.c.get("/winj//opac/login.do").status_code == 404


def test_login_redirects_and_protected_pages() -> None:
    b = Browser("kumamoto-city")
    r = b.get("lend-list.do")
    assert r.status_code == 302
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.path == "/winj/opac/login.do" and "dispatch=%2Fopac%2Flend-list.do" in loc.query
    bad = b.login("0000002377570", "nope")
    assert bad.status_code == 200 and "誤り" in b.text(bad) and 'name="LoginForm"' in b.text(bad)
    ok = b.login(*demo("kumamoto-city"))
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/winj/opac/mylibrary.do")
    my = b.text(b.get("mylibrary.do"))
    assert "マイページ" in my and "ログアウト" in my
    assert re.search(r"<dd>現在、借受中の資料です。</dd></dl><p class=\"number\"><span>3</span>", my)
    assert '<LI style="float:none;">利用可能な資料があります。（1冊）</LI>' in my
    assert "ログアウトしました" in b.text(b.get("logout.do"))
    assert b.get("lend-list.do").status_code == 302


def test_kagoshima_renewal_rules_in_the_simulator() -> None:
    b = browser("kagoshima-pref", *demo("kagoshima-pref"))
    html = b.text(b.get("lend-list.do"))
    ctrl = re.search(r'href="([^"]*submit_btn_extend[^"]*)"', html)
    assert ctrl and html.count("submit_btn_extend") == 1
    confirm = b.text(b.c.get(ctrl.group(1).replace("&amp;", "&")))
    lenid = re.search(r'name="hid_lenid" value="(\d+)"', confirm).group(1)  # type: ignore[union-attr]
    done = b.text(b.post("lend-extension-confirm.do", {"hid_session": b.hid(), "hid_lenid": lenid,
                                                       "submit_btn_confirm": "貸出延長する"}))
    new_due = FROZEN.date() + timedelta(days=14)  # from the moment of renewal, not the old due date
    assert "貸出延長申込が完了しました" in done and b.state.layout.fmt_date(new_due) in done
    # the rows without the control are refused if forced through with their index
    st = b.state
    for loan in st.loans["9999999999"]:
        if loan.due_on < st.today():
            assert loan.times_renewed == 0  # the overdue one stayed
    html = b.text(b.get("lend-list.do"))
    idx = [m for m in re.findall(r'lend-detail\.do\?idx=(\d+)', html)]
    refused = [b.text(b.get(f"lend-list.do?idx={i}&submit_btn_extend=x&hid_session={b.hid()}")) for i in idx]
    assert sum("理由:" in r for r in refused) == 4  # all four: renewed now, overdue, reserved, renewed before


def test_overdue_patron_cannot_reserve_and_the_cart_is_not_a_hold() -> None:
    b = browser("kagoshima-pref", *demo("kagoshima-pref"))
    rid = b.state.catalog.held[30].id
    r = b.post("switch-detail.do", {"hid_session": b.hid(), "bibid": rid, "submit_btn_reserve_basket": "予約かご"})
    assert "予約かごに追加しました" in b.text(r)
    before = len(b.state.holds["9999999999"])
    r = b.post("reserve-basket.do", {"hid_session": b.hid(), "hid_aplph": "W", "chk_check": rid,
                                     "submit_btn_reservation": "通常予約する"})
    assert "理由:延滞本をお持ちの場合、予約できません" in b.text(r)
    assert len(b.state.holds["9999999999"]) == before


def test_cart_holds_at_most_ten() -> None:
    b = browser("kumamoto-city", *demo("kumamoto-city"))
    held = b.state.catalog.held
    texts = [b.text(b.post("switch-detail.do", {"hid_session": b.hid(), "bibid": held[100 + i].id,
                                                 "submit_btn_reserve_basket": "予約かご"})) for i in range(10)]
    assert "予約かごが一杯です" in texts[-1] and "最大10件" in texts[-1]
    assert len(b.state.carts["0000002377570"]) == 10


def test_basket_delete_goes_through_its_confirm() -> None:
    b = browser("kumamoto-city", *demo("kumamoto-city"))
    rid = b.state.carts["0000002377570"][0].record_id
    confirm = b.text(b.post("reserve-basket.do", {"hid_session": b.hid(), "hid_aplph": "W", "chk_check": rid,
                                                  "submit_btn_delete": "削除"}))
    assert f'name="hid_idlist" value="{rid}"' in confirm
    assert rid in {e.record_id for e in b.state.carts["0000002377570"]}  # not yet
    done = b.text(b.post("reserve-basket-delete.do", {"hid_session": b.hid(), "hid_idlist": rid,
                                                      "submit_btn_delete": "削除"}))
    assert "予約かごから削除しました" in done and not b.state.carts["0000002377570"]


def test_forced_change_blocks_everything_else_and_enforces_the_policy() -> None:
    b = Browser("amami")
    card, initial = demo("amami", 1)
    r = b.login(card, initial)
    assert r.status_code == 302 and r.headers["Location"].endswith("password-change.do")
    r = b.get("lend-list.do")
    assert r.status_code == 302 and r.headers["Location"].endswith("password-change.do")
    r = b.post("password-change.do", {"hid_session": b.hid(), "txt_password": initial, "txt_new_password": "abcdefgh",
                                      "txt_new_password2": "abcdefgh", "btn_update": "更新"})
    assert "数字を1文字以上" in b.text(r)  # Amami: a letter and a digit, 8+ characters
    r = b.post("password-change.do", {"hid_session": b.hid(), "txt_password": initial, "txt_new_password": "Abc12345",
                                      "txt_new_password2": "Abc12345", "btn_update": "更新"})
    assert "パスワードを変更しました" in b.text(r)
    assert b.get("lend-list.do").status_code == 200
    b.c = b.app.test_client()  # a new browser against the same portal
    r = b.login(card, "abc12345")  # Amami's letters are case-insensitive
    assert r.status_code == 302 and r.headers["Location"].endswith("/opac/mylibrary.do")


def test_niigata_temporary_password_asks_to_log_in_again() -> None:
    b = Browser("niigata-city")
    card, temporary = demo("niigata-city", 1)
    b.login(card, temporary)
    assert "仮パスワード" in b.text(b.get("password-change.do"))
    r = b.text(b.post("password-change.do", {"hid_session": b.hid(), "txt_password": temporary,
                                             "txt_new_password": "5678", "txt_new_password2": "5678",
                                             "btn_update": "更新"}))
    assert "新パスワードにて改めてログインしてください" in r
    assert b.get("mylibrary.do").status_code == 302  # logged out
    assert b.login(card, "5678").headers["Location"].endswith("mylibrary.do")


def test_kumamoto_maintenance_window() -> None:
    b = Browser("kumamoto-city")
    b.state.clock = lambda: FROZEN.replace(hour=4, minute=0)
    r = b.get("login.do")
    assert r.status_code == 503 and "メンテナンス" in b.text(r)
    b.state.clock = lambda: FROZEN.replace(hour=5, minute=0)
    assert b.get("login.do").status_code == 200
    k = Browser("kagoshima-pref")  # no window there
    k.state.clock = lambda: FROZEN.replace(hour=4, minute=30)
    assert k.get("top.do").status_code == 200


def test_search_paging_one_hit_and_no_hits() -> None:
    b = Browser("niigata-city")  # Shift_JIS: the query is sent in the portal's charset
    q = urllib.parse.urlencode([("cmb_column1", "title"), ("txt_word1", "サンタクロース"),
                                ("submit_btn_searchDetailSelAr", "所蔵検索")], encoding="cp932")
    r = b.text(b.get(f"search-detail.do?{q}"))
    total = int(re.search(r"（全(\d+) 件）", r).group(1))  # type: ignore[union-attr]
    assert total > 10 and r.count('<div class="report">') == 10
    assert re.search(r'<li class="next"><a href="[^"]*search-list\.do\?page=2">', r)
    two = b.text(b.get("search-list.do?page=2"))
    assert "11 ～ 20 件" in two or f"11 ～ {total} 件" in two
    isbn = b.state.catalog.held[0].isbn
    one = b.text(b.get(f"search-detail.do?cmb_code_column=isbn&txt_code={isbn}&submit_btn_searchDetailSelAr=x"))
    assert '<table class="tbl-04">' in one and "nav-hdg" not in one  # one hit: the detail page itself
    q = urllib.parse.urlencode([("txt_word", "存在しない書名xyz"), ("submit_btn_searchEasy", "検索")], encoding="cp932")
    none = b.text(b.get(f"search-standard.do?{q}"))
    assert "該当するリストが存在しません。" in none and "nav-hdg" not in none


def test_web_holds_wait_as_submitted_until_the_staff_approve_them() -> None:
    card, password = demo("kagoshima-pref", 1)
    b = browser("kagoshima-pref", card, password)
    rid = b.state.catalog.held[33].id
    b.post("switch-detail.do", {"hid_session": b.hid(), "bibid": rid, "submit_btn_reserve_basket": "予約かご"})
    b.post("reserve-basket.do", {"hid_session": b.hid(), "hid_aplph": "W", "chk_check": rid,
                                 "submit_btn_reservation": "通常予約する"})
    done = b.text(b.post("reserve-confirm.do", {"hid_session": b.hid(), "hid_aplph": "W", "cmb_email": "",
                                                "submit_btn_confirm": "予約する"}))
    assert "以下のタイトルについて予約を行いました。" in done
    new = next(h for h in b.state.holds[card] if h.record_id == rid)
    assert new.status_word == "申込中"
    b.state.clock = lambda: FROZEN + timedelta(days=2)
    b.get("reserve-list.do")
    assert new.status_word == "予約中"


def test_latency_is_added_to_every_response() -> None:
    import time

    app = create_app("amami", latency_ms=60)
    c = app.test_client()
    t0 = time.perf_counter()
    assert c.get("/opac/login.do").status_code == 200
    assert time.perf_counter() - t0 >= 0.06


@pytest.mark.e2e
def test_opacgw_simulate_serves_one_library_alone() -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPACGW_")}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate", "niigata-city", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/winj/opac/login.do", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("opacgw simulate did not come up")
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=Shift_JIS"
        assert "利用者カードの番号" in r.content.decode("cp932")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
