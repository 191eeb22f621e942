"""Configuration: validated at start, errors name the file, the library and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.cli import main
from gateway.config import ConfigError, loads_config, sandbox_config, sandbox_toml

GOOD = """
[libraries.x]
name = "X"
adapter = "fake"
base_url = "http://127.0.0.1:1/opac"
"""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace('base_url = "http://127.0.0.1:1/opac"', 'base_url = "ftp://x"'),
         "lib.toml: library 'x': key 'base_url'"),
        (GOOD + 'timezone = "Mars/Olympus"', "library 'x': key 'timezone': Value error, unknown time zone"),
        (GOOD + "max_concurrency = 0", "library 'x': key 'max_concurrency'"),
        (GOOD + 'maintenance = [{ start = "4:00", end = "05:00" }]', "library 'x': key 'maintenance.0.start'"),
        (GOOD + "password_policy = { min_length = 9, max_length = 4 }", "library 'x': key 'password_policy'"),
        (GOOD + "colour = 'red'", "library 'x': key 'colour': Extra inputs are not permitted"),
        (GOOD.replace('name = "X"\n', ""), "library 'x': key 'name': Field required"),
        ("[gateway]\nport = 0\n", "lib.toml: key 'gateway.port'"),
        ("[libraries\n", "lib.toml: not valid TOML"),
        (GOOD + '[consortia.c]\nname = "C"\nsupplying_libraries = ["nowhere"]\n',
         "consortium 'c': key 'supplying_libraries': unknown library 'nowhere'"),
    ],
)
def test_bad_files_name_file_library_and_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(text, "lib.toml")
    assert needle in str(info.value)


def test_unknown_adapter_fails_at_start(tmp_path) -> None:
    from gateway.app import create_app

    cfg = loads_config(GOOD.replace('"fake"', '"nonesuch"') + f'\n[gateway]\ndatabase = "{tmp_path}/d.db"\n', "lib.toml")
    with pytest.raises(ConfigError, match="library 'x': key 'adapter': unknown adapter 'nonesuch'"):
        create_app(cfg, secret_key="A" * 43 + "=")


def test_secret_key_required_outside_sandbox(tmp_path, monkeypatch) -> None:
    from gateway.app import create_app

    monkeypatch.delenv("OPACGW_SECRET_KEY", raising=False)
    cfg = loads_config(GOOD + f'\n[gateway]\ndatabase = "{tmp_path}/d.db"\n', "lib.toml")
    with pytest.raises(ConfigError, match="key 'gateway.secret_key': required outside the sandbox"):
        create_app(cfg)


def test_sandbox_config_is_valid_and_printable(capsys) -> None:
    cfg = sandbox_config()
    assert {"kumamoto-city", "kagoshima-pref", "amami", "niigata-city"} <= set(cfg.libraries)
    assert main(["config", "--sandbox"]) == 0
    assert capsys.readouterr().out == sandbox_toml()


def test_config_check_command(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('name = "X"\n', ""), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "--check", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}: library 'x': key 'name'" in r.stderr


def test_bad_adapter_options_fail_at_start(tmp_path) -> None:
    from gateway.app import create_app
    from gateway.config import sandbox_config

    cfg = sandbox_config()
    if "soap-demo" not in cfg.libraries:
        pytest.skip("no SOAP library in the sandbox")
    lib = cfg.libraries["soap-demo"].model_copy(update={"options": {"operations": "nonsense"}})
    bad = cfg.model_copy(update={"libraries": {"soap-demo": lib}, "gateway": cfg.gateway.model_copy(
        update={"database": str(tmp_path / "d.db")})})
    with pytest.raises(ConfigError, match=r"<sandbox>: library 'soap-demo': (key 'options'|options)"):
        create_app(bad, secret_key="A" * 43 + "=")


def test_config_check_builds_the_adapters(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"fake"', '"nonesuch"'), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "--check", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "key 'adapter': unknown adapter 'nonesuch'" in r.stderr
    good = tmp_path / "good.toml"
    good.write_text(sandbox_toml(), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "config", "--check", str(good)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
