"""`opacgw canary`: a read-only journey (login, loans, holds, logout) per library with a
configured canary account, to notice a portal's layout drift before patrons do.

Each library answers one of:

- ``ok``: the journey went through;
- ``drift``: the adapter no longer understands a screen (``UpstreamChanged``; its detail
  names the screen and the field);
- ``down``: no usable answer (unreachable, timeout, maintenance, an error page);
- ``error``: the canary itself cannot run (its password variable is unset, the library
  refused the canary's login, the family has no login).

Exit status: 1 when any library drifted, else 3 when any is down, else 4 when any canary
could not run, else 0.  Each run sets ``opacgw_canary_ok{library}`` (1 ok, 0 otherwise) in
this process (``LAST``, exported by gateway/metrics.py's collector) and, with
``--textfile``, in a Prometheus text file (node_exporter's textfile collector format).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import httpx

from core.config import LibraryConfig
from core.errors import (
    GatewayError,
    UpstreamChanged,
    UpstreamError,
    UpstreamMaintenance,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.config import GatewayConfig

EXIT_DRIFT, EXIT_DOWN, EXIT_ERROR = 1, 3, 4

#: library id → 1/0, the last canary result of each library in this process
LAST: dict[str, int] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CanaryResult:
    library: str
    status: str  # ok | drift | down | error
    detail: str = ""
    loans: int = 0
    holds: int = 0

    def line(self) -> str:
        if self.status == "ok":
            return f"{self.library}: ok ({self.loans} loans, {self.holds} holds)"
        return f"{self.library}: {self.status}: {self.detail}"


def run_one(config: GatewayConfig, lib: LibraryConfig) -> CanaryResult:
    from gateway.build import make_adapter

    assert lib.canary is not None
    password = os.environ.get(lib.canary.password_env)
    if not password:
        return CanaryResult(lib.id, "error", f"the canary's password variable {lib.canary.password_env} is not set")
    adapter = make_adapter(config, lib)
    step = "login"
    try:
        session = adapter.login(lib.canary.card_number, password)
        step = "loans"
        loans = adapter.loans(session)
        step = "holds"
        holds = adapter.holds(session)
        step = "logout"
        adapter.logout(session)
        return CanaryResult(lib.id, "ok", loans=len(loans), holds=len(holds))
    except UpstreamChanged as exc:
        return CanaryResult(lib.id, "drift", f"{step}: {exc.detail or exc.title}")
    except (UpstreamUnavailable, UpstreamTimeout, UpstreamMaintenance, UpstreamError, httpx.HTTPError) as exc:
        what = getattr(exc, "code", type(exc).__name__)
        return CanaryResult(lib.id, "down", f"{step}: {what}: {getattr(exc, 'detail', None) or exc}")
    except GatewayError as exc:
        return CanaryResult(lib.id, "error", f"{step}: {exc.code}: {exc.detail or exc.title}")
    finally:
        adapter.close()


def run(config: GatewayConfig, library: str | None = None) -> list[CanaryResult]:
    """The journey at every library with a canary account (or the one named)."""
    libs = [lib for lib in config.libraries.values() if lib.canary is not None
            and (library is None or lib.id == library)]
    results = [run_one(config, lib) for lib in libs]
    with _LOCK:
        for r in results:
            LAST[r.library] = 1 if r.status == "ok" else 0
    return results


def exit_code(results: list[CanaryResult]) -> int:
    statuses = {r.status for r in results}
    for status, code in (("drift", EXIT_DRIFT), ("down", EXIT_DOWN), ("error", EXIT_ERROR)):
        if status in statuses:
            return code
    return 0


def write_textfile(path: str, results: list[CanaryResult]) -> None:
    """``opacgw_canary_ok{library}`` of this run as a Prometheus text file."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    gauge = Gauge("opacgw_canary_ok", "1 when the library's last canary journey went through",
                  ["library"], registry=registry)
    for r in results:
        gauge.labels(r.library).set(1 if r.status == "ok" else 0)
    write_to_textfile(path, registry)


def snapshot() -> dict[str, int]:
    with _LOCK:
        return dict(LAST)
