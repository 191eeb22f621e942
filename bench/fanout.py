"""Fan-out benchmark: one session with accounts at 10 libraries, each 200 ms away.

Writes its own configuration of 10 library entries, each served by its own winj
simulator instance with 200 ms latency per response, serves the gateway over real
HTTP on loopback, and prints, measured side by side in one run:

- GET /v1/loans wall time / one library's latency   (target ≤ 1.5)
- the same for a sequential baseline (one library after the other; ≈ 10)

Run: python bench/fanout.py [--libraries 10] [--latency 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SANDBOX, demo, gateway_config, median_time, rewire, start_sim
from fixtures.registry import serve_app
from gateway.app import create_app

TEMPLATE = "kagoshima-pref"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--libraries", type=int, default=10)
    ap.add_argument("--latency", type=int, default=200, help="ms per simulator response")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    sims = [start_sim(TEMPLATE, args.latency) for _ in range(args.libraries)]
    libs = {f"bench-{i:02d}": rewire(SANDBOX.libraries[TEMPLATE], s.port, f"bench-{i:02d}")
            for i, s in enumerate(sims, 1)}
    cfg = gateway_config(libs, fanout_deadline_seconds=10.0)
    app = create_app(cfg)
    gw_server = serve_app(app, name="gateway")
    base = gw_server.url
    card, password = demo(TEMPLATE)
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/v1/sessions", json={"accounts": [
            {"library": lib, "card_number": card, "password": password} for lib in libs]})
        r.raise_for_status()
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        c.get("/v1/loans", headers=h).raise_for_status()  # warm
        first = next(iter(libs))
        single = median_time(lambda: c.get(f"/v1/libraries/{first}/loans", headers=h).raise_for_status(),
                             args.repeat)

        def fan() -> None:
            body = c.get("/v1/loans", headers=h).json()
            assert all(s["ok"] for s in body["sources"]), body["sources"]

        fanned = median_time(fan, args.repeat)

        def sequential() -> None:
            for lib in libs:
                c.get(f"/v1/libraries/{lib}/loans", headers=h).raise_for_status()

        seq = median_time(sequential, max(1, args.repeat // 2))
    latency = args.latency / 1000
    print(f"fan-out over {args.libraries} libraries, {args.latency} ms upstream latency "
          f"(median of {args.repeat})")
    print(f"  one library, GET /v1/libraries/{{id}}/loans : {single * 1000:8.1f} ms")
    print(f"  all libraries, GET /v1/loans (fan-out)     : {fanned * 1000:8.1f} ms")
    print(f"  all libraries, one after the other         : {seq * 1000:8.1f} ms")
    print(f"  ratio fan-out / upstream latency           : {fanned / latency:6.2f}   (target ≤ 1.5)")
    print(f"  ratio fan-out / one library's call         : {fanned / single:6.2f}")
    print(f"  ratio sequential / upstream latency        : {seq / latency:6.2f}   (≈ {args.libraries})")
    gw_server.stop()
    for s in sims:
        s.stop()
    app.extensions["opacgw"].close()


if __name__ == "__main__":
    main()
