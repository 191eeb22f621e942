"""Adapter for the ``wo`` portal family: 山口県立山口図書館 (seed 000).

Upstream: a vendor WebOPAC whose screens all live under ``/wo/opc_srh/`` (base_url
ends in ``/wo``).  Pages are labelled Shift_JIS and really Windows-31J; forms are
posted as UTF-8 (``accept-charset``).

Login: GET ``usr_login`` (sets the ``WOSID`` cookie and a pre-login ``wo_ctkn``),
POST ``usr_id``/``usr_pw``/``wo_ctkn`` → 302 to ``usr_menu``; the session id and the
anti-forgery token ``wo_ctkn`` are replaced at login, so the menu is read for the new
token, kept in ``UpstreamSession.data["ctkn"]``.  A patron has **no password** until
they register one (card + 8-digit birth date → new password twice); logging in
before that fails with 「パスワードが登録されていません」.

Quirks: every write is form → 確認 (``btn_cnf``) → 実行 (``btn_exe``); an expired
session is a 302 to ``usr_login?tmo=1`` (→ ``SessionExpired``); renewal is by the
item's barcode (checkbox ``chk_shiryo``), so a loan id is the barcode and stays stable;
the e-Net 貸出サービス form takes a 受取館 code per municipal library, configured as
``options.enet_pickup_codes`` (consortium pickup id → code).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from adapters import html, writes
from adapters.base import Adapter, SecretFields, UpstreamSession, translate_transport_errors
from adapters.wo import parse
from core.errors import (
    AccountBlocked,
    Conflict,
    GatewayError,
    InvalidCredentials,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    NotRenewable,
    NotSupported,
    PasswordPolicyViolation,
    SessionExpired,
    UpstreamError,
)
from core.models import (
    Hold,
    Holding,
    HoldRequest,
    HoldResult,
    Loan,
    Profile,
    ProfileUpdate,
    Record,
    RenewalResult,
    SearchQuery,
    SearchResult,
    UpstreamLending,
)
from mappers.cards import mask_card_number

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- paths
PATH_LOGIN = "/opc_srh/usr_login"
PATH_LOGOUT = "/opc_srh/usr_logout"
PATH_MENU = "/opc_srh/usr_menu"
PATH_LOANS = "/opc_srh/usr_lend"
PATH_RENEW = "/opc_srh/usr_lend_ext"
PATH_HOLDS = "/opc_srh/usr_rsv"
PATH_HOLD_CANCEL = "/opc_srh/usr_rsv_cancel"
PATH_HOLD_ENTRY = "/opc_srh/rsv_entry"
PATH_PROFILE = "/opc_srh/usr_info"
PATH_MAIL = "/opc_srh/usr_mail"
PATH_PASSWORD = "/opc_srh/usr_pwchg"
PATH_REGISTER = "/opc_srh/pwd_reg"
PATH_REGISTER_EXE = "/opc_srh/pwd_reg_exe"
PATH_SEARCH = "/opc_srh/srh_rslt"
PATH_DETAIL = "/opc_srh/srh_detail"
PATH_ENET_ENTRY = "/opc_srh/enet_entry"
PATH_ENET_LIST = "/opc_srh/usr_enet"
PATH_ENET_CANCEL = "/opc_srh/usr_enet_cancel"

# ---------------------------------------------------------------- form fields
FIELD_CARD = "usr_id"
FIELD_PASSWORD = "usr_pw"
FIELD_OLD_PASSWORD = "old_pw"
FIELD_NEW_PASSWORD = "new_pw"
FIELD_NEW_PASSWORD_AGAIN = "new_pw_cnf"
FIELD_BIRTH_DATE = "birth_ymd"
FIELD_TOKEN = "wo_ctkn"  # the anti-forgery token, replaced at login
FIELD_REGISTRATION_KEY = "reg_key"

# ---------------------------------------------------------------- the portal's messages
MSG_NO_PASSWORD = "パスワードが登録されていません"
MSG_BAD_LOGIN = "正しくありません"
MSG_ALREADY_REGISTERED = "既にパスワードが登録されています"
MSG_BIRTH_FORMAT = "8桁"
MSG_POLICY = "8文字以上20文字以下"
MSG_MISMATCH = "一致しません"
MSG_REGISTERED = "パスワードの登録が完了しました"
MSG_PASSWORD_CHANGED = "パスワードを変更しました"
MSG_CURRENT_WRONG = "現在のパスワードが正しくありません"
MSG_HOLD_CANCELLED = "予約を取り消しました"
MSG_MAIL_DONE = "メールアドレスを登録しました"
MSG_ENET_CANCELLED = "申込を取り消しました"
MSG_ENET_ACCEPTED = "申込を受け付けました"
MSG_HOLD_ACCEPTED = "予約を受け付けました"
#: refusal text → error class (first match wins)
REFUSALS: tuple[tuple[str, type[GatewayError]], ...] = (
    ("延滞中の資料があるため", AccountBlocked),
    ("既に予約されています", Conflict),
    ("既にe-Net貸出を申し込んでいます", Conflict),
    ("貸出中の資料は予約できません", Conflict),
    ("取り消しできません", Conflict),
    ("件数", LimitExceeded),
    ("件まで", LimitExceeded),
    ("見つかりません", NotFound),
    ("受取館に指定できません", InvalidRequest),
    ("受取館を選択してください", InvalidRequest),
    ("メールアドレスが登録されていません", InvalidRequest),
    ("メールアドレス", InvalidRequest),
)


class WoOptions(BaseModel):
    """``[libraries.<id>.options]`` of a wo library."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: consortium pickup library id → the e-Net form's 受取館 code
    enet_pickup_codes: dict[str, str] = {}
    #: the portal's e-Net active request limit (for the limit_exceeded problem)
    enet_limit: int = 5


class WoAdapter(Adapter):
    family = "wo"
    description = "山口県立山口図書館's WebOPAC (/wo/opc_srh/), with the e-Net 貸出サービス form"
    capabilities = frozenset({
        "login", "profile", "profile_update", "password_change", "password_register",
        "loans", "renew", "holds", "hold_place", "hold_cancel",
        "search", "availability", "lending_request",
    })

    options_model = WoOptions
    options: WoOptions
    secret_fields = SecretFields(
        secret=frozenset({FIELD_PASSWORD, FIELD_OLD_PASSWORD, FIELD_NEW_PASSWORD, FIELD_NEW_PASSWORD_AGAIN,
                          FIELD_BIRTH_DATE}),
        cards=frozenset({FIELD_CARD}),
        tokens=frozenset({FIELD_TOKEN, FIELD_REGISTRATION_KEY}),
    )

    def __init__(self, library: Any, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(library, transport=transport)
        self._code_to_pickup = {code: pid for pid, code in self.options.enet_pickup_codes.items()}

    # ------------------------------------------------------------ plumbing
    def _page(self, response: httpx.Response, *, session_needed: bool = True) -> str:
        if response.is_redirect:
            where = response.headers.get("location", "")
            if session_needed and "usr_login" in where:
                raise SessionExpired()
            raise html.changed(f"unexpected redirect to {where}", library=self.library.id)
        if response.status_code >= 500:
            raise UpstreamError(f"the portal answered HTTP {response.status_code}", library=self.library.id,
                                http_status=response.status_code)
        text = parse.decode(response.content, response.headers.get("content-type"))
        if session_needed and parse.page_info(text).is_login:
            raise SessionExpired()
        if response.status_code == 400 and parse.MSG_BAD_TOKEN in text:
            # our wo_ctkn is stale (the portal replaced the session): log in again
            raise SessionExpired()
        return text

    def _get(self, session: UpstreamSession, path: str, **params: Any) -> str:
        with self.client(session) as c:
            r = c.get(path, params=params or None)
            self.keep_cookies(c, session)
        return self._page(r)

    def _post(self, session: UpstreamSession, path: str, data: dict[str, Any]) -> str:
        with self.client(session) as c:
            r = c.post(path, data=data)
            self.keep_cookies(c, session)
        return self._page(r)

    def _ctkn(self, page: str, session: UpstreamSession) -> str:
        token = parse.page_info(page).ctkn or session.data.get("ctkn")
        if not token:
            raise html.changed(f"no {FIELD_TOKEN} (anti-forgery token)", library=self.library.id)
        session.data["ctkn"] = token
        return token

    def _confirmed(self, session: UpstreamSession, path: str, data: dict[str, Any], button: str) -> dict[str, Any]:
        """Step 1 of a write (確認, ``btn_cnf``): a page with errors is the refusal; returns the
        form data for step 2 with the confirm page's ``wo_ctkn``."""
        confirm = self._post(session, path, {**data, "btn_cnf": button})
        if parse.page_info(confirm).errors:
            raise self._refusal(confirm)
        return {**data, FIELD_TOKEN: self._ctkn(confirm, session)}

    def _executed(self, session: UpstreamSession, path: str, data: dict[str, Any], button: str, done_msg: str) -> str:
        """Step 2 (実行, ``btn_exe``): the result page, which must carry ``done_msg``."""
        done = self._post(session, path, {**data, "btn_exe": button})
        if not any(done_msg in m for m in parse.page_info(done).oks):
            raise self._refusal(done)
        return done

    def _entry_form(self, session: UpstreamSession, path: str, record_id: str) -> str:
        """The request form of one record (予約申込, e-Net); 404 for an unknown record."""
        with self.client(session) as c:
            r = c.get(path, params={"bibid": record_id})
            self.keep_cookies(c, session)
        form = self._page(r)
        if r.status_code == 404:
            raise NotFound(f"no record {record_id}", library=self.library.id)
        return form

    def _refusal(self, page: str, *, default: type[GatewayError] = UpstreamError) -> GatewayError:
        info = parse.page_info(page)
        text = " ".join(info.errors) or info.title
        for needle, cls in REFUSALS:
            if needle in text:
                kw: dict[str, Any] = {"library": self.library.id, "upstream_message": text}
                if cls is AccountBlocked:
                    kw["reason"] = "overdue"
                if cls is LimitExceeded:
                    kw["limit"] = self.library.hold_limit if "予約" in text else self.options.enet_limit
                return cls(_english(cls), **kw)
        if not info.errors:
            return html.changed(f"neither a known result nor an error message ({info.title!r})", library=self.library.id)
        return default("the library refused the request", library=self.library.id, upstream_message=text)

    # ------------------------------------------------------------ sessions
    @translate_transport_errors
    def login(self, card_number: str, password: str) -> UpstreamSession:
        session = UpstreamSession(card_number=card_number)
        with self.client(session) as c:
            form = c.get(PATH_LOGIN)
            token = parse.page_info(self._page(form, session_needed=False)).ctkn
            if not token:
                raise html.changed(f"no {FIELD_TOKEN} (anti-forgery token)", screen="login", library=self.library.id)
            r = c.post(PATH_LOGIN, data={FIELD_CARD: card_number, FIELD_PASSWORD: password, FIELD_TOKEN: token,
                                         "btn_login": "ログイン"})
            if not r.is_redirect:
                info = parse.page_info(self._page(r, session_needed=False))
                text = " ".join(info.errors)
                if MSG_NO_PASSWORD in text:
                    raise InvalidCredentials(
                        "no password is registered for this card yet: register one with "
                        f"POST /v1/libraries/{self.library.id}/password-registrations",
                        library=self.library.id, upstream_message=text, reason="password_not_registered",
                    )
                if MSG_BAD_LOGIN in text:
                    raise InvalidCredentials(library=self.library.id, upstream_message=text)
                raise html.changed("neither the menu nor a known refusal after login", screen="login", library=self.library.id)
            menu = c.get(PATH_MENU)
            self.keep_cookies(c, session)
        page = self._page(menu, session_needed=False)
        info = parse.page_info(page)
        if info.is_login or not info.ctkn:
            raise html.changed("no patron menu after login", screen="login", library=self.library.id)
        session.data["ctkn"] = info.ctkn
        return session

    @translate_transport_errors
    def logout(self, session: UpstreamSession) -> None:
        with self.client(session) as c:
            c.get(PATH_LOGOUT)

    @translate_transport_errors
    def register_password(self, card_number: str, birth_date: date, new_password: str) -> None:
        with self.client() as c:
            r1 = c.post(PATH_REGISTER, data={FIELD_CARD: card_number, FIELD_BIRTH_DATE: f"{birth_date:%Y%m%d}",
                                             "btn_next": "次へ進む"})
            page = self._page(r1, session_needed=False)
            key = parse.parse_registration_key(page)
            if key is None:
                text = " ".join(parse.page_info(page).errors)
                if MSG_ALREADY_REGISTERED in text:
                    raise Conflict("a password is already registered for this card", library=self.library.id,
                                   upstream_message=text)
                if MSG_BAD_LOGIN in text:
                    raise InvalidCredentials("the card number or birth date is wrong", library=self.library.id,
                                             upstream_message=text)
                if MSG_BIRTH_FORMAT in text:
                    raise InvalidRequest("birth date refused by the library", library=self.library.id,
                                         upstream_message=text)
                raise html.changed("neither done nor a known refusal", screen="password registration",
                                   library=self.library.id)
            r2 = c.post(PATH_REGISTER_EXE, data={FIELD_REGISTRATION_KEY: key, FIELD_NEW_PASSWORD: new_password,
                                                 FIELD_NEW_PASSWORD_AGAIN: new_password, "btn_reg": "登録"})
        info = parse.page_info(self._page(r2, session_needed=False))
        if any(MSG_REGISTERED in m for m in info.oks):
            return
        self._password_refusal(info, new_password)

    def _password_refusal(self, info: parse.PageInfo, new_password: str) -> None:
        text = " ".join(info.errors)
        if MSG_POLICY in text or MSG_MISMATCH in text:
            from core.policy import check_password

            # the portal says only that the policy was broken; name the rules ourselves
            violations = check_password(self.library.password_policy, new_password) or ["charset"]
            raise PasswordPolicyViolation("the library refused the new password", library=self.library.id,
                                          upstream_message=text, violations=violations)
        if MSG_ALREADY_REGISTERED in text:
            raise Conflict("a password is already registered for this card", library=self.library.id,
                           upstream_message=text)
        if MSG_CURRENT_WRONG in text:
            raise InvalidCredentials("the current password is wrong", library=self.library.id, upstream_message=text)
        if text:
            raise UpstreamError("the library refused the password", library=self.library.id, upstream_message=text)
        raise html.changed("neither done nor a known refusal", screen="password change", library=self.library.id)

    @translate_transport_errors
    def change_password(
        self, session: UpstreamSession | None, card_number: str, current_password: str, new_password: str
    ) -> None:
        if session is None:
            session = self.login(card_number, current_password)
        page = self._get(session, PATH_PASSWORD)
        token = self._ctkn(page, session)
        done = self._post(session, PATH_PASSWORD, {FIELD_TOKEN: token, FIELD_OLD_PASSWORD: current_password,
                                                   FIELD_NEW_PASSWORD: new_password, FIELD_NEW_PASSWORD_AGAIN: new_password,
                                                   "btn_exe": "変更"})
        info = parse.page_info(done)
        if any(MSG_PASSWORD_CHANGED in m for m in info.oks):
            return
        self._password_refusal(info, new_password)

    # ------------------------------------------------------------ patron
    @translate_transport_errors
    def profile(self, session: UpstreamSession) -> Profile:
        page = self._get(session, PATH_PROFILE)
        return parse.parse_profile(page, mask_card_number(session.card_number))

    @translate_transport_errors
    def update_profile(self, session: UpstreamSession, changes: ProfileUpdate, password: str | None) -> Profile:
        unsupported = [
            name for name in ("pickup_branch", "phone_contact", "keep_history")
            if getattr(changes, name) is not None
        ]
        if changes.notifications is not None:
            n = changes.notifications
            if n.hold_ready is not None or n.checkout is not None or n.registration is not None:
                unsupported.append("notifications (only due_reminder.enabled)")
        if unsupported:
            raise InvalidRequest(
                "this portal only lets patrons change the e-mail address, the due-date reminder and the "
                "contact method; not: " + ", ".join(unsupported),
                library=self.library.id,
            )
        if changes.emails is not None and len(changes.emails) > 1:
            raise InvalidRequest("this portal keeps one e-mail address", library=self.library.id)
        form = self._get(session, PATH_MAIL)
        token = self._ctkn(form, session)
        data = parse.form_values(form)
        if changes.emails is not None:
            addr = changes.emails[0].address if changes.emails else ""
            data["mail_addr"] = data["mail_addr_cnf"] = addr
        if changes.notifications is not None and changes.notifications.due_reminder is not None:
            data["rmd_flg"] = "1" if changes.notifications.due_reminder.enabled else "0"
        if changes.contact_method is not None:
            options = parse.select_options(form, parse.SEL_CONTACT_OPTIONS)
            code = _code_for(options, changes.contact_method)
            if code is None:
                raise InvalidRequest(f"unknown contact method {changes.contact_method!r}; one of "
                                     + ", ".join(options.values()), library=self.library.id)
            data["sel_cntct"] = code
        data[FIELD_TOKEN] = token
        data = self._confirmed(session, PATH_MAIL, data, "確認")
        self._executed(session, PATH_MAIL, data, "登録", MSG_MAIL_DONE)
        return self.profile(session)

    @translate_transport_errors
    def loans(self, session: UpstreamSession) -> list[Loan]:
        page = self._get(session, PATH_LOANS)
        self._ctkn(page, session)
        return parse.parse_loans(page, self.library.id, self.library.now().date())

    @translate_transport_errors
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        before = {ln.id: ln for ln in self.loans(session)}
        results: dict[str, RenewalResult] = {}
        wanted = list(loan_ids) if loan_ids is not None else [i for i, ln in before.items() if ln.renewable]
        targets = []
        for lid in wanted:
            loan = before.get(lid)
            settled = writes.settle_renewal(session, loan) if loan is not None else None
            if settled is not None:  # an earlier attempt whose answer was lost did renew it
                results[lid] = settled
            elif loan is None:
                results[lid] = _failed(lid, NotFound(f"no loan {lid}", library=self.library.id))
            elif not loan.renewable:
                results[lid] = _failed(lid, NotRenewable(
                    "the library does not allow renewing this loan", reason=loan.not_renewable_reason or "other",
                    library=self.library.id))
            else:
                targets.append(lid)
        if targets:
            data: dict[str, Any] = {FIELD_TOKEN: session.data.get("ctkn", ""), "chk_shiryo": targets}
            data = self._confirmed(session, PATH_RENEW, data, "延長する")
            writes.begin_renewals(session, [before[lid] for lid in targets])
            try:
                done = writes.last_step(lambda: self._post(session, PATH_RENEW, {**data, "btn_exe": "実行"}))
            except writes.OutcomeUnknown as lost:
                # a write is never repeated: re-read to learn what happened (adapters.writes)
                after = self._loans_or_none(session)
                for lid in targets:
                    results[lid] = writes.renewal_after(session, before[lid], after, lost, library=self.library.id)
                return [results[lid] for lid in wanted]
            lines = {ln.item_id: ln for ln in parse.parse_renewal_results(done)}
            after = None
            for lid in targets:
                line = lines.get(lid)
                if line is None:
                    raise html.changed(f"item {lid} is not listed", screen="renewal result", library=self.library.id)
                if line.ok:
                    after = after if after is not None else {ln.id: ln for ln in self.loans(session)}
                    loan = after.get(lid)
                    if loan is None:
                        raise html.changed(f"the renewed item {lid} is not listed", screen="loan list",
                                           library=self.library.id)
                    results[lid] = RenewalResult(loan_id=lid, ok=True, loan=loan)
                else:
                    results[lid] = _failed(lid, NotRenewable(
                        "the library refused the renewal", reason=parse.refusal_reason(line.message),
                        library=self.library.id, upstream_message=line.message))
            writes.settle(session, renewals=targets)
        return [results[lid] for lid in wanted]

    def _loans_or_none(self, session: UpstreamSession) -> dict[str, Loan] | None:
        try:
            return {ln.id: ln for ln in self.loans(session)}
        except (httpx.HTTPError, GatewayError):
            return None  # the outcome stays unknown; the intent stays for the next attempt

    def _holds_or_none(self, session: UpstreamSession) -> list[Hold] | None:
        try:
            return self.holds(session)
        except (httpx.HTTPError, GatewayError):
            return None

    @translate_transport_errors
    def holds(self, session: UpstreamSession) -> list[Hold]:
        page = self._get(session, PATH_HOLDS)
        self._ctkn(page, session)
        return parse.parse_holds(page, self.library.id)

    @translate_transport_errors
    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        if request.ordered:
            raise NotSupported("this portal has no ordered (まとめて) holds", library=self.library.id)
        if request.expires_on is not None:
            raise InvalidRequest("this portal does not take a hold expiry date", library=self.library.id)
        branch_code = None
        if request.pickup_branch:
            branch = self.library.branch_by_name_or_id(request.pickup_branch)
            if branch is None:
                raise InvalidRequest(f"unknown pickup branch {request.pickup_branch!r}", library=self.library.id)
            branch_code = branch.code
        placed: dict[str, str] = {}
        results: dict[str, HoldResult] = {}
        lost: dict[str, writes.OutcomeUnknown] = {}
        marks = writes.pending_holds(session, request.record_ids)
        if marks:  # earlier requests whose answer was lost: did they place their holds?
            results.update(writes.settle_holds(session, marks, self.holds(session)))
        for rid in request.record_ids:
            if rid in results:
                continue
            try:
                placed[rid] = self._place_one(session, rid, branch_code, request.contact_method)
            except writes.OutcomeUnknown as exc:
                lost[rid] = exc
            except GatewayError as exc:
                writes.settle(session, holds=[rid])
                results[rid] = HoldResult(record_id=rid, ok=False, error=exc.with_library(self.library.id).to_problem())
        if lost:
            now = self._holds_or_none(session)
            for rid, cause in lost.items():
                results[rid] = writes.hold_after(session, writes.HoldMark(rid, None), now, cause,
                                                 library=self.library.id)
        if placed:
            by_id = {h.id: h for h in self.holds(session)}
            for rid, hid in placed.items():
                hold = by_id.get(hid)
                if hold is None:
                    raise html.changed(f"the new hold {hid} is not listed", screen="hold list", library=self.library.id)
                results[rid] = HoldResult(record_id=rid, ok=True, hold=hold)
            writes.settle(session, holds=placed)
        return [results[rid] for rid in request.record_ids]

    def _place_one(self, session: UpstreamSession, record_id: str, branch_code: str | None,
                   contact: str | None) -> str:
        form = self._entry_form(session, PATH_HOLD_ENTRY, record_id)
        token = self._ctkn(form, session)
        branch = branch_code or parse.selected_option(form, parse.FIELD_PICKUP) or "01"
        contact_code = parse.selected_option(form, parse.FIELD_CONTACT) or "0"
        if contact is not None:
            options = parse.select_options(form, parse.SEL_CONTACT_OPTIONS)
            contact_code = _code_for(options, contact) or ""
            if not contact_code:
                raise InvalidRequest(f"unknown contact method {contact!r}; one of " + ", ".join(options.values()),
                                     library=self.library.id)
        data = {FIELD_TOKEN: token, "bibid": record_id, "sel_uktr": branch, "sel_cntct": contact_code}
        data = self._confirmed(session, PATH_HOLD_ENTRY, data, "確認")
        writes.begin_holds(session, [record_id])  # the hold list was not read: before=None
        done = writes.last_step(lambda: self._executed(session, PATH_HOLD_ENTRY, data, "予約する",
                                                       MSG_HOLD_ACCEPTED))
        return parse.parse_hold_number(done)

    @translate_transport_errors
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        current = {h.id: h for h in self.holds(session)}
        hold = current.get(hold_id)
        if hold is None:
            raise NotFound(f"no hold {hold_id}", library=self.library.id)
        if not hold.cancelable:
            raise Conflict("the library does not let this hold be cancelled online (it is ready or in transit)",
                           library=self.library.id)
        data = {FIELD_TOKEN: session.data.get("ctkn", ""), "chk_rsv": hold_id}
        data = self._confirmed(session, PATH_HOLD_CANCEL, data, "予約を取り消す")
        self._executed(session, PATH_HOLD_CANCEL, data, "実行", MSG_HOLD_CANCELLED)

    # ------------------------------------------------------------ catalog
    @translate_transport_errors
    def search(self, query: SearchQuery) -> SearchResult:
        params = {"kywd": query.q or "", "ttl": query.title or "", "ath": query.author or "",
                  "pub": query.publisher or "", "isbn": query.isbn or "", "pg": str(query.page)}
        with self.client() as c:
            r = c.get(PATH_SEARCH, params={k: v for k, v in params.items() if v})
        return parse.parse_search(self._page(r, session_needed=False), query.page)

    @translate_transport_errors
    def record(self, record_id: str) -> Record:
        with self.client() as c:
            r = c.get(PATH_DETAIL, params={"bibid": record_id})
        page = self._page(r, session_needed=False)
        if r.status_code == 404 or any(parse.MSG_NOT_FOUND in e for e in parse.page_info(page).errors):
            raise NotFound(f"no record {record_id}", library=self.library.id)
        return parse.parse_record(page)

    @translate_transport_errors
    def availability(self, isbn: str) -> list[Holding]:
        found = self.search(SearchQuery(isbn=isbn))
        holdings: list[Holding] = []
        for summary in found.records:
            holdings += self.record(summary.id).holdings
        return holdings

    # ------------------------------------------------------------ e-Net 貸出サービス
    @translate_transport_errors
    def create_lending_request(
        self, session: UpstreamSession, record_id: str, pickup_library: str, pickup_branch: str | None
    ) -> UpstreamLending:
        code = self.options.enet_pickup_codes.get(pickup_library)
        if code is None:
            raise InvalidRequest(f"{pickup_library!r} is not an e-Net pickup library of {self.library.name}",
                                 library=self.library.id)
        form = self._entry_form(session, PATH_ENET_ENTRY, record_id)
        if code not in parse.select_options(form, parse.SEL_ENET_PICKUP):
            raise InvalidRequest(f"the portal does not offer {pickup_library!r} as a pickup library",
                                 library=self.library.id)
        note = f"受取希望: {pickup_branch}" if pickup_branch else ""
        data = {FIELD_TOKEN: self._ctkn(form, session), "bibid": record_id, "sel_enet_uktr": code, "txt_biko": note}
        data = self._confirmed(session, PATH_ENET_ENTRY, data, "確認")
        try:
            done = self._executed(session, PATH_ENET_ENTRY, data, "申し込む", MSG_ENET_ACCEPTED)
        except httpx.TimeoutException:
            # never post twice: look for the request the portal may have taken
            for req in self.lending_requests(session):
                if req.record_id == record_id and req.status == "requested":
                    return req
            raise
        number = parse.parse_enet_number(done)
        for req in self.lending_requests(session):
            if req.upstream_id == number:
                return req
        raise html.changed(f"the new request {number} is not listed", screen="e-Net request list",
                           library=self.library.id)

    @translate_transport_errors
    def lending_requests(self, session: UpstreamSession) -> list[UpstreamLending]:
        page = self._get(session, PATH_ENET_LIST)
        self._ctkn(page, session)
        return parse.parse_enet_requests(page, self._code_to_pickup)

    @translate_transport_errors
    def cancel_lending_request(self, session: UpstreamSession, upstream_id: str) -> None:
        current = {r.upstream_id: r for r in self.lending_requests(session)}
        req = current.get(upstream_id)
        if req is None:
            raise NotFound(f"no e-Net request {upstream_id}", library=self.library.id)
        if req.status == "cancelled":
            return
        if not req.extra.get("cancelable"):
            raise Conflict(f"the request is {req.extra.get('upstream_state')} and can no longer be cancelled",
                           library=self.library.id, upstream_message=req.extra.get("upstream_state"))
        data = {FIELD_TOKEN: session.data.get("ctkn", ""), "chk_enet": upstream_id}
        data = self._confirmed(session, PATH_ENET_CANCEL, data, "申込を取り消す")
        self._executed(session, PATH_ENET_CANCEL, data, "実行", MSG_ENET_CANCELLED)


# ---------------------------------------------------------------- helpers
def _failed(loan_id: str, exc: GatewayError) -> RenewalResult:
    return RenewalResult(loan_id=loan_id, ok=False, error=exc.to_problem())


def _code_for(options: dict[str, str], wanted: str) -> str | None:
    """A select's value for a label or value the client gave (メール matches Eメール)."""
    for value, label in options.items():
        if wanted in (value, label):
            return value
    for value, label in options.items():
        if wanted and wanted in label:
            return value
    return None


def _english(cls: type[GatewayError]) -> str:
    return {
        AccountBlocked: "the library refuses this while the patron has overdue items",
        Conflict: "the library refused the request (already requested or not allowed)",
        LimitExceeded: "the library's limit for this is reached",
        NotFound: "the library does not know this record or request",
        InvalidRequest: "the library refused the request's values",
    }.get(cls, "the library refused the request")
