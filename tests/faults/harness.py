"""The fault tier's harness: one family's simulator behind a FaultProxy, behind a gateway.

``python -m tests.faults.harness`` prints the table the gateway answers today (to review a
change before writing it into tests/faults/test_fault_table.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
from core.config import MaintenanceWindow
from fixtures.faults import FAULTS, FaultProxy
from gateway.app import create_app

FAMILIES = {"winj": "kumamoto-city", "wo": "yamaguchi-pref", "soap": "soap-demo", "ncip": "ncip-consortium"}
OPS = ("login", "loans", "holds", "renew", "hold")
ALL_FAULTS = (*FAULTS, "maintenance_window")
#: the library's total deadline per upstream request in the tier (slow and drip exceed it)
DEADLINE = 1.5
#: after the write ops, the read that shows what the write left behind
FOLLOW_UP = {"login": "login", "loans": "loans", "holds": "holds", "renew": "loans", "hold": "holds"}


@dataclass
class Outcome:
    status: int
    code: str
    seconds: float
    body: Any


class FamilyUnderFaults:
    def __init__(self, family: str, database: str) -> None:
        self.family = family
        self.library = FAMILIES[family]
        self.sim = start_sim(self.library)
        self.proxy = FaultProxy(self.sim.port)
        self.proxy.slow_seconds = 2.5 * DEADLINE
        lib = rewire(SANDBOX.libraries[self.library], self.proxy.port)
        lib = lib.model_copy(update={"timeout": DEADLINE})
        cfg = gateway_config({self.library: lib}, database=database, circuit_failures=1000,
                             login_failures_per_card=0, logins_per_client_per_minute=0)
        self.app = create_app(cfg, secret_key=Fernet.generate_key().decode())
        self.client = self.app.test_client()
        self.gw = self.app.extensions["opacgw"]

    def write_simulator(self) -> None:
        """A new simulator behind the same proxy for one write cell (writes leave state
        behind); ``read_simulator`` goes back to the untouched one."""
        self._reads = self.sim
        self.sim = start_sim(self.library)
        self.proxy.target_port = self.sim.port

    def read_simulator(self) -> None:
        reads = getattr(self, "_reads", None)
        if reads is not None:
            self.sim.stop()
            self.sim, self._reads = reads, None
            self.proxy.target_port = self.sim.port

    def close(self) -> None:
        self.read_simulator()
        self.proxy.stop()
        self.gw.close()
        self.sim.stop()

    # ------------------------------------------------------------ operations
    def login(self) -> Any:
        card, password = demo(self.library)
        return self.client.post("/v1/sessions", json={"library": self.library, "card_number": card,
                                                       "password": password})

    def headers(self) -> dict[str, str]:
        """A session for a cell (set-up, no fault on: a loaded machine gets a second try)."""
        r = self.login()
        for _ in range(2):
            if r.status_code < 500:
                break
            time.sleep(0.5)
            r = self.login()
        assert r.status_code == 201, r.get_json()
        return {"Authorization": f"Bearer {r.get_json()['token']}"}

    def _base(self) -> str:
        return f"/v1/libraries/{self.library}"

    def renewable_loan(self, h: dict[str, str]) -> str:
        loans = self.client.get(f"{self._base()}/loans", headers=h).get_json()["loans"]
        return next(x["id"] for x in loans if x.get("renewable"))

    def holdable_record(self, h: dict[str, str]) -> str:
        held = {x["record_id"] for x in self.client.get(f"{self._base()}/holds", headers=h).get_json()["holds"]}
        held |= {x.get("record_id") for x in self.client.get(f"{self._base()}/loans", headers=h).get_json()["loans"]}
        if self.family == "soap":
            from fixtures.soap.data import holdable_record_id

            candidates = [holdable_record_id(self.library, n) for n in range(5)]
        elif self.family == "ncip":
            state = self.sim.server.app.config["ncip_state"]
            candidates = [b.id for b in state.bibs[1:8]]
        else:
            found = self.client.get(f"{self._base()}/records?title=%E3%81%AE").get_json()["records"]
            candidates = [x["id"] for x in found]
        return next(c for c in candidates if c not in held)

    def run(self, op: str, fault: str | None) -> tuple[Outcome, Outcome]:
        """(the answer under the fault, the answer of the follow-up after it is removed)."""
        self.read_simulator()
        if op in ("renew", "hold"):
            self.write_simulator()
        self.proxy.set(None)
        h = self.headers() if op != "login" else {}
        prepared = self.renewable_loan(h) if op == "renew" else self.holdable_record(h) if op == "hold" else ""
        guard = self.gw.guard(self.library)
        lib = guard.library
        if fault == "maintenance_window":
            now = datetime.now(ZoneInfo(lib.timezone))
            window = MaintenanceWindow(start=(now - timedelta(hours=1)).strftime("%H:%M"),
                                       end=(now + timedelta(hours=1)).strftime("%H:%M"))
            guard.library = lib.model_copy(update={"maintenance": [window]})
        else:
            self.proxy.set(fault)
        try:
            first = self._do(op, h, prepared)
        finally:
            guard.library = lib
            self.proxy.set(None)
            self.proxy.wait_idle()
        follow = self._do(FOLLOW_UP[op], h, prepared)
        return first, follow

    def _do(self, op: str, h: dict[str, str], prepared: str) -> Outcome:
        t0 = time.monotonic()
        if op == "login":
            r = self.login()
        elif op in ("loans", "holds"):
            r = self.client.get(f"{self._base()}/{op}", headers=h)
        elif op == "renew":
            r = self.client.post(f"{self._base()}/loans/{prepared}/renewal", headers=h)
        else:
            r = self.client.post(f"{self._base()}/holds", json={"record_ids": [prepared]}, headers=h)
        body = r.get_json(silent=True)
        code = body.get("code", "") if isinstance(body, dict) and r.status_code >= 400 else ""
        if op == "hold" and r.status_code < 300 and isinstance(body, dict):
            [result] = body["results"]
            code = "ok" if result["ok"] else result["error"]["code"]
        return Outcome(r.status_code, code, time.monotonic() - t0, body)


def cell(first: Outcome) -> str:
    return f"{first.status} {first.code}".strip()


def run_family(family: str, database: str) -> dict[tuple[str, str], tuple[Outcome, Outcome]]:
    """Every (fault, op) cell of one family: (answer under the fault, follow-up answer)."""
    env = FamilyUnderFaults(family, database)
    out: dict[tuple[str, str], tuple[Outcome, Outcome]] = {}
    try:
        baseline = {op: env.run(op, None)[0] for op in ("loans", "holds")}
        out[("none", "loans")] = (baseline["loans"], baseline["loans"])
        out[("none", "holds")] = (baseline["holds"], baseline["holds"])
        for fault in ALL_FAULTS:
            for op in OPS:
                out[(fault, op)] = env.run(op, fault)
    finally:
        env.close()
    return out


def run_all(tmp: str) -> dict[str, dict[tuple[str, str], tuple[Outcome, Outcome]]]:
    """The four families at once (each waits mostly on deadlines)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(FAMILIES)) as pool:
        futures = {f: pool.submit(run_family, f, f"{tmp}/{f}.sqlite3") for f in FAMILIES}
        return {f: fut.result() for f, fut in futures.items()}


def render(results: dict[str, dict[tuple[str, str], tuple[Outcome, Outcome]]]) -> str:
    lines = [f"{'':24}" + "".join(f"{op:26}" for op in OPS)]
    for family in FAMILIES:
        for fault in ALL_FAULTS:
            cells = [cell(results[family][(fault, op)][0]) for op in OPS]
            lines.append(f"{family + ' ' + fault:24}" + "".join(f"{c:26}" for c in cells).rstrip())
    return "\n".join(lines)


def main() -> None:
    import tempfile

    os.environ["OPACGW_SIM_NO_MAINTENANCE"] = "1"
    t0 = time.monotonic()
    print(render(run_all(tempfile.mkdtemp())))
    print(f"{time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
