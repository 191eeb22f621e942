"""Adapter of the ``winj`` WebOPAC family (熊本市, 鹿児島県立, 奄美, 新潟市).

Upstream: the vendor's patron portal under ``{base_url}`` (= ``.../winj/opac``).
Login: GET ``login.do`` (issues ``JSESSIONID`` and the hidden ``hid_session``),
then POST ``txt_usercd``/``txt_password``; a 302 to ``mylibrary.do`` is success,
a 302 to ``password-change.do`` means the library forces a password change
(Amami's initial, Niigata's temporary password), the login form again means
wrong credentials.  Every later form echoes ``hid_session``.

Quirks the flows cope with:
- Forms pick rows by **session-relative index** (renewal ``chk_lend``, hold
  cancel/change ``chk_reserve``, cart ``chk_basket``).  The adapter always
  re-reads the list in the same session, maps the stable id (資料番号 / 予約番号 /
  書誌番号) to the index, and checks the confirm screen lists exactly the items
  asked for before confirming; otherwise nothing is done.
- Holds go through the reservation cart: 予約かごへ → 予約かご (予約受取館
  ``cmb_area``, 予約連絡方法 ``cmb_contact``, 予約有効期限 ``txt_year``/``txt_month``/
  ``txt_day``) → 通常予約 / まとめて予約 → 予約内容確認 → 「予約を行いました」.
  Holds are re-read first, so a retry never places a second hold; after a
  timeout on the final confirm the holds are re-read to learn what happened.
- Results are read from page text: 「貸出延長申込が完了しました」,
  「予約を行いました」, refusal lines 「理由:…」.
- Pages may be UTF-8, Shift_JIS or EUC-JP: decoded by the declared charset, forms
  encoded in it.
- The portal is down in its maintenance window (Kumamoto 04:00–05:00 JST): the
  maintenance page → 503 ``upstream_maintenance``.

Upstream requests with a warm session: loans 1, holds 1, cart 1, renew 3,
cancel hold 3, update hold 4, place n holds n+4 (n = records not yet in the
cart; 5 when all are), cart add 1, cart remove 2, change password 1, search 1,
record 1, availability 1 + one per record found.
"""

from __future__ import annotations

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.http import HID_KEY, Page, WinjHttp
from gateway.errors import (
    AccountBlocked,
    CardNumberInvalid,
    Conflict,
    GatewayError,
    InvalidCredentials,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    NotRenewable,
    PasswordChangeRequired,
    PasswordPolicyViolation,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.models import (
    Cart,
    Hold,
    Holding,
    HoldRequest,
    HoldResult,
    HoldUpdate,
    Loan,
    Problem,
    Record,
    RenewalResult,
    SearchQuery,
    SearchResult,
)

try:  # the account screens live in another module (profile, history, shelves, SDI, ...)
    from adapters.winj.account import ACCOUNT_CAPABILITIES, WinjAccountMixin
except ImportError:  # pragma: no cover - only while that module does not exist
    class WinjAccountMixin:  # type: ignore[no-redef]
        """Placeholder: no account screens."""

    ACCOUNT_CAPABILITIES = frozenset()  # type: ignore[assignment]

CORE_CAPABILITIES = frozenset({
    "login", "password_change", "loans", "renew", "holds", "hold_place", "hold_cancel", "hold_update",
    "cart", "search", "availability",
})

# Form field names of the portal.
F_USER = "txt_usercd"
F_PASSWORD = "txt_password"
F_NEW_PASSWORD = "txt_new_password"
F_NEW_PASSWORD2 = "txt_new_password2"
F_LEND = "chk_lend"
F_RESERVE = "chk_reserve"
F_BASKET = "chk_basket"
F_AREA = "cmb_area"
F_CONTACT = "cmb_contact"
F_YEAR, F_MONTH, F_DAY = "txt_year", "txt_month", "txt_day"
F_BIBID = "bibid"
BTN_NORMAL = ("btn_reserve", "通常予約")
BTN_ORDERED = ("btn_bulk", "まとめて予約")
BTN_OK = ("btn_ok", "OK")
NO_EXPIRY = ("9999", "12", "31")

# The portal's refusal lines of a new password → the API's violation names.
POLICY_LINES = (("文字以上", "min_length"), ("文字以内", "max_length"), ("使用できない文字", "charset"),
                ("アルファベット", "require_letter"), ("数字", "require_digit"))

SEARCH_FIELDS = (("q", "txt_word"), ("title", "txt_title"), ("author", "txt_author"),
                 ("publisher", "txt_publisher"), ("isbn", "txt_isbn"))


def _problem(err: GatewayError) -> Problem:
    return Problem(**err.to_problem())


class WinjAdapter(WinjAccountMixin, WinjHttp):
    family = "winj"
    capabilities = CORE_CAPABILITIES | ACCOUNT_CAPABILITIES
    description = "WebOPAC (winj) patron portal: screen-scraped HTML forms"

    # ================================================================ sessions
    def _normal_card(self, card_number: str) -> str:
        from mappers import MappingError
        from mappers.cards import normalize_card_number

        rule = self.library.card_number
        try:
            return normalize_card_number(card_number, digits=rule.digits, pad=rule.pad)
        except MappingError as exc:
            raise CardNumberInvalid(str(exc), library=self.library.id) from None

    def _login_into(self, client: httpx.Client, session: UpstreamSession, card: str, password: str) -> str:
        """GET + POST login.do; returns where the portal sends us ("mylibrary" or
        "password-change"); InvalidCredentials on the login form again."""
        self._get(client, session, pages.LOGIN_PATH, login_ok=True)
        body = self._encode([(F_USER, card), (F_PASSWORD, password),
                             ("hid_session", str(session.data.get(HID_KEY, "")))], self._charset(session))
        r = client.post(pages.LOGIN_PATH, content=body.encode("ascii"),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        if r.status_code in (301, 302, 303):
            location = r.headers.get("location", "")
            if pages.PASSWORD_PATH in location:
                return "password-change"
            if pages.LOGIN_PATH in location:
                raise InvalidCredentials("the library rejected the card number or password",
                                         library=self.library.id)
            return "mylibrary"
        page = self._page(client, session, r, login_ok=True)
        if pages.is_login_page(page.tree):
            msg = pages.login_error(page.tree)
            raise InvalidCredentials("the library rejected the card number or password",
                                     library=self.library.id, upstream_message=msg)
        raise UpstreamChanged("unexpected answer to the login form", library=self.library.id)

    @translate_transport_errors
    def login(self, card_number: str, password: str) -> UpstreamSession:
        card = self._normal_card(card_number)
        session = UpstreamSession(card_number=card)
        with self.open(session) as client:
            where = self._login_into(client, session, card, password)
        if where == "password-change":
            raise PasswordChangeRequired("the library requires a new password before anything else",
                                         library=self.library.id)
        return session

    @translate_transport_errors
    def logout(self, session: UpstreamSession) -> None:
        from gateway.errors import SessionExpired

        with self.open(session) as client:
            try:
                self._get(client, session, pages.LOGOUT_PATH, login_ok=True)
            except (SessionExpired, GatewayError):
                pass

    @translate_transport_errors
    def change_password(self, session: UpstreamSession | None, card_number: str, current_password: str,
                        new_password: str) -> None:
        from gateway.policy import check_password

        violations = check_password(self.library.password_policy, new_password)
        if violations:
            raise PasswordPolicyViolation("the new password breaks the library's policy",
                                          library=self.library.id, violations=violations)
        fresh = session is None
        if session is None:
            card = self._normal_card(card_number)
            session = UpstreamSession(card_number=card)
        with self.open(session) as client:
            if fresh:
                self._login_into(client, session, session.card_number, current_password)
            page = self._post(client, session, pages.PASSWORD_PATH, [
                (F_PASSWORD, current_password), (F_NEW_PASSWORD, new_password),
                (F_NEW_PASSWORD2, new_password), ("btn_update", "更新")], login_ok=True)
            self._check_password_result(page)
            if fresh and not pages.is_login_page(page.tree) and "改めてログイン" not in page.text():
                try:
                    self._get(client, session, pages.LOGOUT_PATH, login_ok=True)
                except GatewayError:
                    pass

    def _check_password_result(self, page: Page) -> None:
        text = page.text()
        if any(t in text for t in pages.TXT_PW_DONE):
            return
        errors = page.errors()
        lib = self.library.id
        if pages.is_login_page(page.tree):
            from gateway.errors import SessionExpired

            raise SessionExpired("login page instead of the password form")
        for e in errors:
            if "正しくありません" in e:
                raise InvalidCredentials("the current password is wrong", library=lib,
                                         upstream_message=pages.reason_text(e))
        if errors:
            violations = sorted({rule for e in errors for needle, rule in POLICY_LINES if needle in e}) or ["other"]
            raise PasswordPolicyViolation("the library refused the new password", library=lib,
                                          violations=violations, upstream_message=pages.reason_text(errors[0]))
        raise UpstreamChanged("no result on the password change screen", library=lib)

    # ================================================================ loans
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
        with self.open(session) as client:
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
                    if row is None:
                        results[lid] = RenewalResult(loan_id=lid, ok=False, error=_problem(
                            NotFound(f"no loan {lid!r}", library=lib)))
                    elif not row.index:
                        reason = row.loan.not_renewable_reason or "other"
                        results[lid] = RenewalResult(loan_id=lid, ok=False, loan=row.loan, error=_problem(
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
            return {r.loan.id: RenewalResult(loan_id=r.loan.id, ok=False, error=_problem(err)) for r in rows}
        before = {r.loan.id: r.loan for r in rows}
        try:
            page = self._post(client, session, pages.LEND_EXEC_PATH, [("btn_extension", "延長")])
        except httpx.TimeoutException:
            return self._renewal_after_timeout(client, session, before)
        _done, lines = pages.parse_extension_result(page.html)
        out: dict[str, RenewalResult] = {}
        for line in lines:
            old = before.get(line.item_id)
            if old is None:
                continue
            if line.ok:
                if line.due_on is None:
                    raise UpstreamChanged("a renewed item without its new due date", library=lib)
                loan = old.model_copy(update={
                    "due_on": line.due_on, "overdue": False, "renewable": False,
                    "not_renewable_reason": "already_renewed",
                    "times_renewed": (old.times_renewed or 0) + 1})
                out[old.id] = RenewalResult(loan_id=old.id, ok=True, loan=loan)
            else:
                msg = pages.reason_text(line.message)
                from mappers.status import renewal_reason

                err = NotRenewable(f"the library refused the renewal: {msg}", reason=renewal_reason(msg),
                                   library=lib, upstream_message=msg)
                out[old.id] = RenewalResult(loan_id=old.id, ok=False, loan=old, error=_problem(err))
        missing = [i for i in before if i not in out]
        if missing:
            raise UpstreamChanged("the renewal result does not list every item", library=lib)
        return out

    def _renewal_after_timeout(self, client: httpx.Client, session: UpstreamSession,
                               before: dict[str, Loan]) -> dict[str, RenewalResult]:
        """The confirm timed out: re-read the list to learn which renewals happened."""
        lib = self.library.id
        rows = pages.parse_lend_rows(self._get(client, session, pages.LEND_LIST_PATH).html, lib, self.today())
        now = {r.loan.id: r.loan for r in rows}
        out = {}
        for lid, old in before.items():
            cur = now.get(lid)
            if cur is not None and cur.due_on != old.due_on:
                out[lid] = RenewalResult(loan_id=lid, ok=True, loan=cur)
            else:
                out[lid] = RenewalResult(loan_id=lid, ok=False, loan=old, error=_problem(
                    UpstreamTimeout("the renewal was not confirmed in time; it did not happen", library=lib)))
        return out

    # ================================================================ holds
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
        with self.open(session) as client:
            # Re-read first: a retry (e.g. after a timeout where the portal did act)
            # must never place a second hold.
            existing = {r.hold.record_id: r.hold for r in self._active_holds(client, session)}
            for rid in wanted:
                if rid in existing:
                    results[rid] = HoldResult(record_id=rid, ok=False, hold=existing[rid], error=_problem(
                        Conflict("already reserved", library=lib, upstream_message="既に予約済です。")))
            todo = [rid for rid in wanted if rid not in results]
            if todo:
                results.update(self._reserve(client, session, todo, request, pickup))
        return [results[rid] for rid in wanted]

    def _reserve(self, client: httpx.Client, session: UpstreamSession, todo: list[str], request: HoldRequest,
                 pickup: str | None) -> dict[str, HoldResult]:
        lib = self.library.id
        results: dict[str, HoldResult] = {}
        basket: pages.BasketPage | None = None
        for rid in todo:
            if basket is not None and rid in basket.indexes:
                continue
            page = self._post(client, session, pages.BASKET_ADD_PATH, [(F_BIBID, rid), ("btn_basket", "予約かごへ")])
            basket = self._basket_or_error(page, rid, results)
        if basket is None:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).html)
        picks = [rid for rid in todo if rid not in results and rid in basket.indexes]
        for rid in todo:
            if rid not in results and rid not in basket.indexes:
                results[rid] = HoldResult(record_id=rid, ok=False, error=_problem(
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
        try:
            done_page = self._post(client, session, pages.RESERVE_CONFIRM_PATH, [BTN_OK])
        except httpx.TimeoutException:
            return results | self._reserve_after_timeout(client, session, picks)
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
                                                     error=_problem(self._refusal(line.message)))
        for rid in picks:
            if rid not in results:
                raise UpstreamChanged("the reservation result does not list every title", library=lib)
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
            results[rid] = HoldResult(record_id=rid, ok=False, error=_problem(exc))
        return basket

    @staticmethod
    def _cart_limit(message: str) -> int:
        import re
        import unicodedata

        m = re.search(r"最大\s*(\d+)", unicodedata.normalize("NFKC", message))
        return int(m.group(1)) if m else 10

    def _reserve_after_timeout(self, client: httpx.Client, session: UpstreamSession,
                               picks: list[str]) -> dict[str, HoldResult]:
        lib = self.library.id
        now = {r.hold.record_id: r.hold for r in self._active_holds(client, session)}
        out = {}
        for rid in picks:
            if rid in now:
                out[rid] = HoldResult(record_id=rid, ok=True, hold=now[rid])
            else:
                out[rid] = HoldResult(record_id=rid, ok=False, error=_problem(
                    UpstreamTimeout("the reservation was not confirmed in time; it was not placed", library=lib)))
        return out

    def _hold_row(self, client: httpx.Client, session: UpstreamSession, hold_id: str) -> pages.HoldRow:
        for row in pages.parse_hold_rows(self._get(client, session, pages.RESERVE_LIST_PATH).html,
                                         self.library.id):
            if row.hold.id == hold_id:
                return row
        raise NotFound(f"no hold {hold_id!r}", library=self.library.id)

    @translate_transport_errors
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        lib = self.library.id
        with self.open(session) as client:
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
        with self.open(session) as client:
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
            areas = {pages.node_text(o): o.attributes.get("value", "") for o in t.css(pages.SEL_AREA_OPTION)}
            contacts = {pages.node_text(o): o.attributes.get("value", "") for o in t.css(pages.SEL_CONTACT_OPTION)}
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

    # ================================================================ cart
    @translate_transport_errors
    def cart(self, session: UpstreamSession) -> Cart:
        with self.open(session) as client:
            page = self._get(client, session, pages.BASKET_PATH)
        return Cart(items=pages.parse_basket(page.html).items)

    @translate_transport_errors
    def cart_add(self, session: UpstreamSession, record_id: str) -> Cart:
        with self.open(session) as client:
            page = self._post(client, session, pages.BASKET_ADD_PATH,
                              [(F_BIBID, record_id), ("btn_basket", "予約かごへ")])
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
        with self.open(session) as client:
            basket = pages.parse_basket(self._get(client, session, pages.BASKET_PATH).html)
            index = basket.indexes.get(record_id)
            if index is None:
                raise NotFound(f"record {record_id!r} is not in the cart", library=self.library.id)
            page = self._post(client, session, pages.BASKET_PATH, [(F_BASKET, index), ("btn_delete", "削除")])
        after = pages.parse_basket(page.html)
        if record_id in after.indexes:
            raise UpstreamChanged("the record is still in the cart after 削除", library=self.library.id)

    # ================================================================ catalog
    def _search_params(self, query: SearchQuery) -> list[tuple[str, str]]:
        params = [(f, str(getattr(query, attr))) for attr, f in SEARCH_FIELDS if getattr(query, attr)]
        if not params:
            raise InvalidRequest("give at least one of q, title, author, publisher, isbn",
                                 library=self.library.id)
        params.append(("page", str(query.page)))
        return params

    def _ensure_charset(self, client: httpx.Client, params: list[tuple[str, str]]) -> None:
        # Non-ASCII query text must be sent in the portal's charset; learn it once.
        if self._learned_charset is None and not self.library.options.get("charset") \
                and any(not v.isascii() for _, v in params):
            self._get(client, None, pages.SEARCH_FORM_PATH)

    @translate_transport_errors
    def search(self, query: SearchQuery) -> SearchResult:
        params = self._search_params(query)
        with self.open(None) as client:
            self._ensure_charset(client, params)
            page = self._get(client, None, pages.SEARCH_PATH, params)
        errors = page.errors()
        if errors and page.tree.css_first(pages.SEL_HIT_COUNT) is None:
            raise InvalidRequest("the library refused the search", library=self.library.id,
                                 upstream_message=errors[0])
        return pages.parse_search(page.html, query.page)

    @translate_transport_errors
    def record(self, record_id: str) -> Record:
        with self.open(None) as client:
            page = self._get(client, None, pages.DETAIL_PATH, [(F_BIBID, record_id)])
        rec = pages.parse_record(page.html, record_id)
        if rec is None:
            raise NotFound(f"no record {record_id!r}", library=self.library.id)
        return rec

    @translate_transport_errors
    def availability(self, isbn: str) -> list[Holding]:
        holdings: list[Holding] = []
        with self.open(None) as client:
            page = self._get(client, None, pages.SEARCH_PATH, [("txt_isbn", isbn), ("page", "1")])
            found = pages.parse_search(page.html, 1)
            for summary in found.records:
                detail = self._get(client, None, pages.DETAIL_PATH, [(F_BIBID, summary.id)])
                rec = pages.parse_record(detail.html, summary.id)
                if rec is not None:
                    holdings.extend(rec.holdings)
        return holdings

