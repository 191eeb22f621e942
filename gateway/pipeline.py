"""The call pipeline: every upstream call a view causes passes through here.

    capability check (501) → read cache → open the sealed upstream state →
    guard (maintenance, circuit, concurrency cap, retries for reads) → adapter →
    on SessionExpired: log in again once and repeat → seal the updated state

Writes invalidate the session's read cache whatever their outcome.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from adapters import writes
from adapters.base import Adapter, Operation, UpstreamSession, declared
from core.errors import (
    GatewayError,
    InternalError,
    LibraryNotInSession,
    NotSupported,
    SessionExpired,
    Unauthenticated,
)
from gateway.sessions import StoredAccount

if TYPE_CHECKING:
    from gateway.auth import SessionContext
    from gateway.runtime import Gateway

log = logging.getLogger("opacgw")
T = TypeVar("T")


class CallPipeline:
    """The house rules around each adapter call, for one Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # ------------------------------------------------------------ sessions upstream
    def login(self, library_id: str, card: str, password: str) -> UpstreamSession:
        adapter = self.gw.adapter(library_id)
        if not self.offered(adapter, self.operation(Adapter.login)):
            raise NotSupported("this library's system offers no patron login", library=library_id)
        # never retried (read=False): libraries count failed logins and lock cards
        return self.gw.guard(library_id).call(lambda: adapter.login(card, password), read=False, operation="login")

    def logout(self, library_id: str, up: UpstreamSession) -> None:
        adapter = self.gw.adapter(library_id)
        self.gw.guard(library_id).call(lambda: adapter.logout(up), read=False, operation="logout")

    # ------------------------------------------------------------ calls
    def public(self, library_id: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A contract method called with no patron session (catalog; password registration)."""
        op = self.operation(fn)
        adapter = self.gw.adapter(library_id)
        self.require(adapter, op)
        method = getattr(adapter, op.name)
        try:
            return self.gw.guard(library_id).call(lambda: method(*args), read=not op.write, operation=op.name)
        except GatewayError as err:
            err.with_library(library_id)
            raise

    def patron(self, ctx: SessionContext, library_id: str, fn: Callable[..., Any], *args: Any,
               cache: bool = False) -> Any:
        """A contract method called on a patron's account at one library (usable from
        worker threads); ``cache``: a read may be answered from the session's read cache."""
        op = self.operation(fn)
        write, method = op.write, op.name
        gw = self.gw
        gw.library(library_id)
        acc = ctx.record.account(library_id)
        if acc is None:
            raise LibraryNotInSession(f"this session holds no account at {library_id!r}", library=library_id)
        adapter = gw.adapter(library_id)
        self.require(adapter, op)
        key = (ctx.token_hash, library_id, method, repr(args))
        if cache and not write:
            hit = gw.cache.get(key)
            if hit is not None:
                return hit
        data = gw.crypto.open(acc.upstream)
        if data is None:
            raise Unauthenticated("the session's upstream state cannot be read; log in again", library=library_id)
        up = UpstreamSession.from_dict(data)
        # a deep copy: to_dict() shares the live cookies/data dicts the adapter mutates
        saved = [copy.deepcopy(up.to_dict())]

        def persist(state: UpstreamSession) -> None:
            # Also called by the adapter mid-write (UpstreamSession.checkpoint): a write's
            # intent is stored before its last step (adapters.writes).
            now = state.to_dict()
            if now != saved[0]:
                sealed = gw.crypto.seal(now)
                gw.store.update_upstream(ctx.token_hash, library_id, sealed)
                acc.upstream = sealed
                saved[0] = copy.deepcopy(now)

        up.saver = persist
        guard = gw.guard(library_id)
        try:
            try:
                result = guard.call(lambda: getattr(adapter, method)(up, *args), read=not write, operation=method)
            except SessionExpired:
                old = up
                up = self.relogin(ctx, acc, adapter, up)
                writes.carry_over(old, up)
                up.saver = persist
                result = guard.call(lambda: getattr(adapter, method)(up, *args), read=not write, operation=method)
        except SessionExpired:
            raise Unauthenticated("the library ended the session and logging in again failed",
                                  library=library_id) from None
        except GatewayError as err:
            err.with_library(library_id)
            raise
        finally:
            if write:
                gw.cache.invalidate(ctx.token_hash, library_id)
                try:  # a failed write may leave an intent (or new cookies) to keep
                    persist(up)
                except Exception:  # never hide the call's own outcome
                    log.exception("could not store the upstream state after a write library=%s", library_id)
        persist(up)
        if cache and not write:
            gw.cache.put(key, result)
        return result

    def relogin(self, ctx: SessionContext, acc: StoredAccount, adapter: Adapter,
                up: UpstreamSession) -> UpstreamSession:
        password = self.gw.vault.get(ctx.token_hash, acc.library)
        if password is None:
            raise Unauthenticated("the library's session expired and this gateway process holds no "
                                  "credentials for it; log in again", library=acc.library)
        log.info("upstream session expired, logging in again library=%s card=%s", acc.library,
                 acc.card_number_masked)
        return self.gw.guard(acc.library).call(lambda: adapter.login(up.card_number, password),
                                               read=False, operation="login")

    @staticmethod
    def operation(fn: Callable[..., Any]) -> Operation:
        """The declaration of a contract method (``Adapter.loans``): its capability and kind."""
        op = declared(fn)
        if op is None:
            raise TypeError(f"{fn!r} is not a declared contract method of adapters.base.Adapter")
        return op

    @staticmethod
    def offered(adapter: Adapter, op: Operation) -> bool:
        """Whether this library's adapter offers the operation (per-library capabilities)."""
        return any(cap in adapter.capabilities for cap in op.capabilities)

    def offers(self, library_id: str, fn: Callable[..., Any]) -> bool:
        return self.offered(self.gw.adapter(library_id), self.operation(fn))

    @classmethod
    def require(cls, adapter: Adapter, op: Operation, detail: str | None = None) -> None:
        """501 not_supported before any call when the library does not offer it."""
        if not cls.offered(adapter, op):
            raise NotSupported(detail or f"{adapter.library.name} does not offer {op.capability!r} through its system",
                               library=adapter.library.id, capability=op.capability)

    @staticmethod
    def timed(fn: Callable[[], T]) -> tuple[T | None, GatewayError | None, int]:
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
