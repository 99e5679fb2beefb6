"""The outcome-stage faults ``echo_reference_ids`` and ``mislabel_notifications``: an OCS that
echoes our referenceId in its user events, a GWS that puts it on the wrong message."""

from __future__ import annotations

import pytest

from gws_outbound_plugin.simulator import Faults, GWSSimulator, parse_fault_spec
from tests.simulator.sim_helpers import GWS

pytestmark = pytest.mark.anyio


async def test_echo_reference_ids_puts_the_reference_on_every_user_event(
    sim: GWSSimulator, gws: GWS
) -> None:
    sim.faults.echo_reference_ids(count=2)
    await gws.cancel(11, referenceId="r-1")
    await gws.cancel(11, referenceId="r-2")  # refused: the record is cancelled
    await sim.wait_for_published(3)
    ack, event, refusal = (message.data for message in sim.published)
    assert ack["referenceId"] == "r-1" and "GSW_REFERENCE_ID" not in ack
    assert event["userData"]["GSW_REFERENCE_ID"] == "r-1"
    assert refusal["userData"]["GSW_REFERENCE_ID"] == "r-2"
    assert refusal["userData"]["GSW_ERROR_NUMBER"] == 102
    assert sim.faults.active == ()


async def test_mislabel_notifications_changes_the_record_and_the_type(
    sim: GWSSimulator, gws: GWS
) -> None:
    sim.faults.mislabel_notifications(record_handle=12, notification_type="RecordRejectAcknowledge")
    await gws.cancel(11, referenceId="r-1")
    await sim.wait_for_published(2)
    ack, event = (message.data for message in sim.published)
    assert ack["notificationType"] == "RecordRejectAcknowledge"
    assert ack["referenceId"] == "r-1"
    assert ack["record"]["recordHandle"] == 12
    assert event["userData"]["GSW_RECORD_HANDLE"] == 11  # user events left alone
    assert event["userData"]["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert sim.records[11].cancelled and not sim.records[12].cancelled


def test_mislabel_notifications_needs_something_to_change() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="record_handle, notification_type or both"):
        faults.mislabel_notifications()
    with pytest.raises(ValueError, match="record_handle must be an integer"):
        faults.mislabel_notifications(record_handle=True)
    with pytest.raises(ValueError, match="notification_type"):
        faults.mislabel_notifications(notification_type="")
    assert parse_fault_spec("mislabel_notifications:record_handle=12") == (
        "mislabel_notifications",
        {"record_handle": 12},
    )
