"""Small helpers for views: body validation, query validation, JSON answers, OpenAPI specs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, request
from pydantic import BaseModel, ValidationError

from core.errors import InvalidRequest, UnsupportedMediaType

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
        require_json_type()
        data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", errors=[{"field": "(body)", "message": "not an object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest("the body failed validation", errors=_errors(exc)) from None


MAX_JSON_DEPTH = 32


def require_json_type() -> None:
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaType(f"send the body as application/json, not {mimetype or 'no Content-Type'}")
    charset = (request.mimetype_params.get("charset") or "utf-8").lower().replace("_", "-")
    if charset not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(f"send the body in UTF-8, not {charset}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"the body repeats the key {json.dumps(key, ensure_ascii=False)[:80]}",
                                 errors=[{"field": key[:80], "message": "duplicate key"}])
        out[key] = value
    return out


def _too_deep(raw: bytes, limit: int) -> bool:
    """True when brackets nest deeper than `limit` (strings skipped), checked before parsing."""
    depth = 0
    in_str = False
    escape = False
    for ch in raw:
        if in_str:
            if escape:
                escape = False
            elif ch == 0x5C:
                escape = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return False


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, at most MAX_JSON_DEPTH levels, no duplicate keys; else 400/415."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedMediaType("the body is not valid UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if _too_deep(raw, MAX_JSON_DEPTH):
        raise InvalidRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    refuse_control_characters(data)
    return data


#: what no library can be sent: C0 controls (NUL, TAB, LF, CR, ...), DEL, lone surrogates
#: and the non-characters XML forbids.  Portals fold some of them silently ("a\nb" is
#: stored as "a b") and XML upstreams fail on the rest (lxml: "All strings must be XML
#: compatible"), so they are refused before any upstream call.
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def refuse_control_characters(data: Any, where: str = "") -> None:
    """400 invalid_request when any string (or key) in a parsed body holds a control character."""
    if isinstance(data, str):
        if _CONTROL.search(data):
            field = where or "(body)"
            raise InvalidRequest(f"{field} holds a control character",
                                 errors=[{"field": field, "message": "control characters are not allowed"}])
    elif isinstance(data, dict):
        for key, value in data.items():
            label = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(key))[:80]
            path = f"{where}.{label}" if where else label
            refuse_control_characters(key, path)
            refuse_control_characters(value, path)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            refuse_control_characters(value, f"{where}.{i}" if where else str(i))


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
