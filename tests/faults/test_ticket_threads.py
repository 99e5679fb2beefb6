"""A ticket awaited on another event loop, in another thread, that gives up and ends: the
plugin's own waiters are not stranded (issue 10, see tests/engine/test_breakers.py for the
other attempts to break the promise); the plugin's own loop closed under pending tickets.
Real time and a real second loop: on the simulator, not on the virtual clock."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
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


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the abandoned loop's sockets
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tickets_of_a_plugin_whose_loop_was_closed_under_it_still_end(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    # A thread-based host runs the plugin's loop with run_forever() and, quitting, stops and
    # closes it without leaving the plugin: a thread blocked in ticket.result() (or a task
    # awaiting the ticket on another loop) waited for ever. Each ticket now ends, on the
    # evidence at hand: the sent one `outcome_unknown`, the one handed to the loop after it
    # stopped `shut_down` (never sent).
    sim.faults.hold_notifications()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    plugin = OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=60.0))
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(plugin.__aenter__(), loop))
    first, second = (request_for(sim, handle) for handle in handles(sim, 2))
    sent = await anyio.to_thread.run_sync(plugin.submit, first)
    with anyio.fail_after(5):
        while not sim.faults.held_count:  # GWS accepted it, its outcome is parked
            await anyio.sleep(0.01)
    loop.call_soon_threadsafe(loop.stop)
    await anyio.to_thread.run_sync(runner.join)
    never_run = plugin.submit(second)  # handed to a loop that no longer runs
    loop.close()

    with anyio.fail_after(15):
        with pytest.raises(CancelFailed) as failed:  # not TimeoutError: it ends
            await anyio.to_thread.run_sync(sent.result, 10.0)
        assert failed.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
        assert failed.value.failure.may_have_acted
        with pytest.raises(CancelFailed) as refused:
            await never_run  # on the test's loop, not the plugin's
        assert refused.value.failure.reason is FailureReason.SHUT_DOWN
    assert sent.outcome is failed.value.failure
    assert never_run.outcome is refused.value.failure
    assert not recorder.calls  # no loop was left to call the hooks on
