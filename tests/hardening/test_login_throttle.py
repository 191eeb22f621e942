"""Issue 16, item 2: login throttling, per (library, card) failures and per client."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.config import loads_config
from gateway.throttle import MemoryCounters
from tests import fakes
from tests.conftest import FAKE_CONFIG


def _app(make_app: Any, tmp_path: Path, **settings: Any) -> Any:
    cfg = loads_config(FAKE_CONFIG.format(db=tmp_path / "gw.sqlite3", extra=""), "test.toml")
    cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update=settings)})
    return make_app(config=cfg)


def _login(c: Any, password: str, card: str = "12345") -> Any:
    return c.post("/v1/sessions", json={"library": "alpha", "card_number": card, "password": password})


def test_sixth_login_after_five_failures_is_429_without_calling(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path).test_client()
    up = fakes.upstream("alpha")
    for i in range(5):
        r = _login(c, f"guess-{i}")
        assert r.status_code == 401 and r.get_json()["code"] == "invalid_credentials"
    r = _login(c, fakes.PASSWORD)  # even the right password: the card's budget is spent
    assert r.status_code == 429 and r.get_json()["code"] == "rate_limited"
    assert r.mimetype == "application/problem+json"
    assert 890 <= int(r.headers["Retry-After"]) <= 900
    assert up.calls.count("login") == 5
    # the same card number written another way is the same card
    assert _login(c, fakes.PASSWORD, card="0000012345").status_code == 429
    # another card at the same library is not affected
    assert _login(c, fakes.PASSWORD, card="54321").status_code == 201


def test_the_window_slides_and_success_clears_the_failures(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path, login_failures_per_card=2, login_failure_window_seconds=0.5).test_client()
    assert _login(c, "bad").status_code == 401
    assert _login(c, "bad").status_code == 401
    assert _login(c, "bad").status_code == 429
    time.sleep(0.6)
    assert _login(c, "bad").status_code == 401
    assert _login(c, fakes.PASSWORD).status_code == 201  # clears
    assert _login(c, "bad").status_code == 401
    assert _login(c, "bad").status_code == 401
    assert _login(c, "bad").status_code == 429


def test_parallel_guesses_cannot_overrun_the_budget(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path, logins_per_client_per_minute=0).test_client()
    fakes.upstream("alpha").delay = 0.02
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: _login(c, f"guess-{i}").status_code, range(30)))
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == 5
    assert fakes.upstream("alpha").calls.count("login") == 5


def test_per_client_login_budget(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path, logins_per_client_per_minute=3).test_client()
    for card in ("11111", "22222", "33333"):
        assert _login(c, fakes.PASSWORD, card=card).status_code == 201
    r = _login(c, fakes.PASSWORD, card="44444")
    assert r.status_code == 429 and r.get_json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert fakes.upstream("alpha").calls.count("login") == 3


def test_budgets_can_be_turned_off(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path, login_failures_per_card=0, logins_per_client_per_minute=0).test_client()
    for i in range(12):
        assert _login(c, f"guess-{i}").status_code == 401


def test_forced_password_change_spends_the_same_budget(make_app, tmp_path) -> None:
    c = _app(make_app, tmp_path, login_failures_per_card=2).test_client()
    for _ in range(2):
        assert _login(c, "bad").status_code == 401
    r = c.put("/v1/libraries/alpha/password",
              json={"card_number": "12345", "current_password": "temporary", "new_password": "newpw123"})
    assert r.status_code == 429
    assert "change_password" not in fakes.upstream("alpha").calls


def test_memory_counters_slide_and_forget() -> None:
    now = [100.0]
    counters = MemoryCounters(10, clock=lambda: now[0])
    counters.add("k", 10)
    now[0] += 4
    counters.add("k", 10)
    assert counters.recent("k", 10) == (2, 100.0)
    now[0] += 7
    assert counters.recent("k", 10) == (1, 104.0)
    counters.clear("k")
    assert counters.recent("k", 10) == (0, None)
