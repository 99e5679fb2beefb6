"""The right outcome, not just one (after test_attribution.py and test_attribution2.py): a
request ending with another request's answer, or with its own answer thrown away as another's.
Each test failed before its fix."""

from __future__ import annotations

from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    FailureReason,
    GetPreviewRecordRequest,
    OutboundPlugin,
    StartPreviewSessionRequest,
)
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS, HookRecorder, virtual_clock_loop
from tests.engine.conftest import fake_config
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


# -- an answer still owed to a request GWS acknowledged ------------------------------------------


async def test_a_refusal_of_the_same_cancel_again_is_not_the_first_one_s_late_answer(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A cancel is acknowledged by its notification alone (its user event is lost). The host
    cancels the record again (a retry, a second click) and OCS refuses it: "Record already
    cancelled" (102), a user event keyed on the record, without a referenceId, as OCS sends
    its refusals. Before, the plugin took that refusal for the first cancel's late answer
    (OCS answers a key's requests in order, and the first was still owed its user event)
    and dropped it: the second cancel ended ``timed_out`` after ``ack_timeout``, with
    ``may_have_acted`` true ("GWS may have acted: look at the record"), though OCS had said
    what it did. A request GWS acknowledged by its notification is owed that
    acknowledgement's user event only, never a refusal (M9): the second cancel gets its
    own answer, ``ocs_error`` 102."""
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        sim.faults.drop_notifications("user_event")
        first = await plugin.cancel(request_for(sim, handle))
        again = request_for(sim, handle)
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(again)
        assert await plugin.wait_hooks_idle(5)
    assert first.user_data == {}  # acknowledged by its notification alone
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR
    assert failure.error_number == 102
    assert failure.may_have_acted is False
    assert [a.reference_id for a in recorder.acks] == [first.reference_id]
    assert [f.request.reference_id for f in recorder.failures] == [again.reference_id]


class TestOnTheVirtualClock:
    """On ``FakeGWS`` and the virtual clock (exact timelines, no wall time)."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return ("asyncio", {"loop_factory": virtual_clock_loop})

    async def test_a_refused_cancel_never_takes_the_first_one_s_late_acknowledgement(
        self, pm: pluggy.PluginManager
    ) -> None:
        """As above, but the first cancel's user event is late, not lost: GWS relays it
        while the second cancel, which OCS refused, waits. Before, the refusal was dropped
        as the first cancel's answer, and the first cancel's acknowledgement, owed to nobody
        any more, was taken for the second's: the host was told its second cancel was
        acknowledged (with the first one's user data) though OCS refused it. Now the refusal
        is the second cancel's outcome and the late acknowledgement is the first's, late."""
        fake = FakeGWS()
        seen = HookRecorder()
        pm.register(seen, name="seen")
        handle = handles(fake, 1)[0]
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            fake.faults.drop_notifications("user_event")
            first = await plugin.cancel(request_for(fake, handle))
            again = request_for(fake, handle)
            ticket = plugin.submit(again)
            with anyio.fail_after(5):
                while not [d for _, d in fake.published if "GSW_ERROR" in d.get("userData", {})]:
                    await anyio.sleep(0.001)
            fake.publish("/me/internal", _late_user_event(fake, handle))  # the first cancel's
            with pytest.raises(CancelFailed) as info:
                await ticket
            await plugin.wait_hooks_idle(5)
        assert info.value.failure.reason is FailureReason.OCS_ERROR
        acks = [call.kwargs["ack"] for call in seen.calls_of("on_record_cancel_acknowledged")]
        assert [a.reference_id for a in acks] == [first.reference_id]

    async def test_another_desktop_s_no_record_does_not_empty_the_record_we_were_handed(
        self, pm: pluggy.PluginManager
    ) -> None:
        """Our ``GetPreviewRecord`` is answered: its ``PreviewRecord`` notification (with
        our referenceId) hands out record 11; its user event is late. Meanwhile another
        desktop of the agent asks the same campaign for a record and OCS tells it "no
        record" (``PreviewRecordEmpty``, a user event without a referenceId, relayed to
        every desktop of the agent). Before, that user event was matched by campaign to our
        request, still in its merge window, and acknowledged it at once with ``empty`` true
        (and the other desktop's user data) beside the record: a host reading ``ack.empty``
        ("no record left: end the session") never worked record 11, which OCS had handed to
        the agent and now held for it. Once a request's acknowledgement came by reference,
        an unreferenced "no record" is another client's answer, as an unreferenced refusal
        is (M9): the request is acknowledged with its record."""
        fake = FakeGWS()
        seen = HookRecorder()
        pm.register(seen, name="seen")
        common = {
            "campaign_name": "Campaign1",
            "application_id": 134,
            "device_path": fake.device_path(),
        }
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            await plugin.perform(StartPreviewSessionRequest(**common))
            fake.faults.drop_notifications("user_event", operation="GetPreviewRecord")
            request = GetPreviewRecordRequest(**common)
            ticket = plugin.submit(request)
            with anyio.fail_after(5):
                while not _with_reference(fake, request.reference_id):
                    await anyio.sleep(0.001)
            await anyio.sleep(0.01)  # delivered: the merge window is open
            fake.publish(
                "/me/internal",
                {
                    "messageType": "DeviceUserEventMessage",
                    "deviceId": fake.device_id(),
                    "userData": {
                        "GSW_USER_EVENT": "PreviewRecordEmpty",
                        "GSW_APPLICATION_ID": 134,
                        "GSW_CAMPAIGN_NAME": "Campaign1",
                    },
                },
            )
            ack = await ticket
            await plugin.wait_hooks_idle(5)
        (notification,) = _with_reference(fake, request.reference_id)
        handed_out = notification["record"]["userData"]["GSW_RECORD_HANDLE"]
        assert fake.records[handed_out].held_by == fake.username
        assert ack.empty is False
        assert ack.record_handle == handed_out
        assert ack.user_data.get("GSW_USER_EVENT") != "PreviewRecordEmpty"
        acks = [call.kwargs["ack"] for call in seen.calls_of("on_operation_acknowledged")]
        assert [(a.operation, a.empty) for a in acks] == [
            ("StartPreviewSession", False),
            ("GetPreviewRecord", False),
        ]
        assert seen.calls_of("on_operation_failed") == []


def _with_reference(fake: FakeGWS, reference_id: str) -> list[dict[str, Any]]:
    return [data for _, data in fake.published if data.get("referenceId") == reference_id]


def _late_user_event(fake: FakeGWS, handle: int) -> dict[str, Any]:
    """OCS's acknowledgement user event of a cancel of ``handle`` (no referenceId)."""
    record = fake.records[handle].record
    return {
        "messageType": "DeviceUserEventMessage",
        "deviceId": fake.device_id(),
        "userData": {
            "GSW_USER_EVENT": "RecordCancelAcknowledge",
            "GSW_APPLICATION_ID": record.application_id,
            "GSW_RECORD_HANDLE": handle,
            "GSW_CALLING_LIST": record.calling_list,
            "GSW_CAMPAIGN_NAME": record.campaign_name,
            "GSW_PHONE": record.phone_number,
        },
    }
