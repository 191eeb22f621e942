"""Consortium lending routes: ``GET /v1/consortia`` and ``/v1/lending-requests``.

A request goes to whichever adapter of the supplying library declares
``lending_request`` (the wo portal's e-Net form, an NCIP responder, ...): this module
names none.  State and history live in ``gateway.lending``; the upstream is asked
for the current state on every read, and when it cannot answer the stored state is
served with ``stale: true``.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from flask import Blueprint, Response

from adapters.base import Adapter
from core.errors import Conflict, GatewayError, InvalidRequest, NotFound
from gateway.config import ConsortiumConfig
from gateway.http import body, json_response, spec
from gateway.lending import CANCELLABLE, LendingStore, StoredRequest, reconcile
from gateway.models import (
    Consortium,
    ConsortiumList,
    LendingRequest,
    LendingRequestCreate,
    LendingRequestList,
    PickupLibrary,
    UpstreamLending,
)
from gateway.runtime import gw

log = logging.getLogger("opacgw.lending")
bp = Blueprint("lending", __name__)


def store() -> LendingStore:
    return gw().lending_store


# ---------------------------------------------------------------- consortia
@bp.get("/v1/consortia")
@spec(response=ConsortiumList, auth="client", summary="Consortia, their supplying libraries and pickup points")
def consortia() -> Response:
    out = [
        Consortium(id=c.id, name=c.name, supplying_libraries=list(c.supplying_libraries),
                   pickup_libraries=[PickupLibrary(id=p.id, name=p.name) for p in c.pickup_libraries])
        for c in gw().config.consortia.values()
    ]
    return json_response(ConsortiumList(consortia=out))


def resolve_pickup(supplying: str, pickup: str) -> tuple[ConsortiumConfig, str]:
    """(consortium, pickup library id) for a request, or 400 invalid_request saying why not."""
    lib = gw().library(supplying)
    mine = [c for c in gw().config.consortia.values() if supplying in c.supplying_libraries]
    if not mine:
        raise InvalidRequest(f"{lib.name} ({supplying}) supplies no consortium of this gateway",
                             errors=[{"field": "supplying_library", "message": "not a supplying library"}])
    for cons in mine:
        for p in cons.pickup_libraries:
            if pickup in (p.id, p.name):
                return cons, p.id
    for cons in mine:
        for p in cons.excluded_pickups:
            if pickup in (p.id, p.name):
                raise InvalidRequest(
                    f"{p.name} ({p.id}) is not a pickup point of {cons.name}: items of {lib.name} cannot be "
                    "collected there; choose another library from GET /v1/consortia",
                    errors=[{"field": "pickup_library", "message": "excluded pickup library"}],
                )
    names = ", ".join(c.name for c in mine)
    raise InvalidRequest(
        f"{pickup!r} is not a pickup library of {names}; GET /v1/consortia lists them",
        errors=[{"field": "pickup_library", "message": "not in the consortium"}],
    )


# ---------------------------------------------------------------- refresh
def refresh(rows: list[StoredRequest]) -> list[StoredRequest]:
    """Ask each supplying library once for its current states; mark rows stale on failure.

    Upstream requests the gateway has not seen (made on the library's own portal)
    are adopted so the list is complete.
    """
    st = store()
    accounts = {a.library: a for a in gw().accounts()}
    by_lib: dict[str, list[StoredRequest]] = defaultdict(list)
    for r in rows:
        by_lib[r.supplying_library].append(r)
    # every supplying library the token holds an account at is asked, even with no rows yet
    for cons in gw().config.consortia.values():
        for lib_id in cons.supplying_libraries:
            if lib_id in accounts and gw().offers(lib_id, Adapter.lending_requests):
                by_lib.setdefault(lib_id, [])
    out: list[StoredRequest] = []
    for lib_id, lib_rows in by_lib.items():
        if lib_id not in accounts:
            for r in lib_rows:
                r.stale = True
            out += lib_rows
            continue
        try:
            upstream = gw().patron(lib_id).lending_requests()
        except GatewayError as err:
            log.info("lending refresh failed library=%s code=%s; serving stored state", lib_id, err.code)
            for r in lib_rows:
                r.stale = True
            out += lib_rows
            continue
        known = {r.upstream_id: r for r in lib_rows}
        card_hash = accounts[lib_id].card_hash
        for up in upstream:
            row = known.get(up.upstream_id) or st.by_upstream(lib_id, card_hash, up.upstream_id)
            if row is None:
                row = adopt(lib_id, card_hash, up)
                if row is None:
                    continue
                st.save(row)
                out.append(row)
                continue
            if reconcile(row, up):
                st.save(row)
            if up.upstream_id in known:
                known.pop(up.upstream_id)
                out.append(row)
        out += known.values()  # the upstream no longer lists them: keep what we know
    out.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return out


def adopt(lib_id: str, card_hash: str, up: UpstreamLending) -> StoredRequest | None:
    pickup = up.extra.get("pickup_library") or up.extra.get("pickup_name")
    if not pickup:
        return None
    created = up.extra.get("requested_at")
    from datetime import datetime

    at = datetime.fromisoformat(created) if isinstance(created, str) else None
    return StoredRequest.new(card_hash, lib_id, str(pickup), None, up, at)


def owned(request_id: str) -> StoredRequest:
    hashes = [a.card_hash for a in gw().accounts()]
    row = store().get(request_id, hashes)
    if row is None:
        raise NotFound(f"no lending request {request_id!r} for this session")
    return row


def cancel_request(row: StoredRequest) -> None:
    """Cancel at the supplying library unless it is too late (409); already cancelled is fine."""
    # the upstream is the truth: learn its current state before deciding
    up_list = gw().patron(row.supplying_library).lending_requests()
    current = next((u for u in up_list if u.upstream_id == row.upstream_id), None)
    st = store()
    if current is not None and reconcile(row, current):
        st.save(row)
    if row.status == "cancelled":
        return
    if row.status not in CANCELLABLE:
        raise Conflict(
            f"the request is already {row.status}; a lending request can be cancelled only before it is shipped",
            library=row.supplying_library, status_now=row.status,
        )
    gw().patron(row.supplying_library).cancel_lending_request(row.upstream_id)
    row.advance("cancelled")
    st.save(row)


# ---------------------------------------------------------------- routes
@bp.post("/v1/lending-requests")
@spec(body=LendingRequestCreate, response=LendingRequest, status=201,
      summary="Ask the supplying library to send an item to a pickup library of its consortium")
def create() -> Response:
    req = body(LendingRequestCreate)
    gw().current()
    _, pickup_id = resolve_pickup(req.supplying_library, req.pickup_library)
    account = gw().account(req.supplying_library)
    up = gw().patron(req.supplying_library).create_lending_request(req.record_id, pickup_id, req.pickup_branch)
    st = store()
    row = st.by_upstream(req.supplying_library, account.card_hash, up.upstream_id)
    if row is None:
        row = StoredRequest.new(account.card_hash, req.supplying_library, pickup_id, req.pickup_branch, up)
        st.save(row)
    elif reconcile(row, up):
        st.save(row)
    return json_response(row.to_model(), status=201)


@bp.get("/v1/lending-requests")
@spec(response=LendingRequestList, summary="This session's lending requests with their histories")
def list_requests() -> Response:
    gw().current()
    rows = store().for_cards([a.card_hash for a in gw().accounts()])
    return json_response(LendingRequestList(requests=[r.to_model() for r in refresh(rows)]))


@bp.get("/v1/lending-requests/<request_id>")
@spec(response=LendingRequest, summary="One lending request, its status refreshed from the supplying library")
def get_request(request_id: str) -> Response:
    gw().current()
    row = owned(request_id)
    fresh = next((r for r in refresh([row]) if r.id == row.id), row)
    return json_response(fresh.to_model())


@bp.delete("/v1/lending-requests/<request_id>")
@spec(status=204, summary="Cancel a lending request (only before it is shipped)")
def cancel(request_id: str) -> Response:
    gw().current()
    cancel_request(owned(request_id))
    return Response(status=204)
