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
- A title the flow put in the cart that did not become a hold (refused, or the
  flow failed) is taken out again; the patron's own cart entries stay.
- The portal keeps ONE pending confirm per web session, so every write of one
  patron (core and account screens) runs under the per-patron lock
  ``WinjHttp._serial``.
- Results are read from page text: 「貸出延長申込が完了しました」,
  「予約を行いました」, refusal lines 「理由:…」.
- Pages may be UTF-8, Shift_JIS or EUC-JP: decoded by the declared charset, forms
  encoded in it.
- The portal is down in its maintenance window (Kumamoto 04:00–05:00 JST): the
  maintenance page → 503 ``upstream_maintenance``.

Upstream requests with a warm session: loans 1, holds 1, cart 1, renew 3,
cancel hold 3, update hold 4, place holds 4 + m (m = titles not yet in the
cart, +1 when the first title already was; +2 when titles the flow put in the
cart must come out again after a refusal), cart add 1, cart remove 2, change password 1, search 1,
record 1, availability 1 + one per record found.
"""

from __future__ import annotations

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.catalog import WinjCatalog
from adapters.winj.forms import F_NEW_PASSWORD, F_NEW_PASSWORD2, F_PASSWORD, F_USER, POLICY_LINES
from adapters.winj.holds import WinjHolds
from adapters.winj.http import HID_KEY, Page
from adapters.winj.loans import WinjLoans
from core.errors import (
    CardNumberInvalid,
    GatewayError,
    InvalidCredentials,
    PasswordChangeRequired,
    PasswordPolicyViolation,
    UpstreamChanged,
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

class WinjAdapter(WinjAccountMixin, WinjLoans, WinjHolds, WinjCatalog):
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
        from core.errors import SessionExpired

        with self.open(session) as client:
            try:
                self._get(client, session, pages.LOGOUT_PATH, login_ok=True)
            except (SessionExpired, GatewayError):
                pass

    @translate_transport_errors
    def change_password(self, session: UpstreamSession | None, card_number: str, current_password: str,
                        new_password: str) -> None:
        from core.policy import check_password

        violations = check_password(self.library.password_policy, new_password)
        if violations:
            raise PasswordPolicyViolation("the new password breaks the library's policy",
                                          library=self.library.id, violations=violations)
        fresh = session is None
        if session is None:
            card = self._normal_card(card_number)
            session = UpstreamSession(card_number=card)
        with self._serial(session), self.open(session) as client:
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
            from core.errors import SessionExpired

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
