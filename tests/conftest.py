"""Shared test configuration: anyio's pytest plugin on the asyncio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # aiocometd and aiohttp run on asyncio only.
    return "asyncio"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak", "gws_outbound reliability soak (tests/faults/test_soak.py)")
    group.addoption(
        "--soak-cancels",
        type=int,
        default=None,
        help="cancels in the soak (default: the short soak of `make test`)",
    )
    group.addoption(
        "--soak-concurrency",
        type=int,
        default=50,
        help="cancels in flight at once during the soak (default 50)",
    )
    group.addoption(
        "--soak-report",
        default=None,
        help="where the soak writes its JSON report (default: build/soak-report.json for a "
        "run with --soak-cancels, a temporary file otherwise)",
    )
