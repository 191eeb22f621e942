"""Login throttling: a failure budget per (library, card) and a login budget per client.

Both answer 429 ``rate_limited`` with ``Retry-After`` **without calling the library**:

- per card: after ``login_failures_per_card`` rejected passwords (``invalid_credentials``)
  for one card at one library within ``login_failure_window_seconds``, further logins
  for that card are refused until the oldest failure leaves the window.  Kumamoto's
  initial passwords are MMDD birthdays (366 values) and libraries lock a card after a
  few failures: without this the gateway would be a brute-force tool and a way to lock
  a patron out.  A successful login clears the card's failures.  Cards are keyed by
  their keyed hash (``Crypto.card_hash``), never the number.
- per client: at most ``logins_per_client_per_minute`` login attempts a minute per
  client (its API key, or its address when no keys are configured).

The counts live behind ``Counters`` (a sliding window of event times per key).
``MemoryCounters`` keeps them in this process; a shared implementation (e.g. Redis,
for several gateway processes) only has to provide the same three methods.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache

from core.errors import RateLimited


class Counters(Protocol):
    """Sliding-window event counters by key."""

    def add(self, key: str, window: float) -> None:
        """Record one event for ``key`` (kept for ``window`` seconds)."""

    def recent(self, key: str, window: float) -> tuple[int, float | None]:
        """(events of ``key`` within the last ``window`` seconds, time of the oldest of them)."""

    def clear(self, key: str) -> None:
        """Forget every event of ``key``."""


class MemoryCounters:
    """``Counters`` in this process; keys idle longer than ``max_window`` are dropped."""

    def __init__(self, max_window: float, maxsize: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._events: TTLCache[str, deque[float]] = TTLCache(maxsize, max_window, timer=clock)
        self._clock = clock
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def add(self, key: str, window: float) -> None:
        now = self._clock()
        with self._lock:
            q = self._events.get(key)
            if q is None:
                q = deque()
            q.append(now)
            while q and q[0] <= now - window:
                q.popleft()
            self._events[key] = q  # re-inserting restarts the key's idle time

    def recent(self, key: str, window: float) -> tuple[int, float | None]:
        now = self._clock()
        with self._lock:
            q = self._events.get(key)
            if not q:
                return 0, None
            while q and q[0] <= now - window:
                q.popleft()
            return len(q), (q[0] if q else None)

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)


class LoginThrottle:
    def __init__(self, counters: Counters, *, failures_per_card: int | None, failure_window: float,
                 logins_per_client_per_minute: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counters = counters
        self.failures_per_card = failures_per_card
        self.failure_window = failure_window
        self.per_client = logins_per_client_per_minute
        self._clock = clock
        self._card_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_lock = threading.Lock()

    def _retry_after(self, oldest: float | None, window: float) -> int:
        if oldest is None:
            return int(window)
        return max(1, int(oldest + window - self._clock() + 0.999))

    # ------------------------------------------------------------ per card
    @staticmethod
    def _card_key(library: str, card_hash: str) -> str:
        return f"login-failures:{library}:{card_hash}"

    def card_lock(self, library: str, card_hash: str) -> threading.Lock:
        """One login at a time per card in this process: 30 parallel guesses cannot all pass
        the check before the first failure is counted."""
        key = self._card_key(library, card_hash)
        with self._locks_lock:
            lock = self._card_locks.get(key)
            if lock is None:
                lock = threading.Lock()
                self._card_locks[key] = lock
            return lock

    def check_card(self, library: str, card_hash: str) -> None:
        """429 before calling the library when the card spent its failure budget."""
        if self.failures_per_card is None:
            return
        n, oldest = self.counters.recent(self._card_key(library, card_hash), self.failure_window)
        if n >= self.failures_per_card:
            raise RateLimited(
                f"too many failed logins for this card; try again later "
                f"(at most {self.failures_per_card} in {self.failure_window / 60:g} minutes)",
                library=library, retry_after=self._retry_after(oldest, self.failure_window),
            )

    def card_failed(self, library: str, card_hash: str) -> None:
        if self.failures_per_card is not None:
            self.counters.add(self._card_key(library, card_hash), self.failure_window)

    def card_succeeded(self, library: str, card_hash: str) -> None:
        if self.failures_per_card is not None:
            self.counters.clear(self._card_key(library, card_hash))

    # ------------------------------------------------------------ per client
    def check_client(self, client: str) -> None:
        """Count one login attempt of ``client``; 429 beyond its budget a minute."""
        if self.per_client is None:
            return
        key = f"logins:{client}"
        n, oldest = self.counters.recent(key, 60.0)
        if n >= self.per_client:
            raise RateLimited(f"more than {self.per_client} logins a minute from this client",
                              retry_after=self._retry_after(oldest, 60.0))
        self.counters.add(key, 60.0)
