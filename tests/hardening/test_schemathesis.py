"""Issue 16: schemathesis over /openapi.json of the sandbox, anonymous and with a token.

The sandbox's libraries, each on its own simulator on a free loopback port, behind one
gateway app; every operation of the document, 25 generated examples each (bounded), with
the checks: no server error, status codes, content types and bodies as documented.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, Phase, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error  # noqa: E402

from bench._common import SANDBOX, demo, gateway_config, rewire, start_sim  # noqa: E402
from gateway.app import create_app  # noqa: E402

pytestmark = pytest.mark.e2e
LIBRARIES = ["kumamoto-city", "yamaguchi-pref", "soap-demo", "ncip-consortium"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
_SIMS: list[Any] = []


def _sandbox_app() -> Any:
    libs = {}
    for lib in LIBRARIES:
        sim = start_sim(lib)
        _SIMS.append(sim)
        libs[lib] = rewire(SANDBOX.libraries[lib], sim.port)
    import tempfile

    db = tempfile.mkdtemp(prefix="opacgw-st-") + "/gw.sqlite3"
    cfg = gateway_config(libs, database=db, login_failures_per_card=0, logins_per_client_per_minute=0,
                         circuit_failures=1000, subscription_keys=[Fernet.generate_key().decode()])
    return create_app(cfg, secret_key=Fernet.generate_key().decode())


APP = _sandbox_app()
# /mcp speaks JSON-RPC through the MCP SDK (its errors are JSON-RPC objects, not problems)
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP).exclude(path="/mcp")


def _token() -> str:
    c = APP.test_client()
    accounts = [dict(zip(("library", "card_number", "password"), (lib, *demo(lib)))) for lib in LIBRARIES]
    r = c.post("/v1/sessions", json={"accounts": accounts})
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["token"])


TOKEN = _token()


@pytest.fixture(scope="module", autouse=True)
def _stop_simulators() -> Iterator[None]:
    yield
    APP.extensions["opacgw"].close()
    for sim in _SIMS:
        sim.stop()


BOUND = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 phases=[Phase.explicit, Phase.generate],
                 suppress_health_check=list(HealthCheck))


@schema.parametrize()
@BOUND
def test_anonymous(case: Any) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@BOUND
def test_with_a_token(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(checks=CHECKS)
