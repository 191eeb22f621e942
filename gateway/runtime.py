"""The gateway at run time: one object holding each library's adapter and guard, the
session store, the credential vault, the read cache and the worker pool.

The work is done elsewhere:
- ``gateway.secrets``  the secret key;
- ``gateway.build``    adapters from the configuration;
- ``gateway.auth``     login, the current session from the bearer token, logout;
- ``gateway.facade``   the typed calls views make (``gw().patron(library).loans()``);
- ``gateway.pipeline`` every upstream call (capability check, cache, guard, re-login);
- ``gateway.sessions`` the encrypted session store and the credential vault.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flask import current_app

from adapters.base import Adapter
from core.errors import GatewayError, NotFound
from gateway.auth import AccountRef, SessionContext, Sessions, mask, normalize_card
from gateway.build import build_adapters, make_adapter
from gateway.config import ConfigError, GatewayConfig, LibraryConfig
from gateway.db import Database, DatabaseUnavailable, open_database
from gateway.facade import PatronCalls, PublicCalls
from gateway.lending import LendingStore
from gateway.logs import ContextExecutor
from gateway.migrations import SchemaOutOfDate, ensure_current
from gateway.models import AccountLogin, AccountState
from gateway.pipeline import CallPipeline
from gateway.resilience import ReadCache, UpstreamGuard
from gateway.sdi.store import AlertStore
from gateway.secrets import ENV_SECRET, resolve_keys, resolve_secret
from gateway.sessions import Crypto, SessionRecord, SQLSessionStore
from gateway.shared import LocalState, RedisState, RedisUnavailable, describe_redis
from gateway.throttle import LoginThrottle

T = TypeVar("T")

__all__ = ["ENV_SECRET", "AccountRef", "Gateway", "SessionContext", "build_adapters", "gw", "make_adapter",
           "mask", "normalize_card", "resolve_secret"]


def open_gateway_database(config: GatewayConfig) -> Database:
    """The configured database, on the current schema; a ConfigError naming key and host if not."""
    from gateway.config import database_target
    from gateway.db import describe_url, is_postgres

    target, key = database_target(config.gateway)
    where = describe_url(target) if is_postgres(target) else target
    try:
        db = open_database(target)
    except DatabaseUnavailable:
        raise ConfigError(f"{config.source}: key {key!r}: cannot connect to PostgreSQL at {where}") from None
    except Exception as exc:  # noqa: BLE001 - a bad path or URL: say which, without the URL's password
        raise ConfigError(f"{config.source}: key {key!r}: cannot open the database {where}: "
                          f"{type(exc).__name__}") from None
    try:
        ensure_current(db)
    except SchemaOutOfDate as exc:
        db.close()
        raise ConfigError(f"{config.source}: key {key!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        db.close()
        raise ConfigError(f"{config.source}: key {key!r}: cannot use the database {where}: "
                          f"{type(exc).__name__}") from None
    return db


def open_shared_state(config: GatewayConfig) -> LocalState | RedisState:
    """In-process state, or Redis when redis_url is set; a ConfigError naming key and host."""
    from gateway.config import redis_target

    url, key = redis_target(config.gateway)
    if not url:
        return LocalState()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{config.source}: key {key!r}: not a redis:// URL")
    try:
        return RedisState(url)
    except RedisUnavailable:
        raise ConfigError(f"{config.source}: key {key!r}: cannot connect to Redis at {describe_redis(url)}") from None


class Gateway:
    def __init__(self, config: GatewayConfig, *, secret_key: str | None = None) -> None:
        self.config = config
        self.settings = config.gateway
        if secret_key:
            self.crypto = Crypto(secret_key)
        else:
            keys, hash_key = resolve_keys(config)
            self.crypto = Crypto(keys, hash_key)
        self.database = open_gateway_database(config)
        self.store = SQLSessionStore(self.database)
        self.alert_store = AlertStore(self.database)
        self.lending_store = LendingStore(self.database)
        self.shared = open_shared_state(config)
        self.vault = self.shared.vault(self.crypto)
        self.cache = ReadCache(self.settings.read_cache_seconds, shared=self.shared)
        # the pool's tasks run in the submitter's context: the request id and its
        # upstream-call list follow a fan-out (gateway.logs)
        self.executor: ThreadPoolExecutor = ContextExecutor(max_workers=64, thread_name_prefix="upstream")
        self._guards: dict[str, UpstreamGuard] = {
            lib.id: UpstreamGuard(lib, failures=self.settings.circuit_failures,
                                  reset_seconds=self.settings.circuit_reset_seconds,
                                  read_retries=self.settings.read_retries, shared=self.shared)
            for lib in config.libraries.values()
        }
        counters, clock = self.shared.counters(max(self.settings.login_failure_window_seconds, 60.0))
        self.throttle = LoginThrottle(
            counters, clock=clock,
            failures_per_card=self.settings.login_failures_per_card or None,
            failure_window=self.settings.login_failure_window_seconds,
            logins_per_client_per_minute=self.settings.logins_per_client_per_minute or None,
        )
        self._lock = threading.Lock()
        self.gateway_alerts = importlib.util.find_spec("gateway.sdi") is not None
        self.sessions = Sessions(self)
        self.pipeline = CallPipeline(self)
        # Build every adapter now: each validates its own `options`, so a bad mapping or
        # agency id fails at start, naming the library, not on a patron's first request.
        self._adapters: dict[str, Adapter] = build_adapters(config)
        if self.shared.shared:  # per-patron write locks across processes (adapters that take them)
            for ad in self._adapters.values():
                ad.patron_lock = self.shared.patron_lock
        # watched accounts (gateway.watch): their store and their own key
        from gateway.watch.keys import subscription_cipher
        from gateway.watch.store import SQLWatchStore

        self.watch_store = SQLWatchStore(self.database)
        self.watch_cipher = subscription_cipher(config)

    # ------------------------------------------------------------ plumbing
    def db(self) -> Database:
        """The gateway's database (SQLite or PostgreSQL: ``gateway.db``)."""
        return self.database

    def library(self, library_id: str) -> LibraryConfig:
        lib = self.config.libraries.get(library_id)
        if lib is None:
            raise NotFound(f"no library {library_id!r} is configured")
        return lib

    def adapter(self, library_id: str) -> Adapter:
        lib = self.library(library_id)
        with self._lock:
            ad = self._adapters.get(library_id)
            if ad is None:
                ad = self._adapters[library_id] = make_adapter(self.config, lib)
            return ad

    def guard(self, library_id: str) -> UpstreamGuard:
        self.library(library_id)
        return self._guards[library_id]

    def capabilities(self, library_id: str) -> list[str]:
        caps = set(self.adapter(library_id).capabilities)
        if self.gateway_alerts:
            caps.add("alerts")  # the gateway's MARC-feed matcher serves libraries with no SDI of their own
        from gateway.models import CAPABILITIES

        return [c for c in CAPABILITIES if c in caps]

    def status(self, library_id: str) -> str:
        lib = self.library(library_id)
        if lib.maintenance_window_at() is not None:
            return "maintenance"
        if self._guards[library_id].state != "closed":
            return "degraded"
        return "up"

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        for ad in self._adapters.values():
            ad.close()
        self.database.close()
        self.shared.close()

    # ------------------------------------------------------------ sessions (gateway.auth)
    def login(self, accounts: list[AccountLogin]) -> tuple[str, SessionRecord, list[AccountState]]:
        return self.sessions.login(accounts)

    def current(self, required: bool = True) -> SessionContext | None:
        return self.sessions.current(required)

    def logout(self) -> None:
        self.sessions.logout()

    def account(self, library_id: str) -> AccountRef:
        return self.sessions.account(library_id)

    def accounts(self) -> list[AccountRef]:
        return self.sessions.accounts()

    # ------------------------------------------------------------ upstream calls (gateway.facade)
    def patron(self, library_id: str, ctx: SessionContext | None = None) -> PatronCalls:
        """The typed calls on this session's account at a library (``ctx``: an explicit
        session, e.g. from a worker thread; default: the request's bearer token)."""
        if ctx is None:
            ctx = self.current()
            assert ctx is not None
        return PatronCalls(self.pipeline, ctx, library_id)

    def public(self, library_id: str) -> PublicCalls:
        """The typed calls at a library that need no patron session (catalog, registration)."""
        return PublicCalls(self.pipeline, library_id)

    def offers(self, library_id: str, fn: Callable[..., Any]) -> bool:
        """Whether the library offers a contract method, e.g. ``offers(lib, Adapter.holds)``."""
        return self.pipeline.offers(library_id, fn)

    def require(self, library_id: str, fn: Callable[..., Any], detail: str | None = None) -> None:
        """501 not_supported now (before reading a body) unless the library offers ``fn``."""
        self.pipeline.require(self.adapter(library_id), self.pipeline.operation(fn), detail)

    def timed(self, fn: Callable[[], T]) -> tuple[T | None, GatewayError | None, int]:
        return self.pipeline.timed(fn)


def gw() -> Gateway:
    """The Gateway of the current Flask app."""
    return current_app.extensions["opacgw"]  # type: ignore[no-any-return]
