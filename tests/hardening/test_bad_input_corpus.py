"""Issue 16: a corpus of bad input on every route; every answer is a documented 4xx
problem+json, nothing reaches a library, and /healthz is fine afterwards."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from core.errors import ALL_ERRORS
from gateway.api_docs import build_openapi
from tests import fakes
from tests.conftest import bearer, login

DOCUMENTED_4XX = {(cls.status, cls.code) for cls in ALL_ERRORS if cls.status < 500}
BAD_STRINGS = ["a\x00b", "a\rb", "a\nb", "\r\n\r\nX-Injected: 1"]
BAD_SEGMENTS = ["a%00b", "a%0Db", "a%0Ab", "%0D%0AX-Injected:%201", "x" * 5000]


def _routes(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    with app.test_request_context():
        doc = build_openapi()
    out = []
    for path, item in doc["paths"].items():
        if path.startswith(("/sandbox", "/mcp")):  # /mcp speaks JSON-RPC, with its own errors
            continue
        for method, op in item.items():
            out.append((method.upper(), path, op))
    return out


def _fill(path: str, value: str = "alpha") -> str:
    return re.sub(r"{library}", "alpha", re.sub(r"{(?!library)[a-z_]+}", value, path))


def _string_fields(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    if not ref:
        return []
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return list(schema.get("properties", {})) or ["name"]


def _documented_4xx(r: Any, what: str) -> None:
    assert 400 <= r.status_code < 500, (what, r.status_code, r.get_data(as_text=True)[:200])
    assert r.mimetype == "application/problem+json", what
    body = r.get_json()
    assert (r.status_code, body["code"]) in DOCUMENTED_4XX, (what, body)
    assert "X-Injected" not in r.headers


@pytest.fixture
def corpus(client) -> tuple[Any, dict[str, str]]:  # type: ignore[no-untyped-def]
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    fakes.upstream("alpha").calls.clear()
    return client, bearer(token)


def test_every_route_refuses_the_corpus_without_calling_a_library(app, corpus) -> None:
    c, h = corpus
    with app.test_request_context():
        doc = build_openapi()
    routes = _routes(app)
    assert len(routes) > 30
    sent = 0
    for method, path, op in routes:
        for auth in ({}, h):
            for seg in BAD_SEGMENTS:
                if "{" not in path.replace("{library}", ""):
                    break
                url = _fill(path, seg)
                _documented_4xx(c.open(url, method=method, headers=auth, json={}), f"{method} {url[:80]}")
                sent += 1
            if "requestBody" not in op:
                continue
            url = _fill(path, "1")
            for raw, ctype in [
                (b"{" * 10_000 + b"}" * 10_000, "application/json"),
                (b"[" * 100_000, "application/json"),
                (b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}', "application/json"),
                (b'{"name": "\xff\xfe\xfa"}', "application/json"),
                ('{"name": "x"}'.encode("utf-16"), "application/json; charset=utf-16"),
                (b'{"name": "x", "name": "y"}', "application/json"),
                (b"name=x", "application/x-www-form-urlencoded"),
                (b"\x00\x01\x02", "application/json"),
                (b"null", "application/json"),
                (b"[]", "application/json"),
                (b'"just a string"', "application/json"),
            ]:
                r = c.open(url, method=method, headers=auth, data=raw, content_type=ctype)
                _documented_4xx(r, f"{method} {path} {raw[:20]!r}")
                sent += 1
            for field in _string_fields(doc, op):
                for bad in BAD_STRINGS:
                    r = c.open(url, method=method, headers=auth, data=json.dumps({field: bad}),
                               content_type="application/json")
                    _documented_4xx(r, f"{method} {path} {field}={bad!r}")
                    sent += 1
    assert sent > 300
    assert fakes.upstream("alpha").calls == []
    assert c.get("/healthz").status_code == 200
    assert c.get("/v1/libraries/alpha/loans", headers=h).status_code == 200


def test_twenty_one_accounts_are_400(corpus) -> None:
    c, _ = corpus
    accounts = [{"library": "alpha", "card_number": str(10000 + i), "password": "x"} for i in range(21)]
    r = c.post("/v1/sessions", json={"accounts": accounts})
    _documented_4xx(r, "21 accounts")
    assert r.status_code == 400
    assert fakes.upstream("alpha").calls == []


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=abc", "per_page=0", "per_page=101",
                                   "per_page=100000000000000000000", "page=1e3", "page=%00", "page="])
def test_page_bounds(make_app, query) -> None:
    app = make_app()
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    for path in ("/v1/libraries/alpha/history", "/v1/libraries/alpha/records?title=x"):
        sep = "&" if "?" in path else "?"
        r = c.get(f"{path}{sep}{query}", headers=bearer(token))
        if r.status_code in (200, 501):  # an empty value is the default; fakes lack history
            continue
        _documented_4xx(r, f"{path} {query}")
        assert r.status_code == 400
    assert c.get("/healthz").status_code == 200
