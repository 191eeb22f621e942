"""Watched accounts (issue #14): subscriptions, their events (JSON pages or a live
server-sent stream), webhook deliveries, and the calendar URL a calendar app can
subscribe to without a header.  The worker that fills them is ``gateway.watch.worker``."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from core.errors import InvalidRequest, NotFound, NotSupported, Unauthenticated
from core.models import Loan
from gateway.http import body, int_arg, json_response, spec
from gateway.runtime import Gateway, gw
from gateway.watch import webhooks
from gateway.watch.differ import EVENT_TYPES
from gateway.watch.models import (
    AutoRenew,
    CalendarURL,
    Delivery,
    DeliveryList,
    EventOut,
    EventPage,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionUpdate,
)
from gateway.watch.keys import seal, unseal
from gateway.watch.store import SubscriptionRow, WatchedAccount

bp = Blueprint("subscriptions", __name__)

def _cipher(g: Gateway) -> Any:
    if g.watch_cipher is None:
        raise NotSupported("this gateway keeps no subscriptions: set gateway.subscription_keys")
    return g.watch_cipher


def _calendar_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _calendar_url(secret: str) -> str:
    return f"{request.host_url.rstrip('/')}/v1/calendar/{secret}.ics"


def _out(sub: SubscriptionRow, **shown: Any) -> SubscriptionOut:
    return SubscriptionOut(id=sub.id, libraries=sub.libraries, events=sub.events, webhook_url=sub.webhook_url,
                           due_soon_days=sub.due_soon_days,
                           auto_renew=AutoRenew(days_before=sub.auto_renew_days) if sub.auto_renew_days else None,
                           status=sub.status, created_at=sub.created_at, **shown)  # type: ignore[arg-type]


def _check_webhook(g: Gateway, url: str | None) -> None:
    if url is None:
        return
    try:
        webhooks.check_url(url, allow_loopback=g.settings.sandbox)
    except webhooks.UnsafeURL as exc:
        raise InvalidRequest(str(exc), errors=[{"field": "webhook_url", "message": str(exc)}]) from None


def _mine(g: Gateway, sub_id: str) -> SubscriptionRow:
    owners = {(a.library, a.card_hash) for a in g.accounts()}
    sub = g.watch_store.get(sub_id)
    if sub is None or not owners & set(sub.owners):
        raise NotFound(f"no subscription {sub_id!r} of this session's accounts")
    return sub


@bp.post("/v1/subscriptions")
@spec(body=SubscriptionCreate, response=SubscriptionOut, status=201,
      summary="Watch the session's accounts: events, webhooks, a calendar URL, automatic renewal")
def create() -> Response:
    g = gw()
    ctx = g.current()  # authentication before the body and the gateway's own settings
    assert ctx is not None
    req = body(SubscriptionCreate)
    if req.consent is not True:
        raise InvalidRequest("consent must be true: to check the account while you are away the gateway keeps "
                             "your library password, encrypted with its own key, until you DELETE the "
                             "subscription", errors=[{"field": "consent", "message": "must be true"}])
    cipher = _cipher(g)
    mine = {a.library: a for a in ctx.record.accounts}
    libraries = req.libraries or list(mine)
    for lib in libraries:
        g.library(lib)
        if lib not in mine:
            raise InvalidRequest(f"this session holds no account at {lib!r}",
                                 errors=[{"field": "libraries", "message": f"{lib}: not in the session"}])
    _check_webhook(g, req.webhook_url)
    sub_id = "sub_" + uuid.uuid4().hex
    accounts = []
    for lib in dict.fromkeys(libraries):
        acc = mine[lib]
        password = g.vault.get(ctx.token_hash, lib)
        state = g.crypto.open(acc.upstream)
        if password is None or not state or not state.get("card_number"):
            raise Unauthenticated(f"this gateway process holds no password for {lib!r} (it restarted since "
                                  "the login): log in again, then subscribe", library=lib)
        accounts.append(WatchedAccount(sub_id, lib, acc.card_hash, acc.card_number_masked,
                                       seal(cipher, {"card": state["card_number"], "password": password}),
                                       None, None, "active"))
    signing_secret = webhooks.new_secret()
    calendar_secret = secrets.token_urlsafe(32)
    sub = SubscriptionRow(sub_id, list(dict.fromkeys(libraries)), list(req.events or EVENT_TYPES), req.webhook_url,
                          seal(cipher, signing_secret), _calendar_hash(calendar_secret), req.due_soon_days,
                          req.auto_renew.days_before if req.auto_renew else None, "active",
                          datetime.now(UTC).isoformat(timespec="seconds"), [])
    g.watch_store.create(sub, accounts, time.time())
    return json_response(_out(sub, signing_secret=signing_secret, calendar_url=_calendar_url(calendar_secret)),
                         201, {"Location": f"/v1/subscriptions/{sub_id}"})


@bp.get("/v1/subscriptions")
@spec(response=SubscriptionList, summary="The subscriptions of the session's accounts")
def list_all() -> Response:
    g = gw()
    owners = [(a.library, a.card_hash) for a in g.accounts()]
    return json_response(SubscriptionList(subscriptions=[_out(s) for s in g.watch_store.owned_by(owners)]))


@bp.get("/v1/subscriptions/<sub_id>")
@spec(response=SubscriptionOut, summary="One subscription")
def get_one(sub_id: str) -> Response:
    return json_response(_out(_mine(gw(), sub_id)))


@bp.patch("/v1/subscriptions/<sub_id>")
@spec(body=SubscriptionUpdate, response=SubscriptionOut, summary="Change events, webhook, due_soon_days, "
                                                                 "auto_renew; resume a paused subscription")
def patch(sub_id: str) -> Response:
    g = gw()
    sub = _mine(g, sub_id)
    req = body(SubscriptionUpdate)
    fields: dict[str, Any] = {}
    sent = req.model_fields_set
    if "events" in sent and req.events:
        fields["events"] = list(req.events)
    if "webhook_url" in sent:
        _check_webhook(g, req.webhook_url)
        fields["webhook_url"] = req.webhook_url
    if "due_soon_days" in sent and req.due_soon_days:
        fields["due_soon_days"] = req.due_soon_days
    if "auto_renew" in sent:
        fields["auto_renew_days"] = req.auto_renew.days_before if req.auto_renew else None
    if req.status == "active" and sub.status == "paused":
        _resume(g, sub)
        fields["status"] = "active"
    if fields:
        g.watch_store.update(sub_id, **fields)
    updated = g.watch_store.get(sub_id)
    assert updated is not None
    return json_response(_out(updated))


def _resume(g: Gateway, sub: SubscriptionRow) -> None:
    """A paused subscription resumes with the password of the session's current login."""
    cipher = _cipher(g)
    ctx = g.current()
    assert ctx is not None
    for acc in g.watch_store.accounts(sub.id):
        mine = ctx.record.account(acc.library)
        password = g.vault.get(ctx.token_hash, acc.library)
        state = g.crypto.open(mine.upstream) if mine else None
        if mine is None or password is None or not state:
            raise Unauthenticated(f"log in to {acc.library!r} with the new password, then resume",
                                  library=acc.library)
        g.watch_store.set_credential(sub.id, acc.library,
                                     seal(cipher, {"card": state["card_number"], "password": password}))


@bp.delete("/v1/subscriptions/<sub_id>")
@spec(status=204, summary="Stop watching: the stored credential, snapshots and events are erased at once")
def delete(sub_id: str) -> Response:
    g = gw()
    _mine(g, sub_id)
    g.watch_store.delete(sub_id)
    return Response(status=204)


@bp.post("/v1/subscriptions/<sub_id>/calendar-url")
@spec(response=CalendarURL, summary="Rotate the calendar URL (the old one stops working)")
def rotate_calendar(sub_id: str) -> Response:
    g = gw()
    _mine(g, sub_id)
    secret = secrets.token_urlsafe(32)
    g.watch_store.update(sub_id, calendar_hash=_calendar_hash(secret))
    return json_response(CalendarURL(calendar_url=_calendar_url(secret)))


def _cursor(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest(f"{name} must be a cursor from a previous page",
                             errors=[{"field": name, "message": "not a cursor"}])
    return int(raw)


@bp.get("/v1/subscriptions/<sub_id>/events")
@spec(response=EventPage, summary="Events after a cursor; with Accept: text/event-stream a live stream "
                                  "resuming from Last-Event-ID")
def events(sub_id: str) -> Response:
    g = gw()
    _mine(g, sub_id)
    store = g.watch_store
    if "text/event-stream" in request.headers.get("Accept", ""):
        after = _cursor(request.headers.get("Last-Event-ID") or request.args.get("after"), "Last-Event-ID")
        limit_s = float(request.args.get("timeout", "0") or 0) if request.args.get("timeout", "").isdigit() else 0.0

        def stream() -> Iterator[str]:
            cursor = after
            started = time.monotonic()
            yield ": watching\n\n"
            while store.get(sub_id) is not None:
                for seq, ev in store.events(sub_id, cursor, 100):
                    cursor = seq
                    yield f"id: {seq}\nevent: {ev['type']}\ndata: {json.dumps(ev, ensure_ascii=False)}\n\n"
                if limit_s and time.monotonic() - started > limit_s:
                    return
                time.sleep(0.5)
                yield ": keep-alive\n\n"

        resp = Response(stream_with_context(stream()), mimetype="text/event-stream")
        resp.headers["X-Accel-Buffering"] = "no"
        return resp
    after = _cursor(request.args.get("after"), "after")
    limit = int_arg("limit", 100, 1, 500)
    rows = store.events(sub_id, after, limit)
    return json_response(EventPage(events=[EventOut(**ev) for _, ev in rows],
                                   next=str(rows[-1][0] if rows else after)))


@bp.get("/v1/subscriptions/<sub_id>/deliveries")
@spec(response=DeliveryList, summary="Recent webhook attempts and their outcome")
def deliveries(sub_id: str) -> Response:
    g = gw()
    _mine(g, sub_id)
    limit = int_arg("limit", 50, 1, 500)
    return json_response(DeliveryList(deliveries=[Delivery(**d) for d in g.watch_store.deliveries(sub_id, limit)]))


@bp.get("/v1/calendar/<secret>.ics")
@spec(auth="none", summary="A subscription's due dates as iCalendar, from the watched snapshot (no header: "
                           "the unguessable URL is the credential)", content_type="text/calendar")
def calendar(secret: str) -> Response:
    from gateway.across import due_calendar

    g = gw()
    sub = g.watch_store.by_calendar(_calendar_hash(secret)) if len(secret) <= 100 else None
    if sub is None:
        raise NotFound("no such calendar (rotated or deleted?)")
    cipher = _cipher(g)
    loans: list[Loan] = []
    for acc in g.watch_store.accounts(sub.id):
        snap = unseal(cipher, acc.snapshot) or {}
        loans += [Loan.model_validate(l) for l in snap.get("loans", [])]
    loans.sort(key=lambda l: (l.due_on, l.library, l.title))
    resp = Response(due_calendar(g, loans), mimetype="text/calendar")
    resp.headers["Content-Disposition"] = 'inline; filename="due-dates.ics"'
    return resp
