"""Across libraries: merged loans and holds (fan-out), the chatbot summary, the
due-date calendar, and availability by ISBN (JSON or server-sent events).

Fan-out runs every account concurrently on the gateway's worker pool; each library
has its own deadline (its `timeout`, capped by `fanout_deadline_seconds`), so one
slow or broken library never delays the answer beyond its deadline nor hides the
others — its `sources` entry says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, request

from adapters.base import Adapter
from core.errors import GatewayError, InvalidRequest, UpstreamTimeout
from gateway.facade import PatronCalls
from gateway.http import dump, json_response, query, spec
from gateway.models import (
    Availability,
    Hold,
    LibraryAvailability,
    MergedHolds,
    MergedLoans,
    Problem,
    Source,
    Summary,
)
from gateway.queries import AvailabilityQuery, SummaryQuery
from gateway.runtime import Gateway, SessionContext, gw
from gateway.speech import DUE_SOON_DAYS, summary_sentences, to_ssml
from gateway.speech import summary_text  # noqa: F401  (re-exported: tests, older imports)

bp = Blueprint("across", __name__)
T = TypeVar("T")



def _deadline(g: Gateway, library: str) -> float:
    return min(g.library(library).timeout, g.settings.fanout_deadline_seconds)


def fanout(g: Gateway, ctx: SessionContext,
           call: Callable[[PatronCalls], list[T]]) -> tuple[list[T], list[Source]]:
    """Make one typed call (e.g. ``PatronCalls.loans``) on every account of the session
    at once; merge what arrives in time."""
    start = time.perf_counter()
    futures: dict[str, Future[tuple[Any, GatewayError | None, int]]] = {}
    for acc in ctx.record.accounts:
        lib = acc.library
        futures[lib] = g.executor.submit(
            g.timed, lambda lib=lib: call(g.patron(lib, ctx))
        )
    items: list[Any] = []
    sources: list[Source] = []
    for lib, fut in futures.items():
        remaining = _deadline(g, lib) - (time.perf_counter() - start)
        done, _ = wait([fut], timeout=max(0.0, remaining))
        if not done:
            err: GatewayError = UpstreamTimeout(
                f"no answer within the fan-out deadline of {_deadline(g, lib):g} s", library=lib)
            sources.append(Source(library=lib, ok=False, error=Problem(**err.to_problem()),
                                  elapsed_ms=int((time.perf_counter() - start) * 1000)))
            continue
        value, error, elapsed = fut.result()
        if error is not None:
            error.with_library(lib)
            sources.append(Source(library=lib, ok=False, error=Problem(**error.to_problem()), elapsed_ms=elapsed))
        else:
            items.extend(value or [])
            sources.append(Source(library=lib, ok=True, elapsed_ms=elapsed))
    return items, sources


def _ctx(g: Gateway) -> SessionContext:
    ctx = g.current()
    assert ctx is not None
    return ctx


@bp.get("/v1/loans")
@spec(response=MergedLoans, summary="Loans of every account of the session, merged")
def all_loans() -> Response:
    g = gw()
    loans, sources = fanout(g, _ctx(g), PatronCalls.loans)
    loans.sort(key=lambda l: (l.due_on, l.library, l.title))
    return json_response(MergedLoans(loans=loans, sources=sources))


@bp.get("/v1/holds")
@spec(response=MergedHolds, summary="Holds of every account of the session, merged")
def all_holds() -> Response:
    g = gw()
    holds, sources = fanout(g, _ctx(g), PatronCalls.holds)
    order = {"ready": 0, "in_transit": 1, "waiting": 2, "submitted": 3, "expired": 4, "cancelled": 5}
    holds.sort(key=lambda h: (order.get(h.status, 9), h.library, h.title))
    return json_response(MergedHolds(holds=holds, sources=sources))


# ------------------------------------------------------------------ summary
def _today(g: Gateway, ctx: SessionContext) -> date:
    tz = g.library(ctx.record.accounts[0].library).tz if ctx.record.accounts else ZoneInfo("Asia/Tokyo")
    return datetime.now(tz).date()


@bp.get("/v1/summary")
@spec(response=Summary, query=SummaryQuery,
      summary="One short paragraph for a chatbot or voice assistant, with the lists (format=ssml: SSML)")
def summary() -> Response:
    q = query(SummaryQuery)
    lang = q.lang
    g = gw()
    ctx = _ctx(g)
    loans, loan_sources = fanout(g, ctx, PatronCalls.loans)
    holds_caps = [a.library for a in ctx.record.accounts if g.offers(a.library, Adapter.holds)]
    holds: list[Hold] = []
    hold_sources: list[Source] = []
    if holds_caps:
        holds, hold_sources = fanout(g, ctx, PatronCalls.holds)
    today = _today(g, ctx)
    loans.sort(key=lambda l: (l.due_on, l.title))
    overdue = [l for l in loans if l.overdue or l.due_on < today]
    due_soon = [l for l in loans if l not in overdue and l.due_on <= today + timedelta(days=DUE_SOON_DAYS)]
    ready = [h for h in holds if h.status == "ready"]
    failed = sorted({s.library for s in loan_sources if not s.ok}
                    | {s.library for s in hold_sources if not s.ok and s.error and s.error.code != "not_supported"})
    names = {lib: g.library(lib).name for lib in g.config.libraries}
    sentences = summary_sentences(lang, today, loans, due_soon, overdue, ready, failed, names, names)
    if q.format == "ssml":
        return Response(to_ssml(sentences, lang), mimetype="application/ssml+xml")
    text = ("" if lang == "ja" else " ").join(sentences)
    sources = loan_sources + [s for s in hold_sources if not s.ok and s.library not in
                              {x.library for x in loan_sources if not x.ok}]
    return json_response(Summary(text=text, loans=loans, due_soon=due_soon, overdue=overdue,
                                 ready_holds=ready, sources=sources))


@bp.get("/v1/calendar.ics")
@spec(summary="Due dates as an iCalendar feed", content_type="text/calendar")
def calendar() -> Response:
    from icalendar import Alarm, Calendar, Event

    g = gw()
    ctx = _ctx(g)
    loans, _ = fanout(g, ctx, PatronCalls.loans)
    cal = Calendar()
    cal.add("prodid", "-//OPAC Gateway//due dates//JA")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "図書館の返却期限")
    now = datetime.now(UTC)
    for loan in loans:
        ev = Event()
        ev.add("uid", f"{loan.library}-{loan.id}@opac-gateway")
        ev.add("dtstamp", now)
        ev.add("dtstart", loan.due_on)
        ev.add("dtend", loan.due_on + timedelta(days=1))
        ev.add("summary", f"返却期限: {loan.title}")
        ev.add("description", f"{g.library(loan.library).name} — {loan.title}"
                              + (f" / {loan.author}" if loan.author else ""))
        ev.add("categories", ["library", loan.library])
        ev.add("transp", "TRANSPARENT")
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"明日が返却期限: {loan.title}")
        alarm.add("trigger", timedelta(days=-1))
        ev.add_component(alarm)
        cal.add_component(ev)
    resp = Response(cal.to_ical(), mimetype="text/calendar")
    resp.headers["Content-Disposition"] = 'inline; filename="due-dates.ics"'
    return resp


# ------------------------------------------------------------------ availability
def normalize_isbn(raw: str) -> str:
    import unicodedata

    s = unicodedata.normalize("NFKC", raw).replace("-", "").replace(" ", "").upper()
    if len(s) == 13 and s.isdigit():
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(s[:12]))
        if (10 - total % 10) % 10 == int(s[12]):
            return s
    elif len(s) == 10 and s[:9].isdigit() and (s[9].isdigit() or s[9] == "X"):
        total = sum(int(c) * (10 - i) for i, c in enumerate(s[:9]))
        check = (11 - total % 11) % 11
        if ("X" if check == 10 else str(check)) == s[9]:
            body = "978" + s[:9]
            t13 = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
            return body + str((10 - t13 % 10) % 10)
    raise InvalidRequest(f"not a valid ISBN: {raw!r}", errors=[{"field": "isbn", "message": "invalid ISBN"}])


def _availability_args(g: Gateway) -> tuple[str, list[str], float]:
    q = query(AvailabilityQuery)
    isbn = normalize_isbn(q.isbn)
    libs_raw = q.libraries or ""
    libs = [x.strip() for x in libs_raw.split(",") if x.strip()] or [
        lib for lib in g.config.libraries if g.offers(lib, Adapter.availability)]
    unknown = [x for x in libs if x not in g.config.libraries]
    if unknown:
        raise InvalidRequest(f"unknown libraries: {', '.join(unknown)}",
                             errors=[{"field": "libraries", "message": "unknown library"}])
    return isbn, list(dict.fromkeys(libs)), q.timeout


def _availability_one(g: Gateway, lib: str, isbn: str) -> LibraryAvailability:
    value, error, _ = g.timed(lambda: g.public(lib).availability(isbn))
    if error is not None:
        error.with_library(lib)
        return LibraryAvailability(library=lib, state="error", error=Problem(**error.to_problem()))
    return LibraryAvailability(library=lib, state="ok", holdings=value or [])


def _timed_out(lib: str, timeout: float) -> LibraryAvailability:
    err = UpstreamTimeout(f"no answer within {timeout:g} s", library=lib)
    return LibraryAvailability(library=lib, state="timeout", error=Problem(**err.to_problem()))


@bp.get("/v1/availability")
@spec(response=Availability, query=AvailabilityQuery, auth="client",
      summary="Holdings of an ISBN across libraries (JSON, or text/event-stream library by library)")
def availability() -> Response:
    g = gw()
    isbn, libs, timeout = _availability_args(g)
    futures = {g.executor.submit(_availability_one, g, lib, isbn): lib for lib in libs}
    start = time.perf_counter()
    if "text/event-stream" in request.headers.get("Accept", ""):
        return Response(_stream(futures, isbn, libs, timeout, start), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    done, _ = wait(list(futures), timeout=timeout)
    results = {futures[f]: f.result() for f in done}
    out = [results.get(lib) or _timed_out(lib, timeout) for lib in libs]
    return json_response(Availability(isbn=isbn, libraries=out))


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(dump(data), ensure_ascii=False)}\n\n"


def _stream(futures: dict[Future[LibraryAvailability], str], isbn: str, libs: list[str], timeout: float,
            start: float) -> Iterator[str]:
    results: dict[str, LibraryAvailability] = {}
    pending = set(futures)
    yield ": availability of " + isbn + "\n\n"
    while pending:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            break
        done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for f in done:
            res = f.result()
            results[futures[f]] = res
            yield _sse("library", res)
    for f in pending:
        lib = futures[f]
        results[lib] = _timed_out(lib, timeout)
        yield _sse("library", results[lib])
    yield _sse("done", Availability(isbn=isbn, libraries=[results[lib] for lib in libs]))
