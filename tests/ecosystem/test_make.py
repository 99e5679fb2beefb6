"""`make test` (the README's test command) installs what the interop tests need when node
and npm are present, so nothing is skipped that the machine can run. Checked with `make -n`
(print the commands, run nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def make_n(path: str) -> list[str]:
    assert MAKE is not None
    result = subprocess.run(
        # -W: as if package-lock.json had just changed, so the npm step is due.
        [MAKE, "-n", "-W", "tests/interop/package-lock.json", "test"],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm"
)
def test_make_test_installs_the_interop_node_packages_before_running_pytest():
    lines = make_n(os.environ["PATH"])
    npm = [index for index, line in enumerate(lines) if "npm ci" in line]
    pytest_runs = [index for index, line in enumerate(lines) if "-m pytest" in line]
    assert npm and pytest_runs, lines
    assert npm[0] < pytest_runs[0]
    assert "cd tests/interop" in lines[npm[0]]


def test_without_node_make_test_says_the_interop_tests_are_skipped(tmp_path: Path):
    lines = make_n(str(tmp_path))  # a PATH with neither node nor npm
    assert not any("npm ci" in line for line in lines)
    assert any("node or npm not found" in line for line in lines)
    assert any("-m pytest" in line for line in lines)


def test_ci_leaves_the_node_packages_to_make_test():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert commands[-1] == "make test"
    assert not any("npm ci" in line for line in commands)
