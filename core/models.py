"""Domain models: what adapters return and take, as pydantic v2 models (frozen values).

The wire envelopes of the HTTP API (lists, session bodies, merged views) live in
``gateway.models``; these are the shapes every family speaks.  Request models forbid
unknown fields so a typo is a 400, not a silent no-op.
"""


from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

Capability = Literal[
    "login",
    "profile",
    "profile_update",
    "password_change",
    "password_register",
    "loans",
    "renew",
    "holds",
    "hold_place",
    "hold_cancel",
    "hold_update",
    "cart",
    "history",
    "shelves",
    "alerts",
    "messages",
    "search",
    "availability",
    "lending_request",
]
CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]

HoldStatus = Literal["submitted", "waiting", "in_transit", "ready", "expired", "cancelled"]
HoldingStatus = Literal[
    "available", "on_loan", "in_library_only", "reserved", "in_preparation", "closed", "missing", "unknown"
]
LendingStatus = Literal[
    "requested",
    "accepted",
    "shipped",
    "ready_for_pickup",
    "loaned",
    "returned",
    "completed",
    "cancelled",
    "unfilled",
]
RenewalRefusal = Literal["overdue", "reserved", "already_renewed", "renewal_limit", "not_yet", "other"]


class Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- problems
class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    library: str | None = None


# ---------------------------------------------------------------- patron
class Email(Value):
    address: str
    kind: Literal["pc", "mobile"] = "pc"


class DueReminder(Value):
    enabled: bool
    days_before: int = Field(default=1, ge=0, le=14)


class Toggle(Value):
    enabled: bool


class Notifications(Value):
    due_reminder: DueReminder
    hold_ready: Toggle
    checkout: Toggle | None = None
    registration: Toggle


class Profile(Value):
    card_number_masked: str
    name: str | None = None
    emails: list[Email] = []
    pickup_branch: str | None = None
    contact_method: str | None = None
    phone_contact: str | None = None
    notifications: Notifications
    keep_history: bool = False
    card_expires_on: date | None = None


class NotificationsUpdate(Request):
    due_reminder: DueReminder | None = None
    hold_ready: Toggle | None = None
    checkout: Toggle | None = None
    registration: Toggle | None = None


class ProfileUpdate(Request):
    emails: list[Email] | None = Field(default=None, max_length=2)
    pickup_branch: str | None = None
    contact_method: str | None = None
    phone_contact: str | None = None
    notifications: NotificationsUpdate | None = None
    keep_history: bool | None = None


# ---------------------------------------------------------------- loans
class Loan(Value):
    id: str
    library: str
    record_id: str
    title: str
    author: str | None = None
    item_id: str | None = None
    loaned_on: date | None = None
    due_on: date
    overdue: bool
    renewable: bool
    not_renewable_reason: RenewalRefusal | None = None
    times_renewed: int | None = None
    branch: str | None = None


class RenewalResult(Value):
    """One loan's renewal: ``ok`` with the renewed ``loan``, or not ``ok`` with the ``error``
    (the reason of a refusal is ``error.reason``) — never both, never neither."""

    loan_id: str
    ok: bool
    loan: Loan | None = None
    error: Problem | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RenewalResult:
        _one_of(self.ok, self.loan, self.error, "loan")
        return self


# ---------------------------------------------------------------- holds
class Hold(Value):
    id: str
    library: str
    record_id: str
    title: str
    author: str | None = None
    status: HoldStatus
    position: int | None = None
    pickup_branch: str | None = None
    contact_method: str | None = None
    placed_on: date | None = None
    expires_on: date | None = None
    ready_until: date | None = None
    cancelable: bool = True
    order_group: str | None = None


class HoldRequest(Request):
    record_ids: list[str] = Field(min_length=1, max_length=10)
    pickup_branch: str | None = None
    contact_method: str | None = None
    expires_on: date | None = None
    ordered: bool = False


class HoldResult(Value):
    """One record's hold: ``ok`` with the ``hold``, or not ``ok`` with the ``error`` — never
    both (a duplicate is a ``conflict`` problem, without the hold already there)."""

    record_id: str
    ok: bool
    hold: Hold | None = None
    error: Problem | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HoldResult:
        _one_of(self.ok, self.hold, self.error, "hold")
        return self


def _one_of(ok: bool, value: object, error: Problem | None, what: str) -> None:
    """A per-item write result holds exactly one of its value (when ok) and its problem."""
    if ok and (value is None or error is not None):
        raise ValueError(f"an ok result carries its {what} and no error")
    if not ok and (error is None or value is not None):
        raise ValueError(f"a failed result carries its error and no {what}")


class HoldUpdate(Request):
    pickup_branch: str | None = None
    contact_method: str | None = None


# ---------------------------------------------------------------- cart
class CartItem(Value):
    record_id: str
    title: str
    author: str | None = None
    added_on: date | None = None


class Cart(Value):
    items: list[CartItem]


# ---------------------------------------------------------------- history, messages
class HistoryEntry(Value):
    record_id: str
    title: str
    author: str | None = None
    loaned_on: date
    returned_on: date | None = None


class HistoryPage(Value):
    entries: list[HistoryEntry]
    total: int


class Message(Value):
    id: str
    subject: str
    body: str
    sent_at: datetime
    read: bool


# ---------------------------------------------------------------- shelves
class Shelf(Value):
    id: str
    name: str
    item_count: int = 0


class ShelfItem(Value):
    record_id: str
    title: str
    author: str | None = None
    added_on: date | None = None


# ---------------------------------------------------------------- alerts
def fold_spaces(text: str) -> str:
    """Runs of white space (ideographic and no-break spaces too) as one space, trimmed:
    how the portals store and list names ("a  b" comes back as "a b"), so a name is sent
    and compared the way the library will show it."""
    return " ".join(text.split())


def _fold_name(text: str) -> str:
    folded = fold_spaces(text)
    if not folded:
        raise ValueError("must not be blank")
    return folded


#: a name or search word the patron gives (shelves, alerts): folded, never blank
FoldedName = Annotated[str, AfterValidator(_fold_name)]
FoldedText = Annotated[str, AfterValidator(fold_spaces)]


class AlertCondition(Value):
    field: Literal["title", "author", "subject", "publisher", "isbn", "any"]
    op: Literal["contains", "not_contains"] = "contains"
    value: FoldedName = Field(min_length=1, max_length=200)


class Alert(Value):
    id: str
    name: str
    memo: str | None = None
    conditions: list[AlertCondition]
    match: Literal["all", "any"] = "all"
    max_results: int = Field(default=10, ge=1, le=100)
    active: bool = True
    source: Literal["library", "gateway"]


class AlertCreate(Request):
    name: FoldedName = Field(min_length=1, max_length=100)
    memo: FoldedText | None = Field(default=None, max_length=400)
    conditions: list[AlertCondition] = Field(min_length=1, max_length=10)
    match: Literal["all", "any"] = "all"
    max_results: int = Field(default=10, ge=1, le=100)
    active: bool = True


class AlertUpdate(Request):
    name: FoldedName | None = Field(default=None, min_length=1, max_length=100)
    memo: FoldedText | None = Field(default=None, max_length=400)
    conditions: list[AlertCondition] | None = Field(default=None, min_length=1, max_length=10)
    match: Literal["all", "any"] | None = None
    max_results: int | None = Field(default=None, ge=1, le=100)
    active: bool | None = None


# ---------------------------------------------------------------- catalog
class Holding(Value):
    branch: str
    status: HoldingStatus
    call_number: str | None = None
    due_on: date | None = None


class RecordSummary(Value):
    id: str
    title: str
    author: str | None = None
    publisher: str | None = None
    published: str | None = None
    isbn: str | None = None


class SearchQuery(Request):
    q: str | None = None
    title: str | None = None
    author: str | None = None
    publisher: str | None = None
    isbn: str | None = None
    page: int = Field(default=1, ge=1, le=1000)

    @field_validator("q", "title", "author", "publisher", "isbn")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None


class SearchResult(Value):
    records: list[RecordSummary]
    total: int
    page: int


class Record(Value):
    id: str
    title: str
    author: str | None = None
    publisher: str | None = None
    published: str | None = None
    isbn: str | None = None
    classification: str | None = None
    holdings: list[Holding] = []


class UpstreamLending(Value):
    """What an adapter knows of a lending request upstream."""

    upstream_id: str
    status: LendingStatus
    title: str
    record_id: str
    extra: dict[str, Any] = {}
