"""The matching rule as written, over the wire (after tests/unit/test_rule_as_written.py, which
drives the pure correlator): the orders a reader of docs/design-notes.md predicts an outcome
for, produced on the embedded simulator."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import AGENT, Recorder

pytestmark = pytest.mark.anyio


async def test_an_error_message_before_the_acknowledgement_by_reference_is_the_copys(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """M9: "A request in flight is acknowledged, whichever of the two came first: a refusal
    (with or without its reference id ...) never decides at once"; M1 takes a refusal with
    the request's reference id after its acknowledgement for a second copy's. A node in
    front of GWS writes our cancel twice: GWS refuses one copy with a CometD
    ``ErrorMessage`` carrying our referenceId, which arrives first; OCS acts on the other
    (its acknowledgement, held here, arrives after). The cancel is acknowledged. Before, the
    ``ErrorMessage`` ended it at once: ``rejected``, ``may_have_acted`` false, though OCS
    cancelled the record."""
    config = fast_config(sim.base_url, merge_window=1.0)
    target = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.hold_notifications()
        ticket = plugin.submit(request_for(sim, target))
        with anyio.fail_after(5):
            while not sim.cancels:
                await anyio.sleep(0.005)
        sim._bayeux.publish(
            AGENT,
            "/v2/me/outbound",
            {
                "messageType": "ErrorMessage",
                "referenceId": ticket.reference_id,
                "errorCode": 4,
                "errorMessage": "the second copy of the request was refused",
            },
        )
        marker = {"messageType": "DeviceUserEventMessage", "userData": {"GSW_USER_EVENT": "Mark"}}
        sim._bayeux.publish(AGENT, "/me/internal", marker)  # read after the ErrorMessage
        with anyio.fail_after(5):
            while not any(e.user_event == "Mark" for e in recorder.user_events):
                await anyio.sleep(0.005)
        sim.faults.release_notifications()
        with anyio.fail_after(5):
            ack = await ticket
        await plugin.wait_hooks_idle(5)
    (acted,) = sim.journal
    assert acted.ocs is not None and acted.ocs.kind == "acted"
    assert ack.request is not None and ack.request.reference_id == ticket.reference_id
    assert recorder.failures == []
    assert [a.request for a in recorder.acks] == [ack.request]


async def test_a_refusal_with_our_reference_naming_another_record_is_not_ours(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """M1: "an answer (an acknowledgement or a refusal) naming another record than the one
    the request is about (a server putting our reference id on the wrong message)" is
    ignored. OCS's refusal carrying our referenceId but naming another record arrives before
    our acknowledgement, which comes more than ``merge_window`` later: the cancel is
    acknowledged. Before, the refusal ended it ``ocs_error`` (``may_have_acted`` false) at the
    end of its window, and OCS's acknowledgement of our cancel was dropped as late."""
    config = fast_config(sim.base_url, merge_window=0.05)
    target, other = handles(sim, 2)
    record = sim.records[other].record
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.hold_notifications()
        ticket = plugin.submit(request_for(sim, target))
        with anyio.fail_after(5):
            while not sim.cancels:
                await anyio.sleep(0.005)
        refusal = {
            "GSW_USER_EVENT": "RecordCancelAcknowledge",
            "GSW_APPLICATION_ID": record.application_id,
            "GSW_CAMPAIGN_NAME": record.campaign_name,
            "GSW_CALLING_LIST": record.calling_list,
            "GSW_RECORD_HANDLE": other,
            "GSW_REFERENCE_ID": ticket.reference_id,
            "GSW_ERROR": "Record is locked",
            "GSW_ERROR_NUMBER": 104,
        }
        event = {"messageType": "DeviceUserEventMessage", "deviceId": "d1", "userData": refusal}
        sim._bayeux.publish(AGENT, "/me/internal", event)
        with anyio.fail_after(5):
            while not any(e.user_data.get("GSW_ERROR") for e in recorder.user_events):
                await anyio.sleep(0.005)
        await anyio.sleep(0.3)  # well past merge_window: a refusal taken would have decided
        sim.faults.release_notifications()
        with anyio.fail_after(5):
            ack = await ticket
        await plugin.wait_hooks_idle(5)
    assert ack.request is not None and ack.record_handle == target
    assert recorder.failures == []
