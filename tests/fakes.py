"""An in-memory adapter for the gateway's own tests (registered as family "fake").

It behaves like a small upstream: one patron per card, loans and holds, a switch
to fail like a dead host, a slow mode, and a call log to prove what reached it.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from typing import Any, ClassVar

from adapters.base import Adapter, UpstreamSession
from core.errors import (
    InvalidCredentials,
    NotFound,
    NotRenewable,
    PasswordChangeRequired,
    SessionExpired,
    UpstreamChanged,
    UpstreamUnreachable,
)
from gateway.models import Hold, Holding, HoldRequest, HoldResult, Loan, RenewalResult

PASSWORD = "secret-pw-1234"


class FakeUpstream:
    """State shared by every FakeAdapter of one library id."""

    def __init__(self, library: str) -> None:
        self.library = library
        self.calls: list[str] = []
        self.down = False
        self.broken_page = False
        self.delay = 0.0
        self.expire_next = False
        self.crash = False
        self.holds: list[Hold] = []
        self.sessions = 0
        self.lock = threading.Lock()
        self.today = date.today()


UPSTREAMS: dict[str, FakeUpstream] = {}


def upstream(library: str) -> FakeUpstream:
    return UPSTREAMS.setdefault(library, FakeUpstream(library))


class FakeAdapter(Adapter):
    family: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"login", "loans", "renew", "holds", "hold_place", "hold_cancel", "search", "availability",
         "password_change"}
    )

    @property
    def up(self) -> FakeUpstream:
        return upstream(self.library.id)

    def _enter(self, name: str) -> None:
        u = self.up
        with u.lock:
            u.calls.append(name)
        if u.delay:
            time.sleep(u.delay)
        if u.down:
            raise UpstreamUnreachable("connection refused", library=self.library.id)
        if u.crash:
            raise RuntimeError("a bug in the adapter")

    def login(self, card_number: str, password: str) -> UpstreamSession:
        self._enter("login")
        if password == "temporary":
            raise PasswordChangeRequired("仮パスワードを変更してください", library=self.library.id)
        if password != PASSWORD:
            raise InvalidCredentials("利用者番号またはパスワードが違います", library=self.library.id)
        self.up.sessions += 1
        return UpstreamSession(card_number=card_number, cookies={"JSESSIONID": f"S{self.up.sessions}"})

    def change_password(self, session: Any, card_number: Any, current_password: str, new_password: str) -> None:
        self._enter("change_password")

    def _check(self, session: UpstreamSession) -> None:
        if self.up.expire_next:
            self.up.expire_next = False
            raise SessionExpired()

    def loans(self, session: UpstreamSession) -> list[Loan]:
        self._enter("loans")
        self._check(session)
        if self.up.broken_page:
            raise UpstreamChanged("the loan table is missing", library=self.library.id)
        today = self.up.today
        return [
            Loan(id="I001", library=self.library.id, record_id="R1", title="悪意", author="東野圭吾",
                 due_on=today + timedelta(days=2), overdue=False, renewable=True),
            Loan(id="I002", library=self.library.id, record_id="R2", title="アンパンマンのサンタクロース",
                 author="やなせたかし", due_on=today - timedelta(days=3), overdue=True, renewable=False,
                 not_renewable_reason="overdue"),
        ]

    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        self._enter("renew")
        loans = {l.id: l for l in self.loans(session)}
        out = []
        for lid in loan_ids or list(loans):
            loan = loans.get(lid)
            if loan is None:
                err = NotFound(f"no loan {lid}", library=self.library.id)
                out.append(RenewalResult(loan_id=lid, ok=False, error=err.to_problem()))  # type: ignore[arg-type]
            elif not loan.renewable:
                err2 = NotRenewable("理由:延滞中です", reason="overdue", library=self.library.id)
                out.append(RenewalResult(loan_id=lid, ok=False, error=err2.to_problem()))  # type: ignore[arg-type]
            else:
                new = loan.model_copy(update={"due_on": self.up.today + timedelta(days=14), "times_renewed": 1})
                out.append(RenewalResult(loan_id=lid, ok=True, loan=new))
        return out

    def holds(self, session: UpstreamSession) -> list[Hold]:
        self._enter("holds")
        return list(self.up.holds)

    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        self._enter("place_holds")
        out = []
        for rid in request.record_ids:
            hold = Hold(id=f"H{len(self.up.holds) + 1}", library=self.library.id, record_id=rid, title=f"本 {rid}",
                        status="submitted", pickup_branch=request.pickup_branch or "本館")
            self.up.holds.append(hold)
            out.append(HoldResult(record_id=rid, ok=True, hold=hold))
        return out

    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        self._enter("cancel_hold")
        before = len(self.up.holds)
        self.up.holds = [h for h in self.up.holds if h.id != hold_id]
        if len(self.up.holds) == before:
            raise NotFound(f"no hold {hold_id}", library=self.library.id)

    def availability(self, isbn: str) -> list[Holding]:
        self._enter("availability")
        return [Holding(branch="本館", status="available", call_number="913.6/ヒ")]
