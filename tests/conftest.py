"""Shared fixtures.

The network is blocked by pytest-socket (``--allow-hosts`` in pyproject.toml): only
loopback is reachable, where the simulators of ``fixtures/`` run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from adapters import registry
from gateway.config import GatewayConfig, loads_config, sandbox_config
from tests import fakes

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPACGW_SHARED", ROOT.parent / "shared"))

FAKE_CONFIG = """
[gateway]
database = "{db}"
session_ttl_minutes = 30
read_cache_seconds = 0
circuit_failures = 3
circuit_reset_seconds = 0.5
fanout_deadline_seconds = 1.0

[libraries.alpha]
name = "アルファ市立図書館"
adapter = "fake"
base_url = "http://127.0.0.1:9/opac"
card_number = {{ digits = 10, pad = true, example = "0000012345" }}
password_policy = {{ min_length = 4, max_length = 20, charset = "alnum" }}
branches = [{{ id = "honkan", name = "本館" }}, {{ id = "kita", name = "北分館" }}]
contact_methods = ["不要", "メール"]
timeout = 2

[libraries.beta]
name = "ベータ県立図書館"
adapter = "fake"
base_url = "http://127.0.0.1:9/opac"
card_number = {{ digits = 8, example = "12345678" }}
timeout = 2
{extra}
"""


@pytest.fixture(autouse=True, scope="session")
def _no_simulated_maintenance() -> Iterator[None]:
    """CI runs around 04:50 JST, inside Kumamoto's daily window: simulators do not refuse
    in tests (the tests of maintenance itself give the simulator a clock of their own)."""
    old = os.environ.get("OPACGW_SIM_NO_MAINTENANCE")
    os.environ["OPACGW_SIM_NO_MAINTENANCE"] = "1"
    yield
    if old is None:
        os.environ.pop("OPACGW_SIM_NO_MAINTENANCE", None)
    else:
        os.environ["OPACGW_SIM_NO_MAINTENANCE"] = old


@pytest.fixture(autouse=True, scope="session")
def _fake_family() -> Iterator[None]:
    registry.register(fakes.FakeAdapter)
    yield
    registry.unregister("fake")


@pytest.fixture(autouse=True)
def _fresh_fakes() -> Iterator[None]:
    fakes.UPSTREAMS.clear()
    yield
    fakes.UPSTREAMS.clear()


@pytest.fixture
def make_app(tmp_path: Path) -> Any:
    """make_app(extra_toml="") → a Flask app over the fake libraries alpha and beta."""
    apps = []

    def _make(extra: str = "", config: GatewayConfig | None = None) -> Any:
        from gateway.app import create_app

        cfg = config or loads_config(FAKE_CONFIG.format(db=tmp_path / "gw.sqlite3", extra=extra), "test.toml")
        app = create_app(cfg, secret_key=Fernet.generate_key().decode())
        app.testing = True
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.extensions["opacgw"].close()


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def login(client: Any, *accounts: tuple[str, str, str]) -> str:
    body = {"accounts": [{"library": l, "card_number": c, "password": p} for l, c, p in accounts]}
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sandbox(tmp_path: Path) -> GatewayConfig:
    """The sandbox configuration with a throw-away database."""
    cfg = sandbox_config()
    settings = cfg.gateway.model_copy(update={"database": str(tmp_path / "sandbox.sqlite3")})
    return cfg.model_copy(update={"gateway": settings})
