"""The host's own cancellation against the plugin's close (hunt14): a shutdown routine that
cancels every task of its loop several times in a row, one loop iteration apart (``while
tasks: cancel them all; await asyncio.sleep(0)``). Each test failed before its fix."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.support import handles, plugin_tasks, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def _cancel_everything(rounds: int, spared: set[asyncio.Task[Any]]) -> None:
    """What a shutdown routine does: cancel every task of the service (all but ``spared``,
    the test runner's), ``rounds`` times, one loop iteration apart."""
    for _ in range(rounds):
        for task in asyncio.all_tasks() - spared:
            task.cancel()
        await asyncio.sleep(0)


@pytest.mark.parametrize("rounds", [1, 3, 4, 8])
async def test_cancelling_every_task_again_and_again_still_closes_and_resolves(
    pm: pluggy.PluginManager, recorder: Recorder, rounds: int
) -> None:
    """Before, from the fourth round on, the close's own task was cancelled before it ever
    ran three times in a row: the close gave up (``plugin_close_cut_short``) without having
    decided anything. The ticket stayed pending for good, no hook heard of the request, the
    transport was never closed, and the host's task never ended (the outcome pump, never
    stopped, kept the plugin's task group open)."""
    fake = FakeGWS()
    fake.faults.hold_notifications()
    out: dict[str, Any] = {}
    entered = asyncio.Event()

    async def host() -> None:
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            out["plugin"] = plugin
            out["ticket"] = plugin.submit(request_for(fake, handles(fake, 1)[0]))
            entered.set()
            await asyncio.Event().wait()

    spared = asyncio.all_tasks()
    task = asyncio.get_running_loop().create_task(host())
    with anyio.fail_after(30):  # virtual seconds: far beyond every bound of the close
        await entered.wait()
        while not fake.posts:
            await asyncio.sleep(0.01)
        await _cancel_everything(rounds, spared)
        done, _ = await asyncio.wait((task,))
    assert task in done and task.cancelled()
    ticket = out["ticket"]
    assert ticket.done()
    with pytest.raises(CancelFailed) as info:
        ticket.result(0)
    assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert [f.request.reference_id for f in recorder.failures] == [ticket.reference_id]
    assert not out["plugin"].running
    assert out["plugin"].pending_count == 0


async def test_the_plugins_tasks_cancelled_before_they_ran_are_started_again(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A host cancels every task of its loop but its own right after entering the plugin,
    before the plugin's tasks (the outcome pump, the listener, the POST worker) took their
    first step. A task cancelled before it ran never runs its body, so none of them could
    take the cancellation back: before, the plugin ran on without them (the request was
    never sent and ended ``transport_failure`` at its deadline; no hook heard of it), and
    each left a "coroutine was never awaited" warning. They are started again now."""
    fake = FakeGWS()
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        for task in plugin_tasks():
            task.cancel()
        ticket = plugin.submit(request_for(fake, handles(fake, 1)[0]))
        with anyio.fail_after(plugin.config.ack_timeout):
            await ticket
    assert [ack.reference_id for ack in recorder.acks] == [ticket.reference_id]
