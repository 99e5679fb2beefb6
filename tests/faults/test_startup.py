"""Starting on a GWS that forgets the CometD client between the handshake and the
subscriptions (``402::Unknown client`` on ``/meta/subscribe``): the start handshakes again
and subscribes again, a bounded number of times, as the listener does once it runs."""

from __future__ import annotations

import gc

import aiohttp
import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CometDState,
    FailureReason,
    GWSConfig,
    GWSTransportError,
    OutboundPlugin,
)
from gws_outbound_plugin._cometd import START_HANDSHAKES
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import ACK, FAILED
from tests.faults.support import StallingProxy, captured_logs, events_named
from tests.helpers import Recorder, make_request

pytestmark = pytest.mark.anyio

OUTBOUND = "/v2/me/outbound"
INTERNAL = "/me/internal"


def handshakes(sim: GWSSimulator) -> int:
    return sum(request.bayeux_channels.count("/meta/handshake") for request in sim.requests)


@pytest.mark.parametrize("channel", [OUTBOUND, INTERNAL])
async def test_a_client_forgotten_before_its_subscription_is_handshaken_again(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, channel: str
) -> None:
    sim.faults.forget_on_subscribe(channel=channel)
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            assert sim.faults.active == ()  # the fault was met
            assert plugin.cometd_state is CometDState.CONNECTED
            assert plugin.refused_channels == ()  # a forgotten client is no refusal
            assert handshakes(sim) == 2
            request = make_request(sim.device_path("agent1"))
            ack = await plugin.cancel(request)
            assert ack.reference_id == request.reference_id
            assert dict(ack.user_data)  # /me/internal is subscribed: the user event came
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [ACK]
    assert events_named(logs, "cometd_subscription_refused") == []
    [retry] = events_named(logs, "cometd_start_rehandshake")
    assert retry["step"] == f"subscription to {channel}"
    assert retry["error"].startswith("402::")


async def test_a_client_forgotten_at_every_subscription_fails_the_start_after_bounded_attempts(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    sim.faults.forget_on_subscribe(count=None)
    plugin = OutboundPlugin(pm, fast_config(sim.base_url))
    with pytest.raises(GWSTransportError) as info:
        async with plugin:
            raise AssertionError("started on a forgotten client")
    assert str(info.value) == (
        f"the CometD subscription to {OUTBOUND} at {sim.base_url}/api/v2/notifications failed: "
        "Subscribe request failed: 402::Unknown client (ServerError); "
        f"{START_HANDSHAKES} attempts"
    )
    assert handshakes(sim) == START_HANDSHAKES
    assert not plugin.running
    assert plugin.cometd_state is CometDState.CLOSED
    assert recorder.calls == []
    assert sim.cometd_client_count == 0  # no client left behind


def config_after(proxy: StallingProxy) -> GWSConfig:
    """The fault suite's configuration, to GWS behind ``proxy`` (entered by now)."""
    return fast_config(proxy.base_url)


def aiohttp_sessions() -> list[aiohttp.ClientSession]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)]


async def test_a_start_whose_server_stops_answering_fails_as_documented_and_leaves_nothing_open(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """The subscription is not answered (request_timeout), nor is the polite disconnect of
    the failed start's clean-up: that clean-up waited aiocometd's own request timeout and
    raised its TimeoutError in place of the start's GWSTransportError, the CometD client's
    HTTP session left open."""
    before = set(map(id, aiohttp_sessions()))
    async with StallingProxy(sim.port, ("/meta/subscribe", "/meta/disconnect")) as proxy:
        plugin = OutboundPlugin(pm, fast_config(proxy.base_url, request_timeout=0.5))
        with pytest.raises(GWSTransportError) as info:
            async with plugin:
                raise AssertionError("started without an answer to its subscription")
        assert str(info.value).startswith(
            f"the CometD subscription to {OUTBOUND} at {proxy.base_url}/api/v2/notifications "
            "failed: no answer within 0.5s"
        )
        assert plugin.cometd_state is CometDState.CLOSED
        left = [s for s in aiohttp_sessions() if id(s) not in before]
        assert all(session.closed for session in left)


async def test_a_start_cancelled_while_the_server_stops_answering_ends_cancelled(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """Ctrl-C (the host's cancellation) while the subscription is unanswered: the clean-up's
    polite disconnect is not answered either. The cancellation went through only after
    aiocometd's own request timeout, as a TimeoutError instead of the cancellation."""
    before = set(map(id, aiohttp_sessions()))
    async with StallingProxy(sim.port, ("/meta/subscribe", "/meta/disconnect")) as proxy:
        plugin = OutboundPlugin(pm, fast_config(proxy.base_url, request_timeout=30.0))
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                async with plugin:
                    raise AssertionError("started without an answer to its subscription")

            tg.start_soon(start)
            await proxy.stalled.wait()
            tg.cancel_scope.cancel()  # as anyio.run's Ctrl-C cancels the main task
        assert not plugin.running
        assert plugin.cometd_state is CometDState.CLOSED
        left = [s for s in aiohttp_sessions() if id(s) not in before]
        assert all(session.closed for session in left)


async def test_a_rehandshake_of_the_forgotten_client_while_starting_is_no_session_loss(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The server forgets the client while its subscription is in flight and answers that
    subscription late: meanwhile the forgotten client's long poll gets the 402, and aiocometd
    handshakes again by itself. That handshake counted as a session lost (the engine was
    told, never told it was back), so every request of the started plugin ended as lost with
    the session (``outcome_unknown``) instead of ``timed_out`` when its answer did not come."""
    sim.faults.forget_on_subscribe(channel=OUTBOUND, seconds=0.5)
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        assert sim.faults.active == ()
        assert plugin.cometd_state is CometDState.CONNECTED
        sim.faults.drop_notifications("both")
        request = make_request(sim.device_path("agent1"))
        ticket = plugin.submit(request)
        with pytest.raises(CancelFailed) as info:
            await ticket
    assert info.value.failure.reason is FailureReason.TIMED_OUT
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [FAILED]


async def test_a_start_whose_forgotten_client_could_not_handshake_again_reports_no_loss(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """As above, but the forgotten client's own handshake is never answered: its long poll's
    402 was reported as a session loss, and the start that succeeded on a new client never
    reported the restoration. The engine went on believing the session lost: a request whose
    answer did not come ended ``outcome_unknown`` ("the CometD session was lost") instead of
    ``timed_out``."""
    sim.faults.forget_on_subscribe(channel=OUTBOUND, seconds=0.5)
    handshake = "/meta/handshake"
    proxy = StallingProxy(sim.port, (handshake,), only={handshake: {2}})
    async with proxy, OutboundPlugin(pm, config_after(proxy)) as plugin:
        assert proxy.stalled.is_set()  # the forgotten client's handshake went unanswered
        assert sim.faults.active == ()
        assert plugin.cometd_state is CometDState.CONNECTED
        sim.faults.drop_notifications("both")
        request = make_request(sim.device_path("agent1"))
        with pytest.raises(CancelFailed) as info:
            await plugin.submit(request)
    assert info.value.failure.reason is FailureReason.TIMED_OUT, info.value.failure.message
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [FAILED]


async def test_a_start_whose_first_connect_goes_unanswered_fails_as_documented(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """The handshake is answered, the first ``/meta/connect`` is not (within
    ``request_timeout``). aiocometd's ``open()`` awaits its connect task; the timeout cancelled
    that task through the await, the task's own done callback took the cancellation that named
    the timeout, and what reached the start was an anonymous ``CancelledError``, which anyio let
    through as someone else's: entering the plugin raised ``CancelledError`` (the host, never
    cancelled, saw itself cancelled) instead of ``GWSTransportError``; while running, the same
    in a new client's start ended the CometD listener (deaf for good)."""
    before = set(map(id, aiohttp_sessions()))
    async with StallingProxy(sim.port, ("/meta/connect",)) as proxy:
        plugin = OutboundPlugin(pm, fast_config(proxy.base_url, request_timeout=0.5))
        with pytest.raises(GWSTransportError) as info:
            async with plugin:
                raise AssertionError("started without an answer to its first connect")
        assert str(info.value).startswith(
            f"the CometD handshake at {proxy.base_url}/api/v2/notifications failed: "
            "no answer within 0.5s"
        ), str(info.value)
        assert plugin.cometd_state is CometDState.CLOSED
        left = [s for s in aiohttp_sessions() if id(s) not in before]
        assert all(session.closed for session in left)
