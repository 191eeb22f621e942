"""/openapi.json generated from the views' `@spec` and the pydantic models; /docs
serves Swagger UI 5 from the swagger-ui-py package (no CDN).

Per operation the document lists only the problems that operation can answer with
(derived from what it does: its authentication, path parameters, body, query, whether
it calls a library, plus the codes of `_SPECIFIC`), the security it takes (bearer
session token, and the X-API-Key when this gateway is configured with client keys),
one example per request body (sandbox accounts and records), and typed query
parameters from the views' query models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, send_from_directory
from pydantic import BaseModel

from core.errors import (
    AccountBlocked,
    CardNumberInvalid,
    ClientUnauthorized,
    Conflict,
    GatewayError,
    InternalError,
    InvalidCredentials,
    InvalidRequest,
    LibraryNotInSession,
    LimitExceeded,
    NotFound,
    NotRenewable,
    NotSupported,
    PasswordChangeRequired,
    PasswordPolicyViolation,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
    UpstreamChanged,
    UpstreamError,
    UpstreamMaintenance,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.http import json_response, spec
from gateway.models import Problem

bp = Blueprint("docs", __name__)

UPSTREAM: tuple[type[GatewayError], ...] = (NotSupported, UpstreamChanged, UpstreamError, UpstreamUnavailable,
                                            UpstreamMaintenance, UpstreamTimeout)
"""What any call to a library can end in."""

PATRON_UPSTREAM: tuple[type[GatewayError], ...] = (*UPSTREAM, AccountBlocked)
"""A patron call: the library may also refuse the patron (the re-login on an expired
upstream session answers 401 unauthenticated, already listed for every patron call)."""

# Operations whose library calls answer in the body per library (sources / per-library
# state) instead of failing the request.
_MERGED = {"across.all_loans", "across.all_holds", "across.summary", "across.calendar", "across.availability"}
# Operations that never call a library.
_LOCAL = {"libraries.list_libraries", "libraries.get_library", "libraries.healthz", "libraries.readyz",
          "lending.consortia", "lending.list_requests", "sessions.current_session", "docs.openapi", "docs.docs",
          "sessions.delete_session", "metrics", "mcp.mcp", "sandbox_admin.simulators", "sandbox_admin.stop",
          "sandbox_admin.start"}
# What an operation can answer beyond the rules of `_problems`.
_SPECIFIC: dict[str, tuple[type[GatewayError], ...]] = {
    "sessions.create_session": (NotFound, CardNumberInvalid, InvalidCredentials, PasswordChangeRequired,
                                AccountBlocked, *UPSTREAM),
    "sessions.change_password": (NotFound, CardNumberInvalid, InvalidCredentials, PasswordPolicyViolation,
                                 LibraryNotInSession),
    "registration.register": (CardNumberInvalid, InvalidCredentials, PasswordPolicyViolation, Conflict),
    "patron.renew_one": (NotFound, NotRenewable, Conflict),
    "patron.renew_many": (NotRenewable,),
    "patron.place_holds": (LimitExceeded,),
    "patron.update_hold": (NotFound, Conflict),
    "patron.cancel_hold": (NotFound, Conflict),
    "patron.add_cart": (LimitExceeded, Conflict),
    "patron.remove_cart": (NotFound,),
    "patron.create_shelf": (LimitExceeded, Conflict),
    "patron.rename_shelf": (NotFound, Conflict),
    "patron.delete_shelf": (NotFound,),
    "patron.shelf_items": (NotFound,),
    "patron.add_shelf_item": (NotFound, LimitExceeded, Conflict),
    "patron.remove_shelf_item": (NotFound,),
    "patron.move_shelf_item": (NotFound, Conflict),
    "patron.export_shelf": (NotFound,),
    "patron.patch_profile": (),
    "catalog.record": (NotFound,),
    "alerts.get_alert": (NotFound,),
    "alerts.update_alert": (NotFound,),
    "alerts.delete_alert": (NotFound,),
    "alerts.alert_matches": (NotFound,),
    "alerts.create_alert": (LimitExceeded,),
    "lending.create": (NotFound, LibraryNotInSession, Conflict, AccountBlocked),
    "lending.get_request": (NotFound,),
    "lending.cancel": (NotFound, Conflict),
    "sandbox_admin.stop": (NotFound,),
    "sandbox_admin.start": (NotFound,),
    "subscriptions.create": (NotSupported,),
    "subscriptions.list_all": (NotSupported,),
    "subscriptions.get_one": (NotFound, NotSupported),
    "subscriptions.patch": (NotFound, NotSupported),
    "subscriptions.delete": (NotFound, NotSupported),
    "subscriptions.rotate_calendar": (NotFound, NotSupported),
    "subscriptions.events": (NotFound, NotSupported),
    "subscriptions.deliveries": (NotFound, NotSupported),
    "subscriptions.calendar": (NotFound, NotSupported),
}

# One example per request body, from the sandbox (`opacgw serve` with no configuration):
# its demo accounts, branches and records.
EXAMPLES: dict[str, Any] = {
    "SessionCreate": {"accounts": [
        {"library": "kumamoto-city", "card_number": "2377570", "password": "0808"},
        {"library": "kagoshima-pref", "card_number": "9999999999", "password": "20211030"}]},
    "PasswordChange": {"current_password": "1225", "new_password": "2512"},
    "PasswordRegistration": {"card_number": "1000000001", "birth_date": "1990-01-01",
                             "new_password": "Hagi-Castle1604"},
    "ProfileUpdate": {"emails": [{"address": "hanako@example.jp"}], "pickup_branch": "本館"},
    "RenewalBatch": {"all": True},
    "HoldRequest": {"record_ids": ["1000000015"], "pickup_branch": "東部分館", "contact_method": "メール"},
    "HoldUpdate": {"pickup_branch": "西部分館", "contact_method": "電話"},
    "RecordRef": {"record_id": "1000000015"},
    "ShelfCreate": {"name": "あとで読む"},
    "ShelfMove": {"to_shelf_id": "2", "copy": False},
    "AlertCreate": {"name": "サンタクロースの新刊", "conditions": [
        {"field": "title", "op": "contains", "value": "サンタクロース"}], "match": "all", "max_results": 10},
    "AlertUpdate": {"active": False},
    "JsonRpcRequest": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "summary", "arguments": {"lang": "ja"}}},
    "SubscriptionCreate": {"libraries": ["kagoshima-pref"], "webhook_url": "https://hooks.example.jp/opac",
                           "events": ["hold.ready", "loan.due_soon", "loan.renewal_blocked", "loan.renewed"],
                           "due_soon_days": 3, "auto_renew": {"days_before": 2}, "consent": True},
    "SubscriptionUpdate": {"status": "active"},
    "LendingRequestCreate": {"supplying_library": "yamaguchi-pref", "record_id": "1000000001",
                             "pickup_library": "yamaguchi-pref", "pickup_branch": "防府市立防府図書館"},
}

_LOAN = {"id": "3468000002", "library": "kagoshima-pref", "record_id": "1000000003", "title": "悪意",
         "author": "東野 圭吾 / 著", "item_id": "3468000002", "loaned_on": "2026-11-15", "due_on": "2026-11-29",
         "overdue": True, "renewable": False, "not_renewable_reason": "overdue", "times_renewed": 0,
         "branch": "奄美図書館"}
_RENEWED = {**_LOAN, "id": "3468000001", "record_id": "1000000002", "title": "赤松小三郎ともう一つの明治維新",
            "author": "関 良基 / 著", "item_id": "3468000001", "loaned_on": "2026-11-30", "due_on": "2026-12-19",
            "overdue": False, "not_renewable_reason": "already_renewed", "times_renewed": 1, "branch": "本館こども"}
_REFUSED = {"type": "https://opac-gateway.dev/problems/not_renewable", "title": "The loan cannot be renewed",
            "status": 422, "code": "not_renewable", "detail": "the portal offers no renewal for this loan",
            "library": "kagoshima-pref", "reason": "overdue", "upstream_message": "延滞"}
# One example per response body of the most used operations, as the sandbox answers them
# (GET /v1/libraries's is this gateway's own first library, built when the document is).
RESPONSE_EXAMPLES: dict[str, Any] = {
    "SessionOut": {"token": "HzbFdhw34nv4SlCqEiMSCvBMi286iXQwH7k9gz_rN6U", "expires_at": "2026-12-04T20:20:39Z",
                   "accounts": [{"library": "kagoshima-pref", "ok": True, "card_number_masked": "******9999"}]},
    "LoanList": {"loans": [_LOAN]},
    "MergedLoans": {"loans": [_LOAN], "sources": [{"library": "kagoshima-pref", "ok": True, "elapsed_ms": 41}]},
    "RenewalResults": {"results": [{"loan_id": "3468000002", "ok": False, "error": _REFUSED},
                                   {"loan_id": "3468000001", "ok": True, "loan": _RENEWED}]},
    "LoanOut": {"loan": _RENEWED},
    "Summary": {"text": "You have one loan at 鹿児島県立図書館. “悪意” is overdue; please return it soon.",
                "loans": [_LOAN], "due_soon": [], "overdue": [_LOAN], "ready_holds": [],
                "sources": [{"library": "kagoshima-pref", "ok": True, "elapsed_ms": 41}]},
}


def _library_example() -> dict[str, Any] | None:
    from gateway.api_libraries import library_out
    from gateway.http import dump
    from gateway.runtime import gw

    g = gw()
    first = next(iter(g.config.libraries), None)
    return {"libraries": [dump(library_out(g, first))]} if first else None


_TAGS = (("/v1/sessions", "sessions"), ("/v1/libraries/{library}/password", "sessions"),
         ("/v1/libraries/{library}/records", "catalog"), ("/v1/libraries/{library}/alerts", "alerts"),
         ("/v1/libraries/{library}/", "patron"), ("/v1/libraries", "libraries"),
         ("/v1/lending-requests", "lending"), ("/v1/consortia", "lending"), ("/v1/", "across libraries"),
         ("/sandbox", "sandbox"), ("/mcp", "mcp"), ("/", "operations"))


_TAG_TEXT = (
    ("sessions", "log in to one or more libraries at once; passwords"),
    ("libraries", "the configured libraries, their rules and capabilities"),
    ("patron", "one library account: loans, renewals, holds, cart, history, messages, shelves, profile"),
    ("across libraries", ("every account of the session at once: merged loans and holds, the summary, "
                          "due dates as iCalendar, availability of an ISBN")),
    ("catalog", "catalogue search and records"),
    ("alerts", "new-arrival alerts (SDI)"),
    ("lending", "consortium lending requests"),
    ("mcp", "the Model Context Protocol endpoint for assistants"),
    ("operations", "health, readiness, metrics, this documentation"),
    ("sandbox", "the sandbox's simulators (opacgw serve without configuration)"),
)


def _tag(path: str) -> str:
    return next(tag for prefix, tag in _TAGS if path.startswith(prefix))


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _distinct_enum_names(components: dict[str, Any]) -> None:
    """Client generators name an inline enum <Schema><Title> (Alert.match → AlertMatch); when
    that is already a schema's name, the enum is titled <Title>Choice instead."""
    for name, schema in components.items():
        for prop in schema.get("properties", {}).values():
            title = prop.get("title", "")
            if "enum" in prop and f"{name}{title}" in components:
                prop["title"] = f"{title}Choice"


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One typed parameter per field (type, bounds, enum, default) from the query model."""
    schema = model.model_json_schema(by_alias=True)
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        # `str | None` is anyOf [string, null]: a query parameter is simply absent instead
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            prop = {**variants[0], **prop}
        if prop.get("default", ...) is None:
            prop.pop("default")
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in schema.get("required", []),
                                 "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _problems(endpoint: str, meta: dict[str, Any], path: str, method: str,
              api_keys: bool) -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = [InternalError]
    if meta["auth"] != "none" and not path.startswith("/sandbox"):
        found.append(RateLimited)
        if api_keys:
            found.append(ClientUnauthorized)
    if meta["auth"] == "patron":
        found.append(Unauthenticated)
        if "{library}" in path:
            found.append(LibraryNotInSession)
    if "{library}" in path:
        found.append(NotFound)
    if meta["body"] is not None:
        found += [InvalidRequest, UnsupportedMediaType]
    if meta["query"] is not None or "{" in path:
        found.append(InvalidRequest)  # also: a control character in a path segment or query value
    if method == "POST":
        found += [InvalidRequest, Conflict]  # Idempotency-Key: malformed, reused or in progress
    if endpoint not in _MERGED and endpoint not in _LOCAL:
        found += PATRON_UPSTREAM if meta["auth"] == "patron" else UPSTREAM
    found += _SPECIFIC.get(endpoint, ())
    return sorted(set(found), key=lambda cls: (cls.status, cls.code))


def _security(auth: str, api_keys: bool) -> list[dict[str, list[str]]]:
    key: dict[str, list[str]] = {"apiKey": []} if api_keys else {}
    if auth == "patron":
        return [{"bearer": [], **key}]
    if auth == "patron-or-client":
        return [{"bearer": [], **key}, key]
    if auth == "client":
        return [key] if key else []
    return []


def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    problem = _ref(Problem, components)
    api_keys = bool(current_app.extensions["opacgw"].config.gateway.api_keys)
    for rule in current_app.url_map.iter_rules():
        view = current_app.view_functions.get(rule.endpoint)
        meta = getattr(view, "_opacgw_spec", None)
        if meta is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in re.findall(r"{([a-z_]+)}", path)]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {"summary": meta["summary"], "operationId": rule.endpoint.replace(".", "_"),
                                  "tags": [_tag(path)],
                                  "parameters": [*params, {"$ref": "#/components/parameters/RequestId"}],
                                  "security": _security(meta["auth"], api_keys)}
            if meta["query"] is not None:
                op["parameters"] += _query_params(meta["query"])
            if method == "POST":
                op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False,
                                         "description": "replays the first answer to a retried write",
                                         "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
            if meta["body"] is not None:
                content: dict[str, Any] = {"schema": _ref(meta["body"], components)}
                if meta["body"].__name__ in EXAMPLES:
                    content["example"] = EXAMPLES[meta["body"].__name__]
                op["requestBody"] = {"required": True, "content": {"application/json": content}}
            ok: dict[str, Any] = {"description": "OK" if meta["status"] != 204 else "Done"}
            if meta["response"] is not None:
                media: dict[str, Any] = {"schema": _ref(meta["response"], components)}
                name = meta["response"].__name__
                example = _library_example() if name == "LibraryList" else RESPONSE_EXAMPLES.get(name)
                if example is not None:
                    media["example"] = example
                ok["content"] = {"application/json": media}
            elif meta["content_type"]:
                ok["content"] = {meta["content_type"]: {"schema": {"type": "string"}}}
            ok["headers"] = {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}
            responses: dict[str, Any] = {str(meta["status"]): ok}
            errors = _problems(rule.endpoint, meta, path, method, api_keys)
            for status in sorted({cls.status for cls in errors}):
                codes = [cls.code for cls in errors if cls.status == status]
                responses[str(status)] = {
                    "description": ", ".join(codes),
                    "content": {"application/problem+json": {"schema": {
                        "allOf": [problem, {"type": "object", "properties": {"code": {"enum": codes}}}]}}}}
            op["responses"] = responses
            paths.setdefault(path, {})[method.lower()] = op
    _distinct_enum_names(components)
    for path, item in current_app.extensions.get("opacgw_openapi_extra", {}).items():
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "OPAC Gateway — Unified Patron API", "version": "1.0.0",
                 "description": "One patron API in front of library OPAC portals, NCIP and SOAP services."},
        "tags": [{"name": name, "description": text} for name, text in _TAG_TEXT],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "parameters": {"RequestId": {
                "name": "X-Request-ID", "in": "header", "required": False,
                "description": "your id for this request, echoed back and in every log line of it "
                               "(else the gateway makes one)",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@/+=-]{1,128}$"}}},
            "headers": {"RequestId": {"description": "the request's id (yours when sane, else generated)",
                                      "schema": {"type": "string"}}},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "the session token of POST /v1/sessions"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "a client key of gateway.api_keys, when the gateway is configured "
                                          "with any"}},
        },
    }


@bp.get("/openapi.json")
@spec(auth="none", summary="This document")
def openapi() -> Response:
    return json_response(build_openapi())


def swagger_ui_dir() -> Path:
    """Swagger UI 5 as shipped by the swagger-ui-py package (reads OpenAPI 3.1)."""
    from swagger_ui.utils import SWAGGER_UI_PY_ROOT

    return Path(SWAGGER_UI_PY_ROOT) / "static"


_DOCS_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>OPAC Gateway API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true,
  displayRequestDuration: true, tryItOutEnabled: false, persistAuthorization: false});</script></body></html>"""


@bp.get("/docs")
@spec(auth="none", summary="Interactive API documentation", content_type="text/html")
def docs() -> Response:
    return Response(_DOCS_HTML, mimetype="text/html")


@bp.get("/docs/static/<path:name>")
def docs_static(name: str) -> Response:
    return send_from_directory(swagger_ui_dir(), name)
