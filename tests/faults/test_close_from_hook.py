"""A hook that closes the plugin and goes on running (on the simulator, on the real clock: the
way this broke kept the loop busy, which the virtual clock would never leave)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin, RecordCancelAck, hookimpl
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for, until
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def test_a_hook_that_closes_the_plugin_and_goes_on_sees_it_close(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """``await plugin.aclose()`` returns at once in a hook and the close runs in a task of its
    own. That task is started from the hook: once the tasks a hook starts counted as inside it
    (58d86e8), the close task counted as inside the hook too and, instead of closing, started
    another close task, and so on, for as long as the hook ran: the loop spun and nothing
    closed."""
    plugin = OutboundPlugin(pm, fast_config(sim.base_url, hook_timeout=3.0))
    seen: list[bool] = []

    class ClosesAndWaits:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
            await plugin.aclose()
            await until(lambda: not plugin.running, "the close started", timeout=2.0)
            seen.append(plugin.running)

    pm.register(ClosesAndWaits(), name="closes-and-waits")
    async with plugin:
        await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
        with anyio.fail_after(10):
            while plugin.running or not seen:
                await anyio.sleep(0.01)
    assert seen == [False]
    assert len(recorder.acks) == 1
