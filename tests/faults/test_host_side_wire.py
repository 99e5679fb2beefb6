"""What a host does around the plugin, on the simulator (hunt15; the engine's side is
tests/engine/test_host_side.py). Each test failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import StallingProxy, handles, plugin_tasks, request_for
from tests.faults.test_cometd_recovery import cometd_client_tasks
from tests.helpers import AGENT, PASSWORD, Recorder

pytestmark = pytest.mark.anyio


async def test_cancelling_every_task_logs_no_exception_in_the_cometd_clients_callback(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A host cancelling every task of its loop reaches the CometD client's long poll: its
    done callback (aiocometd's ``_connect_done``) let the ``CancelledError`` out, and asyncio
    logged "Exception in callback TransportBase._connect_done" at ERROR in the host's log,
    with a traceback, for what the plugin recovers from by itself (a new client). Nothing is
    logged by the loop now, and the plugin goes on as before."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
            first, after = (request_for(sim, h) for h in handles(sim, 2))
            async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=2.0)) as plugin:
                await plugin.cancel(first)
                polls = cometd_client_tasks(poll_only=True)
                assert polls, "no long poll of the CometD client found"
                for task in polls + cometd_client_tasks() + plugin_tasks():
                    task.cancel()
                while plugin.connection_state == "connected":  # until the loss is noticed
                    await asyncio.sleep(0.01)
                await plugin.wait_connected(timeout=5)
                await plugin.cancel(after)
    finally:
        loop.set_exception_handler(previous)
    assert [context.get("message") for context in reported] == []
    assert {ack.reference_id for ack in recorder.acks} == {first.reference_id, after.reference_id}


async def test_a_close_whose_cometd_disconnect_goes_unanswered_closes_the_clients_session(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The polite ``/meta/disconnect`` of the close is given up after a couple of seconds
    when the server does not answer it (a GWS node that stopped answering). aiocometd marks
    its client closed in a ``finally`` whatever became of its close, so the client's own
    HTTP session (aiohttp's), which it closes last, was left open: "Unclosed client
    session", a ``ResourceWarning`` and an error in the host's log when collected. It is
    closed now."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        async with (
            GWSSimulator(users={AGENT: PASSWORD}) as sim,
            StallingProxy(sim.port, ("/meta/disconnect",)) as proxy,
        ):
            async with OutboundPlugin(pm, fast_config(proxy.base_url)) as plugin:
                await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
            assert proxy.stalled.is_set()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert [str(w.message)[:40] for w in caught] == []
    assert [context.get("message") for context in reported] == []
    assert len(recorder.acks) == 1
