"""The simulator with the real CometD client the plugin uses (aiocometd-noloop)."""

from __future__ import annotations

import base64
import time
from typing import Any

import anyio
import httpx
import pytest
from aiocometd_noloop import Client, ConnectionType, Extension

from gws_outbound_plugin.simulator import GWSSimulator
from tests.simulator.sim_helpers import GWS, USERS

pytestmark = pytest.mark.anyio


class BasicAuth(Extension):  # type: ignore[misc]
    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.header = f"Basic {token}"

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers["Authorization"] = self.header

    async def incoming(self, payload: list[dict[str, Any]], headers: Any = None) -> None:
        return None


async def test_aiocometd_client_receives_both_messages_quickly(new_http):
    # A held first connect would stall open() for the whole 10 s connect timeout.
    async with GWSSimulator(users=USERS, host="localhost", connect_timeout=10.0) as sim:
        started = time.monotonic()
        client = Client(
            sim.cometd_url,
            connection_types=[ConnectionType.LONG_POLLING],
            extensions=[BasicAuth("agent1", "secret")],
        )
        try:
            await client.open()
            await client.subscribe("/v2/me/outbound")
            await client.subscribe("/me/internal")
            gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
            await gws.login()
            response = await gws.cancel(11, referenceId="via-aiocometd")
            assert response.json() == {"statusCode": 0}
            with anyio.fail_after(5):
                first = await client.receive()
                second = await client.receive()
            elapsed = time.monotonic() - started
        finally:
            with anyio.move_on_after(5):
                await client.close()
        assert elapsed < 5.0
        assert first["channel"] == "/v2/me/outbound"
        assert first["data"]["referenceId"] == "via-aiocometd"
        assert first["data"]["notificationType"] == "RecordCancelAcknowledge"
        assert second["channel"] == "/me/internal"
        assert second["data"]["userData"]["GSW_RECORD_HANDLE"] == 11
        handshake = next(r for r in sim.requests if r.bayeux_channels == ("/meta/handshake",))
        assert handshake.had_basic_auth and handshake.username == "agent1"
        assert isinstance(sim.base_url, str) and sim.base_url.startswith("http://localhost:")
        assert httpx.URL(sim.base_url).port == sim.port
