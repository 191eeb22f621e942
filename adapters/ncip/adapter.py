"""Adapter for NCIP 2.02 circulation responders (consortium hubs, ILS NCIP endpoints).

Upstream: one HTTP endpoint (``base_url`` + ``options.endpoint``) that takes an
``NCIPMessage`` by POST and answers one.  NCIP is stateless: there is no upstream
session or cookie.  **Login** is a ``LookupUser`` with two ``AuthenticationInput``
elements (card number as ``Barcode Id``, password as ``PIN``); the responder answers
with the patron's ``UserId``, which the ``UpstreamSession`` keeps in ``data``
(never the password).  Every later call names the patron by that ``UserId``; if the
responder then says the user is unknown / not authenticated, the adapter raises
``SessionExpired`` and the gateway logs in again with the password it holds in
memory.  The system itself may be authenticated by HTTP Basic or a bearer token
(``options.auth``).

Quirks handled (see ``parsers.py``, ``problems.py``): HTTP status lines before the XML, missing
namespace prefix or declaration, HTTP error statuses with XML bodies, partial or
empty Problems, out-of-order elements, several date formats.  Messages sent are
built in schema order (``messages.py``) and validated against the XSD in tests.

Messages per operation (warm, no retries): login 1 LookupUser; profile 1; loans 1;
holds 1; renew N loans = 1 LookupUser + N RenewItem; place holds = N RequestItem
(+1 LookupAgency when the pickup name is not in the configuration, cached; +1
LookupUser without a pickup branch, to answer the default pickup the responder chose);
change a hold's pickup = 1 LookupUser + 1 UpdateRequestItem; cancel hold 1
CancelRequestItem; messages (fines, blocks) 1 LookupUser; record / availability 1
LookupItemSet; lending request = 1 LookupAgency (cached) + 1 RequestItem; lending
list 1 LookupUser; lending cancel 1 CancelRequestItem.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import date, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters import writes
from adapters.base import Adapter, SecretFields, UpstreamSession, translate_transport_errors
from adapters.ncip import messages as M
from adapters.ncip import parsers as P
from adapters.ncip.ids import decode_id, parse_hold_id
from adapters.ncip.problems import norm
from adapters.ncip.xml import fmt_datetime
from core.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    NotSupported,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamUnavailable,
)
from core.models import (
    DueReminder,
    Email,
    Hold,
    Holding,
    HoldRequest,
    HoldResult,
    HoldUpdate,
    Loan,
    Message,
    Notifications,
    Problem,
    Profile,
    Record,
    RenewalResult,
    Toggle,
    UpstreamLending,
)

XML_CONTENT_TYPE = "application/xml; charset=utf-8"
HOLD_REQUEST_TYPE = "Hold"
#: BlockOrTrapType → the notice shown to the patron
BLOCK_TEXT = {
    "block hold": "予約できません(未納の料金または延滞資料があります)。",
    "block request item": "資料の取り寄せ・予約を申し込めません。",
    "block renewal": "貸出延長できません。",
    "block check out": "貸出できません。",
    "trap for message": "図書館からのお知らせがあります。カウンターでお尋ねください。",
    "trap for lost card": "利用カードの紛失届が出ています。",
    "trap for pickup": "取り置き中の資料があります。",
}
LENDING_REQUEST_TYPE = "Loan"


class NcipAuth(BaseModel):
    """HTTP authentication of the gateway at the responder: basic or bearer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["basic", "bearer"] = "basic"
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> NcipAuth:
        if self.type == "basic" and not (self.user and self.password is not None):
            raise ValueError("basic auth needs user and password")
        if self.type == "bearer" and not (self.token and self.token.get_secret_value()):
            raise ValueError("bearer auth needs token")
        return self

    def __repr__(self) -> str:  # never print the secret
        return f"NcipAuth(type={self.type!r})"


class NcipOptions(BaseModel):
    """``[libraries.X.options]`` of an ``adapter = "ncip"`` library."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: path of the NCIP endpoint below base_url ("" = base_url itself)
    endpoint: str = ""
    #: InitiationHeader FromAgencyId (this gateway) and ToAgencyId (the patron's library)
    from_agency_id: str = "OPACGW"
    to_agency_id: str
    auth: NcipAuth | None = None
    #: AuthenticationInputType values the responder expects
    card_input_type: str = "Barcode Id"
    password_input_type: str = "PIN"
    #: the responder knows cards without the leading zeros the gateway pads them with
    card_number_unpadded: bool = False
    #: consortium lending: gateway pickup library id → NCIP agency id
    pickup_agencies: dict[str, str] = {}
    #: how long LookupAgency answers (pickup locations) are reused
    agency_cache_seconds: float = Field(default=600.0, ge=0)


class NcipAdapter(Adapter):
    family = "ncip"
    description = "NCIP 2.02 circulation responder (XML over HTTP POST)"
    capabilities = frozenset({
        "login", "profile", "loans", "renew", "holds", "hold_place", "hold_cancel", "hold_update",
        "messages", "availability", "lending_request",
    })

    options_model = NcipOptions
    options: NcipOptions
    #: the PIN travels in an AuthenticationInputData, the card in it and in UserIdentifierValue;
    #: the gateway's own credentials (options.auth) in Authorization
    secret_fields = SecretFields(secret=frozenset({"AuthenticationInputData"}),
                                 cards=frozenset({"UserIdentifierValue"}),
                                 headers=frozenset({"authorization"}))

    def __init__(self, library: Any, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(library, transport=transport)
        self.header = M.Header(self.options.from_agency_id, self.options.to_agency_id)
        self._agencies: dict[str, tuple[float, P.Agency]] = {}
        self._agency_lock = threading.Lock()

    # ------------------------------------------------------------ transport
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": XML_CONTENT_TYPE, "Accept": "application/xml, text/xml"}
        auth = self.options.auth
        if auth is not None and auth.type == "bearer":
            h["Authorization"] = f"Bearer {auth.token.get_secret_value() if auth.token else ''}"
        return h

    def _post(self, message: bytes) -> bytes:
        """POST one message; the answer's bytes (also of HTTP errors that carry XML)."""
        auth = self.options.auth
        basic = ((auth.user or "", auth.password.get_secret_value() if auth.password else "")
                 if auth is not None and auth.type == "basic" else None)
        with self.client() as c:
            resp = c.post(self.options.endpoint or "", content=message, headers=self._headers(),
                          **({"auth": basic} if basic else {}))
        body = resp.content
        if resp.status_code in (401, 403, 407):
            # The responder refused the gateway itself (options.auth), whatever the body
            # says — never the patron's card or password.
            raise UpstreamError(f"the NCIP responder refused the gateway's credentials (HTTP {resp.status_code})",
                                library=self.library.id, http_status=resp.status_code)
        if resp.status_code >= 400 and b"NCIPMessage" not in body:
            if resp.status_code >= 500:
                raise UpstreamUnavailable(f"the NCIP responder answered HTTP {resp.status_code}",
                                          library=self.library.id)
            raise UpstreamError(f"the NCIP responder answered HTTP {resp.status_code}", library=self.library.id,
                                http_status=resp.status_code)
        return body

    # ------------------------------------------------------------ helpers
    @property
    def _lib(self) -> str:
        return self.library.id

    def _today(self) -> date:
        return self.library.now().date()

    def _card(self, card_number: str) -> str:
        if self.options.card_number_unpadded:
            return card_number.lstrip("0") or "0"
        return card_number

    @staticmethod
    def _user(session: UpstreamSession) -> tuple[str, str | None]:
        uid = session.data.get("user_id")
        if not uid:
            raise SessionExpired("no NCIP user id in the session")
        return uid, session.data.get("user_agency")

    def _pickup_names(self) -> dict[str, str]:
        """NCIP pickup location → branch name as configured (code = the location)."""
        return {b.code: b.name for b in self.library.branches if b.code}

    def _lookup_user(self, session: UpstreamSession, **kw: Any) -> P.UserInfo:
        uid, agency = self._user(session)
        raw = self._post(M.lookup_user(self.header, uid, agency, **kw))
        return P.parse_lookup_user(raw, library=self._lib, tz=self.library.tz, today=self._today(),
                                   pickup_names=self._pickup_names())

    def agency(self, agency_id: str) -> P.Agency:
        """LookupAgency, cached for ``agency_cache_seconds``."""
        now = time.monotonic()
        with self._agency_lock:
            hit = self._agencies.get(agency_id)
            if hit and now - hit[0] < self.options.agency_cache_seconds:
                return hit[1]
        raw = self._post(M.lookup_agency(self.header, agency_id))
        ag = P.parse_lookup_agency(raw, library=self._lib)
        with self._agency_lock:
            self._agencies[agency_id] = (now, ag)
        return ag

    def _pickup_location(self, value: str | None, agency_id: str | None = None) -> str | None:
        """A branch id/name of the API → the NCIP PickupLocation value."""
        if not value:
            return None
        agency_id = agency_id or self.options.to_agency_id
        if agency_id == self.options.to_agency_id:
            b = self.library.branch_by_name_or_id(value)
            if b is not None:
                return b.code or b.name
        locations = self.agency(agency_id).locations
        for loc in locations:
            if value == loc or value.casefold() == loc.casefold():
                return loc
        raise InvalidRequest(f"unknown pickup branch {value!r} at {agency_id}", library=self._lib,
                             errors=[{"field": "pickup_branch", "message": f"one of {', '.join(locations)}"}])

    # ------------------------------------------------------------ sessions
    @translate_transport_errors
    def login(self, card_number: str, password: str) -> UpstreamSession:
        msg = M.lookup_user_login(self.header, self._card(card_number), password,
                                  card_type=self.options.card_input_type,
                                  password_type=self.options.password_input_type)
        raw = self._post(msg)
        info = P.parse_lookup_user(raw, library=self._lib, tz=self.library.tz, today=self._today(), context="login")
        return UpstreamSession(card_number=card_number, data={"user_id": info.user_id, "user_agency": info.agency})

    # ------------------------------------------------------------ patron
    @translate_transport_errors
    def profile(self, session: UpstreamSession) -> Profile:
        from mappers.cards import mask_card_number

        info = self._lookup_user(session, elements=M.USER_ELEMENTS_PROFILE)
        expires = info.valid_to if info.valid_to and info.valid_to.year < 9999 else None
        return Profile(
            card_number_masked=mask_card_number(session.card_number),
            name=info.name,
            emails=[Email(address=e) for e in info.emails],
            notifications=Notifications(
                # NCIP carries no notice preferences: the library sends hold notices to the
                # Notice address when there is one, and no due-date reminders.
                due_reminder=DueReminder(enabled=False, days_before=1),
                hold_ready=Toggle(enabled=bool(info.emails)),
                checkout=None,
                registration=Toggle(enabled=False),
            ),
            contact_method="メール" if info.emails else None,
            card_expires_on=expires,
        )

    @translate_transport_errors
    def loans(self, session: UpstreamSession) -> list[Loan]:
        return self._lookup_user(session, elements=("Block Or Trap",), loans=True).loans

    @translate_transport_errors
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        current = {loan.id: loan for loan in self.loans(session)}
        if loan_ids is None:
            loan_ids = [lid for lid, loan in current.items() if loan.renewable]
        uid, uagency = self._user(session)
        results = []
        for lid in loan_ids:
            loan = current.get(lid)
            settled = writes.settle_renewal(session, loan) if loan is not None else None
            if settled is not None:  # an earlier attempt whose answer was lost did renew it
                results.append(settled)
                continue
            if loan is None:
                err: GatewayError = NotFound(f"no loan {lid}", library=self._lib)
                results.append(RenewalResult(loan_id=lid, ok=False, error=Problem(**err.to_problem())))
                continue
            agency, item = decode_id(lid)
            msg = M.renew_item(self.header, uid, uagency, item, agency)
            writes.begin_renewals(session, [loan])
            try:
                raw = writes.last_step(functools.partial(self._post, msg))
                r = P.parse_renew_item(raw, library=self._lib, tz=self.library.tz)
            except writes.OutcomeUnknown as lost:
                # Never repeat a write blindly: re-read and compare (adapters.writes).
                now = self._loans_or_none(session)
                results.append(writes.renewal_after(session, loan, now, lost, library=self._lib))
                continue
            except GatewayError as e:
                writes.settle(session, renewals=[lid])
                results.append(RenewalResult(loan_id=lid, ok=False, error=Problem(**e.with_library(self._lib).to_problem())))
                continue
            if r.item_id != item:
                raise UpstreamChanged(f"renewed item {r.item_id}, asked for {item}", library=self._lib)
            writes.settle(session, renewals=[lid])
            due = r.due_on or loan.due_on
            results.append(RenewalResult(loan_id=lid, ok=True, loan=loan.model_copy(update={
                "due_on": due, "overdue": due < self._today(),
                "times_renewed": r.renewal_count if r.renewal_count is not None else (loan.times_renewed or 0) + 1,
            })))
        return results

    def _loans_or_none(self, session: UpstreamSession) -> dict[str, Loan] | None:
        try:
            return {loan.id: loan for loan in self.loans(session)}
        except (httpx.HTTPError, GatewayError):
            return None  # the outcome stays unknown; the intent stays for the next attempt

    def _holds_or_none(self, session: UpstreamSession) -> list[Hold] | None:
        try:
            return self.holds(session)
        except (httpx.HTTPError, GatewayError):
            return None

    @translate_transport_errors
    def messages(self, session: UpstreamSession, include_read: bool) -> list[Message]:
        """Fines and blocks of LookupUser as the library's notices (NCIP has no mailbox).

        Ids are stable (``fine-N`` by position, ``block-<type>``); nothing is ever "read"."""
        info = self._lookup_user(session, elements=("Block Or Trap",), fiscal=True)
        midnight = datetime.combine(self._today(), datetime.min.time(), tzinfo=self.library.tz)
        out = []
        for n, fine in enumerate(info.fines, 1):
            at = datetime.fromisoformat(fine.accrued) if fine.accrued else midnight
            out.append(Message(
                id=f"fine-{n}", subject=f"未納の料金: {fine.amount} {fine.currency or info.currency or ''}".strip(),
                body=fine.description or "料金が未納です。", sent_at=at, read=False))
        for block in info.blocks:
            slug = "-".join(block.lower().split())
            out.append(Message(id=f"block-{slug}", subject=f"利用制限: {block}",
                               body=BLOCK_TEXT.get(block.lower(), "図書館からのお知らせがあります。"),
                               sent_at=midnight, read=False))
        return out

    @translate_transport_errors
    def holds(self, session: UpstreamSession) -> list[Hold]:
        return self._lookup_user(session, requests=True).holds

    @translate_transport_errors
    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        if request.ordered and len(request.record_ids) > 1:
            # NCIP 2.02 has no "collect in this order" request: refuse rather than ignore it.
            raise NotSupported("NCIP has no ordered (まとめて予約) holds", library=self._lib)
        uid, uagency = self._user(session)
        pickup = self._pickup_location(request.pickup_branch)
        need_before = fmt_datetime(request.expires_on, self.library.tz) if request.expires_on else None
        results = []
        marks = writes.pending_holds(session, request.record_ids)
        # earlier requests whose answer was lost: did they place their holds?
        settled = writes.settle_holds(session, marks, self.holds(session)) if marks else {}
        for rid in request.record_ids:
            if rid in settled:
                results.append(settled[rid])
                continue
            msg = M.request_item(self.header, uid, uagency, record_id=rid, request_type=HOLD_REQUEST_TYPE,
                                 pickup_location=pickup, need_before=need_before)
            writes.begin_holds(session, [rid])  # the hold list was not read: before=None
            try:
                raw = writes.last_step(functools.partial(self._post, msg))
                r = P.parse_request_item(raw, library=self._lib)
            except writes.OutcomeUnknown as lost:
                results.append(writes.hold_after(session, writes.HoldMark(rid, None), self._holds_or_none(session),
                                                 lost, library=self._lib))
                continue
            except GatewayError as e:
                writes.settle(session, holds=[rid])
                results.append(HoldResult(record_id=rid, ok=False, error=Problem(**e.with_library(self._lib).to_problem())))
                continue
            writes.settle(session, holds=[rid])
            status = P.HOLD_STATUS.get(norm(r.status), "waiting")
            names = self._pickup_names()
            results.append(HoldResult(record_id=rid, ok=True, hold=Hold(
                id=r.opaque_id, library=self._lib, record_id=r.record_id or rid, title=r.title or "",
                author=r.author, status=status,  # type: ignore[arg-type]
                position=r.position, pickup_branch=names.get(pickup, pickup) if pickup else None,
                placed_on=self._today(), expires_on=request.expires_on,
            )))
        if pickup is None:
            results = self._with_default_pickup(session, results)
        return results

    def _with_default_pickup(self, session: UpstreamSession, results: list[HoldResult]) -> list[HoldResult]:
        """Without a pickup location the responder picks the patron's default one, and
        RequestItemResponse does not say which: read it back (one LookupUser for the
        batch) so the answer shows what ``GET /holds`` will show."""
        placed = [r for r in results if r.ok and r.hold is not None and r.hold.pickup_branch is None]
        if not placed:
            return results
        try:
            shown = {h.id: h.pickup_branch for h in self.holds(session)}
        except (GatewayError, httpx.HTTPError):  # the holds are placed; the branch stays unknown
            return results
        out = []
        for r in results:
            if r in placed and r.hold is not None and shown.get(r.hold.id):
                r = r.model_copy(update={"hold": r.hold.model_copy(update={"pickup_branch": shown[r.hold.id]})})
            out.append(r)
        return out

    @translate_transport_errors
    def update_hold(self, session: UpstreamSession, hold_id: str, changes: HoldUpdate) -> Hold:
        """New pickup location via UpdateRequestItem.  The request is addressed by its
        RequestId alone (the message carries no user), so the adapter first checks that
        the hold is this patron's (LookupUser).  NCIP has no contact method."""
        if changes.pickup_branch is None:
            raise InvalidRequest("an NCIP responder can change only the pickup branch of a hold",
                                 library=self._lib, errors=[{"field": "contact_method", "message": "not supported"}])
        hold = next((h for h in self.holds(session) if h.id == hold_id), None)
        if hold is None:
            raise NotFound(f"no hold {hold_id}", library=self._lib)
        agency, value, kind = parse_hold_id(hold_id)
        if kind != "request":
            raise InvalidRequest("this hold has no request id the responder could update", library=self._lib)
        new = self._pickup_location(changes.pickup_branch)
        assert new is not None
        names = self._pickup_names()
        old = next((code for code, name in names.items() if name == hold.pickup_branch), hold.pickup_branch)
        P.parse_update_request_item(self._post(M.update_request_item(
            self.header, value, agency, old_pickup=old, new_pickup=new)), library=self._lib)
        return hold.model_copy(update={"pickup_branch": names.get(new, new)})

    @translate_transport_errors
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        self._cancel(session, hold_id, HOLD_REQUEST_TYPE)

    def _cancel(self, session: UpstreamSession, opaque: str, request_type: str) -> None:
        uid, uagency = self._user(session)
        try:
            agency, value, kind = parse_hold_id(opaque)
        except ValueError:
            raise NotFound(f"no request {opaque}", library=self._lib) from None
        if kind == "request":
            msg = M.cancel_request_item(self.header, uid, uagency, request_id=value, request_agency=agency,
                                        request_type=request_type)
        else:
            msg = M.cancel_request_item(self.header, uid, uagency, item_id=value, item_agency=agency,
                                        request_type=request_type)
        P.parse_cancel_request_item(self._post(msg), library=self._lib)

    # ------------------------------------------------------------ catalog
    @translate_transport_errors
    def record(self, record_id: str) -> Record:
        raw = self._post(M.lookup_item_set(self.header, record_ids=[record_id]))
        records = P.parse_lookup_item_set(raw, library=self._lib, tz=self.library.tz)
        if not records:
            raise NotFound(f"no record {record_id}", library=self._lib)
        return records[0]

    @translate_transport_errors
    def availability(self, isbn: str) -> list[Holding]:
        raw = self._post(M.lookup_item_set(self.header, isbns=[isbn.replace("-", "")]))
        try:
            records = P.parse_lookup_item_set(raw, library=self._lib, tz=self.library.tz)
        except NotFound:
            return []  # the library holds no copy: an answer, not an error
        return [h for rec in records for h in rec.holdings]

    # ------------------------------------------------------------ consortium lending
    def _pickup_agency(self, pickup_library: str) -> str:
        agency = self.options.pickup_agencies.get(pickup_library)
        if agency:
            return agency
        for key, value in self.options.pickup_agencies.items():
            if pickup_library.casefold() in (key.casefold(), value.casefold()):
                return value
        return pickup_library.upper()  # an NCIP agency id given directly (e.g. "FFL")

    @translate_transport_errors
    def create_lending_request(self, session: UpstreamSession, record_id: str, pickup_library: str,
                               pickup_branch: str | None) -> UpstreamLending:
        uid, uagency = self._user(session)
        agency_id = self._pickup_agency(pickup_library)
        try:
            ag = self.agency(agency_id)
        except UpstreamError as exc:
            if str(exc.extra.get("ProblemType", "")).lower() != "unknown agency":
                raise
            raise InvalidRequest(f"unknown pickup library {pickup_library!r}", library=self._lib,
                                 errors=[{"field": "pickup_library", "message": "not an agency of the consortium"}]) from None
        if pickup_branch:
            location = self._pickup_location(pickup_branch, agency_id)
        elif ag.locations:
            location = ag.locations[0]
        else:
            location = ag.agency_id
        msg = M.request_item(self.header, uid, uagency, record_id=record_id, record_agency=self.options.to_agency_id,
                             request_type=LENDING_REQUEST_TYPE, pickup_location=location)
        r = P.parse_request_item(self._post(msg), library=self._lib)
        status = P.LENDING_STATUS.get(norm(r.status), "requested")
        return UpstreamLending(upstream_id=r.opaque_id, status=status, title=r.title or "",  # type: ignore[arg-type]
                               record_id=r.record_id or record_id,
                               extra={"pickup_agency": agency_id, "pickup_location": location,
                                      "upstream_status": r.status})

    @translate_transport_errors
    def lending_requests(self, session: UpstreamSession) -> list[UpstreamLending]:
        out = []
        for up in self._lookup_user(session, requests=True).lendings:
            lib = self._pickup_library_of(up.extra.get("pickup_location"))
            out.append(up.model_copy(update={"extra": {**up.extra, "pickup_library": lib}}) if lib else up)
        return out

    def _pickup_library_of(self, location: str | None) -> str | None:
        """The gateway pickup library whose agency has this pickup location (LookupAgency, cached)."""
        if not location:
            return None
        for lib_id, agency_id in self.options.pickup_agencies.items():
            try:
                ag = self.agency(agency_id)
            except GatewayError:
                continue
            if location in ag.locations or location == ag.agency_id:
                return lib_id
        return None

    @translate_transport_errors
    def cancel_lending_request(self, session: UpstreamSession, upstream_id: str) -> None:
        self._cancel(session, upstream_id, LENDING_REQUEST_TYPE)

