"""Library configuration: the model every adapter is built from, validated at start.

``gateway.config`` reads the TOML file (``[gateway]`` settings and ``[libraries.*]``);
this module holds what an adapter needs to know about its library, so adapters never
import the gateway.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, library and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardNumberConfig(Strict):
    digits: int | None = Field(default=None, ge=4, le=20)
    # Pad with leading zeros up to `digits` (the library prints them, e.g. Kumamoto).
    pad: bool = False
    example: str = ""


class PasswordPolicy(Strict):
    min_length: int = Field(default=4, ge=1, le=128)
    max_length: int = Field(default=64, ge=1, le=128)
    charset: Literal["digits", "alnum", "alnum_symbols"] = "alnum_symbols"
    require_letter: bool = False
    require_digit: bool = False
    case_sensitive: bool = True

    @model_validator(mode="after")
    def _range(self) -> PasswordPolicy:
        if self.min_length > self.max_length:
            raise ValueError("min_length is greater than max_length")
        return self


class BranchConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    code: str | None = None  # the upstream's own code (e.g. a cmb_area value)


class MaintenanceWindow(Strict):
    start: str = Field(pattern=r"^\d{2}:\d{2}$")
    end: str = Field(pattern=r"^\d{2}:\d{2}$")

    def contains(self, moment: datetime) -> bool:
        s = time.fromisoformat(self.start)
        e = time.fromisoformat(self.end)
        t = moment.time()
        if s <= e:
            return s <= t < e
        return t >= s or t < e  # window across midnight

    def seconds_left(self, moment: datetime) -> int:
        e = time.fromisoformat(self.end)
        end = moment.replace(hour=e.hour, minute=e.minute, second=0, microsecond=0)
        delta = (end - moment).total_seconds()
        if delta <= 0:
            delta += 86400
        return max(1, int(delta))


class FeedConfig(Strict):
    url: str
    format: Literal["marc21", "marcxml", "oai-pmh"] = "marc21"
    set: str | None = None


class CanaryAccount(Strict):
    """A test patron for `opacgw canary`: the card in the file, the password in a variable."""

    card_number: str = Field(min_length=1)
    password_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class LibraryConfig(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    adapter: str
    base_url: str
    timezone: str = "Asia/Tokyo"
    card_number: CardNumberConfig = CardNumberConfig()
    password_policy: PasswordPolicy = PasswordPolicy()
    branches: list[BranchConfig] = []
    contact_methods: list[str] = []
    maintenance: list[MaintenanceWindow] = []
    timeout: float = Field(default=10.0, gt=0, le=300)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    hold_limit: int | None = Field(default=None, ge=1)
    # Watched accounts (subscriptions): seconds between two polls of one account (default:
    # the gateway's poll_interval_seconds) and the most account polls a minute at this library.
    poll_interval: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_polls_per_minute: int = Field(default=30, ge=1, le=100_000)
    feed: FeedConfig | None = None
    # the read-only journey of `opacgw canary` (login, loans, holds, logout)
    canary: CanaryAccount | None = None
    # Adapter-specific settings (paths, NCIP agency ids, SOAP mappings, ...);
    # each adapter validates its own with a model of its own.
    options: dict[str, Any] = {}

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def maintenance_window_at(self, moment: datetime | None = None) -> MaintenanceWindow | None:
        moment = (moment or self.now()).astimezone(self.tz)
        for window in self.maintenance:
            if window.contains(moment):
                return window
        return None

    def branch_by_name_or_id(self, value: str) -> BranchConfig | None:
        for b in self.branches:
            if value in (b.id, b.name, b.code):
                return b
        return None


class ConsortiumPickup(Strict):
    id: str
    name: str


class ConsortiumConfig(Strict):
    id: str
    name: str
    supplying_libraries: list[str] = Field(min_length=1)
    pickup_libraries: list[ConsortiumPickup] = []
    excluded_pickups: list[ConsortiumPickup] = []
