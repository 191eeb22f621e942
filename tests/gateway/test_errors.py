"""Every error response has one shape: application/problem+json with the API.md code."""

from __future__ import annotations

import json
import re

import pytest

from core import errors
from tests import fakes
from tests.conftest import SHARED, bearer, login

PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}


def assert_problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json(force=True)
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status and body["code"] == code
    assert "<html" not in resp.get_data(as_text=True).lower()
    return body


def test_error_table_matches_api_md() -> None:
    """The classes carry exactly the status/code pairs of API.md's table."""
    api = SHARED / "docs" / "API.md"
    if not api.exists():
        pytest.skip("../shared/docs/API.md is absent")
    rows = set(re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", api.read_text(encoding="utf-8"), re.MULTILINE))
    ours = {(str(c.status), c.code) for c in errors.ALL_ERRORS}
    assert rows == ours


@pytest.mark.parametrize("cls", errors.ALL_ERRORS, ids=lambda c: c.code)
def test_every_error_class_renders_one_shape(cls, app) -> None:
    view = f"raise_{cls.code}"

    @app.get(f"/_test/{cls.code}")
    def _raise():
        raise cls("detail text", library="alpha")

    app.view_functions[view] = _raise
    resp = app.test_client().get(f"/_test/{cls.code}")
    body = assert_problem(resp, cls.status, cls.code)
    assert body["library"] == "alpha"
    assert body["type"].endswith(cls.code)


def test_flask_404_and_405_are_problems(client) -> None:
    assert_problem(client.get("/no/such/path"), 404, "not_found")
    resp = client.put("/v1/libraries")
    body = assert_problem(resp, 405, "method_not_allowed")
    assert "PUT" in body["detail"]
    assert "GET" in resp.headers["Allow"] and "PUT" not in resp.headers["Allow"]
    assert "GET" in body["allow"]


def test_body_must_be_json_in_utf8(client) -> None:
    good = b'{"library":"alpha","card_number":"1","password":"x"}'
    assert_problem(client.post("/v1/sessions", data=good, content_type="text/plain"), 415, "unsupported_media_type")
    assert_problem(client.post("/v1/sessions", data=good.decode().encode("utf-16"),
                               content_type="application/json; charset=utf-16"), 415, "unsupported_media_type")
    assert_problem(client.post("/v1/sessions", data=b'{"library":"\xff"}', content_type="application/json"),
                   415, "unsupported_media_type")
    dup = b'{"library":"alpha","library":"beta","card_number":"1","password":"x"}'
    body = assert_problem(client.post("/v1/sessions", data=dup, content_type="application/json"), 400,
                          "invalid_request")
    assert "library" in body["detail"]


def test_deep_json_is_invalid_request_not_500(client) -> None:
    deep = b"[" * 10000 + b"]" * 10000
    for path in ("/v1/sessions",):
        assert_problem(client.post(path, data=deep, content_type="application/json"), 400, "invalid_request")
    deep_obj = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert_problem(client.post("/v1/sessions", data=deep_obj, content_type="application/json"), 400,
                   "invalid_request")


def test_malformed_json_is_invalid_request(client) -> None:
    resp = client.post("/v1/sessions", data="{not json", content_type="application/json")
    assert_problem(resp, 400, "invalid_request")


def test_validation_failure_lists_fields(client) -> None:
    resp = client.post("/v1/sessions", json={"accounts": [{"library": "alpha"}]})
    body = assert_problem(resp, 400, "invalid_request")
    fields = {e["field"] for e in body["errors"]}
    assert "accounts.0.card_number" in fields and "accounts.0.password" in fields


def test_too_many_accounts_rejected(client) -> None:
    accounts = [{"library": "alpha", "card_number": "1", "password": "x"}] * 21
    assert_problem(client.post("/v1/sessions", json={"accounts": accounts}), 400, "invalid_request")


def test_unknown_library_is_not_found(client) -> None:
    assert_problem(client.get("/v1/libraries/nowhere"), 404, "not_found")
    resp = client.post("/v1/sessions", json={"library": "nowhere", "card_number": "1", "password": "x"})
    assert_problem(resp, 404, "not_found")


def test_a_bug_is_a_problem_not_a_trace(client, caplog) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    fakes.upstream("alpha").crash = True
    resp = client.get("/v1/libraries/alpha/loans", headers=bearer(token))
    body = assert_problem(resp, 500, "internal_error")
    assert "Traceback" not in json.dumps(body)
    assert "a bug in the adapter" in caplog.text  # logged with its trace, not shown


def test_unsupported_capability_is_501(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    assert_problem(client.get("/v1/libraries/alpha/patron", headers=bearer(token)), 501, "not_supported")
    assert fakes.upstream("alpha").calls == ["login"]  # never called upstream


def test_no_token_and_bad_token(client) -> None:
    assert_problem(client.get("/v1/libraries/alpha/loans"), 401, "unauthenticated")
    assert_problem(client.get("/v1/loans", headers=bearer("nope")), 401, "unauthenticated")
    assert_problem(client.get("/v1/sessions/current", headers={"Authorization": "Basic x"}), 401, "unauthenticated")


def test_client_keys_when_configured(make_app) -> None:
    app = make_app()
    cfg = app.extensions["opacgw"].config
    settings = cfg.gateway.model_copy(update={"api_keys": ["k-123"]})
    app2 = make_app(config=cfg.model_copy(update={"gateway": settings}))
    c = app2.test_client()
    assert_problem(c.get("/v1/libraries"), 401, "client_unauthorized")
    assert_problem(c.get("/v1/libraries", headers={"X-API-Key": "wrong"}), 401, "client_unauthorized")
    assert c.get("/v1/libraries", headers={"X-API-Key": "k-123"}).status_code == 200
    assert c.get("/healthz").status_code == 200


def test_rate_limit(make_app) -> None:
    app = make_app()
    cfg = app.extensions["opacgw"].config
    settings = cfg.gateway.model_copy(update={"rate_limit_per_minute": 3})
    c = make_app(config=cfg.model_copy(update={"gateway": settings})).test_client()
    for left in (2, 1, 0):
        ok = c.get("/v1/libraries")
        assert ok.status_code == 200
        assert ok.headers["RateLimit-Limit"] == "3" and ok.headers["RateLimit-Remaining"] == str(left)
        assert 1 <= int(ok.headers["RateLimit-Reset"]) <= 60
    resp = c.get("/v1/libraries")
    assert_problem(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert resp.headers["RateLimit-Remaining"] == "0"


def test_unparseable_upstream_is_upstream_changed_not_empty(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    fakes.upstream("alpha").broken_page = True
    assert_problem(client.get("/v1/libraries/alpha/loans", headers=bearer(token)), 502, "upstream_changed")
