"""The wo simulator enforces the library's rules itself (it is the upstream, not a mock)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from fixtures.wo import LIBRARIES, create_app
from fixtures.wo.state import ENET_FLOW

P = "/wo/opc_srh"


def text(resp: Any) -> str:
    assert "Shift_JIS" in resp.headers["Content-Type"]
    return resp.data.decode("cp932")


def token(resp: Any) -> str:
    m = re.search(r'name="wo_ctkn" value="([^"]+)"', text(resp))
    assert m
    return m.group(1)


@pytest.fixture
def app() -> Any:
    return create_app("yamaguchi-pref")


def logged_in(app: Any, card: str = "1000000002", pw: str = "Suou-Hanako2026") -> tuple[Any, str]:
    c = app.test_client()
    t = token(c.get(f"{P}/usr_login"))
    r = c.post(f"{P}/usr_login", data={"usr_id": card, "usr_pw": pw, "wo_ctkn": t})
    assert r.status_code == 302
    return c, token(c.get(f"{P}/usr_menu"))


def test_exports() -> None:
    assert LIBRARIES == ("yamaguchi-pref",)


@pytest.mark.parametrize("pw", ["short12", "x" * 21, "ぱすわーど12345", "with space1"])
def test_registration_policy_is_enforced_by_the_portal(app: Any, pw: str) -> None:
    c = app.test_client()
    step2 = text(c.post(f"{P}/pwd_reg", data={"usr_id": "1000000001", "birth_ymd": "19900101"}))
    key = re.search(r'name="reg_key" value="([^"]+)"', step2).group(1)  # type: ignore[union-attr]
    page = text(c.post(f"{P}/pwd_reg_exe", data={"reg_key": key, "new_pw": pw, "new_pw_cnf": pw}))
    assert "8文字以上20文字以下" in page
    mismatch = text(c.post(f"{P}/pwd_reg_exe", data={"reg_key": key, "new_pw": "Abcdefg1!", "new_pw_cnf": "Abcdefg1?"}))
    assert "一致しません" in mismatch
    ok = text(c.post(f"{P}/pwd_reg_exe", data={"reg_key": key, "new_pw": "Abc~!@#$%^&*()12", "new_pw_cnf": "Abc~!@#$%^&*()12"}))
    assert "パスワードの登録が完了しました" in ok
    logged_in(app, "1000000001", "Abc~!@#$%^&*()12")


def test_birth_date_must_be_eight_digits(app: Any) -> None:
    c = app.test_client()
    assert "8桁" in text(c.post(f"{P}/pwd_reg", data={"usr_id": "1000000001", "birth_ymd": "1990-1-1"}))


def test_pages_need_the_session_and_the_token(app: Any) -> None:
    anon = app.test_client()
    r = anon.get(f"{P}/usr_lend")
    assert r.status_code == 302 and "usr_login" in r.headers["Location"]
    c, _ = logged_in(app)
    r = c.post(f"{P}/usr_enet_cancel", data={"wo_ctkn": "forged", "chk_enet": "E1"})
    assert r.status_code == 400 and "不正な画面遷移" in text(r)


def test_enet_refuses_yamaguchi_chuo_and_limits_active_requests(app: Any) -> None:
    c, t = logged_in(app)
    page = text(c.get(f"{P}/enet_entry?bibid=1000000002"))
    assert "山口市立中央図書館を除く" in page and 'value="35203"' not in page
    r = text(c.post(f"{P}/enet_entry", data={"wo_ctkn": t, "bibid": "1000000002", "sel_enet_uktr": "35203",
                                             "btn_exe": "1"}))
    assert "山口市立中央図書館はe-Net貸出の受取館に指定できません" in r
    ids = sorted(app.config["portal"].state.records)[:6]
    for bib in ids[:5]:
        assert "申込を受け付けました" in text(c.post(f"{P}/enet_entry", data={
            "wo_ctkn": t, "bibid": bib, "sel_enet_uktr": "35201", "btn_exe": "1"}))
    assert "5件まで" in text(c.post(f"{P}/enet_entry", data={
        "wo_ctkn": t, "bibid": ids[5], "sel_enet_uktr": "35201", "btn_exe": "1"}))


def test_admin_advance_walks_the_flow_and_lends_the_item(app: Any) -> None:
    c, t = logged_in(app)
    c.post(f"{P}/enet_entry", data={"wo_ctkn": t, "bibid": "1000000002", "sel_enet_uktr": "35206", "btn_exe": "1"})
    seen = []
    for _ in range(len(ENET_FLOW)):
        (req,) = c.post("/wo/_admin/advance").get_json()["requests"]
        seen.append(req["state"])
        if req["state"] == "貸出中":
            assert "赤松小三郎" in text(c.get(f"{P}/usr_lend"))
    assert seen == [*ENET_FLOW[1:], ENET_FLOW[-1]]
    assert "赤松小三郎" not in text(c.get(f"{P}/usr_lend"))
    assert c.post("/wo/_admin/advance", data={"to": "紛失"}).status_code == 400
    assert c.post("/wo/_admin/advance", data={"id": "E0"}).status_code == 404


def test_automatic_advance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPACGW_WO_ADVANCE_SECONDS", "60")
    app = create_app("yamaguchi-pref")
    c, t = logged_in(app)
    c.post(f"{P}/enet_entry", data={"wo_ctkn": t, "bibid": "1000000002", "sel_enet_uktr": "35206", "btn_exe": "1"})
    st = app.config["portal"].state
    (req,) = st.patrons["1000000002"].enet
    req.updated_at = datetime.now(req.updated_at.tzinfo) - timedelta(seconds=150)  # 2.5 periods ago
    assert "発送済" in text(c.get(f"{P}/usr_enet"))


def test_password_reset_needs_a_registered_mail(app: Any) -> None:
    c = app.test_client()
    assert "当館までご連絡ください" in text(c.post(f"{P}/pwd_forget", data={"usr_id": "1000000001", "mail_addr": "a@b.jp"}))
    assert "送信しました" in text(c.post(f"{P}/pwd_forget", data={"usr_id": "1000000002", "mail_addr": "hanako@example.jp"}))
    assert "正しくありません" in text(c.post(f"{P}/pwd_forget", data={"usr_id": "1000000002", "mail_addr": "x@example.jp"}))


def test_the_portal_serves_the_shared_sample_set_without_a_stand_in() -> None:
    import importlib.util

    from fixtures.catalog import holdings, load_records

    assert importlib.util.find_spec("fixtures.wo.catalog_source") is None  # no leftover stand-in
    ids = {r.id for r in load_records()}
    c = create_app("yamaguchi-pref").test_client()
    for rid in sorted(holdings("yamaguchi-pref"))[:3]:
        assert rid in ids
        page = c.get(f"{P}/srh_detail", query_string={"bibid": rid})
        assert page.status_code == 200 and next(r.title for r in load_records() if r.id == rid) in text(page)
