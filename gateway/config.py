"""Gateway and library configuration, read from TOML and validated at start.

``opacgw serve --config FILE`` (or ``OPACGW_CONFIG``) names the file; with none the
embedded sandbox configuration (``gateway/sandbox.toml``) is used.  A bad file fails
with a message naming the file, the library and the key.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_CONFIG = "OPACGW_CONFIG"


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
    feed: FeedConfig | None = None
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


class GatewaySettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    database: str = "opacgw.sqlite3"
    session_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Fernet key (urlsafe base64, 32 bytes); OPACGW_SECRET_KEY overrides.
    secret_key: str | None = None
    api_keys: list[str] = []
    read_cache_seconds: float = Field(default=5.0, ge=0, le=600)
    fanout_deadline_seconds: float = Field(default=8.0, gt=0, le=120)
    circuit_failures: int = Field(default=5, ge=1, le=1000)
    circuit_reset_seconds: float = Field(default=30.0, gt=0, le=3600)
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    sandbox: bool = False
    # Extra simulators the sandbox starts besides the libraries' own: name → port
    # (e.g. the MARC feed server); each name is a simulator in fixtures/.
    sandbox_services: dict[str, int] = {}
    log_level: str = "INFO"


class GatewayConfig(Strict):
    gateway: GatewaySettings = GatewaySettings()
    libraries: dict[str, LibraryConfig] = {}
    consortia: dict[str, ConsortiumConfig] = {}
    source: str = "<memory>"

    def library(self, library_id: str) -> LibraryConfig | None:
        return self.libraries.get(library_id)


def _describe(loc: tuple[Any, ...]) -> tuple[str | None, str]:
    parts = [str(p) for p in loc]
    library = None
    if len(parts) >= 2 and parts[0] in {"libraries", "consortia"}:
        library = parts[1]
        key = ".".join(parts[2:]) or "(section)"
    else:
        key = ".".join(parts) or "(file)"
    return library, key


def parse_config(data: dict[str, Any], source: str) -> GatewayConfig:
    """Validate a TOML document; `id` of each library defaults to its table name."""
    data = dict(data)
    libs = data.get("libraries", {})
    if not isinstance(libs, dict):
        raise ConfigError(f"{source}: [libraries] must be a table")
    fixed_libs = {}
    for lib_id, body in libs.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: library {lib_id!r}: must be a table")
        body = dict(body)
        body.setdefault("id", lib_id)
        if body["id"] != lib_id:
            raise ConfigError(f"{source}: library {lib_id!r}: key 'id': differs from the table name")
        fixed_libs[lib_id] = body
    data["libraries"] = fixed_libs
    cons = data.get("consortia", {})
    if isinstance(cons, dict):
        data["consortia"] = {
            cid: {"id": cid, **body} if isinstance(body, dict) else body for cid, body in cons.items()
        }
    data["source"] = source
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            library, key = _describe(err["loc"])
            where = f"library {library!r}: " if library else ""
            msgs.append(f"{source}: {where}key {key!r}: {err['msg']}")
        raise ConfigError("\n".join(msgs)) from None
    for cons_cfg in cfg.consortia.values():
        for lib in cons_cfg.supplying_libraries:
            if lib not in cfg.libraries:
                raise ConfigError(
                    f"{source}: consortium {cons_cfg.id!r}: key 'supplying_libraries': "
                    f"unknown library {lib!r}"
                )
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> GatewayConfig:
    """Load the named file, else $OPACGW_CONFIG, else the embedded sandbox."""
    path = path or os.environ.get(ENV_CONFIG)
    if path:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
        return loads_config(text, str(p))
    return sandbox_config()


def loads_config(text: str, source: str = "<string>") -> GatewayConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)


def sandbox_toml() -> str:
    return resources.files("gateway").joinpath("sandbox.toml").read_text(encoding="utf-8")


def sandbox_config() -> GatewayConfig:
    return loads_config(sandbox_toml(), "<sandbox>")
