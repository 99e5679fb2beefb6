"""Fixtures for the simulator tests: a running simulator and real HTTP clients on loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gws_outbound_plugin.simulator import GWSSimulator
from tests.simulator.sim_helpers import GWS, USERS, Bayeux


@pytest.fixture
async def sim() -> AsyncIterator[GWSSimulator]:
    async with GWSSimulator(users=USERS, connect_timeout=2.0) as simulator:
        yield simulator


# Building an SSL context costs ~20 ms per httpx client; the tests only speak plain HTTP,
# so every client shares this one.
_SSL_CONTEXT = ssl.create_default_context()

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def new_http(sim: GWSSimulator) -> AsyncIterator[ClientFactory]:
    """Make more httpx clients (each with its own cookie jar), closed at teardown."""
    clients: list[httpx.AsyncClient] = []

    async def make(**kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("base_url", sim.base_url)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("verify", _SSL_CONTEXT)
        client = httpx.AsyncClient(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def http(new_http: ClientFactory) -> httpx.AsyncClient:
    return await new_http()


@pytest.fixture
async def gws(sim: GWSSimulator, http: httpx.AsyncClient) -> GWS:
    client = GWS(sim, http, "agent1")
    await client.login()
    return client


@pytest.fixture
async def bayeux(new_http: ClientFactory) -> Bayeux:
    return Bayeux(await new_http())
