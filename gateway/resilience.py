"""Politeness and resilience towards each upstream library.

- a cap on concurrent upstream calls per library (``max_concurrency``): small
  municipal portals are never hammered, however many patrons call at once;
- a circuit breaker per library (pybreaker): after ``circuit_failures`` consecutive
  failures to get any answer (``UpstreamUnreachable``: refused, reset, DNS; or
  ``UpstreamTimeout``) the library answers 503 ``upstream_unavailable`` with
  ``Retry-After`` without being called, then one probe is let through (half-open).
  An answer, even an HTTP 500, never counts: one client's odd input (a non-ASCII
  password, a strange id) can provoke one, and must not close a library for others.
  The breaker never wraps the call itself: ``pybreaker.CircuitBreaker.call`` holds the
  breaker's lock for the whole call, which would let one request at a time through to a
  library however high its ``max_concurrency``.  Its state decides whether to call;
  the outcome is fed back to it afterwards, under its lock only for the bookkeeping;
- maintenance windows: 503 ``upstream_maintenance`` with ``Retry-After``, no call;
- retries with backoff (tenacity) only for idempotent reads, only on transport failures:
  the ONE retry layer of the gateway (``read_retries`` in ``[gateway]``); adapters never
  retry themselves, and logins and writes are never retried, so one read costs at most
  ``1 + read_retries`` upstream attempts;
- a short-lived per-session read cache that every write of that session invalidates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import pybreaker
from cachetools import TTLCache
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.errors import (
    UpstreamMaintenance,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from gateway.config import LibraryConfig

T = TypeVar("T")


def _not_transport_failure(exc: BaseException) -> bool:
    """What the breaker ignores: everything but getting no answer at all."""
    return not isinstance(exc, (UpstreamUnreachable, UpstreamTimeout))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamUnavailable) and not isinstance(exc, CircuitOpen)


class UpstreamGuard:
    """Everything that stands between the gateway and one library's system."""

    def __init__(self, library: LibraryConfig, *, failures: int, reset_seconds: float,
                 read_retries: int = 1, shared: Any = None) -> None:
        """``shared``: a ``gateway.shared`` state (Redis: one cap, breaker and probe for all
        processes); None keeps them in this process."""
        self.library = library
        if shared is None:
            from gateway.shared import LocalState

            shared = LocalState()
        self.slots = shared.slots(library.id, library.max_concurrency)
        storage = shared.breaker_storage(library.id)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=reset_seconds,
            exclude=[_not_transport_failure],
            throw_new_error_on_trip=False,
            name=library.id,
            **({"state_storage": storage} if storage is not None else {}),
        )
        #: the half-open probe: at most one call tests a library that failed
        self.probe = shared.probe_lock(library.id, max(library.timeout * 2, reset_seconds))
        self.read_attempts = 1 + read_retries
        #: (library, operation, outcome, seconds) → None: the metrics' latency histogram
        self.observe: Callable[[str, str, str, float], None] | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._count_lock = threading.Lock()

    @property
    def state(self) -> str:
        return str(self.breaker.current_state)

    def retry_after_seconds(self) -> float:
        """Seconds until an open circuit lets a probe through (0: now)."""
        opened = self.breaker._state_storage.opened_at
        if opened is None:
            return 0.0
        if hasattr(opened, "timestamp"):
            opened = opened.timestamp()
        return max(0.0, self.breaker.reset_timeout - (time.time() - float(opened)))

    def retry_after(self) -> int:
        if self.breaker._state_storage.opened_at is None:
            return int(self.breaker.reset_timeout)
        return max(1, int(self.retry_after_seconds() + 0.999))

    def check_maintenance(self) -> None:
        now = self.library.now()
        window = self.library.maintenance_window_at(now)
        if window is not None:
            raise UpstreamMaintenance(
                f"{self.library.name} is in its maintenance window {window.start}–{window.end} "
                f"({self.library.timezone})",
                library=self.library.id,
                retry_after=window.seconds_left(now),
            )

    def call(self, fn: Callable[[], T], *, read: bool, operation: str = "call") -> T:
        """Run one upstream operation under maintenance, circuit, slot and retry rules.

        ``read=True`` only for an idempotent read: it is retried on transport failures.
        Logins and writes pass ``read=False`` and run once.  ``operation`` (the adapter
        method) labels the latency histogram."""
        observe = self.observe
        if observe is None:
            return self._call(fn, read=read)
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            return self._call(fn, read=read)
        except CircuitOpen:
            outcome = "circuit_open"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            observe(self.library.id, operation, outcome, time.perf_counter() - t0)

    def _call(self, fn: Callable[[], T], *, read: bool) -> T:
        self.check_maintenance()
        attempts = self.read_attempts if read else 1
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._once(fn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_error(self) -> CircuitOpen:
        return CircuitOpen(
            f"{self.library.name} failed repeatedly; not calling it for a while",
            library=self.library.id,
            retry_after=self.retry_after(),
        )

    def _admit(self) -> bool:
        """Whether a call may go out now (True: it is the half-open probe); CircuitOpen if not.

        Reads the breaker's state only: no lock is held once this returns."""
        state = self.breaker.state.name  # syncs with the (possibly shared) storage
        if state == pybreaker.STATE_CLOSED:
            return False
        if state == pybreaker.STATE_OPEN and self.retry_after_seconds() > 0:
            raise self._open_error()
        # open with its timeout elapsed, or half-open: exactly one probe at a time
        if not self.probe.acquire(blocking=False):
            raise self._open_error()
        return True

    def _once(self, fn: Callable[[], T]) -> T:
        probe = self._admit()
        try:
            try:
                value = self._with_slot(fn)
            except Exception as exc:
                self._record(exc)
                raise
            self._record(None)
            return value
        finally:
            if probe:
                self.probe.release()

    def _record(self, failure: Exception | None) -> None:
        """Feed one call's outcome to pybreaker's state machine (counts, trips, closes)."""

        def outcome() -> None:
            if failure is not None:
                raise failure

        try:
            self.breaker.call(outcome)
        except pybreaker.CircuitBreakerError:
            pass  # opened meanwhile by another call: this outcome came in too late to count
        except Exception as exc:
            if exc is not failure:
                raise

    def _with_slot(self, fn: Callable[[], T]) -> T:
        if not self.slots.acquire(timeout=self.library.timeout):
            raise UpstreamTimeout("too many calls waiting for this library", library=self.library.id)
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return fn()
        finally:
            with self._count_lock:
                self.in_flight -= 1
            self.slots.release()


class CircuitOpen(UpstreamUnavailable):
    """503 upstream_unavailable without calling: the circuit is open. Never retried."""


class ReadCache:
    """Per-session, per-library read cache with a short TTL; writes invalidate.

    Keys are (token_hash, library, ...).  With a shared state (Redis) each entry carries
    the generation of its (session, library) at the time it was read; a write on any
    process bumps that generation, so every process drops what it cached before."""

    def __init__(self, ttl: float, maxsize: int = 10_000, shared: Any = None) -> None:
        self.ttl = ttl
        self._cache: TTLCache[Hashable, Any] | None = TTLCache(maxsize, ttl) if ttl > 0 else None
        self._lock = threading.Lock()
        self._shared = shared if shared is not None and getattr(shared, "shared", False) else None

    def _generation(self, key: Hashable) -> tuple[int, int]:
        assert self._shared is not None and isinstance(key, tuple)
        return (self._shared.generation(f"{key[0]}"), self._shared.generation(f"{key[0]}:{key[1]}"))

    def get(self, key: Hashable) -> Any:
        if self._cache is None:
            return None
        with self._lock:
            hit = self._cache.get(key)
        if hit is None or self._shared is None:
            return hit
        generation, value = hit
        return value if generation == self._generation(key) else None

    def put(self, key: Hashable, value: Any) -> None:
        if self._cache is None:
            return
        if self._shared is not None:
            value = (self._generation(key), value)
        with self._lock:
            self._cache[key] = value

    def invalidate(self, token_hash: str, library: str | None = None) -> None:
        if self._cache is None:
            return
        if self._shared is not None:
            self._shared.bump(token_hash if library is None else f"{token_hash}:{library}")
        with self._lock:
            for key in [k for k in self._cache if isinstance(k, tuple) and k[0] == token_hash
                        and (library is None or k[1] == library)]:
                self._cache.pop(key, None)
