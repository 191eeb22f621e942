"""Holds and the reservation cart (予約した資料, 予約かご, 予約内容確認) of the winj portal.

Holds are placed through the cart: 予約かごへ → 予約かご (予約受取館 ``cmb_area``,
予約連絡方法 ``cmb_contact``, 予約有効期限) → 通常予約 / まとめて予約 → 予約内容確認 →
「予約を行いました」.  The hold list is re-read first so a retry never places a
second hold, and after a timeout on the final confirm it is re-read to learn what
the portal did.  A record the flow itself put in the cart and that did not
become a hold (refused, or the flow failed) is taken out of the cart again.
Cancel and change pick rows by session-relative index and check
that the confirm screen names the hold asked for.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import httpx

from adapters import writes
from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import *
from adapters.winj.forms import problem
from adapters.winj.http import Page, WinjHttp
from core.errors import (
    AccountBlocked,
    Conflict,
    GatewayError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
)
from core.models import (
    Cart,
    Hold,
    HoldRequest,
    HoldResult,
    HoldUpdate,
)

log = logging.getLogger(__name__)


class WinjHolds(WinjHttp):
    """Holds and the reservation cart (予約した資料, 予約かご, 予約内容確認) of the winj portal."""

    @translate_transport_errors
    def holds(self, session: UpstreamSession) -> list[Hold]:
        with self.open(session) as client:
            page = self._get(client, session, pages.RESERVE_LIST_PATH)
        return pages.parse_holds(page.html, self.library.id)

    def _active_holds(self, client: httpx.Client, session: UpstreamSession) -> list[pages.HoldRow]:
        page = self._get(client, session, pages.RESERVE_LIST_PATH)
        return [r for r in pages.parse_hold_rows(page.html, self.library.id)
                if r.hold.status not in ("expired", "cancelled")]

    def _branch_name(self, value: str) -> str:
        b = self.library.branch_by_name_or_id(value)
        if b is None:
            raise InvalidRequest(f"unknown pickup branch {value!r}", library=self.library.id,
                                 errors=[{"field": "pickup_branch", "message": "unknown branch"}])
        return b.name

    @translate_transport_errors
    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        lib = self.library.id
        wanted = list(dict.fromkeys(request.record_ids))
        pickup = self._branch_name(request.pickup_branch) if request.pickup_branch else None
        results: dict[str, HoldResult] = {}
        with self._serial(session), self.open(session) as client:
            # Re-read first: a retry (e.g. after a timeout where the portal did act)
            # must never place a second hold.
            active = [r.hold for r in self._active_holds(client, session)]
            existing = {h.record_id: h for h in active}
            # An earlier request whose answer was lost placed its hold: that is this one's answer.
            results.update(writes.settle_holds(session, writes.pending_holds(session, wanted), active))
            for rid in wanted:
                if rid in existing and rid not in results:
                    results[rid] = HoldResult(record_id=rid, ok=False, error=problem(
                        Conflict("already reserved", library=lib, upstream_message="既に予約済です。")))
            todo = [rid for rid in wanted if rid not in results]
            if todo:
                # Holds go through the patron's 予約かご: whatever this flow put there and
                # did not turn into a hold comes out again (never what the patron had).
                added: list[str] = []
                try:
                    results.update(self._reserve(client, session, todo, request, pickup, added))
                except Exception:
                    self._drop_from_cart(client, session, added)
                    raise
                self._drop_from_cart(client, session, [rid for rid in added if not results[rid].ok])
        return [results[rid] for rid in wanted]

    def _drop_from_cart(self, client: httpx.Client, session: UpstreamSession, record_ids: list[str]) -> None:
        """Best effort: take ``record_ids`` out of the cart (re-read first — the row
        indexes of the cart change once the portal placed some of the holds)."""
        if not record_ids:
            return
        try:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).html)
            picks = [(F_BASKET, basket.indexes[rid]) for rid in record_ids if rid in basket.indexes]
            if picks:
                self._post(client, session, pages.BASKET_PATH, picks + [BTN_DELETE])
        except Exception as exc:  # noqa: BLE001 - the hold's own outcome is what the caller needs
            log.warning("%s: could not take %d record(s) back out of the cart: %s",
                        self.library.id, len(record_ids), type(exc).__name__)

    def _reserve(self, client: httpx.Client, session: UpstreamSession, todo: list[str], request: HoldRequest,
                 pickup: str | None, added: list[str]) -> dict[str, HoldResult]:
        """Cart → confirm → reserve; appends to ``added`` each record it put in the cart."""
        lib = self.library.id
        results: dict[str, HoldResult] = {}
        basket: pages.BasketPage | None = None
        for rid in todo:
            if basket is not None and rid in basket.indexes:
                continue  # already in the patron's cart
            page = self._post(client, session, pages.BASKET_ADD_PATH, [(F_BIBID, rid), BTN_BASKET])
            basket = self._basket_or_error(page, rid, results)
            if rid not in results and rid in basket.indexes and not any(
                    pages.TXT_CART_DUP in m for m in basket.messages):
                added.append(rid)
        if basket is None:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).html)
        picks = [rid for rid in todo if rid not in results and rid in basket.indexes]
        for rid in todo:
            if rid not in results and rid not in basket.indexes:
                results[rid] = HoldResult(record_id=rid, ok=False, error=problem(
                    UpstreamChanged("the record did not appear in the cart", library=lib)))
        if not picks:
            return results
        form: list[tuple[str, str]] = []
        if pickup is not None:
            code = basket.areas.get(pickup)
            if code is None:
                raise InvalidRequest(f"{pickup} is not a pickup branch the portal offers", library=lib)
            form.append((F_AREA, code))
        elif basket.areas:
            pass  # the portal pre-selects the patron's 予約受取館
        if request.contact_method:
            code = basket.contacts.get(request.contact_method)
            if code is None:
                raise InvalidRequest(f"unknown contact method {request.contact_method!r}", library=lib,
                                     errors=[{"field": "contact_method", "message": "one of "
                                              + ", ".join(basket.contacts)}])
            form.append((F_CONTACT, code))
        exp = request.expires_on
        form += list(zip((F_YEAR, F_MONTH, F_DAY),
                         (str(exp.year), str(exp.month), str(exp.day)) if exp else NO_EXPIRY))
        form += [(F_BASKET, basket.indexes[rid]) for rid in picks]
        form.append(BTN_ORDERED if request.ordered else BTN_NORMAL)
        confirm = self._post(client, session, pages.BASKET_PATH, form)
        errors = confirm.errors()
        if any(pages.TXT_OVERDUE_BLOCK in e for e in errors):
            raise AccountBlocked("the library refuses holds while items are overdue", library=lib,
                                 reason="overdue", upstream_message=errors[0])
        if any(pages.TXT_BAD_EXPIRY in e for e in errors):
            raise InvalidRequest("the library refused the hold expiry date", library=lib,
                                 errors=[{"field": "expires_on", "message": errors[0]}])
        if errors:
            raise UpstreamError("the portal refused the reservation", library=lib,
                                upstream_message=pages.reason_text(errors[0]))
        listed = pages.parse_reserve_confirm(confirm.html)
        if sorted(listed) != sorted(picks):
            raise Conflict("the portal's confirm screen lists other titles than asked for; nothing was reserved",
                           library=lib)
        # none of picks has an active hold (place_holds answered those as conflicts)
        writes.begin_holds(session, picks, before={})
        try:
            done_page = self._post(client, session, pages.RESERVE_CONFIRM_PATH, [BTN_OK])
        except Exception as exc:
            if not writes.unknown_outcome(exc):
                raise
            return results | self._reserve_after_timeout(client, session, picks, exc)
        _, lines = pages.parse_reserve_result(done_page.html)
        placed = {line.record_id for line in lines if line.ok}
        now = {r.hold.record_id: r.hold for r in self._active_holds(client, session)} if placed else {}
        for line in lines:
            if line.record_id not in picks:
                continue
            if line.ok:
                hold = now.get(line.record_id)
                if hold is None:
                    raise UpstreamChanged("a hold the portal reported is not in 予約した資料", library=lib)
                results[line.record_id] = HoldResult(record_id=line.record_id, ok=True, hold=hold)
            else:
                results[line.record_id] = HoldResult(record_id=line.record_id, ok=False,
                                                     error=problem(self._refusal(line.message)))
        for rid in picks:
            if rid not in results:
                raise UpstreamChanged("the reservation result does not list every title", library=lib)
        writes.settle(session, holds=picks)
        return results

    def _refusal(self, message: str) -> GatewayError:
        lib = self.library.id
        msg = pages.reason_text(message)
        if pages.TXT_ALREADY_HELD in msg:
            return Conflict("already reserved", library=lib, upstream_message=msg)
        if pages.TXT_LIMIT in msg or "超え" in msg:
            return LimitExceeded("the library's hold limit is reached", library=lib,
                                 limit=self.library.hold_limit, upstream_message=msg)
        if pages.TXT_OVERDUE_BLOCK in msg or "延滞" in msg:
            return AccountBlocked("the library refuses holds while items are overdue", library=lib,
                                  reason="overdue", upstream_message=msg)
        return UpstreamError("the library refused the hold", library=lib, upstream_message=msg)

    def _basket_or_error(self, page: Page, rid: str, results: dict[str, HoldResult]) -> pages.BasketPage:
        """The cart page after 予約かごへ; a refusal becomes that record's result."""
        basket = pages.parse_basket(page.html)
        try:
            self._raise_cart_error(basket)
        except GatewayError as exc:
            results[rid] = HoldResult(record_id=rid, ok=False, error=problem(exc))
        return basket

    @staticmethod
    def _cart_limit(message: str) -> int:

        m = re.search(r"最大\s*(\d+)", unicodedata.normalize("NFKC", message))
        return int(m.group(1)) if m else 10

    def _reserve_after_timeout(self, client: httpx.Client, session: UpstreamSession,
                               picks: list[str], exc: BaseException) -> dict[str, HoldResult]:
        """The final confirm's answer was lost: re-read the holds (``adapters.writes``)."""
        lib = self.library.id
        now: list[Hold] | None
        try:
            now = [r.hold for r in self._active_holds(client, session)]
        except (httpx.HTTPError, GatewayError):
            now = None  # the outcome stays unknown; the intent stays for the next attempt
        return {rid: writes.hold_after(session, writes.HoldMark(rid, frozenset()), now, exc, library=lib)
                for rid in picks}

    def _hold_row(self, client: httpx.Client, session: UpstreamSession, hold_id: str) -> pages.HoldRow:
        for row in pages.parse_hold_rows(self._get(client, session, pages.RESERVE_LIST_PATH).html,
                                         self.library.id):
            if row.hold.id == hold_id:
                return row
        raise NotFound(f"no hold {hold_id!r}", library=self.library.id)

    @translate_transport_errors
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        lib = self.library.id
        with self._serial(session), self.open(session) as client:
            row = self._hold_row(client, session, hold_id)
            if not row.index:
                raise Conflict("the library does not let this hold be cancelled online", library=lib)
            confirm = self._post(client, session, pages.RESERVE_CANCEL_PATH, [(F_RESERVE, row.index)])
            self._raise_refusal(confirm)
            if pages.parse_selected_reserve_nos(confirm.html, pages.SEL_CANCEL_ROW) != [hold_id]:
                raise Conflict("the portal's row did not match the hold asked for; nothing was cancelled",
                               library=lib)
            try:
                done = self._post(client, session, pages.RESERVE_CANCEL_PATH, [BTN_OK])
            except httpx.TimeoutException:
                still = any(r.hold.id == hold_id for r in self._active_holds(client, session))
                if still:
                    raise UpstreamTimeout("the cancellation was not confirmed in time", library=lib) from None
                return
            self._raise_refusal(done)
            if not any(pages.TXT_CANCEL_DONE in m for m in done.messages()):
                raise UpstreamChanged("no confirmation of the cancellation", library=lib)

    def _raise_refusal(self, page: Page) -> None:
        errors = page.errors()
        if errors:
            raise Conflict("the library refused the change", library=self.library.id,
                           upstream_message=pages.reason_text(errors[0]))

    @translate_transport_errors
    def update_hold(self, session: UpstreamSession, hold_id: str, changes: HoldUpdate) -> Hold:
        lib = self.library.id
        with self._serial(session), self.open(session) as client:
            row = self._hold_row(client, session, hold_id)
            if changes.pickup_branch is None and changes.contact_method is None:
                return row.hold
            if not row.index:
                raise Conflict("the library does not let this hold be changed online", library=lib)
            form_page = self._post(client, session, pages.RESERVE_CHANGE_PATH, [(F_RESERVE, row.index)])
            self._raise_refusal(form_page)
            if pages.parse_selected_reserve_nos(form_page.html, pages.SEL_CHANGE_ROW) != [hold_id]:
                raise Conflict("the portal's row did not match the hold asked for; nothing was changed",
                               library=lib)
            t = form_page.tree
            areas = {pages.node_text(o): o.attributes.get("value") or "" for o in t.css(pages.SEL_AREA_OPTION)}
            contacts = {pages.node_text(o): o.attributes.get("value") or "" for o in t.css(pages.SEL_CONTACT_OPTION)}
            form: list[tuple[str, str]] = []
            pickup = self._branch_name(changes.pickup_branch) if changes.pickup_branch else row.hold.pickup_branch
            if pickup not in areas:
                raise InvalidRequest(f"{pickup} is not a pickup branch the portal offers", library=lib)
            form.append((F_AREA, areas[pickup]))
            contact = changes.contact_method or row.hold.contact_method
            if contact is not None:
                if contact not in contacts:
                    raise InvalidRequest(f"unknown contact method {contact!r}", library=lib)
                form.append((F_CONTACT, contacts[contact]))
            done = self._post(client, session, pages.RESERVE_CHANGE_PATH, form + [BTN_OK])
            self._raise_refusal(done)
            if not any(pages.TXT_CHANGE_DONE in m for m in done.messages()):
                raise UpstreamChanged("no confirmation of the change", library=lib)
            return self._hold_row(client, session, hold_id).hold

    # ------------------------------------------------------------ cart
    @translate_transport_errors
    def cart(self, session: UpstreamSession) -> Cart:
        with self.open(session) as client:
            page = self._get(client, session, pages.BASKET_PATH)
        return Cart(items=pages.parse_basket(page.html).items)

    @translate_transport_errors
    def cart_add(self, session: UpstreamSession, record_id: str) -> Cart:
        with self._serial(session), self.open(session) as client:
            page = self._post(client, session, pages.BASKET_ADD_PATH, [(F_BIBID, record_id), BTN_BASKET])
        basket = pages.parse_basket(page.html)
        self._raise_cart_error(basket)
        if record_id not in basket.indexes:
            raise UpstreamChanged("the record did not appear in the cart", library=self.library.id)
        return Cart(items=basket.items)

    def _raise_cart_error(self, basket: pages.BasketPage) -> None:
        lib = self.library.id
        for e in basket.errors:
            if pages.TXT_CART_FULL in e:
                raise LimitExceeded("the reservation cart is full", library=lib, limit=self._cart_limit(e),
                                    upstream_message=e)
            if pages.TXT_NO_RECORD in e:
                raise NotFound("no such record", library=lib)
            raise UpstreamError("the portal refused the cart change", library=lib, upstream_message=e)

    @translate_transport_errors
    def cart_remove(self, session: UpstreamSession, record_id: str) -> None:
        with self._serial(session), self.open(session) as client:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).html)
            index = basket.indexes.get(record_id)
            if index is None:
                raise NotFound(f"record {record_id!r} is not in the cart", library=self.library.id)
            page = self._post(client, session, pages.BASKET_PATH, [(F_BASKET, index), BTN_DELETE])
        after = pages.parse_basket(page.html)
        if record_id in after.indexes:
            raise UpstreamChanged("the record is still in the cart after 削除", library=self.library.id)
