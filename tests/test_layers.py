"""The layering rule: ``adapters/``, ``mappers/`` and ``core/`` never import the gateway,
and the gateway never imports a concrete adapter (only the contract and the registry)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", ["adapters", "mappers", "core"])
def test_lower_layers_never_import_the_gateway(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m == "gateway" or m.startswith("gateway."))
        for p in (ROOT / package).rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, offenders


def test_core_imports_no_adapter() -> None:
    for p in (ROOT / "core").rglob("*.py"):
        assert not {m for m in _imports(p) if m.split(".")[0] in {"adapters", "gateway"}}, p


def test_gateway_imports_no_concrete_adapter() -> None:
    allowed = {"adapters", "adapters.base", "adapters.registry", "adapters.html"}
    bad = {}
    for p in (ROOT / "gateway").rglob("*.py"):
        mods = {m for m in _imports(p) if m.split(".")[0] == "adapters" and m not in allowed}
        if mods:
            bad[str(p.relative_to(ROOT))] = sorted(mods)
    assert bad == {}, bad


def test_the_checker_sees_nested_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from gateway.errors import X\n", encoding="utf-8")
    assert "gateway.errors" in _imports(f)
