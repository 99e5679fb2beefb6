"""A ticket awaited on another event loop, in another thread, that gives up and ends: the
plugin's own waiters are not stranded (issue 10, see tests/engine/test_breakers.py for the
other attempts to break the promise). Real time and a real second loop: on the simulator,
not on the virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def test_a_waiter_on_a_closed_loop_does_not_strand_the_others(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    async with OutboundPlugin(pm, fast_config(sim.base_url, drain_timeout=0.2)) as plugin:
        sim.faults.hold_notifications()
        ticket = plugin.submit(request_for(sim, handles(sim, 1)[0]))

        async def wait(awaitable: Any) -> Any:
            return await awaitable

        def impatient_thread() -> None:
            # Another loop awaits the ticket with a timeout, gives up, and its loop ends.
            with pytest.raises(TimeoutError):
                asyncio.run(asyncio.wait_for(wait(ticket), 0.01))

        await anyio.to_thread.run_sync(impatient_thread)

        async def release_soon() -> None:
            await anyio.sleep(0.02)  # once the host below waits
            sim.faults.release_notifications()

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_soon)
            with anyio.fail_after(1.0):
                ack = await ticket  # the host, on the plugin's loop
        assert ack.reference_id == ticket.reference_id
        assert plugin.pending_count == 0
