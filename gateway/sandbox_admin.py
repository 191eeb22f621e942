"""Sandbox only: stop and restart the embedded simulators through HTTP, to watch a
library fail and recover through the API (fan-out sources, the circuit breaker).

Registered by `opacgw serve` when it runs the sandbox; never with a real configuration.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flask import Blueprint, Response, current_app

from core.errors import Conflict, InvalidRequest, NotFound
from gateway.http import body, json_response, spec

bp = Blueprint("sandbox_admin", __name__, url_prefix="/sandbox")


def _fleet() -> Any:
    return current_app.extensions["opacgw_sandbox"]


def _known(name: str) -> None:
    if name not in _fleet():
        raise NotFound(f"no sandbox simulator {name!r}")


@bp.get("/simulators")
@spec(auth="none", summary="Sandbox: the simulators and whether each is running")
def simulators() -> Response:
    return json_response({"simulators": _fleet().status()})


@bp.post("/simulators/<name>/stop")
@spec(auth="none", status=204, summary="Sandbox: stop a simulator (its library becomes unreachable)")
def stop(name: str) -> Response:
    _known(name)
    _fleet().stop(name)
    return Response(status=204)


@bp.post("/simulators/<name>/start")
@spec(auth="none", status=204, summary="Sandbox: start a stopped simulator again (fresh state)")
def start(name: str) -> Response:
    _known(name)
    _fleet().start(name)
    return Response(status=204)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["hold_ready", "reserve_loan", "advance_days", "change_password"]
    hold_id: str | None = None
    loan_id: str | None = None
    days: int | None = Field(default=None, ge=1, le=400)
    card_number: str | None = None
    new_password: str | None = None


_NEEDS = {"hold_ready": ("hold_id",), "reserve_loan": ("loan_id",), "advance_days": ("days",),
          "change_password": ("card_number", "new_password")}


@bp.post("/simulators/<name>/scenario")
@spec(auth="none", body=Scenario, summary="Sandbox: change a simulator's state (hold_ready, reserve_loan, "
                                          "advance_days, change_password) to watch subscriptions react")
def scenario(name: str) -> Response:
    from fixtures.scenario import apply

    _known(name)
    req = body(Scenario)
    missing = [f for f in _NEEDS[req.action] if getattr(req, f) is None]
    if missing:
        raise InvalidRequest(f"{req.action} needs {', '.join(missing)}",
                             errors=[{"field": f, "message": "required"} for f in missing])
    app = _fleet().app(name)
    if app is None:
        raise Conflict(f"the simulator {name!r} is stopped")
    try:
        result = apply(app, req.model_dump(exclude_none=True))
    except LookupError as exc:
        raise NotFound(str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return json_response({"simulator": name, "action": req.action, "result": result})
