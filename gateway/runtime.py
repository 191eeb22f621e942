"""The gateway at run time: libraries' adapters, sessions, and every upstream call.

Views never call an adapter directly: they go through ``patron_call`` (a patron's
account, found from the bearer token) or ``public_call`` (catalog), which apply the
house rules — capability check (501), maintenance windows, the circuit breaker, the
per-library concurrency cap, retries for reads only, transparent re-login when the
upstream session expired, the per-session read cache — and store the adapter's
updated upstream state encrypted.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet
from flask import current_app, g, request

from adapters.base import Adapter, UpstreamSession
from adapters.registry import adapter_class, families
from core.errors import (
    CardNumberInvalid,
    GatewayError,
    InternalError,
    InvalidRequest,
    LibraryNotInSession,
    NotFound,
    NotSupported,
    Unauthenticated,
)
from gateway.config import ConfigError, GatewayConfig, LibraryConfig
from gateway.models import AccountLogin, AccountState, Problem
from gateway.resilience import ReadCache, UpstreamGuard
from gateway.sessions import (
    CredentialVault,
    Crypto,
    SessionRecord,
    SQLiteSessionStore,
    StoredAccount,
    connect,
    expiry,
    new_token,
    token_hash,
)

log = logging.getLogger("opacgw")
T = TypeVar("T")

ENV_SECRET = "OPACGW_SECRET_KEY"


@dataclass(frozen=True)
class AccountRef:
    library: str
    card_hash: str
    card_number_masked: str


@dataclass
class SessionContext:
    token_hash: str
    record: SessionRecord


def normalize_card(library: LibraryConfig, raw: str) -> str:
    from mappers import MappingError
    from mappers.cards import normalize_card_number

    try:
        return normalize_card_number(raw, digits=library.card_number.digits, pad=library.card_number.pad)
    except MappingError as exc:
        digits = library.card_number.digits
        want = f"{digits} digits" if digits else "digits only"
        raise CardNumberInvalid(
            f"not a card number of {library.name} ({want}, e.g. {library.card_number.example}): {exc}",
            library=library.id,
        ) from None


def mask(card: str) -> str:
    from mappers.cards import mask_card_number

    return mask_card_number(card)


def resolve_secret(config: GatewayConfig) -> str:
    key = os.environ.get(ENV_SECRET) or config.gateway.secret_key
    if key:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(f"{config.source}: key 'gateway.secret_key': not a Fernet key "
                              "(32 url-safe base64-encoded bytes)") from None
        return key
    if config.gateway.sandbox or config.gateway.database == ":memory:":
        # The sandbox keeps its generated key beside its database so that gateway
        # alerts and lending requests keyed by card hash survive a restart.
        path = Path(config.gateway.database + ".key")
        if config.gateway.database != ":memory:":
            try:
                return path.read_text().strip()
            except OSError:
                key = Fernet.generate_key().decode()
                path.write_text(key)
                os.chmod(path, 0o600)
                return key
        return Fernet.generate_key().decode()
    raise ConfigError(f"{config.source}: key 'gateway.secret_key': required outside the sandbox "
                      f"(or set {ENV_SECRET}); generate one with: opacgw keygen")


def make_adapter(config: GatewayConfig, lib: LibraryConfig) -> Adapter:
    """The library's adapter; a ConfigError naming file, library and key if it cannot be built."""
    cls = adapter_class(lib.adapter)
    if cls is None:
        raise ConfigError(
            f"{config.source}: library {lib.id!r}: key 'adapter': unknown adapter "
            f"{lib.adapter!r} (known: {', '.join(sorted(families()))})"
        )
    try:
        return cls(lib)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(config.source) else f"{config.source}: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - adapters raise pydantic or their own errors
        text = str(exc).replace("\n", "; ")
        raise ConfigError(f"{config.source}: library {lib.id!r}: key 'options': {text}") from None


def build_adapters(config: GatewayConfig) -> dict[str, Adapter]:
    """Every library's adapter (checks families and each adapter's own options)."""
    return {lib.id: make_adapter(config, lib) for lib in config.libraries.values()}


class Gateway:
    def __init__(self, config: GatewayConfig, *, secret_key: str | None = None) -> None:
        self.config = config
        self.settings = config.gateway
        self.crypto = Crypto(secret_key or resolve_secret(config))
        self.store = SQLiteSessionStore(self.settings.database)
        self.vault = CredentialVault(self.crypto)
        self.cache = ReadCache(self.settings.read_cache_seconds)
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="upstream")
        self._adapters: dict[str, Adapter] = {}
        self._guards: dict[str, UpstreamGuard] = {
            lib.id: UpstreamGuard(lib, failures=self.settings.circuit_failures,
                                  reset_seconds=self.settings.circuit_reset_seconds)
            for lib in config.libraries.values()
        }
        self._lock = threading.Lock()
        self._db_local = threading.local()
        self.gateway_alerts = importlib.util.find_spec("gateway.sdi") is not None
        self._last_purge = 0.0
        # Build every adapter now: each validates its own `options`, so a bad mapping or
        # agency id fails at start, naming the library, not on a patron's first request.
        self._adapters = build_adapters(config)

    # ------------------------------------------------------------ plumbing
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._db_local, "conn", None)
        if conn is None:
            conn = connect(self.settings.database)
            self._db_local.conn = conn
        return conn

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

    # ------------------------------------------------------------ sessions
    def login(self, accounts: list[AccountLogin]) -> tuple[str, SessionRecord, list[AccountState]]:
        seen: set[str] = set()
        for acc in accounts:
            if acc.library in seen:
                raise InvalidRequest(f"two accounts at {acc.library!r} in one session",
                                     errors=[{"field": "accounts", "message": "duplicate library"}])
            seen.add(acc.library)

        def one(acc: AccountLogin) -> tuple[StoredAccount | None, AccountState, GatewayError | None]:
            try:
                lib = self.library(acc.library)
                card = normalize_card(lib, acc.card_number)
                adapter = self.adapter(lib.id)
                if "login" not in adapter.capabilities:
                    raise NotSupported("this library's system offers no patron login", library=lib.id)
                up = self.guard(lib.id).call(lambda: adapter.login(card, acc.password), read=True)
                stored = StoredAccount(lib.id, self.crypto.card_hash(lib.id, card), mask(card),
                                       self.crypto.seal(up.to_dict()))
                return stored, AccountState(library=lib.id, ok=True, card_number_masked=mask(card)), None
            except GatewayError as err:
                err.with_library(acc.library)
                log.info("login refused library=%s code=%s", acc.library, err.code)
                return None, AccountState(library=acc.library, ok=False, error=Problem(**err.to_problem())), err

        if len(accounts) == 1:
            results = [one(accounts[0])]
        else:
            results = list(self.executor.map(one, accounts))
        ok = [r for r in results if r[0] is not None]
        if not ok:
            first_error = results[0][2]
            assert first_error is not None
            raise first_error
        now = datetime.now(UTC)
        token = new_token()
        th = token_hash(token)
        record = SessionRecord(th, now, expiry(now, self.settings.session_ttl_minutes),
                               [r[0] for r in ok if r[0] is not None])
        self.store.create(record)
        self._purge_now_and_then(now)
        vault_exp = record.expires_at.timestamp()
        by_lib = {a.library: a for a in accounts}
        for stored in record.accounts:
            self.vault.put(th, stored.library, by_lib[stored.library].password, vault_exp)
        return token, record, [r[1] for r in results]

    def _purge_now_and_then(self, now: datetime) -> None:
        """Drop expired sessions and credentials at most once a minute."""
        if time.monotonic() - self._last_purge < 60:
            return
        self._last_purge = time.monotonic()
        self.store.purge(now)
        self.vault.purge()

    def current(self, required: bool = True) -> SessionContext | None:
        if "opacgw_session" in g:
            return g.opacgw_session  # type: ignore[no-any-return]
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if required:
                raise Unauthenticated("send Authorization: Bearer <token> from POST /v1/sessions")
            return None
        th = token_hash(token.strip())
        now = datetime.now(UTC)
        record = self.store.get(th, now)
        if record is None:
            self.vault.drop(th)
            raise Unauthenticated("the session token is unknown or expired; log in again")
        new_exp = expiry(now, self.settings.session_ttl_minutes)
        if (new_exp - record.expires_at).total_seconds() > 30:  # sliding expiry, few writes
            self.store.touch(th, new_exp)
            self.vault.extend(th, new_exp.timestamp())
            record.expires_at = new_exp
        ctx = SessionContext(th, record)
        g.opacgw_session = ctx
        return ctx

    def logout(self) -> None:
        ctx = self.current()
        assert ctx is not None
        for acc in ctx.record.accounts:
            data = self.crypto.open(acc.upstream)
            if data is None:
                continue
            try:
                adapter = self.adapter(acc.library)
                self.guard(acc.library).call(lambda a=adapter, d=data: a.logout(UpstreamSession.from_dict(d)), read=False)
            except GatewayError as err:  # logging out upstream is best effort
                log.info("upstream logout failed library=%s code=%s", acc.library, err.code)
            except Exception:
                log.exception("upstream logout crashed library=%s", acc.library)
        self.store.delete(ctx.token_hash)
        self.vault.drop(ctx.token_hash)
        self.cache.invalidate(ctx.token_hash)

    def account(self, library_id: str) -> AccountRef:
        ctx = self.current()
        assert ctx is not None
        self.library(library_id)
        acc = ctx.record.account(library_id)
        if acc is None:
            raise LibraryNotInSession(f"this session holds no account at {library_id!r}", library=library_id)
        return AccountRef(acc.library, acc.card_hash, acc.card_number_masked)

    def accounts(self) -> list[AccountRef]:
        ctx = self.current()
        assert ctx is not None
        return [AccountRef(a.library, a.card_hash, a.card_number_masked) for a in ctx.record.accounts]

    # ------------------------------------------------------------ upstream calls
    def public_call(self, library_id: str, capability: str, method: str, *args: Any, write: bool = False) -> Any:
        """An upstream call with no patron session (catalog; password registration)."""
        adapter = self.adapter(library_id)
        self._require(adapter, capability)
        try:
            return self.guard(library_id).call(lambda: getattr(adapter, method)(*args), read=not write)
        except GatewayError as err:
            err.with_library(library_id)
            raise

    def patron_call(self, library_id: str, capability: str, method: str, *args: Any,
                    write: bool = False, cache: bool = False) -> Any:
        ctx = self.current()
        assert ctx is not None
        return self.call_as(ctx, library_id, capability, method, *args, write=write, cache=cache)

    def call_as(self, ctx: SessionContext, library_id: str, capability: str, method: str, *args: Any,
                write: bool = False, cache: bool = False) -> Any:
        """patron_call with an explicit session (usable from worker threads)."""
        self.library(library_id)
        acc = ctx.record.account(library_id)
        if acc is None:
            raise LibraryNotInSession(f"this session holds no account at {library_id!r}", library=library_id)
        adapter = self.adapter(library_id)
        self._require(adapter, capability)
        key = (ctx.token_hash, library_id, method, repr(args))
        if cache and not write:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        data = self.crypto.open(acc.upstream)
        if data is None:
            raise Unauthenticated("the session's upstream state cannot be read; log in again", library=library_id)
        up = UpstreamSession.from_dict(data)
        before = up.to_dict()
        guard = self.guard(library_id)
        from core.errors import SessionExpired

        try:
            try:
                result = guard.call(lambda: getattr(adapter, method)(up, *args), read=not write)
            except SessionExpired:
                up = self._relogin(ctx, acc, adapter, up)
                before = {}
                result = guard.call(lambda: getattr(adapter, method)(up, *args), read=not write)
        except SessionExpired:
            raise Unauthenticated("the library ended the session and logging in again failed",
                                  library=library_id) from None
        except GatewayError as err:
            err.with_library(library_id)
            raise
        finally:
            if write:
                self.cache.invalidate(ctx.token_hash, library_id)
        if up.to_dict() != before:
            sealed = self.crypto.seal(up.to_dict())
            self.store.update_upstream(ctx.token_hash, library_id, sealed)
            acc.upstream = sealed
        if cache and not write:
            self.cache.put(key, result)
        return result

    def _relogin(self, ctx: SessionContext, acc: StoredAccount, adapter: Adapter,
                 up: UpstreamSession) -> UpstreamSession:
        password = self.vault.get(ctx.token_hash, acc.library)
        if password is None:
            raise Unauthenticated("the library's session expired and this gateway process holds no "
                                  "credentials for it; log in again", library=acc.library)
        log.info("upstream session expired, logging in again library=%s card=%s", acc.library,
                 acc.card_number_masked)
        return self.guard(acc.library).call(lambda: adapter.login(up.card_number, password), read=True)

    @staticmethod
    def _require(adapter: Adapter, capability: str) -> None:
        if capability not in adapter.capabilities:
            raise NotSupported(f"{adapter.library.name} does not offer {capability!r} through its system",
                               library=adapter.library.id, capability=capability)

    def timed(self, fn: Callable[[], T]) -> tuple[T | None, GatewayError | None, int]:
        """Run fn, returning (value, error, elapsed_ms); bugs become internal_error."""
        t0 = time.perf_counter()
        try:
            value = fn()
            return value, None, int((time.perf_counter() - t0) * 1000)
        except GatewayError as err:
            return None, err, int((time.perf_counter() - t0) * 1000)
        except Exception:
            log.exception("unexpected error in an upstream call")
            return None, InternalError(), int((time.perf_counter() - t0) * 1000)


def gw() -> Gateway:
    """The Gateway of the current Flask app."""
    return current_app.extensions["opacgw"]  # type: ignore[no-any-return]
