"""Issue 16, item 1: one client's odd input never closes a library for everyone.

Against every family's simulator on loopback: a non-ASCII password is a wrong password
(401 invalid_credentials), however often it is sent, and the right password works at once
afterwards; the library stays "up".  With the fake family: a login is never retried, and
an HTTP error page (an answer) never counts towards the circuit; getting no answer does.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from core.errors import UpstreamUnavailable
from gateway.app import create_app
from tests import fakes
from tests.conftest import bearer, login

ODD = ["pässwörd", "パスワード", "x😀y", "ａｂｃ１２３", "é" * 40]
FAMILIES = ["kumamoto-city", "yamaguchi-pref", "soap-demo", "soap-kita", "ncip-consortium"]


@pytest.mark.e2e
@pytest.mark.parametrize("library", FAMILIES)
def test_non_ascii_passwords_are_wrong_passwords_and_never_open_the_circuit(tmp_path, library) -> None:
    sim = start_sim(library)
    try:
        lib = rewire(SANDBOX.libraries[library], sim.port)
        cfg = gateway_config({library: lib}, database=str(tmp_path / "gw.sqlite3"), circuit_failures=2,
                             login_failures_per_card=0)  # the throttle has tests of its own
        app = create_app(cfg, secret_key=Fernet.generate_key().decode())
        c = app.test_client()
        card, password = demo(library)
        for odd in ODD:
            r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": odd})
            assert r.status_code == 401, (odd, r.get_json())
            assert r.get_json()["code"] == "invalid_credentials"
        assert c.get(f"/v1/libraries/{library}").get_json()["status"] == "up"
        r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": password})
        assert r.status_code == 201, r.get_json()
        app.extensions["opacgw"].close()
    finally:
        sim.stop()


class _HttpErrorOnLogin(fakes.FakeAdapter):
    """A library answering its login form with an HTTP 500 page (an answer, not silence)."""

    def login(self, card_number: str, password: str):  # type: ignore[no-untyped-def]
        self._enter("login")
        raise UpstreamUnavailable("the portal answered HTTP 500", library=self.library.id)


def test_error_pages_on_login_are_not_retried_and_keep_the_circuit_closed(client, monkeypatch) -> None:
    monkeypatch.setattr(fakes.FakeAdapter, "login", _HttpErrorOnLogin.login)
    for _ in range(6):  # circuit_failures = 3 in the test configuration
        r = client.post("/v1/sessions", json={"library": "alpha", "card_number": "12345", "password": "ä"})
        assert r.status_code == 503 and r.get_json()["code"] == "upstream_unavailable"
        assert "not calling it" not in r.get_json()["detail"]
    assert fakes.upstream("alpha").calls == ["login"] * 6  # once each: never retried
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "up"


def test_no_answer_at_login_is_not_retried_but_counts(client) -> None:
    up = fakes.upstream("alpha")
    up.down = True  # connection refused: UpstreamUnreachable
    for _ in range(3):
        r = client.post("/v1/sessions", json={"library": "alpha", "card_number": "12345",
                                              "password": fakes.PASSWORD})
        assert r.status_code == 503
    assert up.calls == ["login"] * 3
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "degraded"


def test_http_error_pages_on_reads_keep_the_circuit_closed(client, monkeypatch) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))

    def loans(self, session):  # type: ignore[no-untyped-def]
        self._enter("loans")
        raise UpstreamUnavailable("the portal answered HTTP 503", library=self.library.id)

    monkeypatch.setattr(fakes.FakeAdapter, "loans", loans)
    for _ in range(5):
        r = client.get("/v1/libraries/alpha/loans", headers=bearer(token))
        assert r.status_code == 503 and "not calling it" not in r.get_json()["detail"]
    assert client.get("/v1/libraries/alpha").get_json()["status"] == "up"
