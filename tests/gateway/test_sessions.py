"""Sessions as API.md says: multi-account login, masked cards, sliding expiry,
re-login on upstream expiry, secrets never stored."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests import fakes
from tests.conftest import bearer, login
from tests.gateway.test_errors import assert_problem


def test_single_account_shorthand(client) -> None:
    r = client.post("/v1/sessions", json={"library": "alpha", "card_number": "１２３４５", "password": fakes.PASSWORD})
    assert r.status_code == 201
    body = r.get_json()
    assert body["accounts"] == [{"library": "alpha", "ok": True, "card_number_masked": "******2345",
                                 "error": None}] or body["accounts"][0]["card_number_masked"].endswith("2345")
    token = body["token"]
    assert len(base64.urlsafe_b64decode(token + "==")) >= 16  # ≥ 128 bits
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC) + timedelta(minutes=29)


def test_multi_account_partial_failure(client) -> None:
    r = client.post("/v1/sessions", json={"accounts": [
        {"library": "alpha", "card_number": "12345", "password": fakes.PASSWORD},
        {"library": "beta", "card_number": "12345678", "password": "wrong"},
    ]})
    assert r.status_code == 201
    accounts = r.get_json()["accounts"]
    assert accounts[0]["ok"] is True
    assert accounts[1]["ok"] is False and accounts[1]["error"]["code"] == "invalid_credentials"
    token = r.get_json()["token"]
    cur = client.get("/v1/sessions/current", headers=bearer(token)).get_json()
    assert "token" not in cur or cur["token"] is None
    assert [a["library"] for a in cur["accounts"]] == ["alpha"]
    assert_problem(client.get("/v1/libraries/beta/loans", headers=bearer(token)), 403, "library_not_in_session")


def test_logins_run_concurrently(client) -> None:
    fakes.upstream("alpha").delay = 0.4
    fakes.upstream("beta").delay = 0.4
    t0 = time.perf_counter()
    login(client, ("alpha", "12345", fakes.PASSWORD), ("beta", "12345678", fakes.PASSWORD))
    assert time.perf_counter() - t0 < 0.75


def test_no_account_succeeds_returns_first_problem(client) -> None:
    r = client.post("/v1/sessions", json={"accounts": [
        {"library": "alpha", "card_number": "12345", "password": "temporary"},
        {"library": "beta", "card_number": "12345678", "password": "wrong"},
    ]})
    body = assert_problem(r, 409, "password_change_required")
    assert body["library"] == "alpha"
    assert "token" not in body


def test_card_number_invalid(client) -> None:
    r = client.post("/v1/sessions", json={"library": "alpha", "card_number": "12345678901", "password": "x"})
    body = assert_problem(r, 422, "card_number_invalid")
    assert "12345678901" not in body["detail"]  # never echo the full card number
    assert fakes.upstream("alpha").calls == []


def test_duplicate_library_rejected(client) -> None:
    r = client.post("/v1/sessions", json={"accounts": [
        {"library": "alpha", "card_number": "1", "password": "x"},
        {"library": "alpha", "card_number": "2", "password": "y"}]})
    assert_problem(r, 400, "invalid_request")


def test_logout(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    assert client.delete("/v1/sessions/current", headers=bearer(token)).status_code == 204
    assert_problem(client.get("/v1/sessions/current", headers=bearer(token)), 401, "unauthenticated")


def test_expired_session(make_app, tmp_path) -> None:
    app = make_app()
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    gw = app.extensions["opacgw"]
    with gw.store.db.tx() as tx:
        tx.execute("UPDATE sessions SET expires_at = ?", ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))
    assert_problem(c.get("/v1/libraries/alpha/loans", headers=bearer(token)), 401, "unauthenticated")


def test_sliding_expiry(app) -> None:
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    gw = app.extensions["opacgw"]
    soon = datetime.now(UTC) + timedelta(minutes=2)
    with gw.store.db.tx() as tx:
        tx.execute("UPDATE sessions SET expires_at = ?", (soon.isoformat(),))
    cur = c.get("/v1/sessions/current", headers=bearer(token)).get_json()
    assert datetime.fromisoformat(cur["expires_at"]) > soon + timedelta(minutes=20)


def test_transparent_relogin_when_upstream_session_expires(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.expire_next = True
    r = client.get("/v1/libraries/alpha/loans", headers=bearer(token))
    assert r.status_code == 200 and len(r.get_json()["loans"]) == 2
    assert up.calls == ["login", "loans", "login", "loans"]


def test_no_secret_on_disk(app, tmp_path: Path) -> None:
    c = app.test_client()
    card = "0000098765"
    token = login(c, ("alpha", card, fakes.PASSWORD))
    c.get("/v1/libraries/alpha/loans", headers=bearer(token))
    for f in tmp_path.glob("gw.sqlite3*"):
        data = f.read_bytes()
        assert fakes.PASSWORD.encode() not in data
        assert card.encode() not in data
        assert token.encode() not in data
        assert b"JSESSIONID" not in data  # upstream cookies are encrypted


def test_logs_hold_no_secrets(client, caplog) -> None:
    caplog.set_level("DEBUG")
    card = "0000098765"
    token = login(client, ("alpha", card, fakes.PASSWORD))
    client.post("/v1/sessions", json={"library": "alpha", "card_number": card, "password": "wrong"})
    client.get("/v1/libraries/alpha/loans", headers=bearer(token))
    assert fakes.PASSWORD not in caplog.text and card not in caplog.text and token not in caplog.text


def test_password_change_checks_policy_first(client) -> None:
    r = client.put("/v1/libraries/alpha/password",
                   json={"card_number": "12345", "current_password": "temporary", "new_password": "ab"})
    body = assert_problem(r, 422, "password_policy_violation")
    assert body["violations"] == ["min_length"]
    r = client.put("/v1/libraries/alpha/password",
                   json={"card_number": "12345", "current_password": "temporary", "new_password": "パスワード12"})
    assert "charset" in assert_problem(r, 422, "password_policy_violation")["violations"]
    assert fakes.upstream("alpha").calls == []
    r = client.put("/v1/libraries/alpha/password",
                   json={"card_number": "12345", "current_password": "temporary", "new_password": "abcd1234"})
    assert r.status_code == 204
    assert fakes.upstream("alpha").calls == ["change_password"]
    r = client.put("/v1/libraries/alpha/password", json={"current_password": "x", "new_password": "abcd1234"})
    assert_problem(r, 400, "invalid_request")
