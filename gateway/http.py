"""Small helpers for views: body validation, query validation, JSON answers, OpenAPI specs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, request
from pydantic import BaseModel, ValidationError

from gateway.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        out.append({"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"],
                    "type": err["type"]})
    return out


def body(model: type[M]) -> M:
    """The request's JSON body validated as `model`, else 400 invalid_request with `errors`."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", errors=[{"field": "(body)", "message": "not an object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest("the body failed validation", errors=_errors(exc)) from None


def query(model: type[M]) -> M:
    """The query string validated as `model` (single values), else 400 invalid_request."""
    data = {k: v for k, v in request.args.items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest("the query failed validation", errors=_errors(exc)) from None


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", errors=[{"field": name, "message": "not an integer"}]) from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}",
                             errors=[{"field": name, "message": f"out of range {lo}..{hi}"}])
    return value


def bool_arg(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise InvalidRequest(f"{name} must be true or false", errors=[{"field": name, "message": "not a boolean"}])


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(dump(value), ensure_ascii=False, separators=(",", ":"))
    resp = Response(text, status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def spec(
    *,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    query: type[BaseModel] | None = None,
    summary: str = "",
    auth: str = "patron",
    content_type: str | None = None,
) -> Callable[[F], F]:
    """Describe a view for /openapi.json (the document is generated from these)."""

    def deco(fn: F) -> F:
        fn._opacgw_spec = {  # type: ignore[attr-defined]
            "body": body,
            "response": response,
            "status": status,
            "query": query,
            "summary": summary or (fn.__doc__ or "").strip().split("\n")[0],
            "auth": auth,
            "content_type": content_type,
        }
        return fn

    return deco
