"""Gateway and library configuration, read from TOML and validated at start.

``opacgw serve --config FILE`` (or ``OPACGW_CONFIG``) names the file; with none the
embedded sandbox configuration (``gateway/sandbox.toml``) is used.  A bad file fails
with a message naming the file, the library and the key.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

ENV_CONFIG = "OPACGW_CONFIG"
ENV_DATABASE = "OPACGW_DATABASE_URL"
ENV_REDIS = "OPACGW_REDIS_URL"


from core.config import (  # noqa: F401  (re-exported: the library model lives in core)
    BranchConfig,
    CardNumberConfig,
    ConfigError,
    ConsortiumConfig,
    ConsortiumPickup,
    FeedConfig,
    LibraryConfig,
    MaintenanceWindow,
    PasswordPolicy,
    Strict,
)


class GatewaySettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # An SQLite path (the embedded default) or a postgresql:// URL; OPACGW_DATABASE_URL overrides.
    database: str = "opacgw.sqlite3"
    # redis:// URL of the shared ephemeral state of several processes; OPACGW_REDIS_URL overrides.
    redis_url: str | None = None
    session_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Fernet key (urlsafe base64, 32 bytes); OPACGW_SECRET_KEY overrides.
    secret_key: str | None = None
    # Key rotation: [new, old, ...] (MultiFernet; encrypts with the first). Replaces secret_key.
    secret_keys: list[str] = []
    # The key of card-number hashes (alerts, lending requests): rotating the encryption keys
    # never changes it. Unset: derived from the oldest encryption key. OPACGW_CARD_HASH_KEY overrides.
    card_hash_key: str | None = None
    api_keys: list[str] = []
    read_cache_seconds: float = Field(default=5.0, ge=0, le=600)
    fanout_deadline_seconds: float = Field(default=8.0, gt=0, le=120)
    circuit_failures: int = Field(default=5, ge=1, le=1000)
    circuit_reset_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Retries of an idempotent read after a transport failure (the one retry layer:
    # gateway.resilience); logins and writes are never retried. 0 = no retry.
    read_retries: int = Field(default=1, ge=0, le=5)
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    # Login throttling (gateway.throttle): rejected passwords per card and library within
    # the window before 429 without calling the library; login attempts a minute per
    # client (API key, or address without keys).  0 turns a budget off.
    login_failures_per_card: int = Field(default=5, ge=0, le=1000)
    login_failure_window_seconds: float = Field(default=900.0, gt=0, le=7 * 24 * 3600)
    logins_per_client_per_minute: int = Field(default=120, ge=0, le=1_000_000)
    sandbox: bool = False
    # Extra simulators the sandbox starts besides the libraries' own: name → port
    # (e.g. the MARC feed server); each name is a simulator in fixtures/.
    sandbox_services: dict[str, int] = {}
    log_level: str = "INFO"
    # How long a keyed POST holds its Idempotency-Key while running; after that (its process
    # died or hung mid-confirm) the next request with the key re-reads upstream and answers.
    # Keep it above the longest write (every upstream step's timeout added up).
    idempotency_lease_seconds: float = Field(default=120.0, gt=0, le=24 * 3600)
    # Watched accounts (gateway.watch): the default seconds between polls of one account,
    # the keys that encrypt the passwords subscriptions keep (Fernet keys, newest first:
    # MultiFernet rotation; the sandbox generates one beside its database), and whether
    # `opacgw serve` runs the worker itself (the sandbox does; else run `opacgw worker`).
    poll_interval_seconds: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    subscription_keys: list[str] = []
    worker: bool = False


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


def database_target(settings: GatewaySettings) -> tuple[str, str]:
    """(SQLite path or postgresql:// URL, where it came from: the key or the variable)."""
    env = os.environ.get(ENV_DATABASE)
    if env:
        return env, ENV_DATABASE
    return settings.database, "gateway.database"


def redis_target(settings: GatewaySettings) -> tuple[str | None, str]:
    env = os.environ.get(ENV_REDIS)
    if env:
        return env, ENV_REDIS
    return settings.redis_url, "gateway.redis_url"
