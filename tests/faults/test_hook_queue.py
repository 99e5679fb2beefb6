"""The hook queue's backpressure on the CometD listener (``hook_queue_size``): the listener
waits while more calls are queued than that, and reads on once they were made, also when
the calls queued were of hooks no plugin implements (left out without a call)."""

from __future__ import annotations

import anyio
import pytest

from gws_outbound_plugin import OutboundPlugin, RecordCancelAck, hookimpl, make_plugin_manager
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import AGENT

pytestmark = pytest.mark.anyio


class AcksOnly:
    """A host's plugin: the cancel acknowledgements, and no ``on_user_event``."""

    def __init__(self) -> None:
        self.acks: list[RecordCancelAck] = []

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self.acks.append(ack)


async def test_the_listener_reads_on_after_calls_of_hooks_nobody_implements(
    sim: GWSSimulator,
) -> None:
    """User events nobody's ``on_user_event`` hears, more of them in one long-poll answer
    than ``hook_queue_size``: the listener waits for the hook queue, which is emptied without
    a single hook call. It must read on: the cancel after them is acknowledged."""
    pm = make_plugin_manager(load_entrypoints=False)
    acks = AcksOnly()
    pm.register(acks, name="acks_only")
    config = fast_config(sim.base_url, hook_queue_size=1)
    request = request_for(sim, handles(sim, 1)[0])
    async with OutboundPlugin(pm, config) as plugin:
        for n in range(4):  # published at once: read in one answer
            sim._bayeux.publish(
                AGENT,
                "/me/internal",
                {
                    "messageType": "DeviceUserEventMessage",
                    "deviceId": "d1",
                    "userData": {"GSW_USER_EVENT": "AgentNote", "note": n},
                },
            )
        with anyio.fail_after(10):
            ack = await plugin.cancel(request)
        assert plugin.stats["user_events"] >= 5  # the four, and the cancel's own
    assert ack.request == request
    assert [a.request for a in acks.acks] == [request]
