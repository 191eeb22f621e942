"""Loans and renewal (借りている資料, 貸出延長) of the winj portal.

The list is read whole (``WinjHttp._read_all`` follows the paging and checks the
count).  Renewal is the real two-step flow (REAL_WINJ.md §5), one loan at a time:

1. re-read the list in the same upstream session (a renewal changes the order, and
   ``idx`` means "row i of the list this session displayed last"), find the loan by
   its stable id and take its renewal control (only renewable rows have one);
2. follow the control (``lend-list.do?idx=…&submit_btn_extend=…``): the confirm
   screen carries ``hid_lenid``; it must name the loan asked for (資料番号, else the
   title), otherwise nothing is confirmed;
3. POST ``lend-extension-confirm.do`` with ``hid_lenid`` and ``submit_btn_confirm``
   (``Referer: lend-list.do``) → 「貸出延長申込が完了しました」 or a 「理由:」 line.
   Right before it the intent is recorded (``adapters.writes``); a lost answer is
   settled by re-reading the list under that rule.

A loan without the control is refused without asking the portal, with the reason
the list shows (overdue, reserved by someone else, already renewed).
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters import writes
from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import problem
from adapters.winj.http import WinjHttp
from core.errors import Conflict, GatewayError, NotFound, NotRenewable, UpstreamChanged
from core.models import Loan, RenewalResult
from mappers.status import renewal_reason


class WinjLoans(WinjHttp):
    """Loans and renewal (借りている資料, 貸出延長) of the winj portal."""

    def _lend_rows(self, client: httpx.Client, session: UpstreamSession) -> tuple[list[tuple[int, pages.LendRow]], int]:
        lib, today = self.library.id, self.today()

        def parse(t: Any) -> Any:
            return pages.parse_lend_items(t, lib, today)

        rows, last = self._read_all(client, session, pages.LEND_LIST_PATH, parse, "借りている資料")
        ids = [r.loan.id for _, r in rows]
        if len(set(ids)) != len(ids):
            raise UpstreamChanged("the same loan twice in 借りている資料 (the list moved while paging)", library=lib)
        return rows, last

    @translate_transport_errors
    def loans(self, session: UpstreamSession) -> list[Loan]:
        with self.open(session) as client:
            rows, _ = self._lend_rows(client, session)
        return [r.loan for _, r in rows]

    @translate_transport_errors
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        lib = self.library.id
        results: dict[str, RenewalResult] = {}
        with self._serial(session), self.open(session) as client:
            current: tuple[list[tuple[int, pages.LendRow]], int] | None = self._lend_rows(client, session)
            assert current is not None
            by_id = {r.loan.id: r for _, r in current[0]}
            order = [r.loan.id for _, r in current[0] if r.loan.renewable] if loan_ids is None \
                else list(dict.fromkeys(loan_ids))
            for lid in order:
                row = by_id.get(lid)
                settled = writes.settle_renewal(session, row.loan) if row is not None else None
                if settled is not None:  # an earlier attempt whose answer was lost did renew it
                    results[lid] = settled
                elif row is None:
                    results[lid] = RenewalResult(loan_id=lid, ok=False, error=problem(
                        NotFound(f"no loan {lid!r}", library=lib)))
                elif row.extend is None and row.idx is None:
                    reason = row.loan.not_renewable_reason or "other"
                    results[lid] = RenewalResult(loan_id=lid, ok=False, error=problem(
                        NotRenewable("the portal offers no renewal for this loan", reason=reason, library=lib,
                                     upstream_message=row.refusal_text)))
                else:
                    results[lid], current = self._renew_one(client, session, lid, current)
        return [results[i] for i in order if i in results]

    def _renew_one(self, client: httpx.Client, session: UpstreamSession, loan_id: str,
                   current: tuple[list[tuple[int, pages.LendRow]], int] | None,
                   ) -> tuple[RenewalResult, tuple[list[tuple[int, pages.LendRow]], int] | None]:
        """Renew one loan; ``current`` is the list as this session displayed it last (None:
        re-read it first).  Returns the result and the list as displayed afterwards."""
        result, after = self._renew_row(client, session, loan_id, current or self._lend_rows(client, session))
        return result, after

    def _renew_row(self, client: httpx.Client, session: UpstreamSession, loan_id: str,
                   current: tuple[list[tuple[int, pages.LendRow]], int],
                   ) -> tuple[RenewalResult, tuple[list[tuple[int, pages.LendRow]], int] | None]:
        lib = self.library.id
        rows, last = current
        row = next((r for n, r in rows if r.loan.id == loan_id), None)
        page_no = next((n for n, r in rows if r.loan.id == loan_id), 1)
        if row is None:
            return RenewalResult(loan_id=loan_id, ok=False, error=problem(NotFound(f"no loan {loan_id!r}", library=lib))), current
        if row.extend is None and row.idx is None:
            return RenewalResult(loan_id=loan_id, ok=False, error=problem(NotRenewable(
                "the portal offers no renewal for this loan", reason=row.loan.not_renewable_reason or "other",
                library=lib, upstream_message=row.refusal_text))), current
        if page_no != last:  # the index is only valid on the page the session displayed last
            page = self._get(client, session, f"{pages.LEND_LIST_PATH}?page={page_no}")
            fresh = {r.loan.id: r for r in pages.parse_lend_items(page.tree, lib, self.today())[0]}
            if loan_id not in fresh:
                raise Conflict("the loan moved while the list was re-read; nothing was renewed", library=lib)
            row = fresh[loan_id]
        if row.extend:
            confirm_page = self._get(client, session, row.extend)
        else:
            confirm_page = self._get(client, session, pages.LEND_LIST_PATH,
                                     [("hid_session", self.hid(client, session)), ("idx", row.idx or ""),
                                      ("submit_btn_extend", "貸出延長")])
        if confirm_page.errors() and confirm_page.tree.css_first(pages.SEL_LENID) is None:
            msg = confirm_page.errors()[0]
            return RenewalResult(loan_id=loan_id, ok=False, error=problem(NotRenewable(
                f"the library refused the renewal: {pages.reason_text(msg)}", reason=renewal_reason(msg),
                library=lib, upstream_message=pages.reason_text(msg)))), None
        confirm = pages.parse_extension_confirm(confirm_page.tree, lib)
        same = (confirm.item_id == row.loan.item_id) if confirm.item_id and row.loan.item_id \
            else (confirm.title == row.loan.title)
        if not same:
            # The index pointed at another loan: never confirm a renewal we did not ask for.
            return RenewalResult(loan_id=loan_id, ok=False, error=problem(Conflict(
                "the portal's row did not match the loan asked for; nothing was renewed", library=lib))), None
        referer = self._abs(f"{self.context[0]}/{pages.LEND_LIST_PATH}")
        writes.begin_renewals(session, [row.loan])
        try:
            page = self._post(client, session, confirm.action, [("hid_lenid", confirm.lenid), confirm.submit],
                              headers={"Referer": referer})
        except Exception as exc:
            if not writes.unknown_outcome(exc):
                raise
            return self._renewal_after_timeout(client, session, row.loan, exc), None
        result = pages.parse_extension_result(page.tree, lib)
        writes.settle(session, renewals=[loan_id])
        if not result.ok:
            msg = pages.reason_text(result.message)
            return RenewalResult(loan_id=loan_id, ok=False, error=problem(NotRenewable(
                f"the library refused the renewal: {msg}", reason=renewal_reason(msg), library=lib,
                upstream_message=msg))), None
        rows_after, last_after = self._lend_rows(client, session)
        now = next((r.loan for _, r in rows_after if r.loan.id == loan_id), None)
        if now is None:
            raise UpstreamChanged("a renewed loan is missing from 借りている資料", library=lib)
        return RenewalResult(loan_id=loan_id, ok=True, loan=now), (rows_after, last_after)

    def _renewal_after_timeout(self, client: httpx.Client, session: UpstreamSession, old: Loan,
                               exc: BaseException) -> RenewalResult:
        """The confirm's answer was lost: re-read the list to learn whether the renewal
        happened (``adapters.writes``)."""
        now: dict[str, Loan] | None
        try:
            rows, _ = self._lend_rows(client, session)
            now = {r.loan.id: r.loan for _, r in rows}
        except (httpx.HTTPError, GatewayError):
            now = None  # the outcome stays unknown; the intent stays for the next attempt
        return writes.renewal_after(session, old, now, exc, library=self.library.id)
