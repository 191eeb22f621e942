"""e-Net lending requests through the gateway: upstream requests and latency per API call.

Starts the wo simulator (山口県立山口図書館) on loopback, serves the gateway in process
(Flask test client, read cache off), logs in as the demo patron and times each
lending-request call; upstream requests are counted on the adapter.

Run: python bench/wo_lending.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import SANDBOX, gateway_config, rewire, start_sim
from gateway.app import create_app

LIB = "yamaguchi-pref"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    sim = start_sim(LIB)
    cfg = gateway_config({LIB: rewire(SANDBOX.libraries[LIB], sim.port)})
    cfg = cfg.model_copy(update={"consortia": {k: c for k, c in SANDBOX.consortia.items()
                                               if LIB in c.supplying_libraries}})
    app = create_app(cfg)
    c = app.test_client()
    adapter = app.extensions["opacgw"].adapter(LIB)
    rows: dict[str, list[tuple[int, float]]] = {}

    def call(name: str, fn, *a, **kw):  # type: ignore[no-untyped-def]
        before, t0 = adapter.request_count, time.perf_counter()
        resp = fn(*a, **kw)
        rows.setdefault(name, []).append((adapter.request_count - before, (time.perf_counter() - t0) * 1000))
        return resp

    for _ in range(args.rounds):
        httpx.post(sim.url + "/wo/_admin/reset").raise_for_status()
        r = c.post("/v1/sessions", json={"library": LIB, "card_number": "1000000002", "password": "Suou-Hanako2026"})
        h = {"Authorization": f"Bearer {r.get_json()['token']}"}
        body = {"supplying_library": LIB, "record_id": "1000000002", "pickup_library": "hofu"}
        created = call("POST /v1/lending-requests", c.post, "/v1/lending-requests", json=body, headers=h)
        rid = created.get_json()["id"]
        call("GET /v1/lending-requests", c.get, "/v1/lending-requests", headers=h)
        call("GET /v1/lending-requests/{id}", c.get, f"/v1/lending-requests/{rid}", headers=h)
        call("DELETE /v1/lending-requests/{id}", c.delete, f"/v1/lending-requests/{rid}", headers=h)
    print(f"e-Net lending through the gateway, {args.rounds} rounds (warm session, read cache off)")
    print(f"  {'call':<36}{'upstream req':>14}{'median ms':>12}{'p95 ms':>10}")
    for name, samples in rows.items():
        ms = sorted(s[1] for s in samples)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        print(f"  {name:<36}{samples[0][0]:>14}{statistics.median(ms):>12.1f}{p95:>10.1f}")
    app.extensions["opacgw"].close()
    sim.stop()


if __name__ == "__main__":
    main()
