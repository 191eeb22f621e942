"""Loans and renewal (借りている資料, 貸出延長) of the winj portal.

Renewal picks rows by session-relative index (``chk_lend``): the list is re-read
in the same upstream session, the 資料番号 mapped to its index, and the confirm
screen must list exactly the loans asked for before 延長 is confirmed.  A lost answer
to the confirm is settled by re-reading the list under the rule of ``adapters.writes``.
"""

from __future__ import annotations

import httpx

from adapters import writes
from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import *
from adapters.winj.forms import problem
from adapters.winj.http import WinjHttp
from core.errors import (
    Conflict,
    GatewayError,
    NotFound,
    NotRenewable,
    UpstreamChanged,
    UpstreamError,
)
from core.models import (
    Loan,
    RenewalResult,
)
from mappers.status import renewal_reason


class WinjLoans(WinjHttp):
    """Loans and renewal (借りている資料, 貸出延長) of the winj portal."""

    @translate_transport_errors
    def loans(self, session: UpstreamSession) -> list[Loan]:
        with self.open(session) as client:
            page = self._get(client, session, pages.LEND_LIST_PATH)
        return pages.parse_loans(page.html, self.library.id, self.today())

    @translate_transport_errors
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        lib = self.library.id
        today = self.today()
        results: dict[str, RenewalResult] = {}
        with self._serial(session), self.open(session) as client:
            rows = pages.parse_lend_rows(self._get(client, session, pages.LEND_LIST_PATH).html, lib, today)
            by_id = {r.loan.id: r for r in rows}
            if loan_ids is None:
                wanted = [r.loan.id for r in rows if r.loan.renewable]
                order = wanted
            else:
                order = list(dict.fromkeys(loan_ids))
                wanted = []
                for lid in order:
                    row = by_id.get(lid)
                    settled = writes.settle_renewal(session, row.loan) if row is not None else None
                    if settled is not None:  # an earlier attempt whose answer was lost did renew it
                        results[lid] = settled
                    elif row is None:
                        results[lid] = RenewalResult(loan_id=lid, ok=False, error=problem(
                            NotFound(f"no loan {lid!r}", library=lib)))
                    elif not row.index:
                        reason = row.loan.not_renewable_reason or "other"
                        results[lid] = RenewalResult(loan_id=lid, ok=False, error=problem(
                            NotRenewable("the portal offers no renewal for this loan", reason=reason, library=lib)))
                    else:
                        wanted.append(lid)
            if wanted:
                results.update(self._renew_rows(client, session, [by_id[i] for i in wanted]))
        return [results[i] for i in order if i in results]

    def _renew_rows(self, client: httpx.Client, session: UpstreamSession,
                    rows: list[pages.LendRow]) -> dict[str, RenewalResult]:
        lib = self.library.id
        picks = [(F_LEND, r.index) for r in rows]
        confirm = self._post(client, session, pages.LEND_CONFIRM_PATH, picks + [("btn_extension", "貸出延長")])
        if confirm.errors():
            raise UpstreamError("the portal refused the renewal selection", library=lib,
                                upstream_message=confirm.errors()[0])
        listed = pages.parse_extension_confirm(confirm.html)
        if sorted(listed) != sorted(r.loan.id for r in rows):
            # The index pointed at another loan: never confirm a renewal we did not ask for.
            err = Conflict("the portal's row did not match the loan asked for; nothing was renewed",
                           library=lib)
            return {r.loan.id: RenewalResult(loan_id=r.loan.id, ok=False, error=problem(err)) for r in rows}
        before = {r.loan.id: r.loan for r in rows}
        writes.begin_renewals(session, before.values())
        try:
            page = self._post(client, session, pages.LEND_EXEC_PATH, [("btn_extension", "延長")])
        except Exception as exc:
            if not writes.unknown_outcome(exc):
                raise
            return self._renewal_after_timeout(client, session, before, exc)
        _done, lines = pages.parse_extension_result(page.html)
        out: dict[str, RenewalResult] = {}
        for line in lines:
            old = before.get(line.item_id)
            if old is None:
                continue
            if line.ok:
                if line.due_on is None:
                    raise UpstreamChanged("a renewed item without its new due date", library=lib)
                if line.state is not None:  # the portal says what the loan allows now
                    reason = renewal_reason(line.state) if line.state else None
                else:  # not printed: a renewed loan is taken as not renewable again
                    reason = "already_renewed"
                loan = old.model_copy(update={
                    "due_on": line.due_on, "overdue": False, "renewable": reason is None,
                    "not_renewable_reason": reason,
                    "times_renewed": line.times_renewed if line.times_renewed is not None
                    else (old.times_renewed or 0) + 1})
                out[old.id] = RenewalResult(loan_id=old.id, ok=True, loan=loan)
            else:
                msg = pages.reason_text(line.message)
                refusal = NotRenewable(f"the library refused the renewal: {msg}", reason=renewal_reason(msg),
                                       library=lib, upstream_message=msg)
                out[old.id] = RenewalResult(loan_id=old.id, ok=False, error=problem(refusal))
        missing = [i for i in before if i not in out]
        if missing:
            raise UpstreamChanged("the renewal result does not list every item", library=lib)
        writes.settle(session, renewals=out)
        return out

    def _renewal_after_timeout(self, client: httpx.Client, session: UpstreamSession,
                               before: dict[str, Loan], exc: BaseException) -> dict[str, RenewalResult]:
        """The confirm's answer was lost: re-read the list to learn which renewals happened."""
        lib = self.library.id
        now: dict[str, Loan] | None
        try:
            rows = pages.parse_lend_rows(self._get(client, session, pages.LEND_LIST_PATH).html, lib, self.today())
            now = {r.loan.id: r.loan for r in rows}
        except (httpx.HTTPError, GatewayError):
            now = None  # the outcome stays unknown; the intent stays for the next attempt
        return {lid: writes.renewal_after(session, old, now, exc, library=lib) for lid, old in before.items()}
