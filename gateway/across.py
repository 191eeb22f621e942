"""Across libraries, without Flask: the fan-out over a session's accounts, the
summary's lists and the due-date calendar (the views in ``gateway.api_across`` only
read the request and shape the answer).

Fan-out runs every account concurrently on the gateway's worker pool; each library
has its own deadline (its `timeout`, capped by `fanout_deadline_seconds`), so one
slow or broken library never delays the answer beyond its deadline nor hides the
others — its `sources` entry says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from adapters.base import Adapter
from core.errors import GatewayError, UpstreamTimeout
from gateway.facade import PatronCalls
from gateway.models import Hold, Loan, Problem, Source, Summary
from gateway.speech import DUE_SOON_DAYS, summary_sentences

if TYPE_CHECKING:
    from gateway.auth import SessionContext
    from gateway.runtime import Gateway

T = TypeVar("T")


def deadline(g: Gateway, library: str) -> float:
    return min(g.library(library).timeout, g.settings.fanout_deadline_seconds)


def fanout(g: Gateway, ctx: SessionContext,
           call: Callable[[PatronCalls], list[T]]) -> tuple[list[T], list[Source]]:
    """Make one typed call (e.g. ``PatronCalls.loans``) on every account of the session
    at once; merge what arrives in time."""
    start = time.perf_counter()
    futures: dict[str, Future[tuple[Any, GatewayError | None, int]]] = {}
    for acc in ctx.record.accounts:
        lib = acc.library
        futures[lib] = g.executor.submit(g.timed, lambda lib=lib: call(g.patron(lib, ctx)))
    items: list[Any] = []
    sources: list[Source] = []
    for lib, fut in futures.items():
        remaining = deadline(g, lib) - (time.perf_counter() - start)
        done, _ = wait([fut], timeout=max(0.0, remaining))
        if not done:
            err: GatewayError = UpstreamTimeout(
                f"no answer within the fan-out deadline of {deadline(g, lib):g} s", library=lib)
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


def today(g: Gateway, ctx: SessionContext) -> date:
    """Today in the time zone of the session's first library."""
    tz = g.library(ctx.record.accounts[0].library).tz if ctx.record.accounts else ZoneInfo("Asia/Tokyo")
    return datetime.now(tz).date()


@dataclass
class SummaryParts:
    """What ``GET /v1/summary`` says: its sentences and the lists behind them."""

    sentences: list[str]
    summary: Summary


def build_summary(g: Gateway, ctx: SessionContext, lang: str) -> SummaryParts:
    loans, loan_sources = fanout(g, ctx, PatronCalls.loans)
    holds: list[Hold] = []
    hold_sources: list[Source] = []
    if any(g.offers(a.library, Adapter.holds) for a in ctx.record.accounts):
        holds, hold_sources = fanout(g, ctx, PatronCalls.holds)
    day = today(g, ctx)
    loans.sort(key=lambda l: (l.due_on, l.title))
    overdue = [l for l in loans if l.overdue or l.due_on < day]
    due_soon = [l for l in loans if l not in overdue and l.due_on <= day + timedelta(days=DUE_SOON_DAYS)]
    ready = [h for h in holds if h.status == "ready"]
    failed = sorted({s.library for s in loan_sources if not s.ok}
                    | {s.library for s in hold_sources if not s.ok and s.error and s.error.code != "not_supported"})
    names = {lib: g.library(lib).name for lib in g.config.libraries}
    sentences = summary_sentences(lang, day, loans, due_soon, overdue, ready, failed, names, names)
    text = ("" if lang == "ja" else " ").join(sentences)
    sources = loan_sources + [s for s in hold_sources if not s.ok and s.library not in
                              {x.library for x in loan_sources if not x.ok}]
    return SummaryParts(sentences, Summary(text=text, loans=loans, due_soon=due_soon, overdue=overdue,
                                           ready_holds=ready, sources=sources))


def due_calendar(g: Gateway, loans: list[Loan]) -> bytes:
    """The loans' due dates as an iCalendar feed, with a reminder the day before."""
    from icalendar import Alarm, Calendar, Event

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
    ical: bytes = cal.to_ical()
    return ical
