"""The fault-injection tier (issue 16): every family, every operation, every fault.

Each family's simulator sits behind ``fixtures.faults.FaultProxy``; the gateway reaches
it only through the proxy (``timeout`` = the total deadline of each upstream request =
``harness.DEADLINE``).  A cell is the answer to one operation while the fault is on;
``login``, ``loans``, ``holds`` are the API's calls, ``renew`` is
``POST …/loans/{id}/renewal`` of a renewable loan and ``hold`` is ``POST …/holds`` of one
record (201 with its result: ``ok`` or the result's error code).  The whole table is
below, so a change of behaviour is a visible diff; ``python -m tests.faults.harness``
prints today's.  After each fault is removed the next call succeeds.

Circuit recovery: only getting no answer (dead, slow, drip, reset, truncated) counts; a
circuit opened by ``circuit_failures`` of them lets one probe through after
``circuit_reset_seconds`` (30 s by default) and closes on its success, so a library is
answered again at most ``circuit_reset_seconds`` after it recovered
(``test_the_circuit_recovers_after_its_reset_time`` measures it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from core.errors import ALL_ERRORS
from tests.faults import harness
from tests.faults.harness import ALL_FAULTS, DEADLINE, FAMILIES, OPS

pytestmark = pytest.mark.e2e

TABLE = """
                        login                     loans                     holds                     renew                     hold                      
winj dead               503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj slow               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
winj drip               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
winj http500            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj http502            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj http503            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj reset              503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj truncated          503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
winj empty              502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
winj login_page         201                       200                       200                       200                       201 ok
winj renamed            201                       502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
winj no_table           201                       200                       200                       200                       201 ok
winj no_charset         201                       200                       200                       200                       201 ok
winj maintenance        503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance
winj maintenance_window 503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance
wo dead                 503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
wo slow                 504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
wo drip                 504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
wo http500              502 upstream_error        502 upstream_error        502 upstream_error        502 upstream_error        201 upstream_error
wo http502              502 upstream_error        502 upstream_error        502 upstream_error        502 upstream_error        201 upstream_error
wo http503              502 upstream_error        502 upstream_error        502 upstream_error        502 upstream_error        201 upstream_error
wo reset                503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
wo truncated            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
wo empty                502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      201 upstream_changed
wo login_page           201                       200                       200                       200                       201 ok
wo renamed              201                       502 upstream_changed      502 upstream_changed      502 upstream_changed      201 upstream_changed
wo no_table             201                       502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
wo no_charset           201                       200                       200                       200                       201 ok
wo maintenance          502 upstream_error        502 upstream_error        502 upstream_error        502 upstream_error        201 upstream_error
wo maintenance_window   503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance
soap dead               503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap slow               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
soap drip               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout
soap http500            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap http502            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap http503            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap reset              503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap truncated          503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap empty              502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
soap login_page         201                       200                       200                       200                       201 ok
soap renamed            502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
soap no_table           201                       200                       200                       200                       201 ok
soap no_charset         201                       502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed
soap maintenance        503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
soap maintenance_window 503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance
ncip dead               503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable
ncip slow               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      201 upstream_timeout
ncip drip               504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      504 upstream_timeout      201 upstream_timeout
ncip http500            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip http502            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip http503            503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip reset              503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip truncated          503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip empty              502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      201 upstream_changed
ncip login_page         201                       200                       200                       200                       201 ok
ncip renamed            502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      201 upstream_changed
ncip no_table           201                       200                       200                       200                       201 ok
ncip no_charset         502 upstream_changed      502 upstream_changed      502 upstream_changed      502 upstream_changed      201 upstream_changed
ncip maintenance        503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  503 upstream_unavailable  201 upstream_unavailable
ncip maintenance_window 503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance  503 upstream_maintenance
""".strip("\n")

DOCUMENTED = {(cls.status, cls.code) for cls in ALL_ERRORS}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ["OPACGW_SIM_NO_MAINTENANCE"] = "1"
    return harness.run_all(str(tmp_path_factory.mktemp("faults")))


def test_the_table(results: Any) -> None:
    assert harness.render(results) == TABLE


def test_every_cell_is_an_api_md_answer(results: Any) -> None:
    for family in FAMILIES:
        for (fault, op), (first, _) in results[family].items():
            where = (family, fault, op, first.body)
            if first.status < 300:
                assert first.code in ("", "ok") or any(first.code == c for _, c in DOCUMENTED), where
                continue
            assert (first.status, first.code) in DOCUMENTED, where
            assert first.status != 500, where


def test_after_the_fault_the_next_call_succeeds_and_nothing_is_done_twice(results: Any) -> None:
    for family in FAMILIES:
        for (fault, op), (_, follow) in results[family].items():
            assert follow.status in (200, 201), (family, fault, op, follow.body)
            if op == "hold":
                ids = [h["record_id"] for h in follow.body["holds"]]
                assert len(ids) == len(set(ids)), (family, fault, ids)


def _true_list(results: Any, family: str, fault: str, op: str) -> bool:
    base = results[family][("none", op)][0]
    assert base.status == 200 and base.body[op], (family, op)
    first = results[family][(fault, op)][0]
    return first.status != 200 or first.body[op] == base.body[op]


def test_a_list_answered_under_a_fault_is_the_true_list(results: Any) -> None:
    """200 under a fault (re-login, a detected charset, a table that XML never had) is the
    same list as without it: never empty, shorter or mojibake."""
    for family in FAMILIES:
        for op in ("loans", "holds"):
            for fault in ALL_FAULTS:
                assert _true_list(results, family, fault, op), (family, fault, op)


def test_slow_and_dripping_upstreams_are_cut_at_the_deadline(results: Any) -> None:
    for family in FAMILIES:
        for fault in ("slow", "drip"):
            for op in OPS:
                first = results[family][(fault, op)][0]
                # one deadline per upstream request; a read is tried twice
                assert first.seconds < 3.5 * DEADLINE, (family, fault, op, first.seconds)


def test_the_circuit_recovers_after_its_reset_time(tmp_path: Any) -> None:
    from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim
    from cryptography.fernet import Fernet
    from fixtures.faults import FaultProxy
    from gateway.app import create_app

    lib_id = FAMILIES["soap"]
    sim = start_sim(lib_id)
    proxy = FaultProxy(sim.port)
    lib = rewire(SANDBOX.libraries[lib_id], proxy.port).model_copy(update={"timeout": DEADLINE})
    reset = 1.0
    app = create_app(gateway_config({lib_id: lib}, database=str(tmp_path / "gw.sqlite3"), circuit_failures=2,
                                    circuit_reset_seconds=reset),
                     secret_key=Fernet.generate_key().decode())
    c = app.test_client()
    try:
        card, password = demo(lib_id)
        token = c.post("/v1/sessions", json={"library": lib_id, "card_number": card,
                                             "password": password}).get_json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        proxy.set("dead")
        assert c.get(f"/v1/libraries/{lib_id}/loans", headers=h).status_code == 503  # 2 tries: opens
        assert c.get(f"/v1/libraries/{lib_id}").get_json()["status"] == "degraded"
        proxy.set(None)
        healed = time.monotonic()
        calls = proxy.forwarded
        r = c.get(f"/v1/libraries/{lib_id}/loans", headers=h)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) <= reset + 1
        assert proxy.forwarded == calls  # open: not called
        while (r := c.get(f"/v1/libraries/{lib_id}/loans", headers=h)).status_code != 200:
            assert time.monotonic() - healed < reset + 5
            time.sleep(0.05)
        recovered = time.monotonic() - healed
        assert reset * 0.9 <= recovered <= reset + 1.5, recovered  # the reset time, not much more
        assert c.get(f"/v1/libraries/{lib_id}").get_json()["status"] == "up"
    finally:
        app.extensions["opacgw"].close()
        proxy.stop()
        sim.stop()
