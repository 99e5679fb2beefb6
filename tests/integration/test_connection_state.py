"""A loss of the connection is seen as soon as the transport knows (issue 18, point 12): a
long poll that fails makes ``connection_state`` say ``reconnecting`` at the next attempt,
well before ``cometd_connection_timeout``; a connect of the same client puts it back."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import HookRecorder
from tests.integration.conftest import config_for

pytestmark = pytest.mark.anyio


async def test_a_failed_long_poll_is_seen_before_the_connection_timeout(
    pm: pluggy.PluginManager, sim: GWSSimulator
) -> None:
    recorder = HookRecorder()
    pm.register(recorder, name="states")
    config = config_for(sim.base_url, cometd_connection_timeout=120.0)
    async with OutboundPlugin(pm, config) as plugin:
        assert plugin.connection_state == "connected"
        await sim.stop()  # the server goes away: the held long poll fails
        with anyio.fail_after(20):  # far less than cometd_connection_timeout
            while plugin.connection_state != "reconnecting":
                await anyio.sleep(0.05)
        await sim.start()  # back on the same port
        with anyio.fail_after(30):
            await plugin.wait_connected()
        assert plugin.connection_state == "connected"
    changes = [(c.previous, c.state) for c in recorder.calls_of("on_connection_state_changed")]
    assert changes[:3] == [
        ("closed", "connecting"),
        ("connecting", "connected"),
        ("connected", "reconnecting"),
    ]
    assert changes[-1] == ("reconnecting", "connected")
