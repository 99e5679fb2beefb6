"""Hooks that re-enter the plugin through a task they start and wait for: a new request awaited
with ``asyncio.wait_for`` (which runs it in a task of its own on Python 3.11), ``gather`` or a
task group, and ``aclose()`` the same way. Only the hook's own task counted as inside the
hook, so such a task waited for the hooks of the outcome it awaited, queued behind the hook
that waited for it: the hook failed at its timeout (or ``wait_for``'s), having got nothing,
and the host's ticket of the outcome being reported waited that long too. The tasks a hook
starts now count as inside it while the hook call runs. Each test failed before the fix (on
FakeGWS and the virtual clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelRequest,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
)
from gws_outbound_plugin._dispatcher import HookFailure, watch_hook_failures
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

Wait = Callable[[Awaitable[Any]], Awaitable[Any]]


async def _wait_for(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, 3.0)


async def _gather(awaitable: Awaitable[Any]) -> Any:
    [result] = await asyncio.gather(awaitable)
    return result


async def _task_group(awaitable: Awaitable[Any]) -> Any:
    results: list[Any] = []

    async def run() -> None:
        results.append(await awaitable)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
    return results[0]


WAYS = pytest.mark.parametrize("wait", [_wait_for, _gather, _task_group])


def _failures(pm: pluggy.PluginManager) -> list[HookFailure]:
    failures: list[HookFailure] = []
    watch_hook_failures(pm, failures.append)
    return failures


@WAYS
async def test_a_hook_awaits_a_request_of_its_own_through_a_task(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, wait: Wait
) -> None:
    """ "A cancel acknowledged: now cancel the record chained to it" (the hook's own
    ``plugin.cancel()``), with a timeout of its own: ``asyncio.wait_for(plugin.cancel(...),
    3)``."""
    first, second = handles(fake, 2)
    follow_up = request_for(fake, second)
    got: list[int | None] = []
    plugin = OutboundPlugin(pm, fake_config(hook_timeout=2.0), transport=fake)

    class FollowsUp:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
            if ack.record_handle == first:
                nested: RecordCancelAck = await wait(plugin.cancel(follow_up))
                got.append(nested.record_handle)

    pm.register(FollowsUp(), name="follows-up")
    failures = _failures(pm)
    async with plugin:
        await plugin.cancel(request_for(fake, first))
        assert await plugin.wait_hooks_idle(10)
    assert failures == []  # before: TimeoutError (wait_for), or timed out (hook_timeout)
    assert got == [second]
    assert [ack.record_handle for ack in recorder.acks] == [first, second]


@WAYS
async def test_a_hook_awaits_the_ticket_it_is_called_for_through_a_task(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, wait: Wait
) -> None:
    """The ticket of the very outcome being reported, awaited with a timeout: its release
    waits for this hook call."""
    request = request_for(fake, handles(fake, 1)[0])
    tickets: dict[str, Any] = {}
    got: list[str] = []

    class ChecksItsTicket:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
            mine: RecordCancelAck = await wait(tickets[ack.reference_id])
            got.append(mine.reference_id)

    pm.register(ChecksItsTicket(), name="checks")
    failures = _failures(pm)
    async with OutboundPlugin(pm, fake_config(hook_timeout=2.0), transport=fake) as plugin:
        ticket = plugin.submit(request)
        tickets[request.reference_id] = ticket
        await ticket
        assert await plugin.wait_hooks_idle(10)
    assert failures == []
    assert got == [request.reference_id]


async def test_a_hook_closes_the_plugin_through_a_task(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """``await asyncio.wait_for(plugin.aclose(), 5)`` in a hook: the close waits for the hook
    calls, this one included, which waited for the close until its timeout."""
    requests: list[CancelRequest] = [request_for(fake, handle) for handle in handles(fake, 2)]
    closed: list[bool] = []
    plugin = OutboundPlugin(pm, fake_config(hook_timeout=2.0), transport=fake)

    class ShutsDown:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
            if ack.record_handle == requests[0].record_handle:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(plugin.aclose)
                closed.append(True)

    pm.register(ShutsDown(), name="shuts-down")
    failures = _failures(pm)
    async with plugin:
        ticket = plugin.submit(requests[0])
        other = plugin.submit(requests[1])
        await ticket
        with anyio.fail_after(10):
            await other  # drained by the close
        await plugin.wait_hooks_idle(10)
    assert failures == []
    assert closed == [True]
    assert not plugin.running
    assert len(recorder.acks) == 2
