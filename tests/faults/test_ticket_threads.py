"""A ticket awaited on another event loop, in another thread, that gives up and ends: the
plugin's own waiters are not stranded (issue 10, see tests/engine/test_breakers.py for the
other attempts to break the promise); the plugin's own loop closed under pending tickets.
Real time and a real second loop: on the simulator, not on the virtual clock."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
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
@pytest.mark.parametrize("closed", [True, False], ids=["loop-closed", "loop-thread-ended"])
async def test_tickets_of_a_plugin_whose_loop_was_closed_under_it_still_end(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, closed: bool
) -> None:
    # A thread-based host runs the plugin's loop with run_forever() and, quitting, stops it
    # (and closes it, or lets its thread end) without leaving the plugin: a thread blocked
    # in ticket.result() (or a task awaiting the ticket on another loop) waited for ever.
    # Each ticket now ends, on the evidence at hand: the sent one `outcome_unknown`, the one
    # handed to the loop after it stopped `shut_down` (never sent).
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
    if closed:
        loop.close()  # else left as it is, its thread ended

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


async def test_a_request_accepted_in_a_thread_that_stalls_before_its_hand_off_gets_its_hook(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    # A thread's request is accepted, and the thread is descheduled (GIL contention, an
    # overloaded host) before it hands the ticket to the loop, while the plugin closes: the
    # close gave such hand-offs a second and went on, and the late one ended its ticket
    # `shut_down` with no `on_cancel_failed` call. Now the close waits for the hand-off: the
    # request, accepted before the close began, ends as any other would, with its hook.
    from gws_outbound_plugin import _engine

    lines, first = inspect.getsourcelines(_engine.Engine.accept)
    hand_off = first + next(i for i, line in enumerate(lines) if "call_soon_threadsafe" in line)
    at_hand_off = threading.Event()
    go_on = threading.Event()

    def stall_at_hand_off(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not _engine.Engine.accept.__code__:
            return None

        def line(inner: Any, event: str, arg: Any) -> Any:
            if event == "line" and inner.f_lineno == hand_off:
                at_hand_off.set()
                go_on.wait(10.0)  # until the close is done, or for as long as it waits
            return line

        return line

    plugin = OutboundPlugin(pm, fast_config(sim.base_url, drain_timeout=0.2))
    await plugin.__aenter__()
    tickets: list[Any] = []

    def bus_thread() -> None:
        sys.settrace(stall_at_hand_off)
        try:
            tickets.append(plugin.submit(request_for(sim, handles(sim, 1)[0])))
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=bus_thread, daemon=True)
    thread.start()
    await anyio.to_thread.run_sync(at_hand_off.wait)
    fallback = threading.Timer(3.0, go_on.set)  # a close that waits for the thread
    fallback.start()
    try:
        await plugin.aclose()
        go_on.set()
        await anyio.to_thread.run_sync(thread.join)
    finally:
        fallback.cancel()
    (ticket,) = tickets
    with anyio.fail_after(5):
        with contextlib.suppress(CancelFailed):
            await ticket
    assert ticket.done()
    assert await plugin.wait_hooks_idle(5)
    outcome_hooks = ("on_record_cancel_acknowledged", "on_cancel_failed")
    outcomes = [call.payload for call in recorder.calls if call.hook in outcome_hooks]
    assert outcomes == [ticket.outcome]
