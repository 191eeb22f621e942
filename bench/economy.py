"""Upstream economy: upstream HTTP requests per API call with a warm session.

For every sandbox library, logs in once, then counts the upstream HTTP requests the
adapter makes for one API call of each read operation it offers (the read cache off,
so every call reaches the library). Target: loans, holds, profile = 1.

Run: python bench/economy.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from fixtures.registry import demo_accounts, simulators
from gateway.app import create_app

OPS = [("loans", "/loans"), ("holds", "/holds"), ("profile", "/patron"), ("cart", "/cart"),
       ("history", "/history"), ("messages", "/messages"), ("shelves", "/shelves")]
TARGET = {"loans": 1, "holds": 1, "profile": 1}


def main() -> None:
    os.environ["OPACGW_SIM_NO_MAINTENANCE"] = "1"
    sims, demos = simulators(), demo_accounts()
    rows = []
    for library in SANDBOX.libraries:
        if library not in sims or not demos.get(library):
            continue
        sim = start_sim(library)
        lib = rewire(SANDBOX.libraries[library], sim.port)
        app = create_app(gateway_config({library: lib}))
        c = app.test_client()
        card, password = demo(library)
        r = c.post("/v1/sessions", json={"library": library, "card_number": card, "password": password})
        if r.status_code != 201:
            print(f"{library}: login failed: {r.get_json()}")
            continue
        h = {"Authorization": f"Bearer {r.get_json()['token']}"}
        adapter = app.extensions["opacgw"].adapter(library)
        caps = set(c.get(f"/v1/libraries/{library}").get_json()["capabilities"])
        row = {"library": library}
        for cap, path in OPS:
            if cap not in caps:
                continue
            c.get(f"/v1/libraries/{library}{path}", headers=h)  # warm
            before = adapter.request_count
            resp = c.get(f"/v1/libraries/{library}{path}", headers=h)
            row[cap] = adapter.request_count - before if resp.status_code == 200 else f"E{resp.status_code}"
        rows.append(row)
        app.extensions["opacgw"].close()
        sim.stop()
    names = [cap for cap, _ in OPS]
    print("upstream HTTP requests per API call, warm session (target: loans, holds, profile = 1)")
    print(f"  {'library':<16}" + "".join(f"{n:>10}" for n in names))
    worst = {}
    for row in rows:
        print(f"  {row['library']:<16}" + "".join(f"{row.get(n, '-')!s:>10}" for n in names))
        for n, t in TARGET.items():
            if isinstance(row.get(n), int):
                worst[n] = max(worst.get(n, 0), row[n])
    print("  worst case: " + ", ".join(f"{n} = {v} (target {TARGET[n]})" for n, v in worst.items()))


if __name__ == "__main__":
    main()
