"""The wire models of the subscriptions API (re-exported by ``gateway.models``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.watch.differ import EVENT_TYPES

EventType = Literal[
    "hold.ready", "hold.expiring", "hold.cancelled", "hold.position_changed",
    "loan.due_soon", "loan.overdue", "loan.renewal_blocked", "loan.renewed", "loan.auto_renew_failed",
    "lending.status_changed", "alert.matched", "card.expiring", "subscription.paused",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class AutoRenew(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days_before: int = Field(ge=1, le=7)


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    libraries: list[str] | None = Field(default=None, min_length=1)
    events: list[EventType] | None = Field(default=None, min_length=1)
    webhook_url: str | None = Field(default=None, max_length=2000)
    due_soon_days: int = Field(default=3, ge=1, le=14)
    auto_renew: AutoRenew | None = None
    consent: bool = Field(default=False, description="true: the patron agrees that the gateway keeps their "
                                                     "library password, encrypted, to check the account")


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventType] | None = Field(default=None, min_length=1)
    webhook_url: str | None = Field(default=None, max_length=2000)
    due_soon_days: int | None = Field(default=None, ge=1, le=14)
    auto_renew: AutoRenew | None = None
    status: Literal["active"] | None = Field(default=None, description="active: resume a paused subscription "
                                                                       "(after logging in with the new password)")


class SubscriptionOut(BaseModel):
    id: str
    libraries: list[str]
    events: list[str]
    webhook_url: str | None = None
    due_soon_days: int
    auto_renew: AutoRenew | None = None
    signing_secret: str | None = Field(default=None, description="shown once, on creation")
    calendar_url: str | None = Field(default=None, description="shown on creation and on rotation")
    status: Literal["active", "paused", "failing"]
    created_at: str


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class EventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    library: str
    occurred_at: str
    subject: dict[str, Any]
    data: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    next: str


class Delivery(BaseModel):
    event_id: str
    attempted_at: float
    outcome: Literal["delivered", "retry", "failed"]
    status_code: int | None = None
    error: str | None = None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class CalendarURL(BaseModel):
    calendar_url: str

__all__ = ["AutoRenew", "CalendarURL", "Delivery", "DeliveryList", "EventOut", "EventPage", "EventType",
           "SubscriptionCreate", "SubscriptionList", "SubscriptionOut", "SubscriptionUpdate"]
