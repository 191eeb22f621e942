"""DESIGN.md / issue 11: mypy --strict on the layers below the gateway (core/, mappers/,
the adapter contract adapters/base.py and the HTML kit adapters/html.py), in the test
command. The file list and the strictness live in pyproject.toml; this test checks that
they still cover those layers, then runs mypy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
ROOT = Path(__file__).resolve().parents[1]
STRICT_LAYERS = {"core", "mappers", "adapters/base.py", "adapters/html.py"}


def test_mypy_config_covers_the_strict_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config.get("strict") is True
    assert STRICT_LAYERS <= set(config["files"]), STRICT_LAYERS - set(config["files"])


def test_mypy_strict_is_clean_on_core_mappers_and_the_contract(tmp_path: Path) -> None:
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"), "--strict",
                                     "--cache-dir", str(tmp_path / "mypy-cache")])
    assert status == 0, out + err
    assert "no issues found" in out
