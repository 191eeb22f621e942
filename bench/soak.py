"""Soak: 10,000 mixed requests from 16 clients against `opacgw serve` and against gunicorn.

The simulators (winj, wo, soap, ncip) run in processes of their own; the gateway runs as
`opacgw serve --config FILE` (the threaded development server) and then as gunicorn
(gthread), each in a process of its own, so its memory and descriptors are its own.
Each client logs in to all four libraries, then sends a mix of reads (one library's loans
and holds, the fan-out /v1/loans, the session, the library list and one library, a
catalogue search), deliberately bad requests (an unknown library, a body with NUL, a
malformed token: their documented 4xx are expected answers, not errors), and now and
then logs out and in again.  Printed per server: answers by status and code, errors (any
answer not expected for its request), p50/p95/p99 latency, requests/s, and the server's
RSS and open descriptors at the start, every 2,000 requests and at the end.

Run: python bench/soak.py [--requests 10000] [--clients 16]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SANDBOX, demo, gateway_config, rewire, to_toml

LIBRARIES = ["kumamoto-city", "yamaguchi-pref", "soap-demo", "ncip-consortium"]
SEARCHABLE = ["kumamoto-city", "yamaguchi-pref"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[Any]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process ended ({proc.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def pids_of(proc: subprocess.Popen[Any]) -> list[int]:
    """The process and its children (gunicorn's workers)."""
    pids = [proc.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == proc.pid:
                pids.append(int(entry.name))
    return pids


def rss_and_fds(proc: subprocess.Popen[Any]) -> tuple[float, int]:
    rss_kb, fds = 0, 0
    for pid in pids_of(proc):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return rss_kb / 1024, fds


class Client(threading.Thread):
    def __init__(self, base: str, n: int, run: Soak) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.n = n
        self.run_ = run
        self.rng = random.Random(n)

    def login(self, c: httpx.Client) -> dict[str, str]:
        accounts = [dict(zip(("library", "card_number", "password"), (lib, *demo(lib)))) for lib in LIBRARIES]
        r = self.timed(c, "login", "POST", "/v1/sessions", {201}, json={"accounts": accounts})
        token = r.json()["token"] if r is not None and r.status_code == 201 else "none"
        return {"Authorization": f"Bearer {token}"}

    def timed(self, c: httpx.Client, kind: str, method: str, path: str, ok: set[int],
              **kw: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = c.request(method, path, **kw)
            status = r.status_code
            code = ""
            if status >= 400 and "json" in r.headers.get("content-type", ""):
                code = r.json().get("code", "")
        except httpx.HTTPError as exc:
            r, status, code = None, 0, type(exc).__name__
        self.run_.record(kind, status, code, time.perf_counter() - t0, status in ok)
        return r

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as c:
            h = self.login(c)
            while self.run_.take():
                lib = self.rng.choice(LIBRARIES)
                roll = self.rng.random()
                if roll < 0.25:
                    self.timed(c, "loans", "GET", f"/v1/libraries/{lib}/loans", {200}, headers=h)
                elif roll < 0.40:
                    self.timed(c, "holds", "GET", f"/v1/libraries/{lib}/holds", {200}, headers=h)
                elif roll < 0.50:
                    self.timed(c, "fan-out", "GET", "/v1/loans", {200}, headers=h)
                elif roll < 0.58:
                    self.timed(c, "session", "GET", "/v1/sessions/current", {200}, headers=h)
                elif roll < 0.68:
                    self.timed(c, "libraries", "GET", "/v1/libraries", {200})
                elif roll < 0.74:
                    self.timed(c, "library", "GET", f"/v1/libraries/{lib}", {200})
                elif roll < 0.82:
                    where = self.rng.choice(SEARCHABLE)
                    self.timed(c, "search", "GET", f"/v1/libraries/{where}/records",
                               {200}, params={"title": self.rng.choice(["の", "猫", "こころ"])})
                elif roll < 0.86:
                    self.timed(c, "bad:404", "GET", "/v1/libraries/no-such-library", {404})
                elif roll < 0.90:
                    self.timed(c, "bad:nul", "POST", "/v1/sessions", {400},
                               json={"library": lib, "card_number": "1", "password": "a\x00b"})
                elif roll < 0.94:
                    self.timed(c, "bad:token", "GET", "/v1/loans", {401},
                               headers={"Authorization": "Bearer not-a-token"})
                elif roll < 0.97:
                    self.timed(c, "healthz", "GET", "/healthz", {200})
                else:
                    self.timed(c, "logout", "DELETE", "/v1/sessions/current", {204}, headers=h)
                    h = self.login(c)


class Soak:
    def __init__(self, total: int, proc: subprocess.Popen[Any], every: int) -> None:
        self.total = total
        self.proc = proc
        self.every = every
        self.issued = 0
        self.done = 0
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.answers: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.samples: list[tuple[int, float, int]] = []

    def take(self) -> bool:
        with self.lock:
            if self.issued >= self.total:
                return False
            self.issued += 1
            return True

    def record(self, kind: str, status: int, code: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.done += 1
            self.latencies.append(seconds)
            self.answers[f"{status} {code}".strip()] += 1
            if not ok:
                self.errors[f"{kind} → {status} {code}".strip()] += 1
            if self.done % self.every == 0:
                self.samples.append((self.done, *rss_and_fds(self.proc)))


def soak(name: str, base: str, proc: subprocess.Popen[Any], args: argparse.Namespace) -> None:
    wait_up(base + "/healthz", proc)
    run = Soak(args.requests, proc, 2000)
    run.samples.append((0, *rss_and_fds(proc)))
    clients = [Client(base, i, run) for i in range(args.clients)]
    t0 = time.perf_counter()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.perf_counter() - t0
    time.sleep(1.0)
    run.samples.append((-1, *rss_and_fds(proc)))
    q = statistics.quantiles(run.latencies, n=100)
    print(f"\n== {name}: {run.done} requests ({run.total} mixed + logins) from {args.clients} clients "
          f"in {elapsed:.1f} s = {run.done / elapsed:.0f} req/s")
    print(f"latency p50 {q[49] * 1000:.1f} ms   p95 {q[94] * 1000:.1f} ms   p99 {q[98] * 1000:.1f} ms")
    print("answers: " + ", ".join(f"{k} ×{v}" for k, v in sorted(run.answers.items())))
    total_errors = sum(run.errors.values())
    print(f"errors: {total_errors}" + ("" if not total_errors else " — " + ", ".join(
        f"{k} ×{v}" for k, v in run.errors.most_common())))
    print("server RSS and open descriptors:")
    for done, rss, fds in run.samples:
        label = "start" if done == 0 else "end (1 s after)" if done < 0 else f"after {done}"
        print(f"  {label:>16}: RSS {rss:7.1f} MiB   fds {fds}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--servers", default="serve,gunicorn")
    args = ap.parse_args()

    env = {**os.environ, "OPACGW_SIM_NO_MAINTENANCE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    sims, libs, ports = [], {}, []
    for lib in LIBRARIES:
        port = free_port()
        ports.append(port)
        sims.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate", lib, "--port", str(port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        libs[lib] = rewire(SANDBOX.libraries[lib], port).model_copy(update={"max_concurrency": 16})
    try:
        for proc, port in zip(sims, ports):
            wait_up(f"http://127.0.0.1:{port}/", proc)
        for server in args.servers.split(","):
            cfg = gateway_config(libs, read_cache_seconds=0, logins_per_client_per_minute=0,
                                 login_failures_per_card=0)
            conf = Path(tempfile.mkdtemp(prefix="opacgw-soak-")) / "gw.toml"
            conf.write_text(to_toml(cfg), encoding="utf-8")
            port = free_port()
            if server == "serve":
                cmd = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(conf), "--port", str(port)]
                name = "opacgw serve (werkzeug, threaded)"
            else:
                cmd = [sys.executable, "-m", "gunicorn", "gateway.wsgi:app", "--worker-class", "gthread",
                       "--workers", "1", "--threads", "32", "--bind", f"127.0.0.1:{port}", "--log-level",
                       "warning"]
                name = "gunicorn (gthread, 1 worker, 32 threads)"
            proc = subprocess.Popen(cmd, env={**env, "OPACGW_CONFIG": str(conf)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                soak(name, f"http://127.0.0.1:{port}", proc, args)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    finally:
        for proc in sims:
            proc.terminate()
        for proc in sims:
            proc.wait(10)


if __name__ == "__main__":
    main()
