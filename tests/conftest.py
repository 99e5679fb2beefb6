"""Shared test configuration: anyio's pytest plugin on the asyncio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # aiocometd and aiohttp run on asyncio only.
    return "asyncio"
