"""Fault matrix, lifecycle: leaving with work pending, entering or leaving twice, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CORE_PLUGIN_NAME,
    CancelFailed,
    CancelTicket,
    CometDState,
    GWSConfig,
    GWSError,
    GWSOutboundError,
    NotRunningError,
    OutboundPlugin,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.matrix import ACK, Row, fault
from tests.faults.support import (
    assert_nothing_else,
    assert_outcome,
    outcome_calls,
)
from tests.helpers import Recorder, make_request

pytestmark = pytest.mark.anyio


def assert_closed(plugin: OutboundPlugin, pm: pluggy.PluginManager) -> None:
    assert not plugin.running
    assert plugin.cometd_state is CometDState.CLOSED
    assert repr(plugin._session).endswith(" closed>")
    with pytest.raises(GWSError):
        plugin._session.client  # noqa: B018 - the property raises once the session is closed
    assert not pm.has_plugin(CORE_PLUGIN_NAME)
    assert plugin.pending_count == 0


async def accepted_by_gws(sim: GWSSimulator, count: int) -> None:
    with anyio.fail_after(5):
        while sum(1 for c in sim.cancels if c.status == 200) < count:
            await anyio.sleep(0.01)


@fault("lifecycle-exit-pending")
async def test_leaving_with_cancels_pending(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    # drain_timeout is 0.5 s: outcomes 0.2 s late make it, outcomes 5 s late do not.
    sim.faults.delay_notifications(0.2, count=2)
    sim.faults.delay_notifications(5.0, count=2)
    async with OutboundPlugin(pm, config) as plugin:
        requests = []
        for handle in (11, 12, 13, 14):
            requests.append(make_request(device_path, handle=handle))
            plugin.submit(requests[-1])
            await accepted_by_gws(sim, len(requests))
        left_at = time.monotonic()
    drained_in = time.monotonic() - left_at
    quick, slow = requests[:2], requests[2:]
    for request in quick:
        assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [ACK]
    for request in slow:
        failure = assert_outcome(recorder, request, row)
        assert failure.message == (
            "the plugin was closed before the outcome arrived; GWS may or may not have acted "
            "on the request"
        )
    assert config.drain_timeout <= drained_in < config.drain_timeout + 2
    assert_closed(plugin, pm)
    assert_nothing_else(recorder, requests, user_events=2)


@fault("lifecycle-enter-twice")
async def test_entering_twice(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    plugin = OutboundPlugin(pm, config)
    async with plugin:
        with pytest.raises(GWSOutboundError, match="can be entered once"):
            async with plugin:
                raise AssertionError("entered a running plugin again")
        with pytest.raises(GWSOutboundError, match="already registered"):
            async with OutboundPlugin(pm, config):
                raise AssertionError("a second core on the same plugin manager")
        assert plugin.running
        request = make_request(device_path)
        await plugin.cancel(request)
    with pytest.raises(GWSOutboundError, match="can be entered once"):
        async with plugin:
            raise AssertionError("entered a closed plugin again")
    assert row.hook == "none"
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [ACK]
    assert len([r for r in sim.requests if r.path == "/api/v2/me"]) == 1  # one login only
    assert_closed(plugin, pm)
    assert_nothing_else(recorder, [request], user_events=1)


@fault("lifecycle-exit-twice")
async def test_leaving_twice(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    sim.faults.hold_notifications()
    async with OutboundPlugin(pm, config) as plugin:
        requests = [make_request(device_path, handle=h) for h in (11, 12)]
        tickets = [plugin.submit(request) for request in requests]
        await accepted_by_gws(sim, 2)
        await plugin.aclose()
        assert_closed(plugin, pm)
        await plugin.aclose()
    assert_closed(plugin, pm)
    for request, ticket in zip(requests, tickets, strict=True):
        assert ticket.done()
        assert assert_outcome(recorder, request, row) is ticket.outcome
    with pytest.raises(NotRunningError):
        plugin.submit(make_request(device_path, handle=13))
    assert_nothing_else(recorder, requests, user_events=0)


async def _host(
    pm: pluggy.PluginManager,
    config: GWSConfig,
    device_path: str,
    out: dict[str, Any],
    ready: anyio.Event,
) -> None:
    async with OutboundPlugin(pm, config) as plugin:
        out["plugin"] = plugin
        out["requests"] = [make_request(device_path, handle=h) for h in (11, 12, 13)]
        out["tickets"] = [plugin.submit(r) for r in out["requests"]]
        ready.set()
        await anyio.sleep_forever()


def assert_cancelled_cleanly(
    row: Row, out: dict[str, Any], pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    for request, ticket in zip(out["requests"], out["tickets"], strict=True):
        assert ticket.done()
        assert assert_outcome(recorder, request, row) is ticket.outcome
    assert_closed(out["plugin"], pm)
    assert_nothing_else(recorder, out["requests"], user_events=0)


@fault("lifecycle-host-cancelled")
async def test_host_task_group_cancelled(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    sim.faults.hold_notifications()
    out: dict[str, Any] = {}
    ready = anyio.Event()
    with anyio.fail_after(5):  # nothing hangs
        async with anyio.create_task_group() as tg:
            tg.start_soon(_host, pm, config, device_path, out, ready)
            await ready.wait()
            await accepted_by_gws(sim, 3)
            tg.cancel_scope.cancel()
    assert_cancelled_cleanly(row, out, pm, recorder)
    assert sim.cometd_client_count == 0  # disconnected politely


@fault("lifecycle-host-task-cancelled")
async def test_host_asyncio_task_cancelled(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    sim.faults.hold_notifications()
    out: dict[str, Any] = {}
    ready = anyio.Event()
    task = asyncio.get_running_loop().create_task(_host(pm, config, device_path, out, ready))
    with anyio.fail_after(5):
        await ready.wait()
        await accepted_by_gws(sim, 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_cancelled_cleanly(row, out, pm, recorder)
    assert sim.cometd_client_count == 0


@fault("lifecycle-thread-during-close")
async def test_cancels_from_a_thread_while_closing(
    row: Row,
    pm: pluggy.PluginManager,
    config: GWSConfig,
    sim: GWSSimulator,
    recorder: Recorder,
    device_path: str,
) -> None:
    sim.faults.hold_notifications()
    tickets: list[CancelTicket] = []
    refused: list[str] = []
    stop = threading.Event()

    def bus_thread() -> None:
        handle = 0
        while not stop.is_set() and len(refused) < 20:
            handle = handle % 10 + 1
            request = make_request(device_path, handle=10 + handle)
            try:
                results = pm.hook.on_cancel_requested(request=request)
            except NotRunningError:
                refused.append("not running")
                continue
            ticket = next((r for r in results if isinstance(r, CancelTicket)), None)
            if ticket is None:
                refused.append("no core")  # the core has been unregistered
            else:
                tickets.append(ticket)
            time.sleep(0.0005)

    thread = threading.Thread(target=bus_thread, daemon=True)
    async with OutboundPlugin(pm, config) as plugin:
        thread.start()
        with anyio.fail_after(5):
            while len(tickets) < 30:
                await anyio.sleep(0.01)
    with anyio.fail_after(5):
        while thread.is_alive():
            await anyio.sleep(0.01)
    stop.set()
    assert refused, "the thread never saw the plugin close"
    assert tickets and all(ticket.done() for ticket in tickets)
    for ticket in tickets:
        assert assert_outcome(recorder, ticket.request, row) is ticket.outcome
        with pytest.raises(CancelFailed):
            ticket.result(timeout=0)
    assert len(outcome_calls(recorder)) == len(tickets)
    assert_closed(plugin, pm)
