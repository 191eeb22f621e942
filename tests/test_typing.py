"""DESIGN.md: mypy on mappers/ and the adapter contract (files listed in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean_on_mappers_and_the_contract(tmp_path: Path) -> None:
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                     "--cache-dir", str(tmp_path / "mypy-cache")])
    assert status == 0, out + err
