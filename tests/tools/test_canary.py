"""`opacgw canary`: ok against the sandbox simulators, drift against a simulator whose loans
page renamed its list class, down against a dead port; the gauge opacgw_canary_ok."""

from __future__ import annotations

import re
import socket

import pytest
from flask import request

from fixtures.registry import serve_app, simulators, start_simulator
from gateway import canary
from gateway.cli import main
from gateway.config import loads_config, sandbox_toml

ACCOUNTS = {"kumamoto-city": ("0000002377570", "0808"), "kagoshima-pref": ("9999999999", "20211030"),
            "amami": ("2000654321", "amami2022"), "niigata-city": ("0300000001", "niigata1")}


def _config_text(ports: dict[str, int]) -> str:
    """The sandbox configuration, the named libraries moved to their ports, with canaries."""
    text = sandbox_toml()
    for lib, port in ports.items():
        block = re.search(rf"\[libraries\.{re.escape(lib)}\]\n(?:(?!\n\[).)*?base_url = \"http://127\.0\.0\.1:(\d+)",
                          text, re.S)
        assert block is not None
        start, end = block.span(1)
        text = text[:start] + str(port) + text[end:]
        text = text.replace(f"[libraries.{lib}]\n",
                            f'[libraries.{lib}]\ncanary = {{ card_number = "{ACCOUNTS[lib][0]}", '
                            f'password_env = "CANARY_{lib.upper().replace("-", "_")}" }}\n', 1)
    return text


@pytest.fixture
def passwords(monkeypatch):
    for lib, (_, password) in ACCOUNTS.items():
        monkeypatch.setenv(f"CANARY_{lib.upper().replace('-', '_')}", password)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ok_at_every_winj_library(passwords, tmp_path, capsys):
    sims = {lib: start_simulator(lib) for lib in ACCOUNTS}
    cfg = tmp_path / "canary.toml"
    cfg.write_text(_config_text({lib: s.port for lib, s in sims.items()}), encoding="utf-8")
    prom = tmp_path / "canary.prom"
    try:
        assert main(["canary", "--config", str(cfg), "--textfile", str(prom)]) == 0
    finally:
        for s in sims.values():
            s.stop()
    out = capsys.readouterr().out
    for lib in ACCOUNTS:
        assert re.search(rf"^{lib}: ok \(\d+ loans, \d+ holds\)$", out, re.M), out
    assert "kumamoto-city: ok (" in out and " 0 loans" not in out.split("kumamoto-city: ok")[1].split("\n")[0]
    assert f'opacgw_canary_ok{{library="amami"}} 1.0' in prom.read_text()
    assert canary.snapshot()["kagoshima-pref"] == 1


def test_drift_names_the_screen_and_exits_1(passwords, tmp_path, capsys):
    app = simulators()["kumamoto-city"]("kumamoto-city")

    @app.after_request
    def rename(resp):  # the portal renamed the loans list's class
        if request.path.endswith("/lend-list.do"):
            resp.set_data(resp.get_data().replace(b"list-book", b"list-novel"))
        return resp

    sim = serve_app(app, name="kumamoto-city")
    cfg = tmp_path / "canary.toml"
    cfg.write_text(_config_text({"kumamoto-city": sim.port}), encoding="utf-8")
    try:
        assert main(["canary", "--config", str(cfg), "--library", "kumamoto-city"]) == canary.EXIT_DRIFT
    finally:
        sim.stop()
    line = capsys.readouterr().out.strip()
    assert line.startswith("kumamoto-city: drift: loans: ")
    assert "lend-list.do" in line and "list items" in line  # screen and field, from the detail
    assert canary.snapshot()["kumamoto-city"] == 0


def test_down_at_a_dead_port_exits_3(passwords, tmp_path, capsys):
    cfg = tmp_path / "canary.toml"
    cfg.write_text(_config_text({"niigata-city": _dead_port()}), encoding="utf-8")
    assert main(["canary", "--config", str(cfg)]) == canary.EXIT_DOWN
    assert capsys.readouterr().out.startswith("niigata-city: down: login: upstream_unavailable")


def test_an_unset_password_variable_is_a_canary_error_and_no_canary_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CANARY_AMAMI", raising=False)
    cfg = tmp_path / "canary.toml"
    cfg.write_text(_config_text({"amami": _dead_port()}), encoding="utf-8")
    assert main(["canary", "--config", str(cfg)]) == canary.EXIT_ERROR
    assert "CANARY_AMAMI is not set" in capsys.readouterr().out
    plain = tmp_path / "plain.toml"
    plain.write_text(sandbox_toml(), encoding="utf-8")
    assert main(["canary", "--config", str(plain)]) == 2
    assert "no library" in capsys.readouterr().err


def test_the_gauge_is_exported_on_metrics(passwords, tmp_path):
    from gateway.app import create_app

    canary.LAST["kumamoto-city"] = 0
    app = create_app(loads_config(_config_text({"kumamoto-city": _dead_port()}), "<test>"))
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'opacgw_canary_ok{library="kumamoto-city"} 0.0' in body
