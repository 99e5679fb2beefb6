"""The CometD client stopping for good without saying so, and the listener starting a new one.

aiocometd polls in a task of its own (the long poll, or the wait before the next one), and
schedules each next poll from that task's done callback. When that task is cancelled from
outside (a host that cancels every task of its loop: a supervisor restarting its workers, a
test harness, a shutdown that goes on serving while it drains), the callback raises and no
poll is ever scheduled again, while ``receive()`` waits for good. The plugin was deaf for as
long as it ran: every later request ended ``timed_out`` ("may have acted": GWS did act) with
``connection_state`` saying ``connected``, or ``transport_failure`` with it saying
``reconnecting`` for ever, however long GWS was back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CometDState,
    FailureReason,
    OutboundPlugin,
    hookimpl,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import ACK, FAILED
from tests.faults.support import (
    ConnectAnsweredWith,
    StallingProxy,
    captured_logs,
    events_named,
    handles,
    plugin_tasks,
    request_for,
    until,
)
from tests.helpers import AGENT, PASSWORD, Recorder

pytestmark = pytest.mark.anyio


def cometd_client_tasks(*, poll_only: bool = False) -> list[asyncio.Task[Any]]:
    """The CometD client's own tasks (its long poll, the waits of ``receive()``): what a host
    cancelling "every task" reaches besides the plugin's; ``poll_only``: the long poll's
    (``_connect``, or ``wrapper`` while it waits before the next)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is None or "aiocometd_noloop" not in code.co_filename:
            continue
        if not poll_only or code.co_name in ("_connect", "wrapper", "handshake"):
            found.append(task)
    return found


@pytest.mark.parametrize("which", ["poll", "client", "client-and-plugin"])
async def test_a_cometd_client_whose_polling_was_cancelled_is_replaced(
    pm: pluggy.PluginManager, recorder: Recorder, which: str
) -> None:
    """The CometD client's tasks (and, as a host cancelling every task does, the plugin's
    own) are cancelled once, while the plugin runs. The client is noticed to have stopped
    polling (``cometd_client_stalled``) within a second, the session counted lost, and a new
    client handshakes and subscribes: ``connection_state`` says so, and the requests after
    it are acknowledged. A request sent before it was noticed ends in one outcome: its own
    acknowledgement, or ``outcome_unknown`` (the session was lost with its answer)."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        first, meanwhile, after = (request_for(sim, h) for h in handles(sim, 3))
        config = fast_config(sim.base_url, ack_timeout=2.0)
        states: list[CometDState] = []
        with captured_logs() as logs:
            async with OutboundPlugin(pm, config) as plugin:
                await plugin.cancel(first)
                pm.register(StateWatcher(states), name="states")
                stopped = cometd_client_tasks(poll_only=which == "poll")
                assert stopped, "no task of the CometD client found"
                if which == "client-and-plugin":
                    stopped += plugin_tasks()
                for task in stopped:
                    task.cancel()
                ticket = plugin.submit(meanwhile)
                try:  # before: "connected" for good, every request timed_out
                    await until(lambda: CometDState.RECONNECTING in states, timeout=5)
                except TimeoutError:
                    pytest.fail(f"still {plugin.connection_state.value}: {states}")
                await plugin.wait_connected(timeout=5)
                try:
                    await plugin.cancel(after)
                except CancelFailed as error:
                    pytest.fail(f"{error.failure.reason.value}: {error.failure.message}")
                with anyio.fail_after(5):
                    with contextlib.suppress(CancelFailed):
                        await ticket
    assert [c.hook for c in recorder.outcomes_for(meanwhile.reference_id)] in (
        [ACK],
        [FAILED],
    )
    for failure in recorder.failures:
        assert failure.request is meanwhile
        assert failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert {a.reference_id for a in recorder.acks} >= {first.reference_id, after.reference_id}
    assert states[-1] == CometDState.CONNECTED
    assert set(states) == {CometDState.RECONNECTING, CometDState.CONNECTED}, states
    assert len(events_named(logs, "cometd_session_lost")) == 1
    if which == "poll":  # nothing else says so: the listener must notice it by itself
        [stalled] = events_named(logs, "cometd_client_stalled")
        assert stalled["log_level"] == "warning"
    assert sum("/meta/handshake" in r.bayeux_channels for r in sim.requests) == 2


class StateWatcher:
    """Records every ``on_connection_state_changed`` state."""

    def __init__(self, states: list[CometDState]) -> None:
        self.states = states

    @hookimpl
    def on_connection_state_changed(self, state: CometDState, previous: CometDState) -> None:
        self.states.append(state)


def connects(sim: GWSSimulator) -> int:
    return sum("/meta/connect" in r.bayeux_channels for r in sim.requests)


@pytest.mark.parametrize("reconnect", ["retry", None, "handshake", "none"])
async def test_refused_long_polls_are_said_and_backed_off(
    pm: pluggy.PluginManager, recorder: Recorder, reconnect: str | None
) -> None:
    """GWS refuses every ``/meta/connect`` for a while (``successful: false``, a ``500::``
    error, advising ``retry``, nothing, ``handshake`` or ``none``), then serves again.

    Before, aiocometd followed the advice's ``interval`` (0) at once, and its transport said
    "connected" after every answer, refused or not: the plugin sent hundreds of long polls a
    second, and ``connection_state`` said ``connected`` while no outcome could be heard (a
    request sent then, which GWS acted on, ended ``timed_out``). With ``handshake`` each
    re-handshake's subscriptions restored the session although its connect was refused. A
    refused long poll now makes the state ``reconnecting`` (a request accepted then waits
    for the session and, unheard, is not sent), the next ones follow the reconnection
    backoff, and the session is back at the first long poll served."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        first, during, after = (request_for(sim, h) for h in handles(sim, 3))
        config = fast_config(sim.base_url, ack_timeout=2.0)
        states: list[CometDState] = []
        async with OutboundPlugin(pm, config) as plugin:
            await plugin.cancel(first)
            pm.register(StateWatcher(states), name="states")
            sim.faults.refuse_connects(reconnect=reconnect, count=None)
            try:  # the long poll held now ends within a second; the next one is refused
                await until(lambda: plugin.connection_state is not CometDState.CONNECTED, timeout=5)
            except TimeoutError:
                pytest.fail(f"still connected after {connects(sim)} long polls")
            since = connects(sim)
            with pytest.raises(CancelFailed) as info:
                await plugin.cancel(during)  # waits request_timeout (1 s) for the session
            assert info.value.failure.reason is FailureReason.TRANSPORT_FAILURE
            assert len(sim.cancels) == 1  # the first only: not sent
            # Backed off: 0.5 s, 1 s, ... apart (before: hundreds a second).
            assert connects(sim) - since < 10
            sim.faults.clear()
            await plugin.wait_connected(timeout=10)
            await plugin.cancel(after)
    assert [a.reference_id for a in recorder.acks] == [first.reference_id, after.reference_id]
    assert [f.request.reference_id for f in recorder.failures] == [during.reference_id]
    # "reconnecting" until it is back, then "connected": never "closed" (nor "connecting")
    # while a new client is tried, as with reconnect: none.
    assert states[0] == CometDState.RECONNECTING
    assert states[-1] == CometDState.CONNECTED
    assert set(states) == {CometDState.RECONNECTING, CometDState.CONNECTED}, states


async def test_a_long_outage_that_ends_is_one_loss_and_a_new_session(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """GWS goes away for several ``cometd_connection_timeout``s (connections refused) and
    comes back with its memory lost. The plugin says ``reconnecting`` the whole time, and
    ``cometd_unreachable`` once (before: one warning per ``cometd_connection_timeout``, 360 an
    hour with the default, for as long as the outage lasted); a request GWS accepted before
    ends once, "may have acted"; one accepted during the outage is not sent and fails
    ``transport_failure``; a new client handshakes within the reconnection backoff once GWS is
    back, and the next request is acknowledged."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        first, before, during, after = (request_for(sim, h) for h in handles(sim, 4))
        config = fast_config(
            sim.base_url, cometd_connection_timeout=1.0, ack_timeout=2.0, reconnect_backoff_max=1.0
        )
        states: list[CometDState] = []
        with captured_logs() as logs:
            async with OutboundPlugin(pm, config) as plugin:
                await plugin.cancel(first)
                pm.register(StateWatcher(states), name="states")
                sim.faults.hold_notifications()
                ticket = plugin.submit(before)
                await until(lambda: len(sim.cancels) == 2, timeout=5)
                await sim.stop()
                await until(lambda: events_named(logs, "cometd_unreachable"), timeout=5)
                with pytest.raises(CancelFailed) as info:
                    await plugin.cancel(during)
                assert info.value.failure.reason is FailureReason.TRANSPORT_FAILURE
                await anyio.sleep(3 * config.cometd_connection_timeout)  # the outage goes on
                assert plugin.connection_state is CometDState.RECONNECTING
                sim.faults.clear()
                await sim.start()
                await plugin.wait_connected(timeout=10)
                await plugin.cancel(after)
                with pytest.raises(CancelFailed) as info:
                    await ticket
                assert info.value.failure.may_have_acted
    assert [a.reference_id for a in recorder.acks] == [first.reference_id, after.reference_id]
    assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
        (before.reference_id, during.reference_id)
    )
    sent = {int(c.path.rsplit("/", 1)[1]) for c in sim.cancels}
    assert sent == {first.record_handle, before.record_handle, after.record_handle}  # not during
    unreachable = events_named(logs, "cometd_unreachable")
    assert [e["log_level"] for e in unreachable if e["log_level"] != "debug"] == ["warning"]
    assert len(events_named(logs, "cometd_session_lost")) == 1
    assert states[-1] == CometDState.CONNECTED


def handshakes(sim: GWSSimulator) -> int:
    return sum("/meta/handshake" in r.bayeux_channels for r in sim.requests)


async def test_refused_rehandshakes_are_backed_off(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """GWS forgets the client (``402::Unknown client``) and then refuses its handshakes for a
    while, advising ``reconnect: handshake`` with ``interval: 0``. aiocometd followed that
    advice at once: hundreds of handshakes a second for as long as GWS refused them. They
    now follow the reconnection backoff; the session is back at the first one accepted."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        first, during, after = (request_for(sim, h) for h in handles(sim, 3))
        config = fast_config(sim.base_url, ack_timeout=2.0)
        async with OutboundPlugin(pm, config) as plugin:
            await plugin.cancel(first)
            sim.faults.refuse_handshakes(count=None)
            since = handshakes(sim)
            assert sim.forget_cometd_clients() == 1
            await until(lambda: plugin.connection_state is not CometDState.CONNECTED, timeout=5)
            with pytest.raises(CancelFailed) as info:
                await plugin.cancel(during)  # waits request_timeout (1 s) for the session
            assert info.value.failure.reason is FailureReason.TRANSPORT_FAILURE
            assert 1 <= handshakes(sim) - since < 10  # before: hundreds
            sim.faults.clear()
            await plugin.wait_connected(timeout=10)
            await plugin.cancel(after)
    assert [a.reference_id for a in recorder.acks] == [first.reference_id, after.reference_id]
    assert [f.request.reference_id for f in recorder.failures] == [during.reference_id]


@pytest.mark.parametrize("successful", [False, None])
async def test_an_event_message_saying_unsuccessful_does_not_end_the_session(
    pm: pluggy.PluginManager, recorder: Recorder, successful: bool | None
) -> None:
    """A notification (not a meta reply) carrying ``"successful": false`` (or ``null``), as a
    broken server or proxy sends it: aiocometd's ``receive()`` raised it as the server's
    ``ServerError``, and the listener took that for the server closing the session: the
    session counted lost (every pending request ``outcome_unknown``), a new client
    handshaken, and the notification itself lost. It is now delivered like any other, the
    ``successful`` field left out."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        event = {
            "channel": "/me/internal",
            "successful": successful,
            "data": {
                "messageType": "DeviceUserEventMessage",
                "deviceId": sim.device_id(AGENT),
                "userData": {"GSW_USER_EVENT": "AgentNote", "GSW_NOTE": "odd"},
            },
        }
        answer = ConnectAnsweredWith(3, events=(event,))
        async with StallingProxy(sim.port, answer=answer) as proxy:
            request = request_for(sim, handles(sim, 1)[0])
            with captured_logs() as logs:
                async with OutboundPlugin(pm, fast_config(proxy.base_url)) as plugin:
                    await until(lambda: answer.seen >= 4, timeout=5)
                    await until(lambda: recorder.user_events, timeout=5)
                    await plugin.cancel(request)
    assert events_named(logs, "cometd_session_lost") == []
    assert handshakes(sim) == 1
    assert recorder.user_events[0].user_event == "AgentNote"
    assert [a.reference_id for a in recorder.acks] == [request.reference_id]


async def test_a_message_taken_for_the_listener_survives_its_task_being_cancelled(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The host cancels the listener's task (a plain ``task.cancel()``) in the loop turn in
    which the next message arrives in the client's queue, after the listener's wait was woken
    for it. aiocometd's wait inside ``receive()`` took the message in a task of its own and
    dropped it when the waiting task was cancelled then: the listener was started again (the
    host's cancellation is taken back) but the message was gone, and the request ended
    ``timed_out``/``outcome_unknown`` although GWS acknowledged it. The message must reach
    the next wait."""
    # /v2/me/outbound alone: the notification is the request's only answer.
    async with GWSSimulator(users={AGENT: PASSWORD}, forbidden_channels=["/me/internal"]) as sim:
        first, second = (request_for(sim, h) for h in handles(sim, 2))
        config = fast_config(sim.base_url, ack_timeout=2.0)
        async with OutboundPlugin(pm, config) as plugin:
            await plugin.cancel(first)
            listener = plugin._listener
            assert listener is not None and listener._client is not None
            queue = listener._client._incoming_queue
            [task] = [t for t in plugin_tasks() if "HTTPCometDTransport.run" in t.get_name()]
            put = queue.put_nowait
            armed = False

            def put_and_cancel(item: Any) -> None:  # how aiocometd's put() queues a message
                nonlocal armed
                put(item)  # wakes the listener's wait
                if armed:  # the host's "cancel every task" runs right after it, this turn
                    armed = False
                    task.cancel()

            queue.put_nowait = put_and_cancel  # type: ignore[method-assign]
            await anyio.sleep(0.1)
            armed = True
            try:
                with anyio.fail_after(5):
                    await plugin.cancel(second)
            except CancelFailed as error:
                pytest.fail(f"{error.failure.reason.value}: {error.failure.message}")
            assert not armed, "no message was queued for the listener"
    assert {a.reference_id for a in recorder.acks} == {first.reference_id, second.reference_id}
    assert recorder.failures == []
