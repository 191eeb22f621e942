"""Adapter of the ``winj`` WebOPAC family (熊本市, 鹿児島県立, 奄美, 新潟市), written to
what real ``/winj/opac/`` sites serve (``../shared/docs/REAL_WINJ.md``).

Upstream: the portal under ``{base_url}``, whose path is the site's context path
(``/winj/opac``, ``/kento/opac``, ``/opac``); ``dispatch`` values are relative to the
context root.  Login: GET ``login.do?lang=ja&dispatch=/opac/mylibrary.do`` first
(it issues ``JSESSIONID``; a cold GET may land on the top page, whose 「ログインする」
link is followed), then POST ``form[name=LoginForm]``'s ``txt_usercd`` /
``txt_password`` / ``submit_btn_login`` (the button's own value).  A 302 that
rotates ``JSESSIONID`` is success; a 302 to ``password-change.do`` means the library
forces a password change (Amami's initial, Niigata's temporary password); the form
again (「…に誤りがあります」) means wrong credentials.  ``hid_session`` carries the
session id; it is taken from every page, else from the cookie.

Quirks the flows cope with:
- Lists are paged (10 a page by default): every list is read whole and checked
  against its 「（全N 件）」; the largest page size is asked for once per session.
- Index-based actions (renewal's ``idx``, hold cancel/change ``chk_reserve``) mean
  "row i of the list this session displayed last": the list is re-read in the
  same session right before, the stable id (資料番号 / 予約番号 / bibid) mapped to
  its row, and the confirm screen checked to name the item asked for.
- Renewal is two steps, one loan at a time (``adapters.winj.loans``); holds go
  through the four-screen basket flow (``adapters.winj.holds``).
- Results are read from page text: 「貸出延長申込が完了しました」,
  「以下のタイトルについて予約を行いました。」, refusals 「理由:…」 in ``div.report``.
- The portal keeps ONE pending confirm per web session, so every write of one
  patron runs under the per-patron lock ``WinjHttp._serial``.
- Pages are decoded by their declared charset (real sites: UTF-8), forms encoded in it.
- The maintenance page → 503 ``upstream_maintenance``.

Upstream requests with a warm session (``bench/economy.py`` prints them per library):
loans 1 (a list longer than a page: 2 the first time — the page size is raised
once and sticks in the session — then 1), holds 1, cart 1, renew 1 + 3 per loan
(confirm, commit, re-read), cancel hold 3, update hold 4, place holds 4 + one per
title not yet in the basket (+3 when titles the flow put there must come out again),
cart add 1, cart remove 3, change password 1, search 1 (page N: 2), record 1,
availability 1 (+ one per record when several match).
"""

from __future__ import annotations

import httpx

from adapters.base import SecretFields, UpstreamSession, translate_transport_errors
from adapters.winj import pages
from adapters.winj.catalog import WinjCatalog
from adapters.winj.forms import F_NEW_PASSWORD, F_NEW_PASSWORD2, F_PASSWORD, F_USER, POLICY_LINES
from adapters.winj.holds import WinjHolds
from adapters.winj.http import HID_KEY, Page
from adapters.winj.layout import WinjOptions
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
    options_model = WinjOptions
    #: what the forms post that is secret: the cassette scrubber (tests/adapters/winj/flows.py)
    #: and tests/test_no_secrets.py read this
    secret_fields = SecretFields(
        secret=frozenset({F_PASSWORD, F_NEW_PASSWORD, F_NEW_PASSWORD2, "txt_newpassword", "txt_newpassword2"}),
        cards=frozenset({F_USER}),
        tokens=frozenset({"hid_session"}),
    )
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
        """Prime the session, then POST the login form; returns where the portal sends us
        ("mylibrary" or "password-change"); InvalidCredentials on the login form again."""
        lib = self.library.id
        query = [("lang", "ja"), ("dispatch", pages.DISPATCH_MYLIBRARY)]
        page = self._get(client, session, pages.LOGIN_PATH, query, login_ok=True)
        form = pages.parse_login_form(page.tree)
        if form is None:  # a cold GET may land on the top page: follow its ログイン link
            link = pages.login_link(page.tree)
            page = self._get(client, session, link, login_ok=True) if link else \
                self._get(client, session, pages.LOGIN_PATH, query, login_ok=True)
            form = pages.parse_login_form(page.tree)
        if form is None:
            raise UpstreamChanged("the 認証 (login.do) page changed: no LoginForm", library=lib)
        if self._cookie(client) is None:
            raise UpstreamChanged("the portal issued no JSESSIONID before the login", library=lib)
        body = self._encode([(F_USER, card), (F_PASSWORD, password), form.submit], self._charset(session))
        action = form.action or pages.LOGIN_PATH
        r = client.post(self._abs(action), content=body.encode("ascii"),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        if r.status_code in (301, 302, 303):
            location = r.headers.get("location", "")
            if pages.LOGIN_PATH in location:
                raise InvalidCredentials("the library rejected the card number or password", library=lib)
            session.data[HID_KEY] = self._cookie(client) or ""  # the rotated session id
            if pages.PASSWORD_PATH in location:
                return "password-change"
            return "mylibrary"
        page = self._page(client, session, r, login_ok=True)
        if pages.is_login_page(page.tree):
            msg = pages.login_error(page.tree)
            raise InvalidCredentials("the library rejected the card number or password",
                                     library=lib, upstream_message=msg)
        raise UpstreamChanged("unexpected answer to the login form", library=lib)

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
