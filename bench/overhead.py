"""Gateway overhead: the HTTP gateway vs the adapter called directly.

Both against the same zero-latency winj simulator, on a warm upstream session:

- median latency of GET /v1/libraries/{id}/loans through gunicorn (gthread) over HTTP,
  divided by the median latency of `adapter.loans(session)` called in-process
  (target ≤ 1.5);
- requests/s that gunicorn serves for that call with concurrent clients on this machine.

Run: python bench/overhead.py [--requests 300] [--seconds 5] [--clients 16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.registry import adapter_class
from bench._common import SANDBOX, demo, gateway_config, rewire, to_toml

TEMPLATE = "kagoshima-pref"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1,
                    help="gunicorn workers; more than 1 needs [gateway] redis_url (the gateway refuses otherwise)")
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()

    # The simulator runs in its own process, as a real upstream would, so that its CPU
    # does not compete with the measuring client for this process's GIL.
    sim_port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate", TEMPLATE, "--port", str(sim_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{sim_port}/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    lib = rewire(SANDBOX.libraries[TEMPLATE], sim_port).model_copy(update={"max_concurrency": 64})
    card, password = demo(TEMPLATE)

    adapter = adapter_class(lib.adapter)(lib)  # type: ignore[misc]
    session = adapter.login(card, password)
    adapter.loans(session)

    cfg = gateway_config({lib.id: lib})
    conf = Path(tempfile.mkdtemp(prefix="opacgw-bench-")) / "gw.toml"
    conf.write_text(to_toml(cfg), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "OPACGW_CONFIG": str(conf)}
    log_file = (conf.parent / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "gateway.wsgi:app", "--worker-class", "gthread",
         "--workers", str(args.workers), "--threads", str(args.threads), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        # The gateway's log lines go to a file: a pipe nobody reads fills up after a few
        # hundred requests' JSON lines and then blocks every worker that logs.
        env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/v1/sessions", json={"library": lib.id, "card_number": card, "password": password})
            r.raise_for_status()
            h = {"Authorization": f"Bearer {r.json()['token']}"}
            path = f"/v1/libraries/{lib.id}/loans"
            # A lean keep-alive client (the stdlib's), so that the client's own cost is not
            # counted as the gateway's; direct and through calls alternate, so that the
            # machine's load changes hit both sides alike.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            def through_once() -> None:
                conn.request("GET", path, headers=h)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, resp.status

            for _ in range(20):
                through_once()
            d_times, t_times = [], []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                adapter.loans(session)
                d_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                through_once()
                t_times.append(time.perf_counter() - t0)
            direct, through = statistics.median(d_times), statistics.median(t_times)
            conn.close()

        count = [0] * args.clients
        errors = [0] * args.clients
        stop = time.perf_counter() + args.seconds

        def load(i: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as cl:
                while time.perf_counter() < stop:
                    if cl.get(path, headers=h).status_code == 200:
                        count[i] += 1
                    else:
                        errors[i] += 1

        t0 = time.perf_counter()
        threads = [threading.Thread(target=load, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        sim.terminate()
        sim.wait(timeout=10)
    rps = sum(count) / elapsed
    print(f"gateway overhead, GET /v1/libraries/{lib.id}/loans on a warm session, zero-latency simulator")
    print(f"  adapter called directly (median of {args.requests})   : {direct * 1000:7.2f} ms")
    print(f"  through gunicorn gthread over HTTP (median)       : {through * 1000:7.2f} ms")
    print(f"  ratio gateway / direct                            : {through / direct:7.2f}   (target ≤ 1.5)")
    print(f"  throughput, {args.clients} clients, gunicorn {args.workers} workers × {args.threads} threads: "
          f"{rps:7.1f} requests/s ({sum(errors)} errors, {os.cpu_count()} cores, simulator and clients "
          "on the same machine)")


if __name__ == "__main__":
    main()
