"""Per-library patron endpoints: profile, loans and renewals, holds, cart, history,
messages, shelves.  Each view: look up, call the adapter contract, serialise."""

from __future__ import annotations

import re

from flask import Blueprint, Response

from core.errors import GatewayError, InvalidRequest, NotFound
from gateway.http import body, json_response, query, spec
from gateway.idempotency import mark_unsettled
from gateway.models import (
    Cart,
    HistoryPage,
    Hold,
    HoldList,
    HoldRequest,
    HoldResult,
    HoldResults,
    HoldUpdate,
    LoanList,
    LoanOut,
    MessageList,
    Problem,
    Profile,
    ProfileUpdate,
    RecordRef,
    RenewalBatch,
    RenewalResult,
    RenewalResults,
    Shelf,
    ShelfCreate,
    ShelfItem,
    ShelfItems,
    ShelfList,
    ShelfMove,
)
from gateway.queries import ExportQuery, HistoryQuery, MessagesQuery
from gateway.runtime import gw

bp = Blueprint("patron", __name__, url_prefix="/v1/libraries/<library>")

# Checked here, before any upstream call; each portal applies its own rules after.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]+")


def _check_branch(library: str, value: str | None, field: str) -> str | None:
    """Accept a branch id or name; pass the name on (adapters speak names)."""
    if value is None:
        return None
    lib = gw().library(library)
    if not lib.branches:
        return value
    branch = lib.branch_by_name_or_id(value)
    if branch is None:
        names = "、".join(b.name for b in lib.branches)
        raise InvalidRequest(f"unknown {field} {value!r} at {lib.name} (one of: {names})",
                             errors=[{"field": field, "message": "unknown branch"}], library=library)
    return branch.name


def _check_contact(library: str, value: str | None) -> None:
    lib = gw().library(library)
    if value is not None and lib.contact_methods and value not in lib.contact_methods:
        raise InvalidRequest(f"unknown contact_method {value!r} (one of: {', '.join(lib.contact_methods)})",
                             errors=[{"field": "contact_method", "message": "unknown contact method"}],
                             library=library)


# ------------------------------------------------------------------ profile
@bp.get("/patron")
@spec(response=Profile, summary="The patron's profile at this library")
def get_profile(library: str) -> Response:
    return json_response(gw().patron(library).profile())


@bp.patch("/patron")
@spec(body=ProfileUpdate, response=Profile, summary="Change e-mails, notices, pickup branch, history opt-in")
def patch_profile(library: str) -> Response:
    changes = body(ProfileUpdate)
    bad = [{"field": f"emails.{i}.address", "message": "not an e-mail address"}
           for i, e in enumerate(changes.emails or []) if not _EMAIL.fullmatch(e.address.strip())]
    if bad:
        raise InvalidRequest("an e-mail address is not valid", errors=bad, library=library)
    if changes.pickup_branch is not None:
        changes = changes.model_copy(update={"pickup_branch": _check_branch(library, changes.pickup_branch,
                                                                            "pickup_branch")})
    _check_contact(library, changes.contact_method)
    g = gw()
    ctx = g.current()
    assert ctx is not None
    password = g.vault.get(ctx.token_hash, library)
    return json_response(g.patron(library).update_profile(changes, password))


# ------------------------------------------------------------------ loans
@bp.get("/loans")
@spec(response=LoanList, summary="Current loans")
def list_loans(library: str) -> Response:
    return json_response(LoanList(loans=gw().patron(library).loans()))


def _renew(library: str, loan_ids: list[str] | None) -> list[RenewalResult]:
    results: list[RenewalResult] = gw().patron(library).renew(loan_ids)
    _unsettled(results)
    return results


def _unsettled(results: list[RenewalResult] | list[HoldResult]) -> None:
    """A batch with an outcome the gateway could not learn is not kept for Idempotency-Key
    replays: a retry runs again and re-reads (adapters.writes)."""
    if any(r.error is not None and r.error.status >= 500 for r in results):
        mark_unsettled()


@bp.post("/loans/<loan_id>/renewal")
@spec(response=LoanOut, summary="Renew one loan")
def renew_one(library: str, loan_id: str) -> Response:
    results = _renew(library, [loan_id])
    if len(results) != 1:
        raise NotFound(f"no loan {loan_id!r}", library=library)
    result = results[0]
    if not result.ok or result.loan is None:
        problem = result.error.model_dump() if result.error else {"code": "upstream_error"}
        from core.errors import error_from_problem

        raise error_from_problem(problem)
    return json_response(LoanOut(loan=result.loan))


@bp.post("/renewals")
@spec(body=RenewalBatch, response=RenewalResults, summary="Renew several loans, or all")
def renew_many(library: str) -> Response:
    req = body(RenewalBatch)
    if req.all == bool(req.loan_ids):
        raise InvalidRequest('send either {"loan_ids": [...]} or {"all": true}',
                             errors=[{"field": "loan_ids", "message": "exactly one of loan_ids and all"}])
    if req.all:
        # Every current loan, so that the answer says why each one that cannot be renewed
        # was not (an adapter's "renew all" would silently skip them).
        loans = gw().patron(library).loans()
        ids = [loan.id for loan in loans]
        if not ids:
            return json_response(RenewalResults(results=[]))
    else:
        ids = list(dict.fromkeys(req.loan_ids or []))
    return json_response(RenewalResults(results=_renew(library, ids)))


# ------------------------------------------------------------------ holds
@bp.get("/holds")
@spec(response=HoldList, summary="Holds (reservations) and their states")
def list_holds(library: str) -> Response:
    return json_response(HoldList(holds=gw().patron(library).holds()))


@bp.post("/holds")
@spec(body=HoldRequest, response=HoldResults, status=201, summary="Place holds (ordered = まとめて予約)")
def place_holds(library: str) -> Response:
    req = body(HoldRequest)
    if len(set(req.record_ids)) != len(req.record_ids):
        raise InvalidRequest("record_ids has duplicates", errors=[{"field": "record_ids", "message": "duplicates"}])
    req = req.model_copy(update={"pickup_branch": _check_branch(library, req.pickup_branch, "pickup_branch")})
    _check_contact(library, req.contact_method)
    results = gw().patron(library).place_holds(req)
    _unsettled(results)
    # One shape for a refusal of the patron as a whole (e.g. 延滞本をお持ちの場合、予約できません):
    # whether the adapter raised it or put it in every result, the answer is a 403.
    if results and all(not r.ok and r.error is not None and r.error.code == "account_blocked" for r in results):
        from core.errors import error_from_problem

        raise error_from_problem(results[0].error.model_dump())
    return json_response(HoldResults(results=results), 201)


@bp.patch("/holds/<hold_id>")
@spec(body=HoldUpdate, response=Hold, summary="Change a hold's pickup branch or contact method")
def update_hold(library: str, hold_id: str) -> Response:
    req = body(HoldUpdate)
    if req.pickup_branch is None and req.contact_method is None:
        raise InvalidRequest("nothing to change", errors=[{"field": "(body)", "message": "empty"}])
    req = req.model_copy(update={"pickup_branch": _check_branch(library, req.pickup_branch, "pickup_branch")})
    _check_contact(library, req.contact_method)
    return json_response(gw().patron(library).update_hold(hold_id, req))


@bp.delete("/holds/<hold_id>")
@spec(status=204, summary="Cancel a hold")
def cancel_hold(library: str, hold_id: str) -> Response:
    gw().patron(library).cancel_hold(hold_id)
    return Response(status=204)


# ------------------------------------------------------------------ cart
@bp.get("/cart")
@spec(response=Cart, summary="The reservation cart (予約かご) — not holds")
def get_cart(library: str) -> Response:
    return json_response(gw().patron(library).cart())


@bp.post("/cart")
@spec(body=RecordRef, response=Cart, status=201, summary="Put a record in the cart")
def add_cart(library: str) -> Response:
    req = body(RecordRef)
    return json_response(gw().patron(library).cart_add(req.record_id), 201)


@bp.delete("/cart/<record_id>")
@spec(status=204, summary="Take a record out of the cart")
def remove_cart(library: str, record_id: str) -> Response:
    gw().patron(library).cart_remove(record_id)
    return Response(status=204)


# ------------------------------------------------------------------ history, messages
@bp.get("/history")
@spec(response=HistoryPage, query=HistoryQuery, summary="Reading history (only kept after opting in)")
def history(library: str) -> Response:
    q = query(HistoryQuery)
    return json_response(gw().patron(library).history(q.page, q.per_page))


@bp.get("/messages")
@spec(response=MessageList, query=MessagesQuery, summary="Messages from the library")
def messages(library: str) -> Response:
    include_read = query(MessagesQuery).include_read
    return json_response(MessageList(messages=gw().patron(library).messages(include_read)))


# ------------------------------------------------------------------ shelves
@bp.get("/shelves")
@spec(response=ShelfList, summary="Bookshelves (本棚)")
def list_shelves(library: str) -> Response:
    return json_response(ShelfList(shelves=gw().patron(library).shelves()))


@bp.post("/shelves")
@spec(body=ShelfCreate, response=Shelf, status=201, summary="Create a shelf")
def create_shelf(library: str) -> Response:
    req = body(ShelfCreate)
    return json_response(gw().patron(library).create_shelf(req.name), 201)


@bp.patch("/shelves/<shelf_id>")
@spec(body=ShelfCreate, response=Shelf, summary="Rename a shelf")
def rename_shelf(library: str, shelf_id: str) -> Response:
    req = body(ShelfCreate)
    return json_response(gw().patron(library).rename_shelf(shelf_id, req.name))


@bp.delete("/shelves/<shelf_id>")
@spec(status=204, summary="Delete a shelf (irreversible)")
def delete_shelf(library: str, shelf_id: str) -> Response:
    gw().patron(library).delete_shelf(shelf_id)
    return Response(status=204)


@bp.get("/shelves/<shelf_id>/items")
@spec(response=ShelfItems, summary="A shelf's records")
def shelf_items(library: str, shelf_id: str) -> Response:
    return json_response(ShelfItems(items=gw().patron(library).shelf_items(shelf_id)))


@bp.post("/shelves/<shelf_id>/items")
@spec(body=RecordRef, response=ShelfItem, status=201, summary="Add a record to a shelf")
def add_shelf_item(library: str, shelf_id: str) -> Response:
    req = body(RecordRef)
    return json_response(gw().patron(library).add_shelf_item(shelf_id, req.record_id), 201)


@bp.delete("/shelves/<shelf_id>/items/<record_id>")
@spec(status=204, summary="Remove a record from a shelf")
def remove_shelf_item(library: str, shelf_id: str, record_id: str) -> Response:
    gw().patron(library).remove_shelf_item(shelf_id, record_id)
    return Response(status=204)


@bp.post("/shelves/<shelf_id>/items/<record_id>/move")
@spec(body=ShelfMove, status=204, summary="Move (or copy) a record to another shelf")
def move_shelf_item(library: str, shelf_id: str, record_id: str) -> Response:
    req = body(ShelfMove)
    if req.to_shelf_id == shelf_id:
        raise InvalidRequest("to_shelf_id is the same shelf", errors=[{"field": "to_shelf_id", "message": "same"}])
    gw().patron(library).move_shelf_item(shelf_id, record_id, req.to_shelf_id, req.copy_)
    return Response(status=204)


@bp.get("/shelves/<shelf_id>/export")
@spec(summary="Download a shelf as CSV", query=ExportQuery, content_type="text/csv")
def export_shelf(library: str, shelf_id: str) -> Response:
    query(ExportQuery)
    text = gw().patron(library).export_shelf(shelf_id)
    resp = Response(text, mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="shelf-{shelf_id}.csv"'
    return resp


__all__ = ["GatewayError", "Problem", "bp"]
