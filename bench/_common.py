"""Helpers shared by the benchmarks: simulators on loopback, throw-away configurations."""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from fixtures.registry import RunningServer, demo_accounts, serve_app, simulators
from gateway.config import GatewayConfig, LibraryConfig, sandbox_config

SANDBOX = sandbox_config()


def rewire(lib: LibraryConfig, port: int, new_id: str | None = None) -> LibraryConfig:
    old = re.search(r"127\.0\.0\.1:(\d+)", lib.base_url)
    assert old
    data = json.loads(json.dumps(lib.model_dump()).replace(f"127.0.0.1:{old.group(1)}", f"127.0.0.1:{port}"))
    data["maintenance"] = []
    if new_id:
        data["id"] = new_id
    return LibraryConfig.model_validate(data)


def start_sim(library: str, latency_ms: int = 0) -> RunningServer:
    return serve_app(simulators()[library](library, latency_ms=latency_ms), name=library)


def demo(library: str) -> tuple[str, str]:
    card, password, _ = demo_accounts()[library][0]
    return card, password


def gateway_config(libraries: dict[str, LibraryConfig], **settings: Any) -> GatewayConfig:
    db = Path(tempfile.mkdtemp(prefix="opacgw-bench-")) / "gw.sqlite3"
    gw = SANDBOX.gateway.model_copy(update={"database": str(db), "read_cache_seconds": 0, "sandbox": False,
                                            "secret_key": Fernet.generate_key().decode(), **settings})
    return GatewayConfig(gateway=gw, libraries=libraries)


def to_toml(cfg: GatewayConfig) -> str:
    """A TOML file for a separate process (gunicorn)."""
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items() if x is not None) + " }"
        raise TypeError(v)

    lines = ["[gateway]"]
    for k, v in cfg.gateway.model_dump().items():
        if v is not None:
            lines.append(f"{k} = {val(v)}")
    for lib in cfg.libraries.values():
        lines.append(f"\n[libraries.{lib.id}]")
        for k, v in lib.model_dump().items():
            if v is not None and k != "id":
                lines.append(f"{k} = {val(v)}")
    return "\n".join(lines) + "\n"


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class InFlight:
    """WSGI middleware in front of a simulator: counts requests being answered at once."""

    def __init__(self, app: Any) -> None:
        import threading

        self.app = app
        self.now = 0
        self.peak = 0
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/__inflight":  # the bench asks from outside the process
            if environ.get("REQUEST_METHOD") == "POST":
                self.reset()
            body = json.dumps({"now": self.now, "peak": self.peak, "total": self.total}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        with self._lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
        try:
            return list(self.app(environ, start_response))  # the body is built (and delayed) here
        finally:
            with self._lock:
                self.now -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.now
            self.total = 0


class SimProcess:
    """A simulator behind InFlight in a process of its own (python -m bench._common LIB MS):
    its HTML rendering does not compete with the gateway for the GIL, as a real portal
    on another host would not."""

    def __init__(self, library: str, latency_ms: int) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "bench._common", library, str(latency_ms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def counts(self, reset: bool = False) -> dict[str, int]:
        import httpx

        r = httpx.request("POST" if reset else "GET", self.url + "/__inflight", timeout=10)
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


if __name__ == "__main__":
    import sys

    library, latency = sys.argv[1], int(sys.argv[2])
    running = serve_app(InFlight(simulators()[library](library, latency_ms=latency)), name=library)
    print(running.port, flush=True)
    sys.stdin.read()  # ends with the bench: its end of the pipe closes
