"""Every outbound operation end to end on the simulator: the exact body GWS receives, the
acknowledgement and its payload. Every failure kind and exactly one outcome per accepted
request under duplicated, reordered and dropped notifications are engine behaviour, tested on
FakeGWS in tests/engine/test_operation_outcomes.py with the operations listed here."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    AddRecordRequest,
    CallbackType,
    CampaignStatusEvent,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    FailureReason,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    GWSConfig,
    OperationAck,
    OperationFailed,
    OperationFailure,
    OutboundPlugin,
    PhoneType,
    PreviewRecordEvent,
    RecordCancelledEvent,
    RejectRecordRequest,
    RescheduleRecordRequest,
    ScheduledCallEvent,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    request_from_bus,
)
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import HookRecorder
from tests.helpers import AGENT

pytestmark = pytest.mark.anyio

APP = 134
CAMPAIGN = "Campaign1"
LIST = "CallingList1"


#: OCS's unsolicited events.
UNSOLICITED = (
    "on_record_cancelled",
    "on_scheduled_call",
    "on_preview_record",
    "on_campaign_status",
)


class OperationRecorder(HookRecorder):
    """The testing kit's recorder, read as the generic and the unsolicited hooks."""

    def payloads(self, *hooks: str) -> list[Any]:
        return [next(iter(call.kwargs.values())) for call in self.calls if call.name in hooks]

    @property
    def acks(self) -> list[OperationAck]:
        return self.payloads("on_operation_acknowledged")

    @property
    def failures(self) -> list[OperationFailure]:
        return self.payloads("on_operation_failed")

    @property
    def unsolicited(self) -> list[Any]:
        return self.payloads(*UNSOLICITED)

    def outcomes_for(self, reference_id: str) -> list[Any]:
        return [
            item
            for item in [*self.acks, *self.failures]
            if item.request is not None and item.request.reference_id == reference_id
        ]


@pytest.fixture
def ops(pm: pluggy.PluginManager) -> OperationRecorder:
    recorder = OperationRecorder()
    pm.register(recorder, name="operations")
    return recorder


@pytest.fixture
async def started(
    pm: pluggy.PluginManager, config: GWSConfig, ops: OperationRecorder
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, config) as plugin:
        yield plugin


Factory = Callable[[str, int], Any]

RECORD_OPERATIONS: dict[str, tuple[Factory, dict[str, Any]]] = {
    "RejectRecord": (
        lambda device, handle: RejectRecordRequest(
            record_handle=handle,
            application_id=APP,
            campaign_name=CAMPAIGN,
            calling_list=LIST,
            device_path=device,
        ),
        {"callingList": LIST},
    ),
    "CompleteRecord": (
        lambda device, handle: CompleteRecordRequest(
            record_handle=handle,
            application_id=APP,
            campaign_name=CAMPAIGN,
            calling_list=LIST,
            device_path=device,
            call_result="Answer",
        ),
        {"callingList": LIST, "callResult": "Answer"},
    ),
    "DoNotCallRecord": (
        lambda device, handle: DoNotCallRecordRequest(
            record_handle=handle,
            application_id=APP,
            campaign_name=CAMPAIGN,
            calling_list=LIST,
            device_path=device,
        ),
        {"callingList": LIST},
    ),
    "RescheduleRecord": (
        lambda device, handle: RescheduleRecordRequest(
            record_handle=handle,
            application_id=APP,
            campaign_name=CAMPAIGN,
            device_path=device,
            callback_type=CallbackType.PERSONAL,
            scheduled_time=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        ),
        {"callbackType": "Personal", "timestamp": 1893553445},
    ),
    "UpdateRecord": (
        lambda device, handle: UpdateRecordRequest(
            record_handle=handle,
            application_id=APP,
            campaign_name=CAMPAIGN,
            device_path=device,
            phone_type=PhoneType.MOBILE,
            call_from=3600,
            call_until=7200,
        ),
        {"phoneType": "Mobile", "from": 3600, "until": 7200},
    ),
    "GetChainedRecord": (
        lambda device, handle: GetChainedRecordRequest(
            record_handle=handle, application_id=APP, campaign_name=CAMPAIGN, device_path=device
        ),
        {},
    ),
}


@pytest.mark.parametrize("operation", sorted(RECORD_OPERATIONS))
async def test_a_record_operation_sends_the_exact_body_and_is_acknowledged_once(
    started: OutboundPlugin,
    sim: GWSSimulator,
    ops: OperationRecorder,
    device_path: str,
    operation: str,
) -> None:
    factory, extra = RECORD_OPERATIONS[operation]
    request = factory(device_path, 14)
    ack = await started.perform(request)
    (sent,) = sim.operations
    assert sent.path == "/api/v2/me/outbound-records/14"
    assert sent.body == {
        "operationName": operation,
        "applicationId": APP,
        "campaignName": CAMPAIGN,
        "devicePath": device_path,
        "referenceId": request.reference_id,
        **extra,
    }
    assert isinstance(ack, OperationAck)
    assert ack.operation == operation
    assert ack.request == request
    assert ack.reference_id == request.reference_id
    assert ack.record_handle == 14
    # GWS fills the acknowledgement's record from OCS: the calling list is there even when
    # the request had none.
    if operation != "GetChainedRecord":
        assert ack.record["callingList"] == LIST
    assert ops.outcomes_for(request.reference_id) == [ack]


async def test_chained_records_arrive_in_order_then_the_end(
    started: OutboundPlugin, device_path: str
) -> None:
    ack = await started.perform(RECORD_OPERATIONS["GetChainedRecord"][0](device_path, 11))
    handles = [record.get("recordHandle") for record in ack.records]
    assert handles == [12, 13]  # the other records of the seeded chain 101


async def test_a_completed_record_cannot_be_cancelled(
    started: OutboundPlugin, device_path: str, ops: OperationRecorder
) -> None:
    await started.perform(RECORD_OPERATIONS["CompleteRecord"][0](device_path, 15))
    cancel = request_from_bus(
        {
            "operationName": "CancelRecord",
            "recordHandle": 15,
            "applicationId": APP,
            "campaignName": CAMPAIGN,
            "callingList": LIST,
            "devicePath": device_path,
        }
    )
    with pytest.raises(OperationFailed) as info:
        await started.perform(cancel)
    assert info.value.failure.reason is FailureReason.OCS_ERROR
    assert [f.operation for f in ops.failures] == ["CancelRecord"]


async def test_do_not_call_by_phone_number(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    request = DoNotCallPhoneRequest(
        application_id=APP, campaign_name=CAMPAIGN, phone_number="3004", device_path=device_path
    )
    ack = await started.perform(request)
    assert sim.operations[-1].path == "/api/v2/me/outbound-records"
    assert ack.record.get("phoneNumber") == "3004"
    assert "3004" in sim.do_not_call_numbers


async def test_add_record_creates_a_record(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    request = AddRecordRequest(
        application_id=APP,
        campaign_name=CAMPAIGN,
        calling_list=LIST,
        phone_number="5550001",
        time_zone="PST",
        phone_type=PhoneType.HOME_PHONE,
        call_from=0,
        call_until=86339,
        device_path=device_path,
    )
    ack = await started.perform(request)
    assert ack.record_handle is not None and ack.record_handle in sim.records


async def test_a_preview_session_hands_out_records_until_the_list_is_empty(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str, ops: OperationRecorder
) -> None:
    common = {"campaign_name": CAMPAIGN, "application_id": APP, "device_path": device_path}
    started_ack = await started.perform(StartPreviewSessionRequest(**common))
    assert started_ack.campaign.get("name") == CAMPAIGN
    assert sim.operations[0].path == f"/api/v2/me/outbound-campaigns/{CAMPAIGN}"
    handles: list[int] = []
    for _ in range(100):
        preview = await started.perform(GetPreviewRecordRequest(**common))
        if preview.empty:
            break
        assert preview.record_handle is not None
        handles.append(preview.record_handle)
    else:
        pytest.fail("the preview session never ran out of records")
    assert handles and len(set(handles)) == len(handles)
    await started.perform(EndPreviewSessionRequest(**common))
    assert not sim.preview_session_active(AGENT, CAMPAIGN)
    assert not ops.failures


async def test_unsolicited_events_reach_their_hooks(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str, ops: OperationRecorder
) -> None:
    handle = sim.send_preview_record(CAMPAIGN, AGENT)
    sim.send_record_cancel(handle)
    sim.send_campaign_status(CAMPAIGN, "CampaignStopped")
    with anyio.fail_after(5):
        while len(ops.unsolicited) < 3:
            await anyio.sleep(0.01)
    pushed, cancelled, status = ops.unsolicited
    assert isinstance(pushed, PreviewRecordEvent) and pushed.record_handle == handle
    assert isinstance(cancelled, RecordCancelledEvent) and cancelled.record_handle == handle
    assert isinstance(status, CampaignStatusEvent) and status.campaign_name == CAMPAIGN
    assert ops.acks == []  # none of them is an acknowledgement of anything


async def test_a_rescheduled_record_comes_back_as_a_scheduled_call(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str, ops: OperationRecorder
) -> None:
    when = sim.clock.datetime() + datetime.timedelta(hours=2)
    request = RescheduleRecordRequest(
        record_handle=16,
        application_id=APP,
        campaign_name=CAMPAIGN,
        device_path=device_path,
        callback_type=CallbackType.PERSONAL,
        scheduled_time=when,
    )
    await started.perform(request)
    assert not [e for e in ops.unsolicited if isinstance(e, ScheduledCallEvent)]
    sim.clock.advance(2 * 3600 + 1)
    with anyio.fail_after(5):
        while not ops.unsolicited:
            await anyio.sleep(0.01)
    (call,) = ops.unsolicited
    assert isinstance(call, ScheduledCallEvent) and call.record_handle == 16


def _on_records(factory: Factory) -> Callable[[str, int], Any]:
    return lambda device, n: factory(device, 11 + n)


#: Every operation, as a factory of distinct requests: ``factory(device, n)`` for n = 0, 1, ...
#: (record operations on distinct records, phone operations on distinct numbers). The
#: campaign operations need a preview session, which ``needs_session`` says.
ALL_OPERATIONS: dict[str, tuple[Callable[[str, int], Any], bool]] = {
    **{name: (_on_records(factory), False) for name, (factory, _) in RECORD_OPERATIONS.items()},
    "CancelRecord": (
        lambda device, n: request_from_bus(
            {
                "operationName": "CancelRecord",
                "recordHandle": 11 + n,
                "applicationId": APP,
                "campaignName": CAMPAIGN,
                "callingList": LIST,
                "devicePath": device,
            }
        ),
        False,
    ),
    "AddRecord": (
        lambda device, n: AddRecordRequest(
            application_id=APP,
            campaign_name=CAMPAIGN,
            calling_list=LIST,
            phone_number=f"555{n:04d}",
            time_zone="PST",
            phone_type=PhoneType.MOBILE,
            call_from=0,
            call_until=86339,
            device_path=device,
        ),
        False,
    ),
    "DoNotCallPhone": (
        lambda device, n: DoNotCallPhoneRequest(
            application_id=APP,
            campaign_name=CAMPAIGN,
            phone_number=f"30{n + 1:02d}",
            device_path=device,
        ),
        False,
    ),
    "StartPreviewSession": (
        lambda device, n: StartPreviewSessionRequest(
            campaign_name=CAMPAIGN, application_id=APP, device_path=device
        ),
        False,
    ),
    "GetPreviewRecord": (
        lambda device, n: GetPreviewRecordRequest(
            campaign_name=CAMPAIGN, application_id=APP, device_path=device
        ),
        True,
    ),
    "EndPreviewSession": (
        lambda device, n: EndPreviewSessionRequest(
            campaign_name=CAMPAIGN, application_id=APP, device_path=device
        ),
        True,
    ),
}


async def _start_session(plugin: OutboundPlugin, device: str) -> None:
    await plugin.perform(
        StartPreviewSessionRequest(campaign_name=CAMPAIGN, application_id=APP, device_path=device)
    )


def _operation_name(request: Any) -> str:
    name: str = request.operation_name
    return name


async def test_the_unsolicited_events_pickle_with_their_read_only_mappings(
    started: OutboundPlugin, sim: GWSSimulator, device_path: str, ops: OperationRecorder
) -> None:
    """A host handing a hook's payload to a process pool or a ``multiprocessing`` queue
    pickles it. The outcome payloads and requests pickled, but OCS's unsolicited events
    (record cancelled, scheduled call, preview record, campaign status) could not be pickled
    at all: their ``user_data`` (and a preview's ``record``) is read-only (a
    ``MappingProxyType``, which pickle refuses). Each one as the plugin delivered it now
    round-trips equal, its mappings read-only again."""
    import copy
    import pickle
    from types import MappingProxyType

    await started.perform(
        RescheduleRecordRequest(
            record_handle=16,
            application_id=APP,
            campaign_name=CAMPAIGN,
            device_path=device_path,
            callback_type=CallbackType.PERSONAL,
            scheduled_time=sim.clock.datetime() + datetime.timedelta(hours=2),
        )
    )
    sim.clock.advance(2 * 3600 + 1)
    handle = sim.send_preview_record(CAMPAIGN, AGENT)
    sim.send_record_cancel(handle)
    sim.send_campaign_status(CAMPAIGN, "CampaignStopped")
    with anyio.fail_after(5):
        while len(ops.unsolicited) < 4:
            await anyio.sleep(0.01)
    events = ops.unsolicited
    assert {type(event) for event in events} == {
        ScheduledCallEvent,
        PreviewRecordEvent,
        RecordCancelledEvent,
        CampaignStatusEvent,
    }
    for event in events:
        assert isinstance(event.user_data, MappingProxyType), event
        for again in (pickle.loads(pickle.dumps(event)), copy.deepcopy(event)):
            assert type(again) is type(event) and again == event
            assert isinstance(again.user_data, MappingProxyType)
            if isinstance(event, PreviewRecordEvent):
                assert isinstance(again.record, MappingProxyType)
            with pytest.raises(TypeError):
                again.user_data["GSW_PHONE"] = "555"  # type: ignore[index]
