"""Deployment: compose.yaml's names, start-up failures that say what is wrong, gunicorn
with several workers, metrics across processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from cryptography.fernet import Fernet

from gateway import config as gwconfig

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in (gwconfig.ENV_DATABASE, gwconfig.ENV_REDIS, gwconfig.ENV_CONFIG, "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


def test_compose_uses_the_names_the_configuration_reads() -> None:
    from gateway.metrics import ENV_MULTIPROC
    from gateway.secrets import ENV_SECRET

    doc = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = doc["services"]
    assert {"gateway", "postgres", "redis"} <= set(services)
    env = services["gateway"]["environment"]
    known = {gwconfig.ENV_CONFIG, gwconfig.ENV_DATABASE, gwconfig.ENV_REDIS, ENV_SECRET, ENV_MULTIPROC}
    assert set(env) <= known, set(env) - known
    assert {gwconfig.ENV_DATABASE, gwconfig.ENV_REDIS, ENV_SECRET} <= set(env)
    assert env[gwconfig.ENV_DATABASE].startswith("postgresql://") and "@postgres:" in env[gwconfig.ENV_DATABASE]
    assert env[gwconfig.ENV_REDIS].startswith("redis://redis:")
    command = services["gateway"]["command"]
    workers = int(command[command.index("--workers") + 1])
    assert workers > 1 and "gateway.wsgi:app" in command  # several workers: on Redis, as wsgi requires
    assert services["migrate"]["command"] == ["opacgw", "db", "upgrade"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] in env[gwconfig.ENV_DATABASE]


def _config(tmp_path: Path, **gateway: str) -> Path:
    lines = ["[gateway]", f'secret_key = "{Fernet.generate_key().decode()}"',
             f'database = "{tmp_path / "gw.sqlite3"}"']
    lines = [line for line in lines if not any(line.startswith(k) for k in gateway)]
    lines += [f'{k} = "{v}"' for k, v in gateway.items()]
    path = tmp_path / "gw.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _serve(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", "1"],
                          cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=90)


def test_unreachable_database_names_key_and_host_without_password(tmp_path) -> None:
    cfg = _config(tmp_path, database="postgresql://opacgw:sekrit-pw@127.0.0.1:9/opacgw")
    out = _serve(cfg)
    assert out.returncode == 1
    assert "key 'gateway.database'" in out.stderr and "127.0.0.1:9/opacgw" in out.stderr
    assert "sekrit-pw" not in out.stderr + out.stdout and "Traceback" not in out.stderr
    env = {**_env(), gwconfig.ENV_DATABASE: "postgresql://u:other-pw@127.0.0.1:7/x"}
    out = _serve(cfg, env)
    assert f"key '{gwconfig.ENV_DATABASE}'" in out.stderr and "127.0.0.1:7/x" in out.stderr
    assert "other-pw" not in out.stderr and "Traceback" not in out.stderr


def test_unreachable_redis_names_key_and_host_without_password(tmp_path) -> None:
    cfg = _config(tmp_path, redis_url="redis://:sekrit-pw@127.0.0.1:9/0")
    out = _serve(cfg)
    assert out.returncode == 1
    assert "key 'gateway.redis_url'" in out.stderr and "127.0.0.1:9/0" in out.stderr
    assert "sekrit-pw" not in out.stderr + out.stdout and "Traceback" not in out.stderr
    env = {**_env(), gwconfig.ENV_REDIS: "redis://127.0.0.1:8/1"}
    out = _serve(_config(tmp_path), env)
    assert f"key '{gwconfig.ENV_REDIS}'" in out.stderr and "127.0.0.1:8/1" in out.stderr


def test_gunicorn_with_several_workers_and_no_redis_refuses(tmp_path) -> None:
    env = {**_env(), gwconfig.ENV_CONFIG: str(_config(tmp_path))}
    out = subprocess.run([sys.executable, "-m", "gunicorn", "gateway.wsgi:app", "--workers", "2",
                          "--bind", "127.0.0.1:0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode != 0
    assert "2 worker processes" in out.stderr and "redis_url" in out.stderr


def test_upstream_latency_histogram_per_library_and_operation(make_app) -> None:
    from tests import fakes
    from tests.conftest import bearer, login

    app = make_app()
    c = app.test_client()
    token = login(c, ("alpha", "12345", fakes.PASSWORD))
    assert c.get("/v1/libraries/alpha/loans", headers=bearer(token)).status_code == 200
    text = c.get("/metrics").get_data(as_text=True)
    assert re.search(r'opacgw_upstream_seconds_count\{library="alpha",operation="loans",outcome="ok"\} 1\.0', text)
    assert re.search(r'opacgw_upstream_seconds_count\{library="alpha",operation="login",outcome="ok"\} 1\.0', text)


def test_metrics_sum_every_process_in_multiprocess_mode(tmp_path) -> None:
    """Two processes write samples to PROMETHEUS_MULTIPROC_DIR; /metrics of either shows both."""
    code = """
import sys
from cryptography.fernet import Fernet
from gateway.app import create_app
from gateway.config import loads_config
cfg = loads_config('[gateway]\\ndatabase = "%s"\\nsecret_key = "%s"\\n', "t.toml")
app = create_app(cfg)
c = app.test_client()
c.get("/healthz")
print(c.get("/metrics").get_data(as_text=True))
""" % (tmp_path / "gw.sqlite3", Fernet.generate_key().decode())
    env = {**_env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    outs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=90, check=True).stdout for _ in range(2)]
    assert re.search(r'opacgw_requests_total\{method="GET",route="/healthz",status="200"\} 1\.0', outs[0])
    assert re.search(r'opacgw_requests_total\{method="GET",route="/healthz",status="200"\} 2\.0', outs[1])
