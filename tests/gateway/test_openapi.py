"""/openapi.json is worth generating clients from: valid OpenAPI 3.1, typed query
parameters, per operation only its own problems, security schemes, body examples; and
a client generated from it by openapi-python-client works against the sandbox."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from core.errors import ALL_ERRORS
from fixtures.registry import serve_app
from gateway import api_docs, models
from tests import fakes
from tests.conftest import bearer, login
from tests.gateway.test_errors import assert_problem


@pytest.fixture
def doc(client) -> dict:
    return client.get("/openapi.json").get_json()


def _op(doc: dict, method: str, path: str) -> dict:
    return doc["paths"][path][method.lower()]


def _codes(op: dict) -> set[str]:
    out = set()
    for status, resp in op["responses"].items():
        if status.startswith(("4", "5")):
            schema = resp["content"]["application/problem+json"]["schema"]
            out |= set(schema["allOf"][1]["properties"]["code"]["enum"])
    return out


def test_document_is_valid_openapi_3_1(doc) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


def test_query_parameters_are_typed_with_bounds_and_enums(doc) -> None:
    def param(method: str, path: str, name: str) -> dict:
        return next(p for p in _op(doc, method, path)["parameters"] if p.get("name") == name)["schema"]

    assert param("GET", "/v1/libraries/{library}/history", "page") == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 1}
    assert param("GET", "/v1/libraries/{library}/history", "per_page")["maximum"] == 200
    assert param("GET", "/v1/libraries/{library}/messages", "include_read")["type"] == "boolean"
    timeout = param("GET", "/v1/availability", "timeout")
    assert timeout["type"] == "number" and timeout["minimum"] == 0.1 and timeout["maximum"] == 60
    assert param("GET", "/v1/summary", "lang")["enum"] == ["ja", "en"]
    assert param("GET", "/v1/summary", "format")["enum"] == ["text", "ssml"]
    assert param("GET", "/v1/libraries/{library}/records", "page")["type"] == "integer"
    required = [p["name"] for p in _op(doc, "GET", "/v1/availability")["parameters"] if p.get("required")]
    assert required == ["isbn"]


def test_the_views_enforce_what_the_document_says(client) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    h = bearer(token)
    assert_problem(client.get("/v1/libraries/alpha/history?page=0", headers=h), 400, "invalid_request")
    assert_problem(client.get("/v1/libraries/alpha/history?per_page=201", headers=h), 400, "invalid_request")
    assert_problem(client.get("/v1/libraries/alpha/messages?include_read=maybe", headers=h), 400,
                   "invalid_request")
    assert_problem(client.get("/v1/summary?format=mp3", headers=h), 400, "invalid_request")
    assert_problem(client.get("/v1/availability?isbn=9784062748797&timeout=61"), 400, "invalid_request")
    assert_problem(client.get("/v1/availability"), 400, "invalid_request")
    assert client.get("/v1/libraries/alpha/history?page=2&per_page=5&_=cachebust", headers=h).status_code != 400


def test_the_request_id_is_documented(doc, client) -> None:
    op = _op(doc, "GET", "/v1/libraries")
    assert {"$ref": "#/components/parameters/RequestId"} in op["parameters"]
    assert "X-Request-ID" in op["responses"]["200"]["headers"]
    pattern = doc["components"]["parameters"]["RequestId"]["schema"]["pattern"]
    assert client.get("/v1/libraries", headers={"X-Request-ID": "r-1"}).headers["X-Request-ID"] == "r-1"
    assert pattern.startswith("^[")


def test_each_operation_lists_only_its_own_problems(doc) -> None:
    every = {cls.code for cls in ALL_ERRORS} | {"internal_error"}  # the last-resort 500 of app.py
    for ops in doc["paths"].values():
        for op in ops.values():
            assert _codes(op) <= every
    assert _codes(_op(doc, "GET", "/healthz")) == {"internal_error"}
    libraries = _codes(_op(doc, "GET", "/v1/libraries"))
    assert "unauthenticated" not in libraries and "upstream_timeout" not in libraries
    assert "client_unauthorized" not in libraries  # this gateway has no client keys
    renew = _codes(_op(doc, "POST", "/v1/libraries/{library}/loans/{loan_id}/renewal"))
    assert {"not_renewable", "unauthenticated", "library_not_in_session", "upstream_timeout"} <= renew
    assert "card_number_invalid" not in renew and "password_policy_violation" not in renew
    login_codes = _codes(_op(doc, "POST", "/v1/sessions"))
    assert {"invalid_credentials", "card_number_invalid", "password_change_required"} <= login_codes
    assert "unauthenticated" not in login_codes and "not_renewable" not in login_codes
    # merged answers report a failing library in `sources`, not as the request's status
    assert "upstream_unavailable" not in _codes(_op(doc, "GET", "/v1/loans"))


def test_problems_the_gateway_answers_are_documented(client, doc) -> None:
    token = login(client, ("alpha", "12345", fakes.PASSWORD))
    cases = [
        ("GET", "/v1/libraries/{library}/loans", "/v1/libraries/alpha/loans", {}, None),
        ("GET", "/v1/libraries/{library}/loans", "/v1/libraries/beta/loans", bearer(token), None),
        ("GET", "/v1/libraries/{library}/loans", "/v1/libraries/atlantis/loans", bearer(token), None),
        ("POST", "/v1/sessions", "/v1/sessions", {}, {"library": "alpha", "card_number": "1", "password": "x"}),
        ("POST", "/v1/sessions", "/v1/sessions", {}, {"library": "atlantis", "card_number": "1", "password": "x"}),
        ("GET", "/v1/summary", "/v1/summary?lang=fr", bearer(token), None),
        ("GET", "/v1/libraries/{library}", "/v1/libraries/atlantis", {}, None),
    ]
    for method, template, url, headers, body in cases:
        resp = client.open(url, method=method, headers=headers, json=body)
        assert resp.status_code >= 400, url
        code = resp.get_json()["code"]
        assert code in _codes(_op(doc, method, template)), (method, url, code)


def test_security_schemes_and_their_use(doc) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    assert _op(doc, "GET", "/v1/libraries/{library}/loans")["security"] == [{"bearer": []}]
    assert _op(doc, "GET", "/v1/libraries")["security"] == []


def test_with_client_keys_the_document_asks_for_them(make_app, tmp_path) -> None:
    from gateway.config import loads_config
    from tests.conftest import FAKE_CONFIG

    text = FAKE_CONFIG.format(db=tmp_path / "k.sqlite3", extra="")
    text = text.replace("[gateway]\n", '[gateway]\napi_keys = ["k-123"]\n', 1)
    app = make_app(config=loads_config(text, "keys.toml"))
    doc = app.test_client().get("/openapi.json").get_json()
    assert _op(doc, "GET", "/v1/libraries")["security"] == [{"apiKey": []}]
    assert _op(doc, "GET", "/v1/libraries/{library}/loans")["security"] == [{"bearer": [], "apiKey": []}]
    assert "client_unauthorized" in _codes(_op(doc, "GET", "/v1/libraries"))
    assert _op(doc, "GET", "/healthz")["security"] == []


def test_every_request_body_has_a_valid_example(doc) -> None:
    bodies = 0
    for ops in doc["paths"].values():
        for op in ops.values():
            if "requestBody" not in op:
                continue
            bodies += 1
            content = op["requestBody"]["content"]["application/json"]
            model = getattr(models, content["schema"]["$ref"].rsplit("/", 1)[1])
            model.model_validate(content["example"])
    assert bodies >= 15


def test_response_examples_are_valid(doc) -> None:
    seen = set()
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, resp in op["responses"].items():
                media = resp.get("content", {}).get("application/json")
                if not media or "example" not in media or not status.startswith("2"):
                    continue
                name = media["schema"]["$ref"].rsplit("/", 1)[1]
                getattr(models, name).model_validate(media["example"])
                seen.add(name)
    assert set(api_docs.RESPONSE_EXAMPLES) | {"LibraryList"} <= seen
    libraries = _op(doc, "GET", "/v1/libraries")["responses"]["200"]["content"]["application/json"]["example"]
    assert libraries["libraries"][0]["id"] == "alpha"  # this gateway's own first library


def test_the_tables_name_real_operations(sandbox) -> None:
    from gateway.app import create_app
    from gateway.sandbox_admin import bp

    app = create_app(sandbox)
    app.register_blueprint(bp)
    named = set(api_docs._SPECIFIC) | api_docs._MERGED | api_docs._LOCAL
    try:
        assert named <= set(app.view_functions), named - set(app.view_functions)
    finally:
        app.extensions["opacgw"].close()


def test_a_generated_client_lists_the_sandbox_libraries(sandbox, tmp_path: Path) -> None:
    """openapi-python-client turns /openapi.json into a package; its GET /v1/libraries works."""
    import httpx

    from gateway.app import create_app

    app = create_app(sandbox)
    server = serve_app(app, name="gateway")
    try:
        spec = tmp_path / "openapi.json"
        spec.write_bytes(httpx.get(server.url + "/openapi.json").content)
        out = tmp_path / "opac_gateway_client"
        run = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
                              "--meta", "none", "--output-path", str(out)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Unable to" not in run.stdout + run.stderr and "WARNING" not in run.stdout + run.stderr, run.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            client_mod = importlib.import_module("opac_gateway_client")
            listing = importlib.import_module("opac_gateway_client.api.libraries.libraries_list_libraries")
            summary = importlib.import_module("opac_gateway_client.api.across_libraries.across_summary")
            with client_mod.Client(base_url=server.url) as client:
                result = listing.sync(client=client)
                ids = {lib.id for lib in result.libraries}
                assert {"kumamoto-city", "kagoshima-pref", "soap-demo"} <= ids
                assert ids == set(sandbox.libraries)
                # a problem comes back typed too
                answer = summary.sync_detailed(client=client)
                assert answer.status_code == 401
                assert answer.parsed.code == "unauthenticated"
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m.startswith("opac_gateway_client")]:
                del sys.modules[name]
    finally:
        server.stop()
        app.extensions["opacgw"].close()
