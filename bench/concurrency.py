"""Concurrency benchmark: many patrons of one library at once, in one gateway process.

N concurrent ``GET /v1/libraries/{id}/loans`` from S sessions of one library whose
simulator answers after 300 ms, with ``max_concurrency = 4``.  The gateway must keep
four upstream requests in flight (the cap), not one: the ideal wall time is
ceil(N / 4) × one read.  Prints, measured side by side in one run:

- one read alone (the unit the ideal is built from)
- the N concurrent reads' wall time, the ideal ceil(N/4) × 300 ms and wall / ideal
  (target ≤ 1.2)
- the peak number of requests in flight at the simulator (= 4, never more)
- the same burst through the old guard, whose breaker lock was held across the call
  (pybreaker's ``CircuitBreaker.call``): the baseline this fix is measured against

Run: python bench/concurrency.py [--requests 16] [--sessions 4] [--latency 300] [--cap 4]
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SANDBOX, SimProcess, demo, gateway_config, rewire
from fixtures.registry import serve_app
from gateway.app import create_app

TEMPLATE = "kagoshima-pref"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--latency", type=int, default=300, help="ms per simulator response")
    ap.add_argument("--cap", type=int, default=4, help="the library's max_concurrency")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    sim = SimProcess(TEMPLATE, args.latency)
    lib = rewire(SANDBOX.libraries[TEMPLATE], sim.port, "bench").model_copy(
        update={"max_concurrency": args.cap, "timeout": 60})
    app = create_app(gateway_config({"bench": lib}))
    server = serve_app(app, name="gateway")
    result = measure(app, server, args, sim)
    server.stop()
    app.extensions["opacgw"].close()
    # the baseline: a lock held across each call, as pybreaker's CircuitBreaker.call did
    old_app = create_app(gateway_config({"bench": lib}))
    guard = old_app.extensions["opacgw"].guard("bench")
    lock = threading.Lock()
    slot = guard._with_slot

    def serialised(fn):  # type: ignore[no-untyped-def]
        return slot(lambda: _locked(lock, fn))

    guard._with_slot = serialised  # type: ignore[method-assign]
    old_server = serve_app(old_app, name="gateway-old")
    baseline = measure(old_app, old_server, args, sim)
    old_server.stop()
    old_app.extensions["opacgw"].close()
    sim.stop()
    report(args, result, baseline)


def _locked(lock: threading.Lock, fn):  # type: ignore[no-untyped-def]
    with lock:
        return fn()


def measure(app, server, args, sim):  # type: ignore[no-untyped-def]
    card, password = demo(TEMPLATE)
    with httpx.Client(base_url=server.url, timeout=120) as c:
        tokens = []
        for _ in range(args.sessions):
            r = c.post("/v1/sessions", json={"library": "bench", "card_number": card, "password": password})
            r.raise_for_status()
            tokens.append(r.json()["token"])
        heads = [{"Authorization": f"Bearer {t}"} for t in tokens]
        for h in heads:  # warm: every session has its upstream state
            c.get("/v1/libraries/bench/loans", headers=h).raise_for_status()
        t0 = time.perf_counter()
        c.get("/v1/libraries/bench/loans", headers=heads[0]).raise_for_status()
        single = time.perf_counter() - t0

    def burst() -> float:
        errors: list[str] = []
        barrier = threading.Barrier(args.requests)

        def one(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as cl:
                barrier.wait()
                r = cl.get("/v1/libraries/bench/loans", headers=heads[i % len(heads)])
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.requests)]
        for t in threads:
            t.start()
        t_start = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        if errors:
            raise SystemExit(f"{len(errors)} reads failed: {errors[0]}")
        return wall

    sim.counts(reset=True)
    walls = sorted(burst() for _ in range(args.repeat))
    wall = walls[len(walls) // 2]
    return single, wall, sim.counts()


def report(args, result, baseline) -> None:  # type: ignore[no-untyped-def]
    single, wall, counts = result
    ideal = max(1, math.ceil(args.requests / args.cap) * args.latency) / 1000
    print(f"{args.requests} concurrent GET /v1/libraries/{{id}}/loans from {args.sessions} sessions of one "
          f"library, {args.latency} ms upstream latency, max_concurrency = {args.cap} (median of {args.repeat})")
    print(f"  one read alone                          : {single * 1000:8.1f} ms")
    print(f"  {args.requests} concurrent reads, wall time        : {wall * 1000:8.1f} ms")
    print(f"  ideal ceil({args.requests}/{args.cap}) x {args.latency} ms               : {ideal * 1000:8.1f} ms")
    print(f"  ratio wall / ideal                      : {wall / ideal:6.2f}   (target <= 1.2)")
    print(f"  peak requests in flight at the upstream : {counts['peak']:6d}   (= {args.cap})")
    print(f"  upstream requests per read              : {counts['total'] / (args.requests * args.repeat):6.2f}")
    _, old_wall, old_counts = baseline
    print(f"  baseline, breaker lock held across calls: {old_wall * 1000:8.1f} ms, wall / ideal "
          f"{old_wall / ideal:5.2f}, peak in flight {old_counts['peak']}")
    print(f"  speed-up over the baseline              : {old_wall / wall:6.2f}x")


if __name__ == "__main__":
    main()
