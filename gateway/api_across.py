"""Across libraries: merged loans and holds (fan-out), the chatbot summary, the
due-date calendar, and availability by ISBN (JSON or server-sent events).

The views read the request and shape the answer; the fan-out (one deadline per
library, ``sources`` saying why one is missing), the summary's lists and the
calendar are built in ``gateway.across``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from flask import Blueprint, Response, request

from adapters.base import Adapter
from core.errors import InvalidRequest, UpstreamTimeout
from gateway.across import build_summary, due_calendar, fanout
from gateway.facade import PatronCalls
from gateway.http import dump, json_response, query, spec
from gateway.models import (
    Availability,
    LibraryAvailability,
    MergedHolds,
    MergedLoans,
    Problem,
    Summary,
)
from gateway.queries import AvailabilityQuery, SummaryQuery
from gateway.runtime import Gateway, SessionContext, gw
from gateway.speech import (
    summary_text,  # noqa: F401  (re-exported: tests, older imports)
    to_ssml,
)

bp = Blueprint("across", __name__)


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


# ------------------------------------------------------------------ summary, calendar
@bp.get("/v1/summary")
@spec(response=Summary, query=SummaryQuery,
      summary="One short paragraph for a chatbot or voice assistant, with the lists (format=ssml: SSML)")
def summary() -> Response:
    q = query(SummaryQuery)
    g = gw()
    parts = build_summary(g, _ctx(g), q.lang)
    if q.format == "ssml":
        return Response(to_ssml(parts.sentences, q.lang), mimetype="application/ssml+xml")
    return json_response(parts.summary)


@bp.get("/v1/calendar.ics")
@spec(summary="Due dates as an iCalendar feed", content_type="text/calendar")
def calendar() -> Response:
    g = gw()
    loans, _ = fanout(g, _ctx(g), PatronCalls.loans)
    resp = Response(due_calendar(g, loans), mimetype="text/calendar")
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
