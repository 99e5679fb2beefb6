"""The right outcome, not just one (issue 16): every reproduction of a request ending with
another request's answer, or with an answer thrown away, through the public API on the
embedded simulator. Each of these failed on the correlator before the matching rule of
docs/design-notes.md ("Which request a message answers")."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CallbackType,
    CancelFailed,
    CancelRequest,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    FailureReason,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    GWSConfig,
    OperationAck,
    OperationFailed,
    OutboundPlugin,
    PreviewRecordEvent,
    RecordCancelAck,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
    UserEvent,
)
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import HookRecorder
from tests.faults.conftest import fast_config
from tests.faults.support import request_for

pytestmark = pytest.mark.anyio

APP = 134
CAMPAIGN = "Campaign1"


class Seen(HookRecorder):
    """The testing kit's recorder, read the way these tests need."""

    def payloads(self, hook: str) -> list[Any]:
        return [next(iter(call.kwargs.values())) for call in self.calls_of(hook)]

    @property
    def acks(self) -> list[OperationAck]:
        return self.payloads("on_operation_acknowledged")

    @property
    def cancel_acks(self) -> list[RecordCancelAck]:
        return self.payloads("on_record_cancel_acknowledged")

    @property
    def previews(self) -> list[PreviewRecordEvent]:
        return self.payloads("on_preview_record")

    @property
    def user_events(self) -> list[UserEvent]:
        return self.payloads("on_user_event")


@pytest.fixture
def seen(pm: pluggy.PluginManager) -> Seen:
    recorder = Seen()
    pm.register(recorder, name="seen")
    return recorder


@pytest.fixture
async def started(
    pm: pluggy.PluginManager, sim: GWSSimulator, seen: Seen
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=3.0)) as plugin:
        yield plugin


def chained(device_path: str, handle: int) -> GetChainedRecordRequest:
    return GetChainedRecordRequest(
        record_handle=handle, application_id=APP, campaign_name=CAMPAIGN, device_path=device_path
    )


def handles_of(ack: OperationAck) -> list[int]:
    """The chained records' handles, whether they came as notifications or user events."""
    found = []
    for record in ack.records:
        handle = record.get("recordHandle", record.get("GSW_RECORD_HANDLE"))
        assert isinstance(handle, int), record
        found.append(handle)
    return found


async def test_a_pushed_preview_record_never_answers_get_preview_record(
    started: OutboundPlugin, sim: GWSSimulator, seen: Seen, device_path: str
) -> None:
    """Reproduction 3: GWS's answer is 0.6 s late; meanwhile OCS pushes another record."""
    common = {"campaign_name": CAMPAIGN, "application_id": APP, "device_path": device_path}
    await started.perform(StartPreviewSessionRequest(**common))
    sim.faults.delay_notifications(0.6, operation="GetPreviewRecord")
    request = GetPreviewRecordRequest(**common)
    async with anyio.create_task_group() as tg:
        results: list[OperationAck] = []

        async def ask() -> None:
            results.append(await started.perform(request))

        tg.start_soon(ask)
        await anyio.sleep(0.2)
        pushed = sim.send_preview_record(CAMPAIGN)
    (ack,) = results
    handed_out = [
        m.data["record"]["userData"]["GSW_RECORD_HANDLE"]
        for m in sim.published
        if m.data.get("referenceId") == request.reference_id
    ]
    assert handed_out and ack.record_handle == handed_out[0] != pushed
    assert ack.user_data.get("GSW_RECORD_HANDLE") in (None, handed_out[0])
    with anyio.fail_after(5):
        while not seen.previews:
            await anyio.sleep(0.01)
    assert [event.record_handle for event in seen.previews] == [pushed]


async def test_chained_records_from_user_events_belong_to_one_request(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    """Reproduction 5a: with the notifications lost (and the first answer's user events in
    reverse order: its end marker first), a second request on the chain gets only its own
    records, not the earlier request's as well."""
    sim.faults.drop_notifications("outbound", count=None, operation="GetChainedRecord")
    sim.faults.reverse_notifications(operation="GetChainedRecord")
    first = await started.perform(chained(device_path, 11))
    assert sorted(handles_of(first)) == [12, 13]
    await started.perform(
        CompleteRecordRequest(
            record_handle=12,
            application_id=APP,
            campaign_name=CAMPAIGN,
            calling_list="CallingList1",
            device_path=device_path,
            call_result="Answer",
        )
    )
    second = await started.perform(chained(device_path, 11))
    expected = [
        m.data["userData"]["GSW_RECORD_HANDLE"]
        for m in sim.published[-4:]
        if m.data.get("userData", {}).get("GSW_USER_EVENT") == "ChainedRecord"
    ]
    assert handles_of(second) == expected == [13]


async def test_two_chained_requests_in_flight_get_their_own_records(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    """Reproduction 5b: two requests on one chain in flight together."""
    sim.faults.drop_notifications("outbound", count=None, operation="GetChainedRecord")
    async with anyio.create_task_group() as tg:
        results: dict[int, OperationAck] = {}

        async def ask(handle: int) -> None:
            results[handle] = await started.perform(chained(device_path, handle))

        tg.start_soon(ask, 11)
        tg.start_soon(ask, 12)
    assert sorted(handles_of(results[11])) == [12, 13]
    assert sorted(handles_of(results[12])) == [11, 13]


async def test_reordered_chained_notifications_keep_their_parts(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    """Reproduction 6: the end marker before the parts."""
    sim.faults.reverse_notifications(operation="GetChainedRecord")
    ack = await started.perform(chained(device_path, 11))
    assert sorted(handles_of(ack)) == [12, 13]


async def test_closing_without_drain_keeps_an_acknowledgement_that_arrived(
    pm: pluggy.PluginManager, sim: GWSSimulator, seen: Seen
) -> None:
    """Reproduction 7: GWS's acknowledgement is in, the merge window is open (user event
    lost): closing reports the acknowledgement, not shut_down."""
    sim.faults.drop_notifications("user_event")
    plugin = OutboundPlugin(pm, fast_config(sim.base_url, merge_window=60.0, ack_timeout=60.0))
    request = request_for(sim, 11)
    async with plugin:
        ticket = plugin.submit(request)
        await sim.wait_for_published(1)
        await anyio.sleep(0.2)  # the acknowledgement reaches the plugin
        await plugin.aclose(drain=False)
    ack = await ticket
    assert isinstance(ack, RecordCancelAck) and ack.request == request
    assert [a.request for a in seen.cancel_acks] == [request]


async def test_a_by_phone_request_does_not_swallow_a_record_refusal(
    started: OutboundPlugin, sim: GWSSimulator, seen: Seen, device_path: str
) -> None:
    """Reproduction 8: a DoNotCall by phone whose user event was lost, then a DoNotCall of the
    record with that phone: OCS's refusal (106) is the record request's."""
    sim.faults.drop_notifications("user_event", operation="DoNotCallRecord")
    await started.perform(
        DoNotCallPhoneRequest(
            application_id=APP,
            campaign_name=CAMPAIGN,
            phone_number="3006",
            device_path=device_path,
        )
    )
    request = DoNotCallRecordRequest(
        record_handle=16,
        application_id=APP,
        campaign_name=CAMPAIGN,
        calling_list="CallingList1",
        device_path=device_path,
    )
    with pytest.raises(OperationFailed) as caught:
        await started.perform(request)
    failure = caught.value.failure
    assert failure.reason is FailureReason.OCS_ERROR and failure.error_number == 106
    assert failure.may_have_acted is False


async def test_a_regenerated_answer_is_not_a_second_acknowledgement(
    started: OutboundPlugin, sim: GWSSimulator, seen: Seen
) -> None:
    """Reproduction 9: the answer arrives again after the outcome, its user event rebuilt
    (same userData, new metrics): still exactly one acknowledgement, and it is ours."""
    sim.faults.duplicate_notifications(times=3, regenerate=True)
    request = request_for(sim, 11)
    await started.cancel(request)
    await sim.wait_for_published(6)
    await anyio.sleep(0.5)  # every copy reaches the plugin
    assert len(seen.user_events) == 3  # each copy is an event OCS sent
    assert [ack.request for ack in seen.cancel_acks] == [request]
    assert [ack.request for ack in seen.acks] == [request]


@pytest.mark.parametrize(
    "changes", [{"application_id": 135}, {"campaign_name": "Campaign2"}], ids=["app", "campaign"]
)
async def test_a_refusal_keyed_on_the_stored_record_is_matched_at_once(
    pm: pluggy.PluginManager, sim: GWSSimulator, changes: dict[str, Any]
) -> None:
    """Reproduction 10: OCS refuses a wrong application id or campaign (103), keyed on the
    record it has; the request fails with that error, not after the whole ack_timeout."""
    config: GWSConfig = fast_config(sim.base_url, ack_timeout=600.0)
    async with OutboundPlugin(pm, config) as plugin:
        request: CancelRequest = request_for(sim, 12, **changes)
        with anyio.fail_after(30), pytest.raises(CancelFailed) as caught:
            await plugin.cancel(request)
    failure = caught.value.failure
    assert failure.reason is FailureReason.OCS_ERROR and failure.error_number == 103
    assert failure.may_have_acted is False


async def test_a_copy_of_a_late_answer_leaves_the_next_late_answer_owed(
    pm: pluggy.PluginManager, sim: GWSSimulator, device_path: str
) -> None:
    """Two reschedules of a record time out (OCS's answers are held back), a third is in
    flight when OCS answers all three in order, the first answer relayed twice (the copy
    rebuilt): the copy is a repeat (M8), not the second request's late answer, so the second
    answer is late too and the third request is acknowledged with its own answer."""
    record = sim.records[11].record

    def reschedule(day: int) -> RescheduleRecordRequest:
        return RescheduleRecordRequest(
            record_handle=11,
            application_id=record.application_id,
            campaign_name=record.campaign_name,
            device_path=device_path,
            callback_type=CallbackType.CAMPAIGN,
            scheduled_time=datetime.datetime(2030, 1, day, 9, 30, tzinfo=datetime.UTC),
        )

    sim.faults.hold_notifications()
    sim.faults.duplicate_notifications(times=2, regenerate=True, operation="RescheduleRecord")
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=1.0)) as plugin:
        for day in (1, 2):
            with pytest.raises(OperationFailed) as caught:
                await plugin.perform(reschedule(day))
            assert caught.value.failure.reason is FailureReason.TIMED_OUT
        ticket = plugin.submit(reschedule(3))
        with anyio.fail_after(10):
            while len(sim.operations) < 3:
                await anyio.sleep(0.01)
        sim.faults.release_notifications()
        ack = await ticket
    assert ack.user_data["GSW_DATE_TIME"] == "01/03/2030 09:30"


async def test_a_rebuilt_copy_of_a_taken_chained_record_is_not_the_next_request_s(
    pm: pluggy.PluginManager, sim: GWSSimulator, device_path: str
) -> None:
    """GetChainedRecord on record 11 takes records 12 and 13 (as user events: the notifications
    are lost) and its answer is relayed again, rebuilt, after its outcome; meanwhile record 12
    was completed and a GetChainedRecord on record 13 is in flight: the copy of record 12 is a
    repeat (M8), not one of the second request's records (M6)."""
    sim.faults.drop_notifications("outbound", count=None, operation="GetChainedRecord")
    sim.faults.duplicate_notifications(times=2, regenerate=True, operation="GetChainedRecord")
    sim.faults.hold_notifications()
    complete = CompleteRecordRequest(
        record_handle=12,
        application_id=APP,
        campaign_name=CAMPAIGN,
        calling_list="CallingList1",
        device_path=device_path,
        call_result="Answer",
    )
    # No merge window: the first request has its outcome at its end marker, before the copies.
    async with OutboundPlugin(pm, fast_config(sim.base_url, merge_window=0.0)) as plugin:
        tickets = []
        for request in (chained(device_path, 11), complete, chained(device_path, 13)):
            tickets.append(plugin.submit(request))
            with anyio.fail_after(10):
                while len(sim.operations) < len(tickets):
                    await anyio.sleep(0.01)
        sim.faults.release_notifications()
        first, _, second = [await ticket for ticket in tickets]
    assert sorted(handles_of(first)) == [12, 13]
    assert handles_of(second) == [11]
