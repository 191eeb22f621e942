"""Issue 16, items 4 and 5: control characters never reach a library.

NUL in a password or an id made lxml fail with a 500 at the XML families; LF in an
alert or shelf name was folded by the portal into a space behind a 502 (and a retry
made a duplicate).  Every string of a body, every path segment and query value with a
control character is a 400 invalid_request before any upstream call.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from gateway.app import create_app
from tests import fakes
from tests.conftest import bearer, login

BAD = ["x\x00y", "a\nb", "a\rb", "a\tb", "\x1b[31m", "a\x7fb", "\ud800"]


def _send(client, method: str, path: str, body: object, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """JSON with backslash-u escapes (a lone surrogate cannot be encoded as UTF-8 otherwise)."""
    return client.open(path, method=method, data=json.dumps(body), headers=headers or {},
                       content_type="application/json")


def _is_400(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "invalid_request"


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bodies_paths_and_queries_with_control_characters_are_400_before_any_call(client, bad) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    up = fakes.upstream("alpha")
    up.calls.clear()
    h = bearer(token)
    _is_400(_send(client, "POST", "/v1/sessions", {"library": "alpha", "card_number": "12345", "password": bad}))
    _is_400(_send(client, "POST", "/v1/sessions", {"accounts": [
        {"library": "alpha", "card_number": "12345", "password": fakes.PASSWORD, bad: 1}]}))
    _is_400(_send(client, "POST", "/v1/libraries/alpha/holds", {"record_ids": [f"R{bad}"]}, h))
    _is_400(_send(client, "PUT", "/v1/libraries/alpha/password",
                  {"current_password": fakes.PASSWORD, "new_password": f"new{bad}pw1"}, h))
    quoted = bad.encode("utf-8", "surrogatepass").hex()
    pct = "".join(f"%{quoted[i:i + 2]}" for i in range(0, len(quoted), 2))
    if bad != "\ud800":  # a lone surrogate cannot be in a URL (its UTF-8 is invalid → U+FFFD)
        _is_400(client.delete(f"/v1/libraries/alpha/holds/a{pct}b", headers=h))
        _is_400(client.get(f"/v1/libraries/alpha/records/a{pct}b"))
        _is_400(client.get(f"/v1/libraries/alpha/records?title=a{pct}b"))
    assert up.calls == []


@pytest.mark.e2e
@pytest.mark.parametrize("library", ["ncip-consortium", "soap-demo", "soap-kita"])
def test_nul_at_the_xml_families_is_400_not_500(tmp_path, library) -> None:
    sim = start_sim(library)
    try:
        cfg = gateway_config({library: rewire(SANDBOX.libraries[library], sim.port)},
                             database=str(tmp_path / "gw.sqlite3"))
        app = create_app(cfg, secret_key=Fernet.generate_key().decode())
        c = app.test_client()
        card, password = demo(library)
        _is_400(c.post("/v1/sessions", json={"library": library, "card_number": card, "password": "x\x00y"}))
        r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": password})
        h = bearer(r.get_json()["token"])
        _is_400(c.delete(f"/v1/libraries/{library}/holds/a%00b", headers=h))
        _is_400(c.get(f"/v1/libraries/{library}/records/a%00b"))
        assert c.get(f"/v1/libraries/{library}/loans", headers=h).status_code == 200
        app.extensions["opacgw"].close()
    finally:
        sim.stop()
