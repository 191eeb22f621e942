"""Holds and the reservation basket (予約した資料, 予約かご, 予約内容確認) of the winj portal.

The real four-screen reservation (REAL_WINJ.md §7): add a title to the basket
(POST ``switch-detail.do`` with ``bibid`` and ``submit_btn_reserve_basket``, as the
detail page's form does) → the basket page (``hid_aplph``, pickup ``cmb_area``,
contact ``cmb_ctttp``, the expiry triple or ``chk_limit``; entries are ``chk_check``
boxes) → POST it with the entries and ``submit_btn_reservation`` → the confirm
screen (its e-mail select ``cmb_email`` is sent as 送信しない) → POST
``reserve-confirm.do`` → 「以下のタイトルについて予約を行いました。」 and one ``div.report``
「理由:…」 per refused title.  Field names, hidden values and button captions are read
from the pages themselves, so the per-site differences (「通常予約する」/「通常予約」,
date triple or 期限なし box) need no configuration.

The hold list is re-read first so a retry never places a second hold, and after a
timeout on the final confirm it is re-read to learn what the portal did.  A record
the flow itself put in the basket that did not become a hold is taken out again
(the delete confirm ``hid_idlist`` → ``reserve-basket-delete.do``).  Cancel and
change (no source shows them; after the seed guides) pick rows by the index of the
list this session displayed last and check that the confirm screen names the hold
asked for.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import httpx

from adapters import writes
from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import BTN_OK, F_AREA, F_CONTACT, F_RESERVE, NO_EXPIRY, problem
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
from core.models import Cart, Hold, HoldRequest, HoldResult, HoldUpdate

log = logging.getLogger(__name__)


class WinjHolds(WinjHttp):
    """Holds and the reservation basket (予約した資料, 予約かご, 予約内容確認) of the winj portal."""

    def _hold_rows(self, client: httpx.Client, session: UpstreamSession) -> tuple[list[tuple[int, pages.HoldRow]], int]:
        lib = self.library.id

        def parse(t: Any) -> Any:
            return pages.parse_hold_items(t, lib)

        rows, last = self._read_all(client, session, pages.RESERVE_LIST_PATH, parse, "予約した資料")
        ids = [r.hold.id for _, r in rows]
        if len(set(ids)) != len(ids):
            raise UpstreamChanged("the same hold twice in 予約した資料 (the list moved while paging)", library=lib)
        return rows, last

    @translate_transport_errors
    def holds(self, session: UpstreamSession) -> list[Hold]:
        with self.open(session) as client:
            rows, _ = self._hold_rows(client, session)
        return [r.hold for _, r in rows]

    def _active_holds(self, client: httpx.Client, session: UpstreamSession) -> list[pages.HoldRow]:
        return [r for _, r in self._hold_rows(client, session)[0] if r.hold.status not in ("expired", "cancelled")]

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

    # ------------------------------------------------------------ basket plumbing
    def _add_to_basket(self, client: httpx.Client, session: UpstreamSession, record_id: str) -> Page:
        """The detail page's 予約かご button: POST its form (``bibid``,
        ``submit_btn_reserve_basket``); the answer is the basket page."""
        return self._post(client, session, pages.DETAIL_PATH, [
            ("idx", ""), ("revidx", ""), ("bibid", record_id), ("submit_btn_reserve_basket", "予約かご")])

    def _basket_form(self, basket: pages.BasketPage) -> list[tuple[str, str]]:
        return [(k, v) for k, v in basket.hidden if k]

    def _delete_entries(self, client: httpx.Client, session: UpstreamSession, basket: pages.BasketPage,
                        record_ids: list[str]) -> pages.BasketPage:
        """削除 → the delete confirm (``hid_idlist``) → ``reserve-basket-delete.do``."""
        lib = self.library.id
        name, value = basket.buttons.get("delete", ("submit_btn_delete", "削除"))
        picks = [("chk_check", basket.entries[rid]) for rid in record_ids]
        confirm_page = self._post(client, session, pages.BASKET_PATH, self._basket_form(basket) + picks + [(name, value)])
        confirm = pages.parse_basket_delete(confirm_page.tree, lib)
        if sorted(confirm.ids) != sorted(basket.entries[rid] for rid in record_ids):
            raise Conflict("the portal's delete confirm lists other entries; nothing was removed", library=lib)
        done = self._post(client, session, confirm.action, [("hid_idlist", " ".join(confirm.ids)), confirm.submit])
        return pages.parse_basket(done.tree, lib)

    def _drop_from_cart(self, client: httpx.Client, session: UpstreamSession, record_ids: list[str]) -> None:
        """Best effort: take ``record_ids`` out of the basket (re-read first)."""
        if not record_ids:
            return
        try:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).tree, self.library.id)
            present = [rid for rid in record_ids if rid in basket.entries]
            if present:
                self._delete_entries(client, session, basket, present)
        except Exception as exc:  # noqa: BLE001 - the hold's own outcome is what the caller needs
            log.warning("%s: could not take %d record(s) back out of the basket: %s",
                        self.library.id, len(record_ids), type(exc).__name__)

    def _reserve(self, client: httpx.Client, session: UpstreamSession, todo: list[str], request: HoldRequest,
                 pickup: str | None, added: list[str]) -> dict[str, HoldResult]:
        """Basket → confirm → reserve; appends to ``added`` each record it put in the basket."""
        lib = self.library.id
        results: dict[str, HoldResult] = {}
        basket: pages.BasketPage | None = None
        for rid in todo:
            if basket is not None and rid in basket.entries:
                continue  # already in the patron's basket
            page = self._add_to_basket(client, session, rid)
            before = set(basket.entries) if basket is not None else None
            basket = self._basket_or_error(page, rid, results)
            if rid not in results and rid in basket.entries and not any(
                    pages.TXT_CART_DUP in m for m in basket.messages) and (before is None or rid not in before):
                added.append(rid)
        if basket is None:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).tree, lib)
        picks = [rid for rid in todo if rid not in results and rid in basket.entries]
        for rid in todo:
            if rid not in results and rid not in basket.entries:
                results[rid] = HoldResult(record_id=rid, ok=False, error=problem(
                    UpstreamChanged("the record did not appear in the basket", library=lib)))
        if not picks:
            return results
        form = self._basket_form(basket)
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
            form.append((basket.contact_field, code))
        exp = request.expires_on
        if basket.expiry == "chk_limit":
            form += [("txt_limit", exp.strftime("%Y%m%d"))] if exp else [("chk_limit", "on")]
        else:
            ymd = (str(exp.year), str(exp.month), str(exp.day)) if exp else NO_EXPIRY
            form += list(zip(("txt_year", basket.month_field, basket.day_field), ymd))
        form += [("chk_check", basket.entries[rid]) for rid in picks]
        button = basket.buttons.get("bulk" if request.ordered else "normal")
        if button is None:
            raise UpstreamChanged("the basket page has no "
                                  + ("まとめて予約" if request.ordered else "通常予約") + " button", library=lib)
        form.append(button)
        confirm_page = self._post(client, session, pages.BASKET_PATH, form)
        errors = confirm_page.errors()
        if any(pages.TXT_OVERDUE_BLOCK in e for e in errors):
            raise AccountBlocked("the library refuses holds while items are overdue", library=lib,
                                 reason="overdue", upstream_message=pages.reason_text(errors[0]))
        if any(pages.TXT_BAD_EXPIRY in e for e in errors):
            raise InvalidRequest("the library refused the hold expiry date", library=lib,
                                 errors=[{"field": "expires_on", "message": errors[0]}])
        if errors and confirm_page.tree.css_first(pages.SEL_CONFIRM_BUTTON_ANY) is None:
            raise UpstreamError("the portal refused the reservation", library=lib,
                                upstream_message=pages.reason_text(errors[0]))
        confirm = pages.parse_reserve_confirm(confirm_page.tree, lib)
        if sorted(confirm.records) != sorted(picks):
            raise Conflict("the portal's confirm screen lists other titles than asked for; nothing was reserved",
                           library=lib)
        final = [(k, v) for k, v in confirm.hidden if k]
        if confirm.email_field:
            final.append((confirm.email_field, ""))  # 送信しない
        final.append(confirm.submit)
        # none of picks has an active hold (place_holds answered those as conflicts)
        writes.begin_holds(session, picks, before={})
        try:
            done_page = self._post(client, session, pages.RESERVE_CONFIRM_PATH, final)
        except Exception as exc:
            if not writes.unknown_outcome(exc):
                raise
            return results | self._reserve_after_timeout(client, session, picks, exc)
        _, lines = pages.parse_reserve_result(done_page.tree, lib)
        by_title = {self._title_key(t): rid for rid, t in zip(confirm.records, confirm.titles)}
        placed = {line.record_id or by_title.get(self._title_key(line.title), "") for line in lines if line.ok}
        now = {r.hold.record_id: r.hold for r in self._active_holds(client, session)} if placed else {}
        for line in lines:
            rid = line.record_id or by_title.get(self._title_key(line.title), "")
            if rid not in picks:
                continue
            if line.ok:
                hold = now.get(rid)
                if hold is None:
                    raise UpstreamChanged("a hold the portal reported is not in 予約した資料", library=lib)
                results[rid] = HoldResult(record_id=rid, ok=True, hold=hold)
            else:
                results[rid] = HoldResult(record_id=rid, ok=False, error=problem(self._refusal(line.message)))
        for rid in picks:
            if rid not in results:
                raise UpstreamChanged("the reservation result does not list every title", library=lib)
        writes.settle(session, holds=picks)
        return results

    @staticmethod
    def _title_key(title: str) -> str:
        return "".join(unicodedata.normalize("NFKC", title).split())

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
        """The basket page after 予約かご; a refusal becomes that record's result."""
        basket = pages.parse_basket(page.tree, self.library.id)
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

    # ------------------------------------------------------------ cancel / change
    def _hold_row(self, client: httpx.Client, session: UpstreamSession, hold_id: str) -> pages.HoldRow:
        """The hold's row, re-read in this session; its index refers to the page the
        session displayed last, so a hold on an earlier page is displayed again."""
        rows, last = self._hold_rows(client, session)
        for n, row in rows:
            if row.hold.id == hold_id:
                if n != last:
                    page = self._get(client, session, f"{pages.RESERVE_LIST_PATH}?page={n}")
                    fresh = {r.hold.id: r for r in pages.parse_hold_items(page.tree, self.library.id)[0]}
                    if hold_id not in fresh:
                        raise Conflict("the hold moved while the list was re-read", library=self.library.id)
                    return fresh[hold_id]
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
            if pages.parse_selected_reserve_nos(confirm.tree, pages.SEL_CANCEL_ROW) != [hold_id]:
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
            if pages.parse_selected_reserve_nos(form_page.tree, pages.SEL_CHANGE_ROW) != [hold_id]:
                raise Conflict("the portal's row did not match the hold asked for; nothing was changed",
                               library=lib)
            t = form_page.tree
            areas = {pages.node_text(o): o.attributes.get("value") or "" for o in t.css(pages.SEL_CHANGE_AREA_OPTION)}
            contacts = {pages.node_text(o): o.attributes.get("value") or ""
                        for o in t.css(pages.SEL_CHANGE_CONTACT_OPTION)}
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
            rows, _ = self._hold_rows(client, session)
            for _, r in rows:
                if r.hold.id == hold_id:
                    return r.hold
            raise UpstreamChanged("the changed hold is missing from 予約した資料", library=lib)

    # ------------------------------------------------------------ cart
    @translate_transport_errors
    def cart(self, session: UpstreamSession) -> Cart:
        with self.open(session) as client:
            page = self._get(client, session, pages.BASKET_PATH)
        return Cart(items=pages.parse_basket(page.tree, self.library.id).items)

    @translate_transport_errors
    def cart_add(self, session: UpstreamSession, record_id: str) -> Cart:
        with self._serial(session), self.open(session) as client:
            page = self._add_to_basket(client, session, record_id)
        basket = pages.parse_basket(page.tree, self.library.id)
        self._raise_cart_error(basket)
        if record_id not in basket.entries:
            raise UpstreamChanged("the record did not appear in the basket", library=self.library.id)
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
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).tree, self.library.id)
            if record_id not in basket.entries:
                raise NotFound(f"record {record_id!r} is not in the cart", library=self.library.id)
            after = self._delete_entries(client, session, basket, [record_id])
        if record_id in after.entries:
            raise UpstreamChanged("the record is still in the cart after 削除", library=self.library.id)
