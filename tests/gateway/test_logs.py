"""Structured logs: JSON lines with the request id, route, status, library and upstream calls;
values a client sent cannot forge a line; and a realistic session at DEBUG, third-party
loggers included (httpx, httpcore, zeep, urllib3), leaves no cookie, password, full card
number or token in the output."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from adapters.base import Adapter
from gateway import logs
from gateway.cli import sandbox_on_free_ports
from tests import fakes
from tests.conftest import bearer, login

pytestmark = pytest.mark.e2e
THIRD_PARTY = ("httpx", "httpcore", "zeep", "urllib3", "hpack", "werkzeug", "mcp")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    saved = {name: logging.getLogger(name).level for name in (*THIRD_PARTY, "opacgw")}
    logs.setup("DEBUG", buf)
    for name in THIRD_PARTY:
        assert logging.getLogger(name).getEffectiveLevel() == logging.DEBUG
    try:
        yield buf
    finally:
        for handler in list(logs._installed):
            root.removeHandler(handler)
        logs._installed.clear()
        root.setLevel(level)
        for name, lvl in saved.items():
            logging.getLogger(name).setLevel(lvl)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    out = []
    for raw in buf.getvalue().splitlines():
        out.append(json.loads(raw))  # every line is one JSON object
    return out


def requests_of(buf: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(buf) if line.get("message") == "request"]


def test_request_lines_carry_id_route_status_library_and_upstream(client, captured) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD), ("beta", "12345678", fakes.PASSWORD))
    r = client.get("/v1/libraries/alpha/loans", headers={**bearer(token), "X-Request-ID": "trace-42"})
    assert r.headers["X-Request-ID"] == "trace-42"
    r = client.get("/v1/loans", headers=bearer(token))
    generated = r.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for bad in ("bad id; Injected: 1", "x" * 200, '"}{"level":"ERROR"'):
        r = client.get("/v1/libraries", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])  # not a sane token: replaced

    by_id = {line["request_id"]: line for line in requests_of(captured)}
    one = by_id["trace-42"]
    assert one["route"] == "/v1/libraries/<library>/loans" and one["status"] == 200
    assert one["library"] == "alpha" and one["method"] == "GET" and one["duration_ms"] >= 0
    merged = by_id[generated]
    assert merged["route"] == "/v1/loans" and merged["library"] is None
    assert "upstream" in merged and merged["upstream_calls"] == len(merged["upstream"])
    # every line written while a request ran carries its id
    assert all(line.get("request_id") for line in lines(captured) if line["logger"].startswith("opacgw"))


def test_a_path_or_header_cannot_forge_a_line(client, captured) -> None:
    forged = '{"level": "INFO", "message": "request", "status": 200, "path": "/admin"}'
    client.get("/v1/libraries/alpha%0A" + forged.replace(" ", "%20"))
    client.get("/v1/nothing%0D%0Aforged", headers={"X-Request-ID": 'x"}\\u000a{"forged": 1'})
    out = captured.getvalue()
    parsed = lines(captured)
    assert len(parsed) == out.count("\n")  # one object per line, no line break smuggled in
    assert not any(line.get("path") == "/admin" for line in parsed)
    paths = [line["path"] for line in requests_of(captured)]
    assert any(p.startswith("/v1/libraries/alpha\n") for p in paths)  # kept, as an escaped string


def test_realistic_session_at_debug_leaks_nothing(sandbox, captured, monkeypatch) -> None:
    """Every family of the sandbox, logins, reads, writes, refusals and a logout, with every
    logger at DEBUG; then the output is searched for each secret the session used."""
    from gateway.app import create_app

    cookies: set[str] = set()
    original = Adapter._observed

    def spy(self: Adapter, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            for morsel in SimpleCookie(header).values():
                if len(morsel.value) >= 6:
                    cookies.add(morsel.value)
        original(self, response)

    monkeypatch.setattr(Adapter, "_observed", spy)
    cfg = sandbox.model_copy(update={"libraries": {
        k: v.model_copy(update={"maintenance": []}) for k, v in sandbox.libraries.items()}})
    fleet, cfg, _ = sandbox_on_free_ports(cfg)
    app = create_app(cfg)
    c = app.test_client()
    accounts = [("kumamoto-city", "2377570", "0808"), ("kagoshima-pref", "9999999999", "20211030"),
                ("amami", "2000654321", "amami2022"), ("niigata-city", "0300000001", "niigata1"),
                ("yamaguchi-pref", "1000000002", "Suou-Hanako2026"), ("soap-demo", "2000000001", "soap-pass"),
                ("soap-kita", "3100000002", "kita-pass"), ("ncip-consortium", "00052", "ncip-pass")]
    try:
        r = c.post("/v1/sessions", json={"accounts": [
            {"library": lib, "card_number": card, "password": pw} for lib, card, pw in accounts]})
        assert r.status_code == 201, r.get_json()
        body = r.get_json()
        assert all(a["ok"] for a in body["accounts"]), body
        token = body["token"]
        h = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/loans", headers=h).status_code == 200
        assert c.get("/v1/holds", headers=h).status_code == 200
        assert c.get("/v1/summary?lang=en", headers=h).status_code == 200
        for lib in ("kagoshima-pref", "soap-demo", "ncip-consortium", "yamaguchi-pref"):
            loans = c.get(f"/v1/libraries/{lib}/loans", headers=h).get_json()["loans"]
            renewable = [l for l in loans if l["renewable"]]
            if renewable:
                c.post(f"/v1/libraries/{lib}/loans/{renewable[0]['id']}/renewal", headers=h)
        c.post("/v1/libraries/soap-demo/renewals", json={"all": True}, headers=h)
        c.get("/v1/libraries/kumamoto-city/patron", headers=h)
        c.get("/v1/libraries/kumamoto-city/holds", headers=h)
        # refusals: a wrong password, a bad token, a password change that breaks the policy
        wrong = c.post("/v1/sessions", json={"library": "kagoshima-pref", "card_number": "8000000001",
                                             "password": "Wrong-Secret-77"})
        assert wrong.status_code == 401
        assert c.get("/v1/loans", headers={"Authorization": "Bearer not-a-token-but-secret-0123"}).status_code == 401
        c.put("/v1/libraries/amami/password", headers=h,
              json={"current_password": "amami2022", "new_password": "x"})
        assert c.delete("/v1/sessions/current", headers=h).status_code == 204
    finally:
        app.extensions["opacgw"].close()
        for sim in fleet.status():
            fleet.stop(sim["name"])

    out = captured.getvalue()
    parsed = lines(captured)
    assert len(parsed) > 100
    loggers = {line["logger"].split(".")[0] for line in parsed}
    assert {"opacgw", "httpcore", "httpx"} <= loggers, loggers
    assert any("set-cookie" in line["message"].lower() for line in parsed)  # the headers were logged...
    secrets = {token, "not-a-token-but-secret-0123", "Wrong-Secret-77", "8000000001", "0000002377570", "2377570"}
    for _, card, password in accounts:
        secrets |= {card, password}
    secrets |= cookies
    assert len(cookies) >= 3, cookies  # the portals did set session cookies
    found = sorted(s for s in secrets if len(s) >= 4 and s in out)
    assert not found, found  # ...and nothing secret in them
    for pattern in (r"(?i)jsessionid=(?!\[redacted\])", r"(?i)wosid=(?!\[redacted\])",
                    r"(?i)bearer [A-Za-z0-9_-]{20,}"):
        assert not re.search(pattern, out), pattern
    # the upstream calls of the merged read are in its request line, with their latency
    merged = next(line for line in requests_of(captured) if line["route"] == "/v1/loans" and line["status"] == 200)
    assert {u["library"] for u in merged["upstream"]} >= {"kagoshima-pref", "soap-demo"}
    assert all(u["ms"] >= 0 and u["status"] for u in merged["upstream"])
