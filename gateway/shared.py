"""State that several gateway processes must share: in this process, or in Redis.

Without ``redis_url`` (``OPACGW_REDIS_URL``) everything stays in this process, as the
embedded single-process gateway always had it.  With it, every process on every host
sees one copy of:

- the credential vault (passwords for transparent re-login): Fernet-encrypted under
  the gateway's key, expiring with the session (``EXPIREAT``);
- per-patron write locks, with a lease (a crashed process holds a patron for at most
  the lease; ``redis-py``'s ``Lock``);
- each library's concurrency cap: one semaphore across all processes (a sorted set of
  leased slots, taken and freed by small Lua scripts, so a crashed holder's slot
  comes back when its lease ends);
- the circuit breakers' state (pybreaker's ``CircuitRedisStorage``) and the lock of
  the single half-open probe;
- the read cache's invalidation: each (session, library) has a generation number in
  Redis; a write on any process bumps it, and every process drops entries of an
  older generation (the cached answers themselves stay in each process's memory,
  nothing is unpickled from the network);
- counters: fixed-window ``hit`` for rate limits, and the sliding-window ``Counters`` of
  the login throttling (#16, ``gateway.throttle``) through ``counters()``.

Idempotency keys need no Redis: their row in the (shared) database is the in-flight
lock, claimed race-free by ``INSERT ... ON CONFLICT DO NOTHING`` with a lease.

Names in Redis never hold a secret: card numbers and tokens only as keyed hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from cryptography.fernet import InvalidToken

PREFIX = "opacgw:"


class RedisUnavailable(Exception):
    """Redis cannot be reached; the message names the host, never the password."""


class Slots(Protocol):
    """A library's concurrency cap."""

    def acquire(self, timeout: float) -> bool: ...
    def release(self) -> None: ...


class ProbeLock(Protocol):
    def acquire(self, blocking: bool = False) -> bool: ...
    def release(self) -> None: ...


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------- in process
class LocalState:
    """One process: threading primitives and dicts (the embedded default)."""

    shared = False

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def slots(self, library: str, limit: int) -> Slots:
        return threading.BoundedSemaphore(limit)

    def probe_lock(self, library: str, lease: float) -> ProbeLock:
        return threading.Lock()

    def breaker_storage(self, library: str) -> Any:
        return None  # pybreaker's own memory storage

    @contextlib.contextmanager
    def patron_lock(self, name: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield

    def generation(self, scope: str) -> int:
        return 0

    def bump(self, scope: str) -> None:
        pass

    def hit(self, key: str, window: float) -> int:
        """Count one event under ``key`` in a fixed window; the count so far."""
        now = time.monotonic()
        with self._guard:
            count, start = self._counts.get(key, (0, now))
            if now - start >= window:
                count, start = 0, now
            self._counts[key] = (count + 1, start)
            return count + 1

    def reset(self, key: str) -> None:
        with self._guard:
            self._counts.pop(key, None)

    def counters(self, max_window: float) -> tuple[Any, Any]:
        """Sliding-window counters (``gateway.throttle.Counters``) and the clock they count in."""
        from gateway.throttle import MemoryCounters

        return MemoryCounters(max_window), time.monotonic

    def vault(self, crypto: Any) -> Any:
        from gateway.sessions import CredentialVault

        return CredentialVault(crypto)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- Redis
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisSlots:
    """A counting semaphore across processes: members of a sorted set scored by lease end."""

    POLL = 0.02

    def __init__(self, client: Any, library: str, limit: int, lease: float) -> None:
        self.client = client
        self.key = f"{PREFIX}slots:{library}"
        self.wake = f"{PREFIX}slots-wake:{library}"
        self.limit = limit
        self.lease = lease
        self._acquire = client.register_script(_ACQUIRE)
        self._mine = threading.local()

    def acquire(self, timeout: float) -> bool:
        member = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = self.POLL
        while True:
            now = time.time()
            if self._acquire(keys=[self.key], args=[now, self.limit, now + self.lease, member,
                                                     int(self.lease * 1000) + 1000]):
                stack = getattr(self._mine, "stack", None)
                if stack is None:
                    stack = self._mine.stack = []
                stack.append(member)
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # wait for a release (a token on the wake list), or re-check after a while:
            # a holder that crashed frees its slot only when its lease ends
            self.client.blpop([self.wake], timeout=max(0.01, min(left, delay)))
            delay = min(delay * 2, 0.2)

    def release(self) -> None:
        with self.client.pipeline() as pipe:
            pipe.zrem(self.key, self._mine.stack.pop())
            pipe.lpush(self.wake, 1)
            pipe.ltrim(self.wake, 0, self.limit - 1)
            pipe.pexpire(self.wake, int(self.lease * 1000))
            pipe.execute()


class RedisProbeLock:
    """The one half-open probe across processes: SET NX with a lease."""

    def __init__(self, client: Any, library: str, lease: float) -> None:
        self.client = client
        self.key = f"{PREFIX}probe:{library}"
        self.lease_ms = int(lease * 1000)
        self._token = threading.local()

    def acquire(self, blocking: bool = False) -> bool:
        token = uuid.uuid4().hex
        if self.client.set(self.key, token, nx=True, px=self.lease_ms):
            self._token.value = token
            return True
        return False

    _RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

    def release(self) -> None:
        self.client.eval(self._RELEASE, 1, self.key, getattr(self._token, "value", ""))


class RedisVault:
    """Passwords for re-login, encrypted, in one Redis hash per session, expiring with it."""

    def __init__(self, client: Any, crypto: Any) -> None:
        self.client = client
        self._crypto = crypto

    @staticmethod
    def _key(token_hash: str) -> str:
        return f"{PREFIX}vault:{token_hash}"

    def put(self, token_hash: str, library: str, password: str, expires: float) -> None:
        key = self._key(token_hash)
        with self.client.pipeline() as pipe:
            pipe.hset(key, library, self._crypto.fernet.encrypt(password.encode()))
            pipe.expireat(key, int(expires) + 1)
            pipe.execute()

    def get(self, token_hash: str, library: str) -> str | None:
        token = self.client.hget(self._key(token_hash), library)
        if token is None:
            return None
        try:
            return str(self._crypto.fernet.decrypt(token).decode())
        except InvalidToken:
            return None

    def extend(self, token_hash: str, expires: float) -> None:
        self.client.expireat(self._key(token_hash), int(expires) + 1)

    def drop(self, token_hash: str) -> None:
        self.client.delete(self._key(token_hash))

    def purge(self) -> None:
        pass  # Redis expires the keys itself


class RedisCounters:
    """``gateway.throttle.Counters`` in Redis: one sorted set of event times per key (wall
    clock, so that every process and host counts alike)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _key(key: str) -> str:
        return f"{PREFIX}events:{_digest(key)}"

    def add(self, key: str, window: float) -> None:
        now = time.time()
        k = self._key(key)
        with self.client.pipeline() as pipe:
            pipe.zadd(k, {uuid.uuid4().hex: now})
            pipe.zremrangebyscore(k, "-inf", now - window)
            pipe.expire(k, max(1, int(window) + 1))
            pipe.execute()

    def recent(self, key: str, window: float) -> tuple[int, float | None]:
        now = time.time()
        k = self._key(key)
        with self.client.pipeline() as pipe:
            pipe.zremrangebyscore(k, "-inf", now - window)
            pipe.zcard(k)
            pipe.zrange(k, 0, 0, withscores=True)
            _, count, oldest = pipe.execute()
        return int(count), (float(oldest[0][1]) if oldest else None)

    def clear(self, key: str) -> None:
        self.client.delete(self._key(key))


class RedisState:
    """Everything of ``LocalState``, shared through one Redis."""

    shared = True

    def __init__(self, url: str, *, lease: float = 60.0) -> None:
        import redis

        self.where = describe_redis(url)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30,
                                           health_check_interval=30)
        try:
            self.client.ping()
        except redis.RedisError:
            self.client.close()
            raise RedisUnavailable(f"cannot connect to Redis at {self.where}") from None
        self.lease = lease

    def slots(self, library: str, limit: int) -> Slots:
        return RedisSlots(self.client, library, limit, self.lease)

    def probe_lock(self, library: str, lease: float) -> ProbeLock:
        return RedisProbeLock(self.client, library, max(lease, 1.0))

    def breaker_storage(self, library: str) -> Any:
        import pybreaker

        return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, self.client,
                                             namespace=f"{PREFIX}breaker:{library}")

    @contextlib.contextmanager
    def patron_lock(self, name: str) -> Iterator[None]:
        lock = self.client.lock(f"{PREFIX}patron:{_digest(name)}", timeout=self.lease, sleep=0.01,
                                blocking_timeout=self.lease * 2)
        if not lock.acquire():
            from core.errors import Conflict

            raise Conflict("another write of this patron is still running; try again", retry_after=1)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # the lease ran out: someone else holds it now
                lock.release()

    def generation(self, scope: str) -> int:
        value = self.client.get(f"{PREFIX}gen:{scope}")
        return int(value) if value else 0

    def bump(self, scope: str) -> None:
        key = f"{PREFIX}gen:{scope}"
        with self.client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 24 * 3600)
            pipe.execute()

    def hit(self, key: str, window: float) -> int:
        k = f"{PREFIX}hits:{key}"
        with self.client.pipeline() as pipe:
            pipe.incr(k)
            pipe.expire(k, max(1, int(window)), nx=True)
            count, _ = pipe.execute()
        return int(count)

    def reset(self, key: str) -> None:
        self.client.delete(f"{PREFIX}hits:{key}")

    def counters(self, max_window: float) -> tuple[RedisCounters, Any]:
        return RedisCounters(self.client), time.time

    def vault(self, crypto: Any) -> RedisVault:
        return RedisVault(self.client, crypto)

    def close(self) -> None:
        self.client.close()


def describe_redis(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path or ''}"


def open_shared(url: str | None) -> LocalState | RedisState:
    return RedisState(url) if url else LocalState()
