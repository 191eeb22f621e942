"""The writes contract: one rule for learning whether a renewal or a hold happened.

A write's last step — the portal's 延長 / 予約 confirm, an NCIP ``RenewItem`` /
``RequestItem``, a SOAP call — can time out, be reset or be answered by a 5xx after the
library acted.  It is never sent again blindly.  Every family follows the same rule:

1. **Intent.** Right before the last step the adapter records what it is about to do in
   the patron's upstream state — the loan as it was (stable id, due date, renewal count)
   or the record and the holds already on it — and checkpoints it
   (``UpstreamSession.checkpoint``), so the gateway stores it at once: a process that
   dies mid-confirm leaves it behind (``begin_renewals`` / ``begin_holds``).
2. **Answer.** A definite answer (done, or refused) drops the intent (``settle``).
3. **Unknown outcome** (``unknown_outcome(exc)``): re-read the loans / holds and decide:
   a renewal happened when the same loan (by its stable id) is due later or its renewal
   count rose (``renewed``); a hold happened when an active hold on the record is there
   that was not among the holds before (``new_hold``).  When the re-read fails too, the
   result is a 5xx problem saying the outcome is unknown, and the intent stays.
4. **Retry.** The next request for that loan or record settles a standing intent first,
   by the same comparison (``pending_renewal`` / ``pending_holds``): its own renewal is
   reported renewed (not 422 ``already_renewed``), its own new hold ``ok`` with the hold
   (not 409 "already reserved") — with or without the same ``Idempotency-Key``.

An adapter that does not read the hold list before placing (``before=None``) relies on
the library refusing a second hold on a record: an active hold on the record after an
unknown outcome is then taken as the one placed.  Intents older than a day are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import httpx

from adapters.base import UpstreamSession
from core.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from core.models import Hold, HoldResult, Loan, Problem, RenewalResult

#: where intents live in ``UpstreamSession.data``
JOURNAL = "writes"
INTENT_TTL_SECONDS = 24 * 3600
INACTIVE_HOLD = ("cancelled", "expired")
T = TypeVar("T")


@dataclass(frozen=True)
class LoanMark:
    """A loan as it was before its renewal was sent."""

    loan_id: str
    due_on: date
    times_renewed: int | None

    @classmethod
    def of(cls, loan: Loan) -> LoanMark:
        return cls(loan.id, loan.due_on, loan.times_renewed)


@dataclass(frozen=True)
class HoldMark:
    """A hold request before it was sent: the record, and the holds already on it
    (``None``: the adapter did not read them)."""

    record_id: str
    before: frozenset[str] | None


# ---------------------------------------------------------------- the rule
def renewed(before: LoanMark | Loan, now: Loan | None) -> bool:
    """Whether ``now`` (re-read) shows the renewal of ``before``: the same loan by its
    stable id, due later or renewed more times."""
    mark = before if isinstance(before, LoanMark) else LoanMark.of(before)
    if now is None or now.id != mark.loan_id:
        return False
    if now.due_on > mark.due_on:
        return True
    return mark.times_renewed is not None and now.times_renewed is not None \
        and now.times_renewed > mark.times_renewed


def new_hold(mark: HoldMark, holds: Iterable[Hold]) -> Hold | None:
    """The hold the write placed, among re-read ``holds``: an active hold on the record
    that was not there before (the newest, if several)."""
    found = [h for h in holds if h.record_id == mark.record_id and h.status not in INACTIVE_HOLD
             and (mark.before is None or h.id not in mark.before)]
    return found[-1] if found else None


def holds_on(holds: Iterable[Hold], record_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """record id → the ids of every hold on it (the ``before`` of ``begin_holds``)."""
    wanted = set(record_ids)
    out: dict[str, set[str]] = {rid: set() for rid in wanted}
    for h in holds:
        if h.record_id in wanted:
            out[h.record_id].add(h.id)
    return {rid: frozenset(ids) for rid, ids in out.items()}


def unknown_outcome(exc: BaseException) -> bool:
    """Whether a failure of a write's last step leaves its outcome unknown: the request may
    have reached the library (timeout, reset, dropped or truncated answer, a 5xx or a
    gateway error page).  A refused connection never sent anything."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return False
    if isinstance(exc, GatewayError) and int(exc.extra.get("http_status") or 0) >= 500:
        return True  # an error page in place of the answer (e.g. the portal crashed after acting)
    return isinstance(exc, (httpx.TransportError, UpstreamTimeout, UpstreamUnavailable))


class OutcomeUnknown(Exception):
    """Raised inside an adapter's write flow: the last step's answer was lost (``cause``)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"outcome unknown: {type(cause).__name__}")
        self.cause = cause


def last_step(fn: Callable[[], T]) -> T:
    """Run a write's last step: a failure that leaves the outcome unknown becomes
    ``OutcomeUnknown`` (to be settled by a re-read), any other failure passes unchanged."""
    try:
        return fn()
    except Exception as exc:
        if unknown_outcome(exc):
            raise OutcomeUnknown(exc) from exc
        raise


def _lost(exc: BaseException, what: str, library: str | None, *, reread_failed: bool) -> GatewayError:
    if isinstance(exc, OutcomeUnknown):
        exc = exc.cause
    timeout = isinstance(exc, (httpx.TimeoutException, UpstreamTimeout))
    if reread_failed:
        detail = (f"the library's answer to the {what} was lost and re-reading failed: the outcome is "
                  "unknown; retrying is safe (the gateway re-reads before writing again)")
    else:
        detail = f"the {what} was not confirmed in time; re-read: it did not happen"
    cls = UpstreamTimeout if timeout or not reread_failed else UpstreamUnavailable
    return cls(detail, library=library)


def _problem(err: GatewayError) -> Problem:
    return Problem(**err.to_problem())


# ---------------------------------------------------------------- outcomes
def renewal_after(session: UpstreamSession, before: LoanMark | Loan, now: Mapping[str, Loan] | None,
                  exc: BaseException, *, library: str | None) -> RenewalResult:
    """A renewal whose answer was lost, decided on the re-read loans (``None``: the
    re-read failed).  Settles the intent when the renewal is found."""
    mark = before if isinstance(before, LoanMark) else LoanMark.of(before)
    cur = now.get(mark.loan_id) if now is not None else None
    if now is not None and cur is not None and renewed(mark, cur):
        settle(session, renewals=[mark.loan_id])
        return RenewalResult(loan_id=mark.loan_id, ok=True, loan=cur)
    err = _lost(exc, "renewal", library, reread_failed=now is None)
    return RenewalResult(loan_id=mark.loan_id, ok=False, error=_problem(err))


def hold_after(session: UpstreamSession, mark: HoldMark, now: Iterable[Hold] | None,
               exc: BaseException, *, library: str | None) -> HoldResult:
    """A hold request whose answer was lost, decided on the re-read holds (``None``: the
    re-read failed).  Settles the intent when the hold is found."""
    hold = new_hold(mark, now) if now is not None else None
    if hold is not None:
        settle(session, holds=[mark.record_id])
        return HoldResult(record_id=mark.record_id, ok=True, hold=hold)
    err = _lost(exc, "hold request", library, reread_failed=now is None)
    return HoldResult(record_id=mark.record_id, ok=False, error=_problem(err))


# ---------------------------------------------------------------- intents
def _journal(session: UpstreamSession) -> dict[str, dict[str, dict[str, Any]]]:
    j = session.data.get(JOURNAL)
    if not isinstance(j, dict):
        j = {}
    j.setdefault("renew", {})
    j.setdefault("hold", {})
    return j


def _store(session: UpstreamSession, j: dict[str, dict[str, dict[str, Any]]]) -> None:
    cutoff = time.time() - INTENT_TTL_SECONDS
    for kind in ("renew", "hold"):
        j[kind] = {k: v for k, v in j[kind].items() if float(v.get("at", 0)) >= cutoff}
    if j["renew"] or j["hold"]:
        session.data[JOURNAL] = j
    else:
        session.data.pop(JOURNAL, None)


def begin_renewals(session: UpstreamSession, loans: Iterable[Loan]) -> None:
    """Record the renewal intents of ``loans`` (as they are now) and checkpoint them."""
    j = _journal(session)
    now = time.time()
    for loan in loans:
        j["renew"][loan.id] = {"due_on": loan.due_on.isoformat(), "times_renewed": loan.times_renewed, "at": now}
    _store(session, j)
    session.checkpoint()


def begin_holds(session: UpstreamSession, record_ids: Iterable[str],
                before: Mapping[str, Iterable[str]] | None = None) -> None:
    """Record hold intents for ``record_ids`` (``before``: record → hold ids on it now, or
    None when not read) and checkpoint them."""
    j = _journal(session)
    now = time.time()
    for rid in record_ids:
        ids = sorted(before.get(rid, ())) if before is not None else None
        j["hold"][rid] = {"before": ids, "at": now}
    _store(session, j)
    session.checkpoint()


def settle(session: UpstreamSession, *, renewals: Iterable[str] = (), holds: Iterable[str] = ()) -> None:
    """Drop the intents of writes whose outcome is known."""
    if JOURNAL not in session.data:
        return
    j = _journal(session)
    for lid in renewals:
        j["renew"].pop(lid, None)
    for rid in holds:
        j["hold"].pop(rid, None)
    _store(session, j)


def pending_renewal(session: UpstreamSession, loan_id: str) -> LoanMark | None:
    """The standing intent of a renewal of ``loan_id`` whose outcome was never learned."""
    if JOURNAL not in session.data:
        return None
    v = _journal(session)["renew"].get(loan_id)
    if v is None or float(v.get("at", 0)) < time.time() - INTENT_TTL_SECONDS:
        return None
    times = v.get("times_renewed")
    return LoanMark(loan_id, date.fromisoformat(v["due_on"]), int(times) if times is not None else None)


def pending_holds(session: UpstreamSession, record_ids: Iterable[str]) -> dict[str, HoldMark]:
    """The standing hold intents among ``record_ids`` whose outcome was never learned."""
    if JOURNAL not in session.data:
        return {}
    cutoff = time.time() - INTENT_TTL_SECONDS
    hold = _journal(session)["hold"]
    out = {}
    for rid in record_ids:
        v = hold.get(rid)
        if v is not None and float(v.get("at", 0)) >= cutoff:
            before = v.get("before")
            out[rid] = HoldMark(rid, frozenset(before) if before is not None else None)
    return out


def settle_renewal(session: UpstreamSession, loan: Loan) -> RenewalResult | None:
    """Before renewing ``loan`` (as read now): if an earlier renewal of it whose outcome
    was never learned shows as done, that renewal's result; the intent is dropped either
    way (a new write records its own)."""
    mark = pending_renewal(session, loan.id)
    if mark is None:
        return None
    settle(session, renewals=[loan.id])
    if renewed(mark, loan):
        return RenewalResult(loan_id=loan.id, ok=True, loan=loan)
    return None


def settle_holds(session: UpstreamSession, marks: Mapping[str, HoldMark],
                 holds: Iterable[Hold]) -> dict[str, HoldResult]:
    """Before placing: the earlier hold requests (``pending_holds``) that the re-read
    ``holds`` show as placed, as ok results; every intent in ``marks`` is dropped."""
    holds = list(holds)
    out = {}
    for rid, mark in marks.items():
        hold = new_hold(mark, holds)
        if hold is not None:
            out[rid] = HoldResult(record_id=rid, ok=True, hold=hold)
    settle(session, holds=list(marks))
    return out


def carry_over(old: UpstreamSession, new: UpstreamSession) -> None:
    """A new upstream session (logged in again) keeps the standing intents of the old one."""
    if JOURNAL in old.data and JOURNAL not in new.data:
        new.data[JOURNAL] = old.data[JOURNAL]
