"""Fault-matrix rows of the other operations: the same engine, the same one-outcome promise
(on FakeGWS, whose OCS is the simulator's, and the virtual clock)."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CallbackType,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    OperationFailed,
    OutboundPlugin,
    RejectRecordRequest,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
)
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.matrix import Row, fault
from tests.helpers import Recorder
from tests.integration.test_operations import OperationRecorder

pytestmark = pytest.mark.anyio

APP, CAMPAIGN, LIST = 134, "Campaign1", "CallingList1"


def assert_one_outcome(ops: OperationRecorder, recorder: Recorder, request: Any, row: Row) -> Any:
    """Exactly one generic outcome, the row's, and no cancel hook."""
    outcomes = ops.outcomes_for(request.reference_id)
    assert len(outcomes) == 1, outcomes
    (outcome,) = outcomes
    if row.reason is None:
        assert outcome in ops.acks
    else:
        assert outcome in ops.failures and outcome.reason.value == row.reason
    assert recorder.acks == [] and recorder.failures == []
    return outcome


def record(device: str, kind: type, handle: int = 14, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "record_handle": handle,
        "application_id": APP,
        "campaign_name": CAMPAIGN,
        "device_path": device,
        **extra,
    }
    return kind(**values)


@fault("ops-status-code")
async def test_status_code_on_another_operation(
    row: Row, plugin: OutboundPlugin, fake: FakeGWS, ops: OperationRecorder, recorder: Recorder
) -> None:
    fake.faults.status_code(2, "not valid now", operation="RejectRecord")
    request = record(fake.device_path(), RejectRecordRequest, calling_list=LIST)
    with pytest.raises(OperationFailed):
        await plugin.perform(request)
    failure = assert_one_outcome(ops, recorder, request, row)
    assert (failure.operation, failure.status_code) == ("RejectRecord", 2)


@fault("ops-ocs-error")
async def test_ocs_error_on_complete(
    row: Row, plugin: OutboundPlugin, fake: FakeGWS, ops: OperationRecorder, recorder: Recorder
) -> None:
    fake.faults.ocs_error(number=217, message="Soak OCS error", operation="CompleteRecord")
    request = record(fake.device_path(), CompleteRecordRequest, calling_list=LIST)
    with pytest.raises(OperationFailed):
        await plugin.perform(request)
    failure = assert_one_outcome(ops, recorder, request, row)
    assert (failure.error_number, failure.message) == (217, "Soak OCS error")
    assert failure.user_data["GSW_ERROR_NUMBER"] == 217


@fault("ops-chained-drop-outbound")
async def test_chained_records_without_their_notifications(
    row: Row, plugin: OutboundPlugin, fake: FakeGWS, ops: OperationRecorder, recorder: Recorder
) -> None:
    fake.faults.drop_notifications("outbound", count=None)
    request = record(fake.device_path(), GetChainedRecordRequest, handle=11)
    ack = await plugin.perform(request)
    assert_one_outcome(ops, recorder, request, row)
    assert [r.get("recordHandle", r.get("GSW_RECORD_HANDLE")) for r in ack.records] == [12, 13]


@fault("ops-reschedule-no-ack")
async def test_reschedule_without_any_message(
    row: Row, plugin: OutboundPlugin, fake: FakeGWS, ops: OperationRecorder, recorder: Recorder
) -> None:
    fake.faults.drop_notifications("both")
    request = record(
        fake.device_path(),
        RescheduleRecordRequest,
        callback_type=CallbackType.CAMPAIGN,
        scheduled_time=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
    )
    with pytest.raises(OperationFailed):
        await plugin.perform(request)
    assert_one_outcome(ops, recorder, request, row)


@fault("ops-preview-exhausted")
async def test_an_exhausted_preview_list_is_an_empty_result(
    row: Row, plugin: OutboundPlugin, fake: FakeGWS, ops: OperationRecorder, recorder: Recorder
) -> None:
    common = {"campaign_name": CAMPAIGN, "application_id": APP}
    device = fake.device_path()
    await plugin.perform(StartPreviewSessionRequest(**common, device_path=device))
    with anyio.fail_after(20):
        while True:
            request = GetPreviewRecordRequest(**common, device_path=device)
            ack = await plugin.perform(request)
            if ack.empty:
                break
    assert ack.record_handle is None
    assert_one_outcome(ops, recorder, request, row)


@fault("ops-error-message-by-phone")
async def test_an_error_message_for_a_request_without_a_handle(
    row: Row,
    pm: pluggy.PluginManager,
    fake: FakeGWS,
    ops: OperationRecorder,
    recorder: Recorder,
) -> None:
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        fake.faults.cometd_error(code=6, message="no such number", operation="DoNotCallRecord")
        request = DoNotCallPhoneRequest(
            application_id=APP,
            campaign_name=CAMPAIGN,
            phone_number="3001",
            device_path=fake.device_path(),
        )
        with pytest.raises(OperationFailed):
            await plugin.perform(request)
    failure = assert_one_outcome(ops, recorder, request, row)
    assert (failure.status_code, failure.message) == (6, "no such number")
