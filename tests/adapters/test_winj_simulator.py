"""The winj simulator enforces the portal's rules itself (Flask test client, no
adapter): hid_session on every POST, login redirects, the forced password change,
session-relative indexes, charsets, the maintenance window, password policy,
Kagoshima's renewal rules, the overdue hold block, the cart limit.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import timedelta
from typing import Any

import pytest

from fixtures.winj import DEMO_ACCOUNTS, LIBRARIES, create_app
from fixtures.winj.portal import EXT_KEY
from tests.adapters.winj_flows import FROZEN

BASE = "/winj/opac"
CODECS = {"UTF-8": "utf-8", "Shift_JIS": "cp932", "EUC-JP": "euc_jp"}


class Portal:
    def __init__(self, library: str) -> None:
        self.app = create_app(library, clock=lambda: FROZEN)
        self.state = self.app.extensions[EXT_KEY]
        self.c = self.app.test_client()
        self.codec = CODECS[self.state.charset]
        self.hid = ""

    def get(self, path: str, **kw: Any) -> Any:
        r = self.c.get(f"{BASE}/{path}", **kw)
        self._hid(r)
        return r

    def post(self, path: str, pairs: list[tuple[str, str]], hid: bool = True) -> Any:
        if hid:
            pairs = [*pairs, ("hid_session", self.hid)]
        body = urllib.parse.urlencode(pairs, encoding=self.codec)
        r = self.c.post(f"{BASE}/{path}", data=body, content_type="application/x-www-form-urlencoded")
        self._hid(r)
        return r

    def _hid(self, r: Any) -> None:
        m = re.search(rb'name="hid_session" value="([^"]+)"', r.data)
        if m:
            self.hid = m.group(1).decode()

    def text(self, r: Any) -> str:
        return r.data.decode(self.codec)

    def login(self, card: str, password: str) -> Any:
        self.get("login.do")
        return self.post("login.do", [("txt_usercd", card), ("txt_password", password)], hid=False)


def demo(library: str, n: int = 0) -> tuple[str, str]:
    card, password, _ = DEMO_ACCOUNTS[library][n]
    return card, password


@pytest.mark.parametrize("library", LIBRARIES)
def test_pages_declare_and_use_the_library_charset(library: str) -> None:
    p = Portal(library)
    r = p.get("login.do")
    assert r.headers["Content-Type"] == f"text/html; charset={p.state.charset}"
    assert f'<meta charset="{p.state.charset}">' in p.text(r)
    assert "利用者カードの番号" in p.text(r)
    assert "JSESSIONID=" in r.headers.get("Set-Cookie", "")


def test_login_redirects_and_protected_pages() -> None:
    p = Portal("kumamoto-city")
    r = p.get("lend-list.do")
    assert r.status_code == 302 and "login.do" in r.headers["Location"]
    r = p.login(*demo("kumamoto-city"))
    assert r.status_code == 302 and r.headers["Location"].endswith("mylibrary.do")
    r = p.get("mylibrary.do")
    assert "0000002377570さんのライブラリ" in p.text(r) and "借りている資料" in p.text(r)
    bad = p.login("0000002377570", "9999")
    assert bad.status_code == 200 and "正しくありません" in p.text(bad)


def test_every_post_must_echo_hid_session() -> None:
    p = Portal("kumamoto-city")
    p.login(*demo("kumamoto-city"))
    p.get("lend-list.do")
    r = p.post("lend-extension-confirm.do", [("chk_lend", "0")], hid=False)
    assert "不正な画面遷移" in p.text(r)
    r = p.post("lend-extension-confirm.do", [("chk_lend", "0"), ("hid_session", "forged")], hid=False)
    assert "不正な画面遷移" in p.text(r)
    r = p.post("lend-extension-confirm.do", [("chk_lend", "0")])
    assert "貸出延長確認" in p.text(r)


def test_renewal_index_is_relative_to_the_list_this_session_saw() -> None:
    p = Portal("kagoshima-pref")
    p.login(*demo("kagoshima-pref"))
    # no list shown yet in this session: the index means nothing
    r = p.post("lend-extension-confirm.do", [("chk_lend", "0")])
    assert "一覧を表示してから操作してください" in p.text(r)
    p.get("lend-list.do")
    r = p.post("lend-extension-confirm.do", [("chk_lend", "9")])
    assert "一覧を表示してから操作してください" in p.text(r)


def test_kagoshima_renewal_rules_in_the_simulator() -> None:
    p = Portal("kagoshima-pref")
    p.login(*demo("kagoshima-pref"))
    html = p.text(p.get("lend-list.do"))
    n = html.count('class="lend-row"')
    p.post("lend-extension-confirm.do", [("chk_lend", str(i)) for i in range(n)])
    r = p.text(p.post("lend-extension.do", [("btn_extension", "延長")]))
    assert "貸出延長申込が完了しました" in r
    assert r.count("理由:") == 3
    for reason in ("返却期限を過ぎています", "他の利用者の予約が入っています", "既に延長済です"):
        assert reason in r
    new_due = (FROZEN.date() + timedelta(days=14)).strftime("%Y/%m/%d")
    assert new_due in r


def test_overdue_patron_cannot_reserve_and_the_cart_is_not_a_hold() -> None:
    p = Portal("kagoshima-pref")
    p.login(*demo("kagoshima-pref"))
    rid = p.state.catalog.held[30].id
    r = p.post("reserve-basket-add.do", [("bibid", rid)])
    assert "予約かごに追加しました" in p.text(r)
    holds_before = len(p.state.holds["9999999999"])
    r = p.post("reserve-basket.do", [("chk_basket", "1"), ("btn_reserve", "通常予約")])
    assert "延滞本をお持ちの場合、予約できません" in p.text(r)
    assert len(p.state.holds["9999999999"]) == holds_before


def test_cart_holds_at_most_ten() -> None:
    p = Portal("kumamoto-city")
    p.login(*demo("kumamoto-city"))
    held = p.state.catalog.held
    texts = [p.text(p.post("reserve-basket-add.do", [("bibid", held[40 + i].id)])) for i in range(10)]
    assert "予約かごが一杯です" in texts[-1] and "最大10件" in texts[-1]
    assert len(p.state.carts["0000002377570"]) == 10


def test_forced_change_blocks_everything_else_and_enforces_the_policy() -> None:
    p = Portal("amami")
    card, initial = demo("amami", 1)
    r = p.login(card, initial)
    assert r.status_code == 302 and r.headers["Location"].endswith("password-change.do")
    r = p.get("lend-list.do")
    assert r.status_code == 302 and r.headers["Location"].endswith("password-change.do")
    p.get("password-change.do")
    r = p.post("password-change.do", [("txt_password", initial), ("txt_new_password", "abcdefgh"),
                                      ("txt_new_password2", "abcdefgh"), ("btn_update", "更新")])
    assert "数字を1文字以上" in p.text(r)  # Amami: a letter and a digit, 8+ characters
    r = p.post("password-change.do", [("txt_password", initial), ("txt_new_password", "Abc12345"),
                                      ("txt_new_password2", "Abc12345"), ("btn_update", "更新")])
    assert "パスワードを変更しました" in p.text(r)
    assert p.get("lend-list.do").status_code == 200
    # Amami's letters are case-insensitive
    p.c = p.app.test_client()  # a new browser against the same portal
    r = p.login(card, "abc12345")
    assert r.status_code == 302 and r.headers["Location"].endswith("mylibrary.do")


def test_niigata_temporary_password_asks_to_log_in_again() -> None:
    p = Portal("niigata-city")
    card, temporary = demo("niigata-city", 1)
    p.login(card, temporary)
    r = p.text(p.get("password-change.do"))
    assert "仮パスワード" in r
    r = p.text(p.post("password-change.do", [("txt_password", temporary), ("txt_new_password", "5678"),
                                             ("txt_new_password2", "5678"), ("btn_update", "更新")]))
    assert "新パスワードにて改めてログインしてください" in r
    assert p.get("mylibrary.do").status_code == 302  # logged out
    assert p.login(card, "5678").headers["Location"].endswith("mylibrary.do")


def test_kumamoto_maintenance_window() -> None:
    p = Portal("kumamoto-city")
    p.state.clock = lambda: FROZEN.replace(hour=4, minute=0)
    r = p.get("login.do")
    assert r.status_code == 503 and "メンテナンス" in p.text(r)
    p.state.clock = lambda: FROZEN.replace(hour=5, minute=0)
    assert p.get("login.do").status_code == 200
    q = Portal("kagoshima-pref")  # no window there
    q.state.clock = lambda: FROZEN.replace(hour=4, minute=30)
    assert q.get("login.do").status_code == 200


def test_search_paging_and_shift_jis_queries() -> None:
    p = Portal("kagoshima-pref")
    q = urllib.parse.urlencode([("txt_title", "サンタクロース"), ("page", "2")], encoding="cp932")
    r = p.text(p.get(f"search-list.do?{q}"))
    total = int(re.search(r'id="hit-count">(\d+)<', r).group(1))  # type: ignore[union-attr]
    assert total > 10 and r.count('class="result-item"') == 10
    assert "前へ" in r and ("次へ" in r) == (total > 20)
    assert "検索条件を入力してください" in p.text(p.get("search-list.do"))


def test_web_holds_wait_as_submitted_until_the_staff_approve_them() -> None:
    p = Portal("kagoshima-pref")
    card, password = demo("kagoshima-pref", 1)
    p.login(card, password)
    rid = p.state.catalog.held[33].id
    p.post("reserve-basket-add.do", [("bibid", rid)])
    basket = p.text(p.get("reserve-basket.do"))
    index = basket.count('class="basket-row"') - 1
    p.post("reserve-basket.do", [("chk_basket", str(index)), ("btn_reserve", "通常予約")])
    assert "予約を行いました" in p.text(p.post("reserve-confirm.do", [("btn_ok", "予約")]))
    new = next(h for h in p.state.holds[card] if h.record_id == rid)
    assert new.status_word == "申込中"
    p.state.clock = lambda: FROZEN + timedelta(days=2)
    p.get("reserve-list.do")
    assert new.status_word == "予約中"


def test_latency_is_added_to_every_response() -> None:
    import time

    app = create_app("amami", latency_ms=60)
    c = app.test_client()
    t0 = time.perf_counter()
    assert c.get(f"{BASE}/login.do").status_code == 200
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
                r = httpx.get(f"http://127.0.0.1:{port}{BASE}/login.do", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("opacgw simulate did not come up")
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=EUC-JP"
        assert "利用者カードの番号" in r.content.decode("euc_jp")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
