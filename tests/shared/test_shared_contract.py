"""The shared-state contract against both backends: in-process, and Redis.

"Two processes" are two state objects here (for Redis: two clients of one server, which
is all another process is to it); tests/shared/test_multiprocess.py runs real processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from core.config import LibraryConfig
from core.errors import UpstreamUnreachable
from gateway.resilience import CircuitOpen, ReadCache, UpstreamGuard
from gateway.sessions import Crypto
from gateway.shared import LocalState, RedisState
from tests.services import fresh_redis_url


@pytest.fixture(params=["local", "redis"])
def pair(request) -> Iterator[tuple[object, object]]:
    """Two views of one shared state (the same object for in-process)."""
    if request.param == "local":
        state = LocalState()
        yield state, state
        return
    for url in fresh_redis_url():
        a, b = RedisState(url), RedisState(url)
        yield a, b
        a.close()
        b.close()


def _lib(cap: int = 2) -> LibraryConfig:
    return LibraryConfig.model_validate({"id": "lib", "name": "Lib", "adapter": "fake", "timeout": 5,
                                        "base_url": "http://127.0.0.1:9/", "max_concurrency": cap})


def test_one_cap_for_all_processes(pair) -> None:
    a, b = pair
    # in one process one guard is the library's; on Redis each process has its own
    guards = [UpstreamGuard(_lib(3), failures=5, reset_seconds=1, shared=s) for s in ((a,) if a is b else (a, b))]
    now = 0
    peak = 0
    lock = threading.Lock()

    def upstream() -> str:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.1)
        with lock:
            now -= 1
        return "ok"

    threads = [threading.Thread(target=lambda g=guards[i % len(guards)]: g.call(upstream, read=True)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


def test_slot_of_a_timed_out_waiter_is_not_taken(pair) -> None:
    a, _ = pair
    slots = a.slots("lib2", 1)
    assert slots.acquire(timeout=1)
    assert not slots.acquire(timeout=0.1)
    slots.release()
    assert slots.acquire(timeout=0.1)
    slots.release()


def test_a_circuit_opened_on_one_is_open_on_the_other(pair) -> None:
    a, b = pair
    # Redis keeps opened_at in whole seconds: a reset timeout of 2 s stays open at first
    ga = UpstreamGuard(_lib(), failures=2, reset_seconds=2, shared=a)
    gb = ga if a is b else UpstreamGuard(_lib(), failures=2, reset_seconds=2, shared=b)

    def down() -> None:
        raise UpstreamUnreachable("down", library="lib")

    for _ in range(2):
        with pytest.raises(UpstreamUnreachable):
            ga.call(down, read=False)
    assert gb.state == "open"
    with pytest.raises(CircuitOpen) as exc:
        gb.call(lambda: "never", read=False)
    assert exc.value.retry_after >= 1
    time.sleep(2.1)
    assert gb.call(lambda: "probe", read=False) == "probe"
    assert ga.state == "closed" and ga.call(lambda: "back", read=False) == "back"


def test_vault_is_shared_and_expires(pair) -> None:
    a, b = pair
    crypto = Crypto(Fernet.generate_key())
    va = a.vault(crypto)
    vb = va if a is b else b.vault(crypto)
    va.put("th", "lib", "s3cret", time.time() + 60)
    assert vb.get("th", "lib") == "s3cret"
    assert vb.get("th", "other") is None
    vb.drop("th")
    assert va.get("th", "lib") is None
    va.put("th2", "lib", "pw", time.time() + 1)
    time.sleep(2.2)
    va.purge()
    assert vb.get("th2", "lib") is None


def test_vault_in_redis_holds_no_password_in_clear() -> None:
    for url in fresh_redis_url():
        state = RedisState(url)
        state.vault(Crypto(Fernet.generate_key())).put("th", "lib", "s3cret-pw", time.time() + 60)
        dump = b"".join(state.client.dump(k) or b"" for k in state.client.keys("*"))
        assert b"s3cret-pw" not in dump
        state.close()


def test_write_on_one_invalidates_the_cache_of_the_other(pair) -> None:
    a, b = pair
    ca, cb = ReadCache(30, shared=a), ReadCache(30, shared=b)
    key = ("th", "lib", "loans", "()")
    cb.put(key, ["old"])
    assert cb.get(key) == ["old"]
    ca.invalidate("th", "lib")  # the write ran on the other process
    if a is b:  # in one process the two caches are two processes' worth of memory: not shared
        assert cb.get(key) == ["old"]
    else:
        assert cb.get(key) is None
    cb.put(key, ["new"])
    ca.invalidate("th")  # logout: every library of the session
    assert (cb.get(key) is None) == (a is not b)


def test_patron_lock_excludes_across_processes(pair) -> None:
    a, b = pair
    inside = 0
    peak = 0
    guard = threading.Lock()

    def write(state) -> None:  # type: ignore[no-untyped-def]
        nonlocal inside, peak
        with state.patron_lock("lib\x000000012345"):
            with guard:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=write, args=((a, b)[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1


def test_patron_lock_name_is_never_stored_in_clear() -> None:
    for url in fresh_redis_url():
        state = RedisState(url)
        with state.patron_lock("lib\x000000012345"):
            assert not [k for k in state.client.keys("*") if b"12345" in k]
        state.close()


def test_patron_lock_lease_frees_a_crashed_holder() -> None:
    for url in fresh_redis_url():
        state = RedisState(url)
        state.lease = 0.5
        held = state.client.lock("opacgw:patron:x", timeout=0.5)
        assert held.acquire()
        from gateway.shared import _digest

        crashed = state.client.lock(f"opacgw:patron:{_digest('p')}", timeout=0.5)
        assert crashed.acquire()  # and its process dies: never released
        t0 = time.monotonic()
        with state.patron_lock("p"):
            assert time.monotonic() - t0 < 1.5
        state.close()


def test_counters_for_rate_limits(pair) -> None:
    a, b = pair
    assert a.hit("login:x", 60) == 1
    assert b.hit("login:x", 60) == 2
    b.reset("login:x")
    assert a.hit("login:x", 60) == 1
    assert a.hit("login:y", 1) == 1
    time.sleep(1.2)
    assert b.hit("login:y", 1) == 1


def test_login_throttle_counters_are_shared(pair) -> None:
    a, b = pair
    ca, clock = a.counters(60)
    cb = ca if a is b else b.counters(60)[0]
    t0 = clock()
    ca.add("login-failures:lib:h", 60)
    cb.add("login-failures:lib:h", 60)
    count, oldest = cb.recent("login-failures:lib:h", 60)
    assert count == 2 and oldest is not None and t0 - 1 <= oldest <= clock()
    assert ca.recent("login-failures:lib:other", 60) == (0, None)
    ca.add("short", 0.5)
    time.sleep(0.7)
    assert cb.recent("short", 0.5)[0] == 0
    cb.clear("login-failures:lib:h")
    assert ca.recent("login-failures:lib:h", 60) == (0, None)


def test_rate_limit_is_one_quota_for_all_processes() -> None:
    from flask import Flask

    from core.errors import RateLimited
    from gateway.app import _RateLimiter

    with Flask("t").app_context():
        for url in fresh_redis_url():
            a, b = _RateLimiter(3, url), _RateLimiter(3, url)
            assert a.check("client")["RateLimit-Remaining"] == "2"
            assert b.check("client")["RateLimit-Remaining"] == "1"
            assert a.check("client")["RateLimit-Remaining"] == "0"
            with pytest.raises(RateLimited) as exc:
                b.check("client")
            assert 1 <= exc.value.retry_after <= 60
            assert a.check("other")["RateLimit-Remaining"] == "2"  # per client
