"""Events from two snapshots of one watched account (pure: no I/O, no clock).

``diff(old, new, today, ...)`` compares the account's new snapshot with the last one,
keyed by the stable ids of loans, holds and lending requests, and returns the events the
change means.  Each event carries a deterministic ``key`` (type, subject, the state that
caused it): the store keeps one event per key, so a retried poll, a restart or a second
worker that computes the same change again never emits it twice.

State events (due soon, overdue, card expiring, hold expiring) are keyed by the date they
are about, so they fire once per due date even on the first snapshot; transitions (ready,
cancelled, position, renewed, renewal blocked, lending status) need a previous snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from core.models import Hold, Loan, UpstreamLending

EVENT_TYPES: tuple[str, ...] = (
    "hold.ready", "hold.expiring", "hold.cancelled", "hold.position_changed",
    "loan.due_soon", "loan.overdue", "loan.renewal_blocked", "loan.renewed", "loan.auto_renew_failed",
    "lending.status_changed", "alert.matched", "card.expiring", "subscription.paused",
)

HOLD_EXPIRING_DAYS = 2
CARD_EXPIRING_DAYS = 30


class Snapshot(BaseModel):
    """What the worker saw of one account at one poll."""

    loans: list[Loan] = []
    holds: list[Hold] = []
    lending: list[UpstreamLending] = []
    card_expires_on: date | None = None
    profile_read_on: date | None = None  # the profile (card expiry) is read once a day


@dataclass(frozen=True)
class Change:
    type: str
    key: str  # deterministic: the store's unique event key (with the subscription and library)
    subject: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)


def _loan_subject(loan: Loan) -> dict[str, Any]:
    return {"kind": "loan", "id": loan.id, "title": loan.title, "record_id": loan.record_id}


def _hold_subject(hold: Hold) -> dict[str, Any]:
    return {"kind": "hold", "id": hold.id, "title": hold.title, "record_id": hold.record_id}


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def diff(old: Snapshot | None, new: Snapshot, today: date, *, due_soon_days: int = 3) -> list[Change]:
    out: list[Change] = []
    out += _loans(old, new, today, due_soon_days)
    out += _holds(old, new, today)
    out += _lending(old, new)
    if new.card_expires_on is not None and new.card_expires_on - today <= timedelta(days=CARD_EXPIRING_DAYS):
        out.append(Change("card.expiring", f"card.expiring:{new.card_expires_on}",
                          {"kind": "card"}, {"card_expires_on": _d(new.card_expires_on)}))
    return out


def _loans(old: Snapshot | None, new: Snapshot, today: date, due_soon_days: int) -> list[Change]:
    out: list[Change] = []
    before = {l.id: l for l in old.loans} if old is not None else {}
    for loan in new.loans:
        subj = _loan_subject(loan)
        days = (loan.due_on - today).days
        if loan.overdue or days < 0:
            out.append(Change("loan.overdue", f"loan.overdue:{loan.id}:{loan.due_on}", subj,
                              {"due_on": _d(loan.due_on), "days_overdue": max(0, -days)}))
        elif days <= due_soon_days:
            out.append(Change("loan.due_soon", f"loan.due_soon:{loan.id}:{loan.due_on}", subj,
                              {"due_on": _d(loan.due_on), "days_left": days, "renewable": loan.renewable}))
        prev = before.get(loan.id)
        if prev is None:
            continue
        renewed = loan.due_on > prev.due_on or (
            loan.times_renewed is not None and prev.times_renewed is not None
            and loan.times_renewed > prev.times_renewed)
        if renewed:
            out.append(Change("loan.renewed", f"loan.renewed:{loan.id}:{loan.due_on}", subj,
                              {"due_on": _d(loan.due_on), "previous_due_on": _d(prev.due_on),
                               "automatic": False}))
        elif prev.renewable and not loan.renewable:
            out.append(Change("loan.renewal_blocked", f"loan.renewal_blocked:{loan.id}:{loan.due_on}", subj,
                              {"due_on": _d(loan.due_on), "reason": loan.not_renewable_reason}))
    return out


def _holds(old: Snapshot | None, new: Snapshot, today: date) -> list[Change]:
    out: list[Change] = []
    now = {h.id: h for h in new.holds}
    for hold in new.holds:
        subj = _hold_subject(hold)
        if hold.status == "ready" and hold.ready_until is not None \
                and hold.ready_until - today <= timedelta(days=HOLD_EXPIRING_DAYS):
            out.append(Change("hold.expiring", f"hold.expiring:{hold.id}:{hold.ready_until}", subj,
                              {"ready_until": _d(hold.ready_until), "pickup_branch": hold.pickup_branch}))
    if old is None:
        return out
    for prev in old.holds:
        hold = now.get(prev.id)
        subj = _hold_subject(hold or prev)
        if hold is None or (hold.status in ("cancelled", "expired") and prev.status not in ("cancelled", "expired")):
            # gone from the list: collected (then it is a loan now) or cancelled
            if hold is None and prev.status == "ready" and any(l.record_id == prev.record_id for l in new.loans):
                continue
            out.append(Change("hold.cancelled", f"hold.cancelled:{prev.id}", subj,
                              {"previous_status": prev.status, "status": hold.status if hold else None}))
            continue
        if hold.status == "ready" and prev.status != "ready":
            out.append(Change("hold.ready", f"hold.ready:{hold.id}", subj,
                              {"ready_until": _d(hold.ready_until), "pickup_branch": hold.pickup_branch}))
        elif hold.position != prev.position and hold.position is not None:
            out.append(Change("hold.position_changed", f"hold.position_changed:{hold.id}:{hold.position}", subj,
                              {"position": hold.position, "previous_position": prev.position}))
    return out


def _lending(old: Snapshot | None, new: Snapshot) -> list[Change]:
    if old is None:
        return []
    before = {r.upstream_id: r for r in old.lending}
    out = []
    for req in new.lending:
        prev = before.get(req.upstream_id)
        if prev is not None and prev.status != req.status:
            out.append(Change("lending.status_changed", f"lending.status_changed:{req.upstream_id}:{req.status}",
                              {"kind": "lending_request", "id": req.upstream_id, "title": req.title,
                               "record_id": req.record_id},
                              {"status": req.status, "previous_status": prev.status}))
    return out


def auto_renew_candidates(snapshot: Snapshot, today: date, days_before: int) -> list[Loan]:
    """Renewable loans due within ``days_before`` days (not overdue)."""
    return [l for l in snapshot.loans
            if l.renewable and not l.overdue and 0 <= (l.due_on - today).days <= days_before]
