"""Fault matrix, CometD: lost sessions, restarts, stalled long polls, notification faults,
refused subscriptions."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, CometDState, GWSTransportError, OutboundPlugin
from gws_outbound_plugin._cometd import CometDListener
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import ACK, Row, fault
from tests.faults.support import (
    assert_nothing_else,
    assert_outcome,
    captured_logs,
    events_named,
    outcome_calls,
)
from tests.helpers import AGENT, PASSWORD, Recorder, make_request

pytestmark = pytest.mark.anyio

OUTBOUND = "/v2/me/outbound"
INTERNAL = "/me/internal"


def handshakes(sim: GWSSimulator) -> int:
    return sum("/meta/handshake" in r.bayeux_channels for r in sim.requests)


async def accepted_by_gws(sim: GWSSimulator, count: int) -> None:
    with anyio.fail_after(5):
        while sum(1 for c in sim.cancels if c.status == 200) < count:
            await anyio.sleep(0.01)


@fault("cometd-402")
async def test_unknown_client_with_a_cancel_pending(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    before = handshakes(sim)
    sim.faults.hold_notifications()
    pending = make_request(device_path, handle=11)
    ticket = plugin.submit(pending)
    await accepted_by_gws(sim, 1)
    assert sim.forget_cometd_clients() == 1
    with pytest.raises(CancelFailed):
        await ticket
    assert_outcome(recorder, pending, row)
    assert handshakes(sim) == before + 1
    # What GWS published in the meantime arrives late: it must not become a second outcome.
    sim.faults.release_notifications()
    await recorder.wait_for(lambda r: len(r.user_events) == 1)
    after = make_request(device_path, handle=12)
    await plugin.cancel(after)
    assert [c.hook for c in recorder.outcomes_for(after.reference_id)] == [ACK]
    assert plugin.stats["late"] == 2
    assert_nothing_else(recorder, [pending, after], user_events=2)


@fault("cometd-restart")
async def test_server_restart_with_cancels_pending(
    row: Row, pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    # ack_timeout well above the reconnection time, so only the lost session can end them.
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=8.0)) as plugin:
        sim.faults.hold_notifications()
        pending = [make_request(device_path, handle=h) for h in (11, 13)]
        tickets = [plugin.submit(request) for request in pending]
        await accepted_by_gws(sim, 2)
        await sim.restart()  # the held outcomes are lost with the server's memory
        sim.faults.release_notifications()
        with anyio.fail_after(5):
            for ticket in tickets:
                with pytest.raises(CancelFailed):
                    await ticket
        for request in pending:
            assert_outcome(recorder, request, row)
        since = len(sim.requests)
        after = make_request(device_path, handle=12)
        await plugin.cancel(after)
        assert [c.hook for c in recorder.outcomes_for(after.reference_id)] == [ACK]
        assert [(r.path, r.status) for r in sim.requests[since:] if "notif" not in r.path] == [
            ("/api/v2/me/outbound-records/12", 403),
            ("/api/v2/me", 200),
            ("/api/v2/me/outbound-records/12", 200),
        ]
    assert_nothing_else(recorder, [*pending, after], user_events=1)


@fault("cometd-long-poll-timeout")
async def test_long_polls_outliving_the_clients_timeout(
    row: Row, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        # The server advises 1 s but holds each /meta/connect for 3 s: the client gives up
        # on every long poll (after 1.2 s) before its answer comes.
        sim.faults.hold_connects(3.0, count=None)
        config = fast_config(sim.base_url, cometd_connection_timeout=1.0, ack_timeout=2.0)
        device_path = sim.device_path(AGENT)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(8):
                while plugin.cometd_state is not CometDState.RECONNECTING:
                    await anyio.sleep(0.05)
            stalled = make_request(device_path, handle=11)
            with pytest.raises(CancelFailed) as info:
                await plugin.cancel(stalled)
            failure = assert_outcome(recorder, stalled, row)
            assert failure.message == "the CometD session is down; the cancel was not sent"
            assert info.value.failure is failure
            assert sim.cancels == []  # never sent: its outcome could not have been heard
            # The network recovers; the server has forgotten the client meanwhile.
            sim.faults.clear()
            sim.forget_cometd_clients()
            await plugin.wait_connected(timeout=8)
            after = make_request(device_path, handle=12)
            await plugin.cancel(after)
    assert [c.hook for c in recorder.outcomes_for(after.reference_id)] == [ACK]
    assert_nothing_else(recorder, [stalled, after], user_events=1)


@fault("cometd-drop-both")
async def test_both_notifications_dropped(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.drop_notifications("both")
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert failure.message == "no acknowledgement within 1s"
    assert_nothing_else(recorder, [request], user_events=0)


@fault("cometd-drop-outbound")
async def test_outbound_message_dropped(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.drop_notifications("outbound")
    request = make_request(device_path)
    ack = await plugin.cancel(request)
    assert assert_outcome(recorder, request, row) is ack
    assert ack.record_handle == 11 and ack.user_data["GSW_RECORD_HANDLE"] == 11
    assert ack.reference_id == request.reference_id
    assert_nothing_else(recorder, [request], user_events=1)


@fault("cometd-drop-user-event")
async def test_user_event_dropped(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.drop_notifications("user_event")
    request = make_request(device_path)
    ack = await plugin.cancel(request)
    assert assert_outcome(recorder, request, row) is ack
    assert dict(ack.user_data) == {} and ack.record_handle == 11
    assert_nothing_else(recorder, [request], user_events=0)


@fault("cometd-duplicate")
async def test_notifications_duplicated(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.duplicate_notifications(times=3)
    request = make_request(device_path)
    await plugin.cancel(request)
    await sim.wait_for_published(6)
    with anyio.fail_after(5):  # every copy arrives and is dropped as a duplicate
        while plugin.stats["duplicates"] < 4:
            await anyio.sleep(0.01)
    await anyio.sleep(0.1)
    assert_outcome(recorder, request, row)
    assert plugin.stats["duplicates"] == 4
    assert_nothing_else(recorder, [request], user_events=1)


@fault("cometd-reorder")
async def test_notifications_reordered(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.reverse_notifications()
    request = make_request(device_path)
    ack = await plugin.cancel(request)
    assert [p.channel for p in sim.published] == ["/me/internal", "/v2/me/outbound"]
    assert assert_outcome(recorder, request, row) is ack
    assert ack.reference_id == request.reference_id
    assert ack.user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert_nothing_else(recorder, [request], user_events=1)


@fault("cometd-delay")
async def test_notifications_delayed_within_the_ack_timeout(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.delay_notifications(plugin.config.ack_timeout / 3)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert_nothing_else(recorder, [request], user_events=1)


@fault("cometd-delay-past-timeout")
async def test_notifications_delayed_past_the_ack_timeout(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.delay_notifications(plugin.config.ack_timeout + 0.5)
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    await recorder.wait_for(lambda r: len(r.user_events) == 1)
    await anyio.sleep(plugin.config.merge_window * 3)  # a foreign ack would fire by now
    assert plugin.stats["late"] == 2 and plugin.stats["foreign_acks"] == 0
    assert_nothing_else(recorder, [request], user_events=1)


@fault("cometd-foreign-ack")
async def test_acknowledgement_of_a_cancel_that_is_not_ours(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as other:
        me = await other.get("/api/v2/me", auth=(AGENT, PASSWORD))
        token = me.headers["X-CSRF-TOKEN"]
        answer = await other.post(
            "/api/v2/me/outbound-records/12",
            json={
                "operationName": "CancelRecord",
                "applicationId": 134,
                "campaignName": "Campaign1",
                "callingList": "CallingList1",
                "devicePath": device_path,
                "referenceId": "another-desktop-1",
            },
            headers={"X-CSRF-TOKEN": token},
        )
        assert answer.json() == {"statusCode": 0}
    await recorder.wait_for(lambda r: len(outcome_calls(r)) == 1)
    await anyio.sleep(plugin.config.merge_window * 3)
    [call] = outcome_calls(recorder)
    assert call.hook == row.hook
    ack = call.payload
    assert ack.request is None
    assert ack.reference_id == "another-desktop-1" and ack.record_handle == 12
    assert ack.user_data["GSW_RECORD_HANDLE"] == 12
    assert len(recorder.user_events) == 1
    assert plugin.stats["foreign_acks"] == 1 and plugin.pending_count == 0


@fault("cometd-ocs-error")
async def test_ocs_error_event(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.ocs_error(number=217, message="Record is locked by another agent")
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert failure.error_number == 217
    assert failure.message == "Record is locked by another agent"
    assert failure.user_data["GSW_ERROR_NUMBER"] == 217
    [event] = recorder.user_events
    assert event.is_error
    assert_nothing_else(recorder, [request], user_events=1)


# -- a refused /me/internal (gws-outbound.md §10.8: known from the seed only) -------------------


def refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return events_named(logs, "cometd_subscription_refused")


@fault("cometd-internal-refused")
async def test_a_refused_internal_channel_does_not_stop_the_plugin(
    row: Row, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    async with GWSSimulator(
        users={AGENT: PASSWORD}, connect_timeout=2.0, forbidden_channels=[INTERNAL]
    ) as sim:
        with captured_logs() as logs:
            async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
                assert plugin.cometd_state is CometDState.CONNECTED
                assert plugin._listener.refused_channels == (INTERNAL,)
                # Correlated by /v2/me/outbound alone: acknowledged, without user data.
                request = make_request(sim.device_path(AGENT))
                ack = await plugin.cancel(request)
                assert ack.reference_id == request.reference_id
                assert dict(ack.user_data) == {}
                assert plugin.refused_channels == (INTERNAL,)
                assert plugin.stats["refused_channels"] == 1
        assert_outcome(recorder, request, row)
        [warning] = refusals(logs)
        assert (warning["log_level"], warning["channel"]) == ("warning", INTERNAL)
        assert warning["error"].startswith("403::")


async def test_a_refused_channel_is_asked_for_again_after_each_rehandshake(
    sim: GWSSimulator,
) -> None:
    config = fast_config(sim.base_url)
    session = GWSSession(config)
    await session.open()
    restored: list[int] = []
    listener = CometDListener(
        config,
        session,
        [OUTBOUND, INTERNAL],
        on_lost=lambda why: None,
        on_restored=lambda: restored.append(1),
    )

    async def deliver(message: Any) -> None:
        """Drop the message: this test watches the session, not what it carries."""

    async def rehandshake() -> None:
        before = len(restored)
        assert sim.forget_cometd_clients() == 1
        with anyio.fail_after(5):
            while len(restored) == before:
                await anyio.sleep(0.01)

    def solo_subscribes() -> int:
        # aiocometd re-subscribes accepted channels along with the connect; the listener
        # asks for a refused one in a request of its own.
        return sum(r.bayeux_channels == ("/meta/subscribe",) for r in sim.requests)

    async def settled(expected: tuple[str, ...]) -> None:
        with anyio.fail_after(5):
            while listener.refused_channels != expected:
                await anyio.sleep(0.01)

    try:
        with captured_logs() as logs:
            await listener.open()
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.run, deliver)
                assert listener.refused_channels == ()
                sim.set_forbidden_channels([INTERNAL])
                await rehandshake()
                await settled((INTERNAL,))
                assert listener.state is CometDState.CONNECTED
                asked = solo_subscribes()
                await rehandshake()  # still refused: asked again, no second warning
                with anyio.fail_after(5):
                    while solo_subscribes() == asked:
                        await anyio.sleep(0.01)
                assert listener.refused_channels == (INTERNAL,)
                sim.set_forbidden_channels([])
                await rehandshake()
                await settled(())
                tg.cancel_scope.cancel()
    finally:
        await listener.close()
        await session.close()
    assert len(refusals(logs)) == 1
    assert [e["channel"] for e in events_named(logs, "cometd_subscription_accepted")] == [INTERNAL]


@fault("cometd-outbound-refused")
async def test_a_refused_outbound_channel_fails_the_start(
    row: Row, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    async with GWSSimulator(users={AGENT: PASSWORD}, forbidden_channels=[OUTBOUND]) as sim:
        plugin = OutboundPlugin(pm, fast_config(sim.base_url))
        with pytest.raises(GWSTransportError) as info:
            async with plugin:
                raise AssertionError("started without the outbound channel")
        assert str(info.value).startswith(
            f"the CometD server at {sim.base_url}/api/v2/notifications refused the "
            f"subscription to {OUTBOUND} (403::"
        )
        assert str(info.value).endswith("without it no acknowledgement can be heard")
        assert not plugin.running
        assert recorder.calls == []


async def test_an_outbound_channel_refused_after_a_rehandshake_is_asked_for_until_granted(
    sim: GWSSimulator,
) -> None:
    config = fast_config(sim.base_url, reconnect_backoff_max=0.2)  # asked every 0.2 s at most
    session = GWSSession(config)
    await session.open()
    lost: list[str] = []
    restored: list[int] = []
    listener = CometDListener(
        config,
        session,
        [OUTBOUND, INTERNAL],
        on_lost=lost.append,
        on_restored=lambda: restored.append(1),
    )

    async def deliver(message: Any) -> None:
        """Drop the message: this test watches the session, not what it carries."""

    try:
        with captured_logs() as logs:
            await listener.open()
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.run, deliver)
                sim.set_forbidden_channels([OUTBOUND])
                assert sim.forget_cometd_clients() == 1
                with anyio.fail_after(5):
                    while listener.refused_channels != (OUTBOUND,):
                        await anyio.sleep(0.01)
                # Without the acknowledgements nothing can be sent: not connected.
                assert listener.state is CometDState.RECONNECTING
                assert restored == []
                sim.set_forbidden_channels([])
                with anyio.fail_after(5):
                    await listener.wait_connected()
                assert listener.refused_channels == ()
                assert restored == [1]
                tg.cancel_scope.cancel()
    finally:
        await listener.close()
        await session.close()
    [refused] = refusals(logs)
    assert (refused["log_level"], refused["channel"]) == ("error", OUTBOUND)
    assert lost == ["402::Unknown client"]
