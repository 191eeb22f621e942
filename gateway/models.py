"""Wire envelopes of the unified patron API (API.md): request and response bodies.

The domain models adapters return live in ``core.models`` and are re-exported here
for the views; the OpenAPI document is generated from both.
"""


from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from core.models import (  # noqa: F401  (re-exported for the views)
    FoldedName,
    CAPABILITIES,
    Alert,
    AlertCondition,
    AlertCreate,
    AlertUpdate,
    Capability,
    Cart,
    CartItem,
    DueReminder,
    Email,
    HistoryEntry,
    HistoryPage,
    Hold,
    Holding,
    HoldingStatus,
    HoldRequest,
    HoldResult,
    HoldStatus,
    HoldUpdate,
    LendingStatus,
    Loan,
    Message,
    Notifications,
    NotificationsUpdate,
    Problem,
    Profile,
    ProfileUpdate,
    Record,
    RecordSummary,
    RenewalRefusal,
    RenewalResult,
    Request,
    SearchQuery,
    SearchResult,
    Shelf,
    ShelfItem,
    Toggle,
    UpstreamLending,
    Value,
)


# ---------------------------------------------------------------- libraries
class Branch(Value):
    id: str
    name: str


class CardNumberRule(Value):
    digits: int | None = None
    example: str


class PasswordPolicyOut(Value):
    min_length: int
    max_length: int
    charset: Literal["digits", "alnum", "alnum_symbols"]
    require_letter: bool
    require_digit: bool


class MaintenanceWindowOut(Value):
    start: str
    end: str


class Library(Value):
    id: str
    name: str
    adapter: str
    timezone: str
    capabilities: list[str]
    card_number: CardNumberRule
    password_policy: PasswordPolicyOut
    branches: list[Branch]
    contact_methods: list[str]
    maintenance_windows: list[MaintenanceWindowOut]
    status: Literal["up", "maintenance", "degraded"]


class LibraryList(Value):
    libraries: list[Library]


# ---------------------------------------------------------------- sessions
class AccountLogin(Request):
    library: str
    card_number: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class SessionCreate(Request):
    accounts: list[AccountLogin] = Field(min_length=1, max_length=20)


class AccountState(Value):
    library: str
    ok: bool
    card_number_masked: str | None = None
    error: Problem | None = None


class SessionOut(Value):
    token: str | None = None
    expires_at: datetime
    accounts: list[AccountState]


class PasswordChange(Request):
    card_number: str | None = Field(default=None, max_length=64)
    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class PasswordRegistration(Request):
    card_number: str = Field(min_length=1, max_length=64)
    birth_date: date
    new_password: str = Field(min_length=1, max_length=128)

    @field_validator("birth_date", mode="before")
    @classmethod
    def _eight_digits(cls, v: Any) -> Any:
        """Accept the seed's own form too: 8 digits, Western year (1990-01-01 → 19900101)."""
        if isinstance(v, str) and len(v) == 8 and v.isdigit():
            return f"{v[:4]}-{v[4:6]}-{v[6:]}"
        return v


class LoanList(Value):
    loans: list[Loan]


class LoanOut(Value):
    loan: Loan


class RenewalBatch(Request):
    loan_ids: list[str] | None = Field(default=None, min_length=1, max_length=100)
    all: bool = False


class RenewalResults(Value):
    results: list[RenewalResult]


class HoldList(Value):
    holds: list[Hold]


class HoldResults(Value):
    results: list[HoldResult]


class RecordRef(Request):
    record_id: str = Field(min_length=1, max_length=128)


class MessageList(Value):
    messages: list[Message]


class ShelfList(Value):
    shelves: list[Shelf]


class ShelfCreate(Request):
    name: FoldedName = Field(min_length=1, max_length=32)


class ShelfItems(Value):
    items: list[ShelfItem]


class ShelfMove(Request):
    to_shelf_id: str = Field(min_length=1)
    copy_: bool = Field(default=False, alias="copy")


class AlertList(Value):
    alerts: list[Alert]


class AlertMatch(Value):
    record_id: str
    title: str
    matched_at: datetime


class AlertMatches(Value):
    matches: list[AlertMatch]


class LibraryAvailability(Value):
    library: str
    state: Literal["ok", "error", "timeout"]
    holdings: list[Holding] = []
    error: Problem | None = None


class Availability(Value):
    isbn: str
    libraries: list[LibraryAvailability]


# ---------------------------------------------------------------- across libraries
class Source(Value):
    library: str
    ok: bool
    error: Problem | None = None
    elapsed_ms: int


class MergedLoans(Value):
    loans: list[Loan]
    sources: list[Source]


class MergedHolds(Value):
    holds: list[Hold]
    sources: list[Source]


class Summary(Value):
    text: str
    loans: list[Loan]
    due_soon: list[Loan]
    overdue: list[Loan]
    ready_holds: list[Hold]
    sources: list[Source]


# ---------------------------------------------------------------- consortium lending
class PickupLibrary(Value):
    id: str
    name: str


class Consortium(Value):
    id: str
    name: str
    supplying_libraries: list[str]
    pickup_libraries: list[PickupLibrary]


class ConsortiumList(Value):
    consortia: list[Consortium]


class LendingRequestCreate(Request):
    supplying_library: str
    record_id: str = Field(min_length=1, max_length=128)
    pickup_library: str
    pickup_branch: str | None = None


class LendingTransition(Value):
    status: LendingStatus
    at: datetime


class LendingRequest(Value):
    id: str
    supplying_library: str
    pickup_library: str
    pickup_branch: str | None = None
    record_id: str
    title: str
    status: LendingStatus
    history: list[LendingTransition]
    created_at: datetime
    updated_at: datetime
    stale: bool = False


class LendingRequestList(Value):
    requests: list[LendingRequest]


# ---------------------------------------------------------------- MCP (POST /mcp)
class JsonRpcRequest(Request):
    """One JSON-RPC 2.0 message of the Model Context Protocol (streamable HTTP)."""

    model_config = ConfigDict(extra="allow")
    jsonrpc: Literal["2.0"]
    id: int | str | None = None
    method: str = Field(examples=["initialize", "tools/list", "tools/call"])
    params: dict[str, Any] | None = None


# the subscriptions API (watched accounts, issue #14)
from gateway.watch.models import (  # noqa: E402,F401
    AutoRenew,
    CalendarURL,
    Delivery,
    DeliveryList,
    EventOut,
    EventPage,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionUpdate,
)
