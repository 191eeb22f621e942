"""The declarative mapping from a vendor's WSDL to the patron API (library ``options``).

A library served by the ``soap`` adapter says, in its configuration, which vendor
operation serves each capability, how to fill the request element from what the
gateway knows (``$card_number``, ``$session``, ...), where the answer's values are
(dotted paths relative to the response element, e.g. ``return.checkoutList.entry``)
and how the vendor's codes translate (status tables, fault tables).  Nothing here
knows a vendor by name: the two sandbox libraries differ only in their options.

Everything in this module is pure: ``map_*`` functions take the plain dict that
``adapters.soap.envelope.parse_response`` makes of a response element and return
API models, raising ``UpstreamChanged`` when a required value is missing or a code
is not in the configured table (never an empty list, never a guess).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import UpstreamChanged
from core.models import DueReminder, Email, Hold, Loan, Notifications, Profile, Toggle
from mappers import MappingError
from mappers.dates import parse_date, parse_expiry

# A value in the answer: one dotted path, or several whose texts are joined by a space
# (e.g. a family and a given name).
FieldPath = str | list[str]

TEMPLATE_VARS = frozenset(
    {
        "card_number",
        "password",
        "session",
        "loan_id",
        "hold_id",
        "record_id",
        "pickup_code",
        "contact_code",
        "expires_on",
    }
)
_TEMPLATE = re.compile(r"^\$(?P<var>[a-z_]+)(?:\|(?P<fmt>.+))?$")
_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")

ApiFaultCode = Literal[
    "invalid_credentials",
    "session_expired",
    "not_renewable",
    "not_found",
    "conflict",
    "account_blocked",
    "limit_exceeded",
    "password_change_required",
    "upstream_error",
]
RenewalState = Literal[
    "renewable", "overdue", "reserved", "already_renewed", "renewal_limit", "not_yet", "other"
]
HoldState = Literal["submitted", "waiting", "in_transit", "ready", "expired", "cancelled"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _paths(*fields: str) -> Any:
    """A field validator checking that the fields hold dotted paths."""

    def check(cls: type, value: FieldPath | None) -> FieldPath | None:
        return _check_path(value)

    return field_validator(*fields)(classmethod(check))  # type: ignore[arg-type]


def _check_path(value: FieldPath | None) -> FieldPath | None:
    for p in [value] if isinstance(value, str) else (value or []):
        if not _PATH.match(p):
            raise ValueError(f"not a dotted path: {p!r}")
    return value


class Operation(_Strict):
    """One vendor operation: its name and how to fill its request element."""

    operation: str = Field(min_length=1)
    # request path (dotted, relative to the request element) → "$variable[|strftime]" or a literal
    request: dict[str, str] = {}

    @field_validator("request")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for path, template in v.items():
            _check_path(path)
            m = _TEMPLATE.match(template)
            if template.startswith("$") and (m is None or m["var"] not in TEMPLATE_VARS):
                raise ValueError(
                    f"{path}: unknown variable {template!r} (known: {sorted(TEMPLATE_VARS)})"
                )
        return v


class LoginOp(Operation):
    session: str  # path of the session key / ticket in the answer

    _p = _paths("session")


class LoanFields(_Strict):
    id: FieldPath
    record_id: FieldPath
    title: FieldPath
    due_on: FieldPath
    author: FieldPath | None = None
    item_id: FieldPath | None = None
    loaned_on: FieldPath | None = None
    times_renewed: FieldPath | None = None
    branch: FieldPath | None = None
    renewal: FieldPath | None = None  # the vendor's renewability code/word

    _p = _paths("*")


class LoansOp(Operation):
    items: str  # path of the repeated loan element
    fields: LoanFields
    # vendor renewability code → "renewable" or a not_renewable reason
    renewal: dict[str, RenewalState] = {}

    _p = _paths("items")

    @model_validator(mode="after")
    def _table(self) -> LoansOp:
        if self.fields.renewal and not self.renewal:
            raise ValueError("fields.renewal is mapped but the renewal table is empty")
        return self


class RenewOp(Operation):
    loan: str | None = None  # path of the renewed loan in the answer (mapped with loans.fields)

    _p = _paths("loan")


class HoldFields(_Strict):
    id: FieldPath
    record_id: FieldPath
    title: FieldPath
    status: FieldPath
    author: FieldPath | None = None
    position: FieldPath | None = None
    pickup_branch: FieldPath | None = None
    contact_method: FieldPath | None = None
    placed_on: FieldPath | None = None
    expires_on: FieldPath | None = None
    ready_until: FieldPath | None = None
    cancelable: FieldPath | None = None

    _p = _paths("*")


class HoldsOp(Operation):
    items: str
    fields: HoldFields
    status: dict[str, HoldState] = Field(min_length=1)  # vendor status → API status

    _p = _paths("items")


class PlaceHoldOp(Operation):
    hold: str | None = None  # path of the new hold in the answer (mapped with holds.fields)

    _p = _paths("hold")


class ProfileFields(_Strict):
    name: FieldPath | None = None
    emails: FieldPath | None = None  # one path per address
    pickup_branch: FieldPath | None = None
    pickup_code: FieldPath | None = None  # the vendor's code of the home pickup location
    contact_method: FieldPath | None = None
    phone_contact: FieldPath | None = None
    card_expires_on: FieldPath | None = None
    due_reminder: FieldPath | None = None  # boolean
    hold_ready: FieldPath | None = None  # boolean

    _p = _paths("*")


class ProfileOp(Operation):
    fields: ProfileFields


class PickupLocationsOp(Operation):
    items: str
    code: str
    name: str

    _p = _paths("items", "code", "name")


class Operations(_Strict):
    login: LoginOp
    profile: ProfileOp
    loans: LoansOp
    renew: RenewOp
    holds: HoldsOp
    place_hold: PlaceHoldOp
    cancel_hold: Operation
    update_hold: PlaceHoldOp | None = None  # its ``hold`` path locates the changed hold
    logout: Operation | None = None
    pickup_locations: PickupLocationsOp | None = None


class Faults(_Strict):
    """How a SOAP Fault becomes an API error.

    ``code`` says where the vendor puts its error code: ``faultcode`` (prefix
    dropped: ``ln:RenewalRefused`` → ``RenewalRefused``) or a dotted path into the
    fault ``detail`` (``serviceException.errorCode``).  ``reason`` likewise locates the
    renewal refusal reason, translated by ``reasons``; without it the Japanese
    faultstring goes through ``mappers.status.renewal_reason``.
    """

    code: str = "faultcode"
    codes: dict[str, ApiFaultCode] = {}
    reason: str | None = None
    reasons: dict[str, RenewalState] = {}

    _p = _paths("code", "reason")


class SoapOptions(_Strict):
    """``[libraries.<id>.options]`` of a library served by the ``soap`` adapter."""

    # WSDL location: absolute URL, a path joined to base_url (may carry ?wsdl), or file:PATH
    wsdl: str
    # endpoint override (absolute or joined to base_url); default: the WSDL's soap:address
    endpoint: str | None = None
    # the library's contact-method words (LibraryConfig.contact_methods) → vendor codes
    contact_methods: dict[str, str] = {}
    operations: Operations
    faults: Faults = Faults()


# ---------------------------------------------------------------- paths
_MISSING = object()


def get_path(data: Any, path: str) -> Any:
    """Follow a dotted path through dicts; a key absent from the answer is drift."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif cur is None:
            return None  # an optional container that is absent: every value under it is absent
        else:
            raise UpstreamChanged(f"the answer has no {path!r} (at {part!r})")
    return cur


def get_list(data: Any, path: str) -> list[Any]:
    """A repeated element.  The wrapper must be present; zero items is a real empty list.

    Repeated elements along the way are flattened, so nested lists (loans grouped by
    branch: ``branches.branch.loans.loan``) read as one list.
    """
    items = _collect(data, path.split("."), path)
    if items is None:
        # zeep gives None for an empty wrapper (<checkoutList/>) and for a missing one;
        # only the first is a real empty list.
        wrapper = path.rpartition(".")[0]
        if wrapper and wrapper in getattr(data, "present", ()):
            return []
        raise UpstreamChanged(f"the answer has no list at {path!r}")
    return items


def _collect(cur: Any, parts: list[str], path: str) -> list[Any] | None:
    if isinstance(cur, list):
        out: list[Any] = []
        for item in cur:
            found = _collect(item, parts, path)
            out.extend(found or [])
        return out
    if not parts:
        return None if cur is None else [cur]  # a non-repeating element holding one item
    if cur is None:
        return None
    if not isinstance(cur, dict) or parts[0] not in cur:
        raise UpstreamChanged(f"the answer has no {path!r} (at {parts[0]!r})")
    return _collect(cur[parts[0]], parts[1:], path)


def get_field(data: Any, spec: FieldPath | None) -> Any:
    if spec is None:
        return None
    if isinstance(spec, str):
        return get_path(data, spec)
    parts = [get_path(data, p) for p in spec]
    texts = [str(p).strip() for p in parts if p is not None and str(p).strip()]
    return " ".join(texts) or None


def build_request(template: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """Nested keyword arguments for zeep from ``{"request.ticket": "$session"}``.

    A variable whose value is None (an optional input not given) leaves its field out.
    """
    out: dict[str, Any] = {}
    for path, spec in template.items():
        m = _TEMPLATE.match(spec)
        if m:
            value = values.get(m["var"])
            if value is None:
                continue
            if m["fmt"] and isinstance(value, (date, datetime)):
                value = value.strftime(m["fmt"])
        else:
            value = spec
        cur = out
        *parents, leaf = path.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


# ---------------------------------------------------------------- values
def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, dict)):  # a structure where the mapping expects text
        raise UpstreamChanged(f"expected a value, found a structure: {str(value)[:80]}")
    text = str(value).strip()
    return text or None


def as_required_text(value: Any, what: str) -> str:
    text = as_text(value)
    if text is None:
        raise UpstreamChanged(f"missing {what} in the answer")
    return text


def as_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UpstreamChanged(f"{what}: not a number: {value!r}") from None


def as_bool(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "y"}:
        return True
    if text in {"false", "0", "no", "n"}:
        return False
    raise UpstreamChanged(f"{what}: not a boolean: {value!r}")


def as_date(value: Any, what: str, tz: ZoneInfo, *, open_ended: bool = False) -> date | None:
    """xs:date, xs:dateTime (taken in the library's zone) or Japanese date text.

    ``open_ended`` fields (expiry dates) read ``9999/12/31`` as None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        # a UTC instant early in the morning is the previous day in UTC: convert first
        return value.astimezone(tz).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return None if open_ended and value.year == 9999 else value
    try:
        return parse_expiry(str(value)) if open_ended else parse_date(str(value))
    except MappingError:
        raise UpstreamChanged(f"{what}: not a date: {value!r}") from None


def lookup(table: dict[str, Any], value: Any, what: str) -> Any:
    key = as_text(value)
    if key is None or key not in table:
        raise UpstreamChanged(f"{what}: unknown code {value!r} (not in the configured table)")
    return table[key]


# ---------------------------------------------------------------- domain mapping
class Context:
    """What mapping needs besides the answer: library, zone, branch/contact tables, today."""

    def __init__(
        self,
        library: str,
        tz: ZoneInfo,
        branch_names: dict[str, str],
        contact_words: dict[str, str],
        today: date,
    ) -> None:
        self.library = library
        self.today = today
        self.tz = tz
        self.branch_names = branch_names  # vendor code → branch name
        self.contact_words = contact_words  # vendor code → library word

    def branch(self, value: Any) -> str | None:
        text = as_text(value)
        return self.branch_names.get(text, text) if text else None

    def contact(self, value: Any) -> str | None:
        text = as_text(value)
        return self.contact_words.get(text, text) if text else None


def map_loan(op: LoansOp, item: Any, ctx: Context) -> Loan:
    f = op.fields
    due_on = as_date(get_field(item, f.due_on), "due_on", ctx.tz)
    if due_on is None:
        raise UpstreamChanged("missing due_on in the answer")
    state: Any = "renewable"  # or a RenewalRefusal, from the validated table
    if f.renewal:
        state = lookup(op.renewal, get_field(item, f.renewal), "loan renewability")
    overdue = state == "overdue" or due_on < ctx.today
    return Loan(
        id=as_required_text(get_field(item, f.id), "loan id"),
        library=ctx.library,
        record_id=as_required_text(get_field(item, f.record_id), "record id"),
        title=as_required_text(get_field(item, f.title), "title"),
        author=as_text(get_field(item, f.author)),
        item_id=as_text(get_field(item, f.item_id)),
        loaned_on=as_date(get_field(item, f.loaned_on), "loaned_on", ctx.tz),
        due_on=due_on,
        overdue=overdue,
        renewable=state == "renewable",
        not_renewable_reason=None if state == "renewable" else state,
        times_renewed=as_int(get_field(item, f.times_renewed), "times_renewed"),
        branch=ctx.branch(get_field(item, f.branch)),
    )


def map_loans(op: LoansOp, answer: Any, ctx: Context) -> list[Loan]:
    return [map_loan(op, item, ctx) for item in get_list(answer, op.items)]


def map_hold(op: HoldsOp, item: Any, ctx: Context) -> Hold:
    f = op.fields
    cancelable = as_bool(get_field(item, f.cancelable), "cancelable")
    status = lookup(op.status, get_field(item, f.status), "hold status")
    return Hold(
        id=as_required_text(get_field(item, f.id), "hold id"),
        library=ctx.library,
        record_id=as_required_text(get_field(item, f.record_id), "record id"),
        title=as_required_text(get_field(item, f.title), "title"),
        author=as_text(get_field(item, f.author)),
        status=status,
        position=as_int(get_field(item, f.position), "position"),
        pickup_branch=ctx.branch(get_field(item, f.pickup_branch)),
        contact_method=ctx.contact(get_field(item, f.contact_method)),
        placed_on=as_date(get_field(item, f.placed_on), "placed_on", ctx.tz),
        expires_on=as_date(get_field(item, f.expires_on), "expires_on", ctx.tz, open_ended=True),
        ready_until=as_date(get_field(item, f.ready_until), "ready_until", ctx.tz, open_ended=True),
        cancelable=True if cancelable is None else cancelable,
    )


def map_holds(op: HoldsOp, answer: Any, ctx: Context) -> list[Hold]:
    return [map_hold(op, item, ctx) for item in get_list(answer, op.items)]


def map_profile(op: ProfileOp, answer: Any, ctx: Context, card_number_masked: str) -> Profile:
    f = op.fields
    emails: list[Email] = []
    for path in [f.emails] if isinstance(f.emails, str) else (f.emails or []):
        value = get_path(answer, path)
        for one in value if isinstance(value, list) else [value]:  # repeated <mail> too
            address = as_text(one)
            if address:
                emails.append(Email(address=address, kind="pc"))
    due = as_bool(get_field(answer, f.due_reminder), "due_reminder")
    ready = as_bool(get_field(answer, f.hold_ready), "hold_ready")
    return Profile(
        card_number_masked=card_number_masked,
        name=as_text(get_field(answer, f.name)),
        emails=emails,
        pickup_branch=ctx.branch(get_field(answer, f.pickup_branch)),
        contact_method=ctx.contact(get_field(answer, f.contact_method)),
        phone_contact=as_text(get_field(answer, f.phone_contact)),
        notifications=Notifications(
            due_reminder=DueReminder(enabled=bool(due)),
            hold_ready=Toggle(enabled=bool(ready)),
            registration=Toggle(enabled=False),
        ),
        keep_history=False,
        card_expires_on=as_date(
            get_field(answer, f.card_expires_on), "card_expires_on", ctx.tz, open_ended=True
        ),
    )


def map_pickup_locations(op: PickupLocationsOp, answer: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in get_list(answer, op.items):
        out[as_required_text(get_path(item, op.code), "location code")] = as_required_text(
            get_path(item, op.name), "location name"
        )
    return out
