"""The promise, broken at the CometD and GWS-session layer and fixed (after
tests/faults/test_promise_found.py and test_promise_found2.py): each test here failed before
its fix. Every accepted request ends in exactly one outcome, its own, within the documented
bound, whatever the server, the network, plugins or cancellation do."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import captured_logs, events_named, handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


# -- the CometD session lost and restored while a slow plugin holds the listener back -----------


class Gate:
    """An ``async def on_record_cancel_acknowledged`` that waits until the test opens it (a
    plugin writing to a database that is slow for a while), well within ``hook_timeout``."""

    def __init__(self) -> None:
        self.opened = anyio.Event()

    @hookimpl
    async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        await self.opened.wait()


def _server_queues_empty(sim: GWSSimulator) -> bool:
    """Every message the simulator published was handed to its CometD client."""
    clients = sim._state.bayeux._clients.values()
    return bool(clients) and all(not client.queue for client in clients)


async def test_a_session_restored_while_the_listener_is_held_back_keeps_the_answers_it_read(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Four cancels, each acknowledged by GWS and OCS at once, and every answer read by the
    CometD client; a plugin slow on the first acknowledgement fills the hook queue, so the
    listener stops handing the others to the engine (backpressure). Meanwhile the server
    forgets the CometD client (a GWS node restarting): the client re-handshakes by itself
    and the session is restored. Before, the grace period after the restoration ran out
    while the listener was still held back: the three cancels whose acknowledgements the
    client had read (before the loss) ended ``outcome_unknown`` ("GWS may have acted: look
    at the record") though GWS had acknowledged them. The grace period now waits, as the
    acknowledgement timers do, until the listener reads on; the request's deadline still
    bounds the outcome."""
    gate = Gate()
    pm.register(gate, name="gate")
    config = fast_config(
        sim.base_url, hook_queue_size=1, hook_timeout=30, ack_timeout=10, request_timeout=5
    )
    requests = [request_for(sim, handle) for handle in handles(sim, 4)]
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config) as plugin:
            tickets = [plugin.submit(request) for request in requests]
            await sim.wait_for_published(2 * len(requests))
            with anyio.fail_after(10):
                while not _server_queues_empty(sim):
                    await anyio.sleep(0.01)
            assert sim.forget_cometd_clients() == 1
            with anyio.fail_after(10):  # re-handshaken and subscribed again
                while not (
                    events_named(logs, "cometd_rehandshake")
                    and plugin.connection_state == "connected"
                ):
                    await anyio.sleep(0.01)
            # The grace period after the restoration (one merge window) passes many times
            # over while the plugin holds the listener back.
            await anyio.sleep(10 * config.merge_window)
            gate.opened.set()
            outcomes: list[object] = []
            for ticket in tickets:
                try:
                    outcomes.append(await ticket)
                except CancelFailed as failed:
                    outcomes.append(failed.failure)
            assert await plugin.wait_hooks_idle(10)
    assert [type(outcome) for outcome in outcomes] == [RecordCancelAck] * len(requests), outcomes
    heard = sorted(ack.request.reference_id for ack in recorder.acks if ack.request is not None)
    assert heard == sorted(request.reference_id for request in requests)
    assert recorder.failures == []


# -- a malformed message in the batch that carries an answer -------------------------------------


@pytest.mark.parametrize(
    "malformed",
    [
        {"data": {"messageType": "EventAgentState"}},  # no channel
        {"channel": 5, "data": {}},  # a channel that is not a string
        {"channel": "/meta/subscribe", "subscription": "/v2/me/outbound"},  # no "successful"
    ],
)
async def test_a_malformed_message_does_not_lose_the_answers_delivered_with_it(
    sim: GWSSimulator,
    pm: pluggy.PluginManager,
    recorder: Recorder,
    malformed: dict[str, object],
) -> None:
    """The server hands the client one message it cannot read (Bayeux requires a channel,
    and ``successful`` on a meta reply) in the same long-poll answer as a cancel's two
    notifications. Before, the CometD client failed on it half-way through the answer
    (``KeyError``) and dropped the messages after it: the cancel, acknowledged by GWS and
    OCS, ended ``timed_out`` ("GWS may have acted"). The listener now leaves out what it
    cannot read (logged as ``cometd_message_malformed``) and hands on the rest."""
    request = request_for(sim, handles(sim, 1)[0])
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=2)) as plugin:
            sim.faults.hold_notifications()
            ticket = plugin.submit(request)
            with anyio.fail_after(10):
                while not sim.cancels:
                    await anyio.sleep(0.01)
            [client] = sim._state.bayeux._clients.values()
            client.queue.append(dict(malformed))  # the next long poll answers it first
            sim.faults.release_notifications()
            try:
                outcome: object = await ticket
            except CancelFailed as failed:
                outcome = failed.failure
    assert isinstance(outcome, RecordCancelAck), outcome
    assert [ack.request for ack in recorder.acks] == [request]
    assert recorder.failures == []
    assert len(events_named(logs, "cometd_message_malformed")) == 1
