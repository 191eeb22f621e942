"""Scale-out benchmark: 1, 2 and 4 gateway processes on one PostgreSQL + Redis.

L libraries, each a winj simulator in its own process answering after 200 ms, each with
``max_concurrency = 4``.  For every process count P, P ``opacgw serve --config FILE
--port N`` processes share one PostgreSQL database (a fresh schema each round) and one
Redis; C client threads send warm ``GET /v1/libraries/{id}/loans`` (sessions logged in
beforehand, read cache off: every request reaches the library) spread over the P
processes for D seconds.  Prints, measured side by side in one run:

- requests/s for each process count
- the most concurrent upstream requests any simulator saw (must never exceed 4: the
  cap is one semaphore across all processes, in Redis)

Needs PostgreSQL and Redis: --database-url / --redis-url, or OPACGW_TEST_DATABASE_URL /
OPACGW_TEST_REDIS_URL (``.ci/services start DIR`` starts throw-away ones).

Run: python bench/scaleout.py [--processes 1 2 4] [--libraries 4] [--clients 32] [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet

from bench._common import SANDBOX, SimProcess, demo, rewire, to_toml
from gateway.config import GatewayConfig

TEMPLATE = "kagoshima-pref"
CAP = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _schema(base: str) -> tuple[str, str]:
    import psycopg

    name = "bench_" + secrets.token_hex(5)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options={quote(f'-csearch_path={name}')}"


def _drop_schema(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _start(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway on {port} exited: {proc.stderr.read().decode()[-1500:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"gateway on {port} did not start")


def one_round(processes: int, sims: list[SimProcess], args: argparse.Namespace) -> tuple[float, int, int]:
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    schema, db_url = _schema(args.database_url)
    libs = {f"bench-{i}": rewire(SANDBOX.libraries[TEMPLATE], s.port, f"bench-{i}").model_copy(
        update={"max_concurrency": CAP, "timeout": 60}) for i, s in enumerate(sims, 1)}
    settings = SANDBOX.gateway.model_copy(update={
        "database": db_url, "redis_url": args.redis_url, "secret_key": Fernet.generate_key().decode(),
        "sandbox": False, "read_cache_seconds": 0, "log_level": "WARNING"})
    config = Path(tempfile.mkdtemp(prefix="opacgw-scaleout-")) / "gateway.toml"
    config.write_text(to_toml(GatewayConfig(gateway=settings, libraries=libs)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OPACGW_DATABASE_URL", "OPACGW_REDIS_URL", "OPACGW_CONFIG"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-m", "gateway.cli", "db", "upgrade", "--config", str(config)], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    ports = [_free_port() for _ in range(processes)]
    procs = [_start(config, p, env) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        card, password = demo(TEMPLATE)
        sessions: list[tuple[str, dict[str, str]]] = []
        with httpx.Client(timeout=60) as c:
            for i in range(args.clients):
                lib = f"bench-{i % len(libs) + 1}"
                r = c.post(f"{bases[i % len(bases)]}/v1/sessions",
                           json={"library": lib, "card_number": card, "password": password})
                r.raise_for_status()
                h = {"Authorization": f"Bearer {r.json()['token']}"}
                c.get(f"{bases[0]}/v1/libraries/{lib}/loans", headers=h).raise_for_status()  # warm
                sessions.append((lib, h))
        for s in sims:
            s.counts(reset=True)
        done = [0] * args.clients
        errors = [0] * args.clients
        stop = time.monotonic() + args.seconds

        def client(i: int) -> None:
            lib, h = sessions[i]
            with httpx.Client(timeout=60) as c:
                n = i
                while time.monotonic() < stop:
                    r = c.get(f"{bases[n % len(bases)]}/v1/libraries/{lib}/loans", headers=h)
                    n += 1
                    if r.status_code == 200:
                        done[i] += 1
                    else:
                        errors[i] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        peak = max(s.counts()["peak"] for s in sims)
        return sum(done) / wall, peak, sum(errors)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        _drop_schema(args.database_url, schema)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--libraries", type=int, default=4)
    ap.add_argument("--latency", type=int, default=200, help="ms per simulator response")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--database-url", default=os.environ.get("OPACGW_TEST_DATABASE_URL"))
    ap.add_argument("--redis-url", default=os.environ.get("OPACGW_TEST_REDIS_URL"))
    args = ap.parse_args()
    if not args.database_url or not args.redis_url:
        raise SystemExit("needs PostgreSQL and Redis: --database-url/--redis-url or OPACGW_TEST_DATABASE_URL/"
                         "OPACGW_TEST_REDIS_URL (.ci/services start DIR starts throw-away ones)")
    sims = [SimProcess(TEMPLATE, args.latency) for _ in range(args.libraries)]
    try:
        results = [(p, *one_round(p, sims, args)) for p in args.processes]
    finally:
        for s in sims:
            s.stop()
    ceiling = args.libraries * CAP / (args.latency / 1000)
    print(f"scale-out: {args.libraries} libraries, {args.latency} ms upstream latency, max_concurrency = {CAP}, "
          f"{args.clients} clients, {args.seconds:.0f} s per round, PostgreSQL + Redis")
    print(f"  upstream ceiling (libraries x cap / latency)       : {ceiling:7.1f} requests/s")
    base = results[0][1]
    for p, rate, peak, errors in results:
        print(f"  {p} process{'es' if p > 1 else '  '}: warm GET loans {rate:7.1f} requests/s "
              f"(x{rate / base:4.2f} of {results[0][0]}), {errors} errors, max upstream in flight at any "
              f"simulator {peak} (<= {CAP})")
    worst = max(r[2] for r in results)
    print(f"  most concurrent upstream requests any simulator saw: {worst}   (never above {CAP})")


if __name__ == "__main__":
    main()
