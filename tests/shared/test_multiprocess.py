"""Two `opacgw serve --config FILE --port N` processes on one PostgreSQL and one Redis
behave as one gateway (issue #13, "Done means")."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from bench._common import InFlight, rewire, to_toml
from fixtures.registry import RunningServer, serve_app, simulators
from fixtures.winj.portal import EXT_KEY
from gateway.config import GatewayConfig, sandbox_config
from tests.services import fresh_redis_url, fresh_schema_url

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
LIB = "kagoshima-pref"
CARD, PASSWORD = "9999999999", "20211030"
CAP = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Simulator:
    """The library's portal on a fixed port, restartable (a restart loses its web sessions)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: RunningServer | None = None
        self.counter: InFlight | None = None
        self.start()

    def start(self) -> None:
        app = simulators()[LIB](LIB, latency_ms=60)
        self.state = app.extensions[EXT_KEY]
        self.state.library = self.state.library.model_copy(update={"maintenance": []})
        self.counter = InFlight(app)
        self.server = serve_app(self.counter, port=self.port, name=LIB)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _serve(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
                             "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway on {port} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"gateway on {port} did not start")


@pytest.fixture
def pair(tmp_path) -> Iterator[dict[str, Any]]:
    for db_url in fresh_schema_url():
        for redis_url in fresh_redis_url():
            sim = Simulator(_free_port())
            sandbox = sandbox_config()
            lib = rewire(sandbox.libraries[LIB], sim.port).model_copy(update={"max_concurrency": CAP, "timeout": 10})
            settings = sandbox.gateway.model_copy(update={
                "database": db_url, "redis_url": redis_url, "secret_key": Fernet.generate_key().decode(),
                "sandbox": False, "read_cache_seconds": 30, "circuit_failures": 2, "circuit_reset_seconds": 30})
            config = tmp_path / "gateway.toml"
            config.write_text(to_toml(GatewayConfig(gateway=settings, libraries={LIB: lib})), encoding="utf-8")
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env.pop("OPACGW_DATABASE_URL", None)
            env.pop("OPACGW_REDIS_URL", None)
            # the server refuses a database on an old schema, and says what to run
            refused = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
                                      "--port", str(_free_port())], cwd=ROOT, env=env, capture_output=True,
                                     text=True, timeout=60)
            assert refused.returncode != 0 and "opacgw db upgrade" in refused.stderr
            assert "Traceback" not in refused.stderr
            subprocess.run([sys.executable, "-m", "gateway.cli", "db", "upgrade", "--config", str(config)],
                           cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
            ports = [_free_port(), _free_port()]
            procs = [_serve(config, p, env) for p in ports]
            try:
                yield {"sim": sim, "a": f"http://127.0.0.1:{ports[0]}", "b": f"http://127.0.0.1:{ports[1]}"}
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(10)
                sim.stop()


def test_two_processes_behave_as_one(pair) -> None:
    a, b, sim = pair["a"], pair["b"], pair["sim"]
    r = httpx.post(f"{a}/v1/sessions", json={"library": LIB, "card_number": CARD, "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    h = {"Authorization": f"Bearer {r.json()['token']}"}

    # A token from process A works on B.
    loans = httpx.get(f"{b}/v1/libraries/{LIB}/loans", headers=h, timeout=30)
    assert loans.status_code == 200, loans.text

    # After the library's upstream session is lost, B logs in again transparently.
    sim.stop()
    sim.start()
    holds = httpx.get(f"{b}/v1/libraries/{LIB}/holds", headers=h, timeout=30)
    assert holds.status_code == 200, holds.text

    # A renewal POSTed to A, then retried on B with the same Idempotency-Key, renews once.
    loan = next(x for x in httpx.get(f"{a}/v1/libraries/{LIB}/loans", headers=h, timeout=30).json()["loans"]
                if x["renewable"])
    cached_on_b = {x["id"]: x for x in httpx.get(f"{b}/v1/libraries/{LIB}/loans", headers=h,
                                                   timeout=30).json()["loans"]}
    key = {**h, "Idempotency-Key": "renew-once"}
    first = httpx.post(f"{a}/v1/libraries/{LIB}/loans/{loan['id']}/renewal", headers=key, timeout=30)
    again = httpx.post(f"{b}/v1/libraries/{LIB}/loans/{loan['id']}/renewal", headers=key, timeout=30)
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    item = next(x for x in sim.state.loans[CARD] if x.item_id == loan["id"])
    assert item.times_renewed == 1

    # After a write on A, a read on B shows it (B had the loans cached for 30 s).
    on_b = {x["id"]: x for x in httpx.get(f"{b}/v1/libraries/{LIB}/loans", headers=h, timeout=30).json()["loans"]}
    assert on_b[loan["id"]]["due_on"] == first.json()["loan"]["due_on"]
    assert on_b[loan["id"]]["due_on"] != cached_on_b[loan["id"]]["due_on"]

    # 40 concurrent requests over both processes: never more than max_concurrency upstream.
    sessions = []
    for _ in range(4):
        r = httpx.post(f"{(a, b)[len(sessions) % 2]}/v1/sessions", timeout=30,
                       json={"library": LIB, "card_number": CARD, "password": PASSWORD})
        assert r.status_code == 201
        sessions.append({"Authorization": f"Bearer {r.json()['token']}"})
    sim.counter.reset()
    statuses: list[int] = []

    def one(i: int) -> None:
        base = (a, b)[i % 2]
        path = ("loans", "holds", "patron", "messages")[i % 4]
        statuses.append(httpx.get(f"{base}/v1/libraries/{LIB}/{path}", headers=sessions[i % 4],
                                  timeout=60).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    assert sim.counter.peak <= CAP
    assert sim.counter.peak == CAP  # the cap is used, not one request at a time

    # A circuit opened on A is open on B.
    sim.stop()
    for _ in range(2):
        r = httpx.get(f"{a}/v1/libraries/{LIB}/loans", headers=h, timeout=30)
        assert r.status_code == 503, r.text
    assert httpx.get(f"{b}/v1/libraries/{LIB}", timeout=30).json()["status"] == "degraded"
    r = httpx.get(f"{b}/v1/libraries/{LIB}/history", headers=h, timeout=30)
    assert r.status_code == 503 and r.json()["code"] == "upstream_unavailable"
    assert int(r.headers["Retry-After"]) >= 1
