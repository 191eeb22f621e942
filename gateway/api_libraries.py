"""Libraries and operations endpoints: /v1/libraries, /healthz, /readyz."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.http import json_response, spec
from gateway.models import (
    Branch,
    CardNumberRule,
    Library,
    LibraryList,
    MaintenanceWindowOut,
    PasswordPolicyOut,
)
from gateway.runtime import Gateway, gw

bp = Blueprint("libraries", __name__)


def library_out(gateway: Gateway, library_id: str) -> Library:
    lib = gateway.library(library_id)
    pol = lib.password_policy
    return Library(
        id=lib.id,
        name=lib.name,
        adapter=lib.adapter,
        timezone=lib.timezone,
        capabilities=gateway.capabilities(lib.id),
        card_number=CardNumberRule(digits=lib.card_number.digits, example=lib.card_number.example),
        password_policy=PasswordPolicyOut(
            min_length=pol.min_length, max_length=pol.max_length, charset=pol.charset,
            require_letter=pol.require_letter, require_digit=pol.require_digit,
        ),
        branches=[Branch(id=b.id, name=b.name) for b in lib.branches],
        contact_methods=list(lib.contact_methods),
        maintenance_windows=[MaintenanceWindowOut(start=w.start, end=w.end) for w in lib.maintenance],
        status=gateway.status(lib.id),  # type: ignore[arg-type]
    )


@bp.get("/v1/libraries")
@spec(response=LibraryList, auth="client", summary="List the configured libraries")
def list_libraries() -> Response:
    g = gw()
    return json_response(LibraryList(libraries=[library_out(g, i) for i in g.config.libraries]))


@bp.get("/v1/libraries/<library>")
@spec(response=Library, auth="client", summary="One library: capabilities, card and password rules, branches")
def get_library(library: str) -> Response:
    return json_response(library_out(gw(), library))


@bp.get("/healthz")
@spec(auth="none", summary="Liveness")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
@spec(auth="none", summary="Readiness: configuration loaded, database writable, library states")
def readyz() -> Response:
    g = gw()
    with g.db().tx() as tx:
        tx.execute("SELECT 1").fetchone()
    states = {lib: g.status(lib) for lib in g.config.libraries}
    return json_response({"status": "ready", "libraries": states})
