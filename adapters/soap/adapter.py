"""The ``soap`` adapter: a vendor's SOAP 1.1 circulation service, mapped by configuration.

Upstream: any WSDL-described document/literal circulation service (patron login,
patron details, loans, renew, holds, place/cancel hold, pickup locations).  Which
operation serves which capability, how its request is filled and where the answer's
values sit is the library's ``options`` (``adapters.soap.mapping.SoapOptions``); the
sandbox's ``soap-demo`` (LibraNet) and ``soap-kita`` (OPAC-Link) differ only there.

Login: the login operation trades card number and password for a session key or
ticket, kept in ``UpstreamSession.data["session"]`` (stored encrypted by the
gateway) and sent by every later request.  A fault mapped to ``session_expired``
raises ``SessionExpired`` so the gateway logs in again.

Mechanics: the WSDL is loaded lazily, once per adapter instance, through a zeep
``Transport`` that fetches over the adapter's httpx pool (so ``request_count`` counts
it and respx/vcrpy see it).  Calls are built by zeep (``create_message``), POSTed with
httpx, and parsed by ``adapters.soap.envelope`` — fetch, then parse.

Quirks handled: Faults arrive with HTTP 500 (SOAP 1.1) and are mapped through the
configured fault table — never surfacing as a 500; a 5xx without a Fault is
``upstream_unavailable``; a timeout on a write (renew, place, cancel) is resolved by
re-reading the loans/holds rather than by repeating the write.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

import httpx
import zeep
from lxml import etree
from zeep.exceptions import Error as ZeepError

from adapters import writes
from adapters.base import Adapter, SecretFields, UpstreamSession, translate_transport_errors
from adapters.soap.envelope import SoapFault, build_envelope, find_fault, parse_response
from adapters.soap.mapping import (
    Context,
    Operation,
    SoapOptions,
    as_text,
    build_request,
    get_field,
    get_path,
    map_hold,
    map_holds,
    map_loan,
    map_loans,
    map_pickup_locations,
    map_profile,
)
from core.errors import (
    AccountBlocked,
    CardNumberInvalid,
    Conflict,
    GatewayError,
    InvalidCredentials,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    NotRenewable,
    NotSupported,
    PasswordChangeRequired,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from core.models import (
    Hold,
    HoldRequest,
    HoldResult,
    HoldUpdate,
    Loan,
    Problem,
    Profile,
    RenewalResult,
)
from mappers import MappingError
from mappers.cards import mask_card_number, normalize_card_number
from mappers.status import renewal_reason

log = logging.getLogger(__name__)

T = TypeVar("T")
W = TypeVar("W", Loan, Hold)  # what a batched write gives back
CONTENT_TYPE = "text/xml; charset=utf-8"


def _guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Every error leaves with this library's id; stray zeep/lxml errors are drift."""

    @functools.wraps(fn)
    def wrapper(self: SoapAdapter, *a: Any, **kw: Any) -> T:
        try:
            return fn(self, *a, **kw)
        except GatewayError as exc:
            raise exc.with_library(self.library.id)
        except (ZeepError, etree.LxmlError) as exc:
            raise UpstreamChanged(
                f"the SOAP answer could not be understood ({type(exc).__name__})",
                library=self.library.id,
            ) from exc

    return wrapper


class _WsdlTransport(zeep.Transport):
    """zeep's loader over the adapter's httpx pool (counted), or a local file."""

    def __init__(self, adapter: SoapAdapter) -> None:
        super().__init__(cache=None, timeout=adapter.library.timeout)
        self._adapter = adapter

    def _load_remote_data(self, url: str) -> bytes:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            return Path(parsed.netloc + parsed.path).read_bytes()
        return self._adapter._get(url)


class SoapAdapter(Adapter):
    family = "soap"
    capabilities = frozenset(
        {"login", "profile", "loans", "renew", "holds", "hold_place", "hold_cancel", "hold_update"}
    )
    #: capabilities that exist only when the library's mapping has the role
    OPTIONAL_ROLES: ClassVar[dict[str, str]] = {"hold_update": "update_hold"}
    description = "SOAP 1.1 circulation service described by a WSDL, mapped by configuration (zeep)"

    options_model = SoapOptions
    options: SoapOptions

    def __init__(self, library: Any, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(library, transport=transport)
        # A library offers an optional capability only if its mapping names the operation.
        self.capabilities = frozenset(  # type: ignore[misc]
            cap
            for cap in type(self).capabilities
            if cap not in self.OPTIONAL_ROLES
            or getattr(self.options.operations, self.OPTIONAL_ROLES[cap]) is not None
        )
        self._zeep_client: zeep.Client | None = None
        self._zeep_lock = threading.Lock()
        self._locations: dict[str, str] | None = None

    def secrets(self) -> SecretFields:
        """The request elements the mapping fills with the password, the card number or
        the session key, and the answer's session element (by local name)."""
        kinds: dict[str, set[str]] = {"password": set(), "card_number": set(), "session": set()}
        for _, op in self.options.operations:
            for path, template in (op.request if op is not None else {}).items():
                var = template[1:].split("|", 1)[0] if template.startswith("$") else ""
                if var in kinds:
                    kinds[var].add(path.rsplit(".", 1)[-1])
        kinds["session"].add(self.options.operations.login.session.rsplit(".", 1)[-1])
        return SecretFields(secret=frozenset(kinds["password"]), cards=frozenset(kinds["card_number"]),
                            tokens=frozenset(kinds["session"]))

    # ------------------------------------------------------------ plumbing
    def _url(self, value: str) -> str:
        if value.startswith(("http://", "https://", "file:")):
            return value
        base = self.library.base_url
        return base + value if value.startswith(("/", "?")) else f"{base}/{value}"

    @translate_transport_errors
    def _get(self, url: str) -> bytes:
        with self.client(follow_redirects=True) as http:
            resp = http.get(url)
        if resp.status_code >= 500:
            raise UpstreamUnavailable(f"the WSDL could not be fetched (HTTP {resp.status_code})")
        if resp.status_code >= 400:
            raise UpstreamChanged(
                f"the WSDL is no longer at its configured address (HTTP {resp.status_code})"
            )
        return resp.content

    def wsdl_client(self) -> zeep.Client:
        """The zeep client of this library's WSDL, loaded on first use and kept."""
        with self._zeep_lock:
            if self._zeep_client is None:
                settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True)
                try:
                    client = zeep.Client(
                        self._url(self.options.wsdl),
                        transport=_WsdlTransport(self),
                        settings=settings,
                    )
                except GatewayError:
                    raise
                except (ZeepError, etree.LxmlError, OSError, ValueError) as exc:
                    raise UpstreamChanged(
                        f"the WSDL could not be read ({type(exc).__name__}: {exc})"
                    ) from None
                known = set(client.service._binding._operations)
                for name, op in self.options.operations:
                    if isinstance(op, Operation) and op.operation not in known:
                        raise UpstreamChanged(
                            f"the WSDL has no operation {op.operation!r} (mapped for {name})"
                        )
                self._zeep_client = client
            return self._zeep_client

    def _endpoint(self, client: zeep.Client) -> str:
        if self.options.endpoint:
            return self._url(self.options.endpoint)
        address = client.service._binding_options.get("address")
        if not address:
            raise UpstreamChanged("the WSDL names no soap:address and no endpoint is configured")
        return str(address)

    @translate_transport_errors
    def _post(self, url: str, action: str | None, payload: bytes) -> httpx.Response:
        headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{action or ""}"'}
        with self.client() as http:
            return http.post(url, content=payload, headers=headers)

    def call(self, op: Operation, values: dict[str, Any]) -> dict[str, Any]:
        """One SOAP round trip: build, POST, parse; Faults become typed errors."""
        client = self.wsdl_client()
        payload = build_envelope(client, op.operation, _build(op, values))
        action = client.service._binding._operations[op.operation].soapaction
        resp = self._post(self._endpoint(client), action, payload)
        if resp.status_code != 200:
            fault = None
            if resp.content:
                try:
                    fault = find_fault(resp.content)
                except UpstreamChanged:
                    fault = None
            if fault is not None:
                raise self.fault_error(fault)
            if resp.status_code >= 500:
                raise UpstreamUnavailable(f"the library's system answered HTTP {resp.status_code}")
            raise UpstreamError(f"the library's system answered HTTP {resp.status_code}")
        try:
            return parse_response(client, op.operation, resp.content)
        except SoapFault as fault:  # a Fault with HTTP 200 (some stacks do that)
            raise self.fault_error(fault) from None

    def fault_error(self, fault: SoapFault) -> Exception:
        """A Fault → the API's error, through the configured fault table."""
        cfg = self.options.faults
        if cfg.code == "faultcode":
            key = fault.code
        else:
            key = _detail(fault.detail, cfg.code) or fault.code
        api = cfg.codes.get(key) or cfg.codes.get(fault.raw_code) or "upstream_error"
        msg = fault.string or None
        lib = self.library.id
        log.info("soap fault %s → %s (library %s)", fault.raw_code or fault.code, api, lib)
        if api == "session_expired":
            return SessionExpired(msg)
        if api == "invalid_credentials":
            return InvalidCredentials(library=lib, upstream_message=msg)
        if api == "not_renewable":
            raw_reason = _detail(fault.detail, cfg.reason) if cfg.reason else None
            reason = cfg.reasons.get(raw_reason or "") or renewal_reason(fault.string)
            if reason == "renewable":
                reason = "other"
            return NotRenewable(
                "the library refused the renewal", reason=reason, library=lib, upstream_message=msg
            )
        if api == "not_found":
            return NotFound(
                "the library does not know this item", library=lib, upstream_message=msg
            )
        if api == "conflict":
            return Conflict("the library refused: conflict", library=lib, upstream_message=msg)
        if api == "account_blocked":
            return AccountBlocked(
                "the library refuses this action for this patron", library=lib, upstream_message=msg
            )
        if api == "limit_exceeded":
            return LimitExceeded(
                "the library's limit was reached",
                library=lib,
                upstream_message=msg,
                limit=self.library.hold_limit,
            )
        if api == "password_change_required":
            return PasswordChangeRequired(library=lib, upstream_message=msg)
        return UpstreamError(
            "the library's system answered with a SOAP Fault",
            library=lib,
            faultcode=fault.raw_code or fault.code,
            faultstring=fault.string,
            upstream_message=msg,
        )

    def _context(self) -> Context:
        return Context(
            self.library.id,
            self.library.tz,
            self._branch_names(),
            {code: word for word, code in self.options.contact_methods.items()},
            datetime.now(self.library.tz).date(),
        )

    def _branch_names(self) -> dict[str, str]:
        names = {b.code: b.name for b in self.library.branches if b.code}
        if names or self.options.operations.pickup_locations is None:
            return names
        return dict(self._pickup_locations())

    def _pickup_locations(self) -> dict[str, str]:
        """The upstream's pickup locations (code → name), read once per adapter instance."""
        op = self.options.operations.pickup_locations
        if op is None:
            return {}
        if self._locations is None:
            self._locations = map_pickup_locations(op, self.call(op, {}))
        return self._locations

    @staticmethod
    def _session_key(session: UpstreamSession) -> str:
        key = session.data.get("session")
        if not key:
            raise SessionExpired("no upstream session key")
        return str(key)

    def _values(self, session: UpstreamSession, **more: Any) -> dict[str, Any]:
        return {"session": self._session_key(session), "card_number": session.card_number, **more}

    # ------------------------------------------------------------ sessions
    @_guarded
    def login(self, card_number: str, password: str) -> UpstreamSession:
        rule = self.library.card_number
        try:
            card = normalize_card_number(card_number, digits=rule.digits, pad=rule.pad)
        except MappingError as exc:
            raise CardNumberInvalid(str(exc)) from None
        op = self.options.operations.login
        try:
            answer = self.call(op, {"card_number": card, "password": password})
        except SessionExpired:  # a login cannot have an expired session: the vendor means "no"
            raise InvalidCredentials() from None
        key = as_text(get_path(answer, op.session))
        if key is None:
            raise UpstreamChanged("the login answer carries no session key")
        return UpstreamSession(card_number=card, data={"session": key})

    def logout(self, session: UpstreamSession) -> None:
        op = self.options.operations.logout
        if op is None or not session.data.get("session"):
            return
        try:
            self.call(op, self._values(session))
        except (GatewayError, SessionExpired) as exc:  # best effort, never retried
            log.info("soap logout failed at %s: %s", self.library.id, type(exc).__name__)
        return

    # ------------------------------------------------------------ patron
    @_guarded
    def profile(self, session: UpstreamSession) -> Profile:
        op = self.options.operations.profile
        answer = self.call(op, self._values(session))
        return map_profile(op, answer, self._context(), mask_card_number(session.card_number))

    @_guarded
    def loans(self, session: UpstreamSession) -> list[Loan]:
        op = self.options.operations.loans
        return map_loans(op, self.call(op, self._values(session)), self._context())

    @_guarded
    def renew(self, session: UpstreamSession, loan_ids: list[str] | None) -> list[RenewalResult]:
        """Renew each loan by its own call; refusals are per-loan results.

        The loans are read first: an id not among them is ``not_found`` without a write,
        and a renewal whose answer was lost is decided by re-reading them (``adapters.writes``).
        """
        before = {loan.id: loan for loan in self.loans(session)}
        if loan_ids is None:
            targets = [loan.id for loan in before.values() if loan.renewable]
        else:
            targets = list(dict.fromkeys(loan_ids))
        results: list[RenewalResult] = []
        for loan_id in targets:
            old = before.get(loan_id)
            if old is None:
                results.append(
                    _renewal_failed(loan_id, NotFound("no such loan", library=self.library.id))
                )
                continue
            settled = writes.settle_renewal(session, old)
            if settled is not None:  # an earlier attempt whose answer was lost did renew it
                results.append(settled)
                continue
            writes.begin_renewals(session, [old])
            try:
                loan = writes.last_step(functools.partial(self._renew_one, session, loan_id))
            except writes.OutcomeUnknown as lost:
                now = self._or_none(self.loans, session)
                results.append(writes.renewal_after(
                    session, old, {ln.id: ln for ln in now} if now is not None else None, lost,
                    library=self.library.id))
                continue
            except GatewayError as exc:
                writes.settle(session, renewals=[loan_id])
                results.append(_renewal_failed(loan_id, exc.with_library(self.library.id)))
                continue
            writes.settle(session, renewals=[loan_id])
            results.append(RenewalResult(loan_id=loan_id, ok=True, loan=loan))
        return results

    def _or_none(self, read: Callable[[UpstreamSession], list[W]], session: UpstreamSession) -> list[W] | None:
        """A re-read after a lost answer; None when it fails too (the outcome stays unknown)."""
        try:
            return read(session)
        except GatewayError:
            return None

    def _renew_one(self, session: UpstreamSession, loan_id: str) -> Loan:
        op = self.options.operations.renew
        answer = self.call(op, self._values(session, loan_id=loan_id))
        if op.loan:
            loan = map_loan(
                self.options.operations.loans, get_path(answer, op.loan), self._context()
            )
        else:
            found = [loan for loan in self.loans(session) if loan.id == loan_id]
            if not found:
                raise UpstreamChanged("the renewed loan is not in the loan list")
            loan = found[0]
        if loan.id != loan_id:  # renewing the wrong item must never pass silently
            raise UpstreamChanged(f"the library renewed {loan.id!r} instead of {loan_id!r}")
        return loan

    @_guarded
    def holds(self, session: UpstreamSession) -> list[Hold]:
        op = self.options.operations.holds
        return map_holds(op, self.call(op, self._values(session)), self._context())

    @_guarded
    def place_holds(self, session: UpstreamSession, request: HoldRequest) -> list[HoldResult]:
        if request.ordered and len(request.record_ids) > 1:
            raise NotSupported("this library's system has no ordered (まとめて予約) holds")
        pickup = self._pickup_code(session, request.pickup_branch)
        contact = self._contact_code(request.contact_method)
        results: list[HoldResult] = []
        wanted = list(dict.fromkeys(request.record_ids))
        marks = writes.pending_holds(session, wanted)
        # earlier requests whose answer was lost: did they place their holds?
        settled = writes.settle_holds(session, marks, self.holds(session)) if marks else {}
        for record_id in wanted:
            if record_id in settled:
                results.append(settled[record_id])
                continue
            values = self._values(
                session,
                record_id=record_id,
                pickup_code=pickup,
                contact_code=contact,
                expires_on=request.expires_on,
            )
            writes.begin_holds(session, [record_id])  # the hold list was not read: before=None
            try:
                hold = writes.last_step(functools.partial(self._place_one, session, record_id, values))
            except writes.OutcomeUnknown as lost:
                results.append(writes.hold_after(session, writes.HoldMark(record_id, None),
                                                 self._or_none(self.holds, session), lost,
                                                 library=self.library.id))
                continue
            except GatewayError as exc:
                writes.settle(session, holds=[record_id])
                results.append(_hold_failed(record_id, exc.with_library(self.library.id)))
                continue
            writes.settle(session, holds=[record_id])
            results.append(HoldResult(record_id=record_id, ok=True, hold=hold))
        return results

    def _place_one(self, session: UpstreamSession, record_id: str, values: dict[str, Any]) -> Hold:
        op = self.options.operations.place_hold
        answer = self.call(op, values)
        if op.hold:
            hold = map_hold(
                self.options.operations.holds, get_path(answer, op.hold), self._context()
            )
        else:
            found = self._hold_for(session, record_id)
            if found is None:
                raise UpstreamChanged("the new hold is not in the hold list")
            hold = found
        if hold.record_id != record_id:
            raise UpstreamChanged(
                f"the library placed a hold on {hold.record_id!r} instead of {record_id!r}"
            )
        return hold

    def _hold_for(self, session: UpstreamSession, record_id: str) -> Hold | None:
        try:
            return next((h for h in self.holds(session) if h.record_id == record_id), None)
        except GatewayError:
            return None

    def _pickup_code(self, session: UpstreamSession, value: str | None) -> str:
        if value:
            branch = self.library.branch_by_name_or_id(value)
            if branch is not None:
                return branch.code or branch.id
            for code, name in self._pickup_locations().items():
                if value in (code, name):
                    return code
            raise InvalidRequest(
                f"unknown pickup branch {value!r}", errors=[{"field": "pickup_branch"}]
            )
        # none given: the patron's home location, else the library's first branch
        op = self.options.operations.profile
        if op.fields.pickup_code:
            home = as_text(get_field(self.call(op, self._values(session)), op.fields.pickup_code))
            if home:
                return home
        if self.library.branches:
            b = self.library.branches[0]
            return b.code or b.id
        raise InvalidRequest("pickup_branch is required", errors=[{"field": "pickup_branch"}])

    def _contact_code(self, value: str | None) -> str | None:
        if value is None:
            return None
        table = self.options.contact_methods
        if value in table:
            return table[value]
        if value in table.values():
            return value
        raise InvalidRequest(
            f"unknown contact method {value!r}", errors=[{"field": "contact_method"}]
        )

    @_guarded
    def update_hold(self, session: UpstreamSession, hold_id: str, changes: HoldUpdate) -> Hold:
        """Change a hold's pickup location and/or contact method (one write, never repeated)."""
        op = self.options.operations.update_hold
        if op is None:
            raise NotSupported("this library's mapping has no update_hold operation")
        pickup = (
            self._pickup_code(session, changes.pickup_branch) if changes.pickup_branch else None
        )
        contact = self._contact_code(changes.contact_method)
        values = self._values(session, hold_id=hold_id, pickup_code=pickup, contact_code=contact)
        try:
            answer = self.call(op, values)
        except UpstreamTimeout:
            # Did the change happen?  Read the hold rather than sending it again.
            hold = next((h for h in self._holds_or_empty(session) if h.id == hold_id), None)
            if hold is not None and _applied(hold, changes, self.library):
                return hold
            raise
        if op.hold:
            hold = map_hold(
                self.options.operations.holds, get_path(answer, op.hold), self._context()
            )
        else:
            found = next((h for h in self.holds(session) if h.id == hold_id), None)
            if found is None:
                raise UpstreamChanged("the changed hold is not in the hold list")
            hold = found
        if hold.id != hold_id:
            raise UpstreamChanged(f"the library changed hold {hold.id!r} instead of {hold_id!r}")
        return hold

    def _holds_or_empty(self, session: UpstreamSession) -> list[Hold]:
        try:
            return self.holds(session)
        except GatewayError:
            return []

    @_guarded
    def cancel_hold(self, session: UpstreamSession, hold_id: str) -> None:
        op = self.options.operations.cancel_hold
        try:
            self.call(op, self._values(session, hold_id=hold_id))
        except UpstreamTimeout:
            # Did the cancellation happen?  Ask, rather than cancelling again.
            try:
                still_there = any(h.id == hold_id for h in self.holds(session))
            except GatewayError:
                still_there = True
            if still_there:
                raise


def _build(op: Operation, values: dict[str, Any]) -> dict[str, Any]:
    return build_request(op.request, values)


def _applied(hold: Hold, changes: HoldUpdate, library: Any) -> bool:
    """Whether a re-read hold already shows the requested changes."""
    if changes.pickup_branch:
        branch = library.branch_by_name_or_id(changes.pickup_branch)
        wanted = branch.name if branch is not None else changes.pickup_branch
        if hold.pickup_branch != wanted:
            return False
    return not changes.contact_method or hold.contact_method == changes.contact_method


def _detail(detail: dict[str, Any], path: str | None) -> str | None:
    if not path:
        return None
    cur: Any = detail
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return as_text(cur)


def _problem(exc: GatewayError) -> Problem:
    return Problem(**exc.to_problem())


def _renewal_failed(loan_id: str, exc: GatewayError) -> RenewalResult:
    return RenewalResult(loan_id=loan_id, ok=False, error=_problem(exc))


def _hold_failed(record_id: str, exc: GatewayError) -> HoldResult:
    return HoldResult(record_id=record_id, ok=False, error=_problem(exc))
