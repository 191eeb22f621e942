"""Sandbox only: stop and restart the embedded simulators through HTTP, to watch a
library fail and recover through the API (fan-out sources, the circuit breaker).

Registered by `opacgw serve` when it runs the sandbox; never with a real configuration.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from core.errors import NotFound
from gateway.http import json_response, spec

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
