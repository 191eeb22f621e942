"""Watched accounts under load: 500 subscriptions over the sandbox libraries.

Prints, measured in one run:
- the most account polls any library saw in a minute (sliding window, sampled twice a
  second from the store's poll log), beside its max_polls_per_minute budget;
- the time from a scenario change (hold_ready at each library) to its signed webhook
  arriving at a local receiver, median and p95 over every subscription it concerns;
- how many snapshot pairs a second the differ compares (pure, 20 loans + 10 holds each).

    PYTHONPATH=. python3 bench/watch.py [--accounts 500] [--seconds 120] [--interval 5] [--budget 300]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask, request

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SANDBOX, rewire, start_sim  # noqa: E402
from core.models import Hold, Loan  # noqa: E402
from fixtures.registry import serve_app  # noqa: E402
from fixtures.scenario import apply  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.watch.differ import Snapshot, diff  # noqa: E402
from gateway.watch.worker import Watcher  # noqa: E402

ACCOUNTS = {"kagoshima-pref": ("8000000001", "19800101"), "yamaguchi-pref": ("1000000002", "Suou-Hanako2026"),
            "ncip-consortium": ("00052", "ncip-pass"), "soap-demo": ("2000000001", "soap-pass"),
            "soap-kita": ("3100000002", "kita-pass")}


def differ_rate(seconds: float = 2.0) -> float:
    today = date(2026, 12, 4)

    def snap(shift: int) -> Snapshot:
        loans = [Loan(id=f"L{i}", library="x", record_id=f"R{i}", title="t", due_on=today + timedelta(days=i + shift),
                      overdue=False, renewable=i % 3 != 0) for i in range(20)]
        holds = [Hold(id=f"H{i}", library="x", record_id=f"Q{i}", title="t", status="waiting" if shift else "ready",
                      position=i + 1 + shift) for i in range(10)]
        return Snapshot(loans=loans, holds=holds)

    a, b = snap(0), snap(1)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        diff(a, b, today)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--budget", type=int, default=300)
    args = ap.parse_args()

    sims = {lib: start_sim(lib) for lib in ACCOUNTS}
    tmp = Path(tempfile.mkdtemp(prefix="opacgw-watch-"))
    libraries = {lib: rewire(SANDBOX.libraries[lib], sims[lib].port).model_copy(
        update={"poll_interval": args.interval, "max_polls_per_minute": args.budget}) for lib in ACCOUNTS}
    settings = SANDBOX.gateway.model_copy(update={"database": str(tmp / "w.sqlite3"), "worker": False})
    cfg = SANDBOX.model_copy(update={"libraries": libraries, "gateway": settings})
    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    gw = app.extensions["opacgw"]
    client = app.test_client()

    arrivals: dict[str, float] = {}
    lock = threading.Lock()
    recv = Flask("receiver")

    @recv.post("/hook")
    def hook() -> tuple[str, int]:
        ev = request.get_json()
        if ev["type"] == "hold.ready":
            with lock:
                arrivals.setdefault(ev["subscription_id"], time.monotonic())
        return "", 204

    receiver = serve_app(recv, name="receiver")
    url = f"http://127.0.0.1:{receiver.port}/hook"
    subs: dict[str, list[str]] = {lib: [] for lib in ACCOUNTS}
    tokens = {}
    for lib, (card, password) in ACCOUNTS.items():
        r = client.post("/v1/sessions", json={"library": lib, "card_number": card, "password": password})
        assert r.status_code == 201, r.get_json()
        tokens[lib] = {"Authorization": f"Bearer {r.get_json()['token']}"}
    libs = list(ACCOUNTS)
    for i in range(args.accounts):
        lib = libs[i % len(libs)]
        r = client.post("/v1/subscriptions", headers=tokens[lib],
                        json={"consent": True, "webhook_url": url, "events": ["hold.ready"]})
        assert r.status_code == 201, r.get_json()
        subs[lib].append(r.get_json()["id"])
    waiting = {}
    for lib in libs:
        holds = client.get(f"/v1/libraries/{lib}/holds", headers=tokens[lib]).get_json()["holds"]
        waiting[lib] = next(h["id"] for h in holds if h["status"] != "ready")

    watcher = Watcher(gw)
    stop = threading.Event()
    worker = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    peak: dict[str, int] = {lib: 0 for lib in libs}

    def sample() -> None:
        conn = sqlite3.connect(settings.database)
        while not stop.is_set():
            now = time.time()
            for lib, n in conn.execute("SELECT library, COUNT(*) FROM watch_polls WHERE at > ? GROUP BY library",
                                       (now - 60,)):
                peak[lib] = max(peak[lib], n)
            stop.wait(0.5)
        conn.close()

    sampler = threading.Thread(target=sample, daemon=True)
    t_start = time.monotonic()
    worker.start()
    sampler.start()
    # every account's baseline snapshot first, then the change
    def baselined() -> int:
        with sqlite3.connect(settings.database) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM watch_accounts WHERE snapshot IS NOT NULL").fetchone()[0])

    while baselined() < args.accounts and time.monotonic() - t_start < args.seconds / 2:
        time.sleep(0.5)
    changed_at = time.monotonic()
    for lib in libs:
        apply(sims[lib].server.app, {"action": "hold_ready", "hold_id": waiting[lib]})
    while time.monotonic() - t_start < args.seconds and len(arrivals) < args.accounts:
        time.sleep(0.5)
    stop.set()
    worker.join(timeout=30)
    sampler.join(timeout=5)
    lat = sorted(t - changed_at for t in arrivals.values())
    print(f"watched accounts: {args.accounts} over {len(libs)} libraries; poll_interval {args.interval:g} s; "
          f"ran {time.monotonic() - t_start:.0f} s; {watcher.polls} polls, {watcher.snapshots} snapshots")
    print("most polls in any minute, per library (budget max_polls_per_minute):")
    for lib in libs:
        flag = "ok" if peak[lib] <= args.budget else "OVER BUDGET"
        print(f"  {lib:<16} {peak[lib]:>5} / {args.budget}  {flag}")
    print(f"  highest: {max(peak.values())} (budget {args.budget})")
    if lat:
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        print(f"hold_ready -> hold.ready webhook: {len(lat)} of {args.accounts} arrived; "
              f"median {statistics.median(lat):.1f} s, p95 {p95:.1f} s")
    else:
        print("hold_ready -> hold.ready webhook: none arrived")
    print(f"differ: {differ_rate():,.0f} snapshot pairs/second (20 loans + 10 holds each, one core)")
    gw.close()
    receiver.stop()
    for s in sims.values():
        s.stop()


if __name__ == "__main__":
    main()
