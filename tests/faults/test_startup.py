"""Starting on a GWS that forgets the CometD client between the handshake and the
subscriptions (``402::Unknown client`` on ``/meta/subscribe``): the start handshakes again
and subscribes again, a bounded number of times, as the listener does once it runs."""

from __future__ import annotations

import pluggy
import pytest

from gws_outbound_plugin import CometDState, GWSTransportError, OutboundPlugin
from gws_outbound_plugin._cometd import START_HANDSHAKES
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import ACK
from tests.faults.support import captured_logs, events_named
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
