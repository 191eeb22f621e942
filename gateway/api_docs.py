"""/openapi.json generated from the views' `@spec` and the pydantic models; /docs
serves Swagger UI from the swagger-ui-bundle package (no CDN)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, send_from_directory
from pydantic import BaseModel

from core.errors import ALL_ERRORS
from gateway.http import json_response, spec
from gateway.models import Problem

bp = Blueprint("docs", __name__)

_AUTH = {
    "patron": [{"bearer": []}],
    "client": [],
    "patron-or-client": [{"bearer": []}, {}],
    "none": [],
}


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    problem = _ref(Problem, components)
    codes = sorted({(e.status, e.code) for e in ALL_ERRORS})
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
                                  "parameters": list(params), "security": _AUTH.get(meta["auth"], [])}
            if meta["query"] is not None:
                for name, field in meta["query"].model_fields.items():
                    op["parameters"].append({"name": name, "in": "query", "required": field.is_required(),
                                             "schema": {"type": "string"}})
            if method == "POST":
                op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False,
                                         "schema": {"type": "string"}})
            if meta["body"] is not None:
                op["requestBody"] = {"required": True,
                                     "content": {"application/json": {"schema": _ref(meta["body"], components)}}}
            ok: dict[str, Any] = {"description": "OK"}
            if meta["response"] is not None:
                ok["content"] = {"application/json": {"schema": _ref(meta["response"], components)}}
            elif meta["content_type"]:
                ok["content"] = {meta["content_type"]: {"schema": {"type": "string"}}}
            responses: dict[str, Any] = {str(meta["status"]): ok}
            for status in sorted({s for s, _ in codes}):
                names = ", ".join(c for s, c in codes if s == status)
                responses[str(status)] = {"description": names,
                                          "content": {"application/problem+json": {"schema": problem}}}
            op["responses"] = responses
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "OPAC Gateway — Unified Patron API", "version": "1.0.0",
                 "description": "One patron API in front of library OPAC portals, NCIP and SOAP services."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


@bp.get("/openapi.json")
@spec(auth="none", summary="This document")
def openapi() -> Response:
    return json_response(build_openapi())


_DOCS_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>OPAC Gateway API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


@bp.get("/docs")
@spec(auth="none", summary="Interactive API documentation", content_type="text/html")
def docs() -> Response:
    return Response(_DOCS_HTML, mimetype="text/html")


@bp.get("/docs/static/<path:name>")
def docs_static(name: str) -> Response:
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, name)
