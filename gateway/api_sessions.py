"""Sessions and passwords: POST/GET/DELETE /v1/sessions, PUT .../password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from flask import g as flask_g
from pydantic import ValidationError

from core.errors import InvalidRequest
from gateway.http import _errors, body, json_response, parse_json, require_json_type, spec
from gateway.models import AccountState, PasswordChange, SessionCreate, SessionOut
from gateway.passwords import change_in_session, check_new_password, forced_change
from gateway.runtime import gw

bp = Blueprint("sessions", __name__)


def _session_body() -> SessionCreate:
    raw = request.get_data(cache=True)
    data: Any = {}
    if raw.strip():
        require_json_type()
        data = parse_json(raw)
    if isinstance(data, dict) and "accounts" not in data and "library" in data:
        data = {"accounts": [data]}  # the single-account shorthand
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    try:
        return SessionCreate.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest("the body failed validation", errors=_errors(exc)) from None


def client_identity() -> str:
    """Who the per-client login budget counts: the API key (hashed), else the address."""
    client = str(flask_g.get("client") or "anonymous")
    if client == "anonymous":
        return f"addr:{request.remote_addr or '?'}"
    return f"key:{client}"


def _session_json(out: SessionOut) -> dict[str, Any]:
    """API.md's shapes: no `token` key on GET, and each account either ok or with its error."""
    return out.model_dump(mode="json", exclude_none=True)


@bp.post("/v1/sessions")
@spec(body=SessionCreate, response=SessionOut, status=201, auth="client",
      summary="Log in to one or more libraries at once; returns a session token")
def create_session() -> Response:
    req = _session_body()
    gw().throttle.check_client(client_identity())
    token, record, states = gw().login(req.accounts)
    return json_response(_session_json(SessionOut(token=token, expires_at=record.expires_at, accounts=states)), 201)


@bp.get("/v1/sessions/current")
@spec(response=SessionOut, summary="The current session and its accounts")
def current_session() -> Response:
    ctx = gw().current()
    assert ctx is not None
    accounts = [AccountState(library=a.library, ok=True, card_number_masked=a.card_number_masked)
                for a in ctx.record.accounts]
    return json_response(_session_json(SessionOut(expires_at=ctx.record.expires_at, accounts=accounts)))


@bp.delete("/v1/sessions/current")
@spec(status=204, summary="Log out here and upstream")
def delete_session() -> Response:
    gw().logout()
    return Response(status=204)


@bp.put("/v1/libraries/<library>/password")
@spec(body=PasswordChange, status=204, auth="patron-or-client",
      summary="Change the password (with a token), or the forced first-login change (card number, no token)")
def change_password(library: str) -> Response:
    g = gw()
    lib = g.library(library)
    req = body(PasswordChange)
    check_new_password(lib, req.current_password, req.new_password)
    if request.headers.get("Authorization"):
        change_in_session(g, library, req.current_password, req.new_password)
    else:
        forced_change(g, library, req.card_number, req.current_password, req.new_password, client_identity())
    return Response(status=204)
