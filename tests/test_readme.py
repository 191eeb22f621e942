"""The README opens with exactly the two set-up commands, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    head = text.split("## ")[0]
    assert head.count("```sh") == 2, "exactly two command blocks before the first section"
    serve, test = (b.strip() for b in blocks[:2])
    assert serve == "pip install -e . && opacgw serve"
    assert test == "pip install -e '.[test]' && python -m pytest -q"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install" in ci and "-e '.[test]'" in ci
    assert re.search(r"^python3? -m pytest -q$", ci, re.M)


def test_readme_has_no_placeholders_left() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for placeholder in ("DEMO_ACCOUNTS_TABLE", "BENCHMARKS_SECTION", "TODO", "TBD"):
        assert placeholder not in text
