"""Fixtures of the interop tests: Node processes running the CometD project's own code.

The tests here need ``node`` and the packages pinned in ``tests/interop/package.json``
(``npm ci`` in this directory). Without them they are skipped, except under CI (the ``CI``
environment variable is set), where a missing toolchain is an error: CI must run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .support import NODE_MODULES, REQUIRED_PACKAGES, StandIn

HOW_TO_RUN = (
    "install node (>= 20) and run `npm ci` in tests/interop, then `make test` "
    "(or `pytest -m interop`)"
)


def _missing_toolchain() -> str | None:
    if shutil.which("node") is None:
        return "`node` is not on PATH"
    missing = [p for p in REQUIRED_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        return f"tests/interop/node_modules lacks {', '.join(missing)}"
    return None


@pytest.fixture(autouse=True)
def _require_node() -> None:
    problem = _missing_toolchain()
    if problem is None:
        return
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"interop tests must run in CI, but {problem}: {HOW_TO_RUN}")
    pytest.skip(f"{problem}; to run the interop tests, {HOW_TO_RUN}")


@pytest.fixture
async def standin(tmp_path: Path) -> AsyncIterator[StandIn]:
    server = StandIn(tmp_path / "standin.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
