"""Record operations on /api/v2/me/outbound-records/<handle>: validation, exact messages, OCS."""

from __future__ import annotations

import httpx
import pytest

from gws_outbound_plugin.simulator import GWSSimulator, OCSError, RecordStatus
from tests.simulator.sim_helpers import GWS, MISSING, without_metrics

pytestmark = pytest.mark.anyio

OK = {"statusCode": 0}


def _error(response: httpx.Response, status_code: int) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"statusCode", "statusMessage"}, body
    assert body["statusCode"] == status_code, body
    message: str = body["statusMessage"]
    return message


def _ack_record(sim: GWSSimulator, handle: int, calling_list: str = "CallingList1") -> dict:
    return {
        "devicePath": sim.device_path("agent1"),
        "callingList": calling_list,
        "applicationId": 134,
        "recordHandle": handle,
        "campaignName": "Campaign1",
    }


def _keys(event: str, handle: int, **extra: object) -> dict:
    return {
        "GSW_USER_EVENT": event,
        "GSW_APPLICATION_ID": 134,
        "GSW_RECORD_HANDLE": handle,
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_CAMPAIGN_NAME": "Campaign1",
        **extra,
    }


async def _two(sim: GWSSimulator) -> tuple[dict, dict]:
    """The acknowledgement and the user event of the operation just accepted."""
    ack, event = await sim.wait_for_published(2)
    assert (ack.channel, event.channel) == ("/v2/me/outbound", "/me/internal")
    assert event.data["deviceId"] == sim.device_id("agent1")
    return ack.data, without_metrics(event.data)["userData"]


def _status(sim: GWSSimulator, handle: int) -> RecordStatus:
    return sim.records[handle].status


# ------------------------------------------------------------------------ validation
VALIDATION = [
    # (operation, body changes, statusCode, text the statusMessage names)
    ("RejectRecord", {"callingList": MISSING}, 1, "callingList"),
    ("RejectRecord", {"campaignName": MISSING, "callingList": MISSING}, 1, "campaignName"),
    ("RejectRecord", {"applicationId": 2**31}, 1, "applicationId"),
    ("RejectRecord", {"applicationId": "134"}, 10, "applicationId"),
    ("CompleteRecord", {"callResult": ""}, 10, "callResult"),
    ("CompleteRecord", {"callResult": 33}, 10, "callResult"),
    ("CompleteRecord", {"phoneNumber": 3001}, 10, "phoneNumber"),
    ("DoNotCallRecord", {"chainAttribute": "Everything"}, 10, "chainAttribute"),
    ("DoNotCallRecord", {"callingList": MISSING}, 1, "callingList"),
    ("RescheduleRecord", {"callbackType": MISSING}, 1, "callbackType"),
    ("RescheduleRecord", {"timestamp": MISSING}, 1, "timestamp"),
    ("RescheduleRecord", {"callbackType": "Later"}, 10, "callbackType"),
    ("RescheduleRecord", {"timestamp": "1433917552"}, 10, "timestamp"),
    ("RescheduleRecord", {"timestamp": 1433917552.5}, 10, "timestamp"),
    ("RescheduleRecord", {"timestamp": 0}, 10, "timestamp"),
    ("RescheduleRecord", {"timestamp": True}, 10, "timestamp"),
    ("RescheduleRecord", {"timestamp": 253_402_300_800}, 10, "timestamp"),  # year 10000
    ("UpdateRecord", {"phoneType": "Fax"}, 10, "phoneType"),
    ("UpdateRecord", {"from": -1}, 10, "from"),
    ("UpdateRecord", {"until": 86401}, 10, "until"),
    ("UpdateRecord", {"from": "0"}, 10, "from"),
    ("UpdateRecord", {"timeZone": ""}, 10, "timeZone"),
    ("UpdateRecord", {"campaignName": MISSING}, 1, "campaignName"),
    ("GetChainedRecord", {"campaignName": MISSING}, 1, "campaignName"),
    ("GetChainedRecord", {"devicePath": "/devices/someone-else"}, 6, "devicePath"),
]


def _valid_fields(operation: str) -> dict:
    if operation == "RescheduleRecord":
        return {"callbackType": "Personal", "timestamp": 1433917552}
    return {}


@pytest.mark.parametrize(("operation", "changes", "status_code", "names"), VALIDATION)
async def test_validation(sim: GWSSimulator, gws: GWS, operation, changes, status_code, names):
    fields = _valid_fields(operation) | changes
    message = _error(await gws.record_op(operation, 11, **fields), status_code)
    assert names in message
    assert all(state.status is RecordStatus.READY for state in sim.records.values())
    assert sim.published == []


@pytest.mark.parametrize(
    "operation",
    ["RejectRecord", "CompleteRecord", "DoNotCallRecord", "UpdateRecord", "GetChainedRecord"],
)
async def test_handle_is_checked_first(gws: GWS, operation: str):
    assert "recordHandle" in _error(await gws.record_op(operation, "eleven"), 10)
    assert "recordHandle" in _error(await gws.record_op(operation, 2**31), 1)


async def test_campaign_operation_on_a_record_is_forbidden(gws: GWS):
    message = _error(await gws.record_op("StartPreviewSession"), 3)
    assert "outbound-campaigns" in message


# ---------------------------------------------------------------- exact messages
async def test_reject_record(sim: GWSSimulator, gws: GWS):
    assert (await gws.record_op("RejectRecord", 11, referenceId="r-rej")).json() == OK
    ack, user_data = await _two(sim)
    assert ack == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "RecordRejectAcknowledge",
        "referenceId": "r-rej",
        "record": _ack_record(sim, 11),
    }
    assert user_data == _keys("RecordRejectAcknowledge", 11)
    state = sim.records[11]
    assert (state.status, state.changed_by, state.reference_id) == (
        RecordStatus.REJECTED,
        "agent1",
        "r-rej",
    )


async def test_complete_record(sim: GWSSimulator, gws: GWS):
    response = await gws.record_op("CompleteRecord", 12, callResult="Answer", phoneNumber="3002")
    assert response.json() == OK
    ack, user_data = await _two(sim)
    assert ack == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "RecordProcessedAcknowledge",
        "referenceId": "ref-1",
        "record": _ack_record(sim, 12),
    }
    assert user_data == _keys("RecordProcessedAcknowledge", 12, GSW_PHONE="3002")
    state = sim.records[12]
    assert (state.status, state.call_result, state.attempts) == (
        RecordStatus.COMPLETED,
        "Answer",
        1,
    )


async def test_do_not_call_record_only(sim: GWSSimulator, gws: GWS):
    response = await gws.record_op("DoNotCallRecord", 11, chainAttribute="RecordOnly")
    assert response.json() == OK
    ack, user_data = await _two(sim)
    assert ack["notificationType"] == "DoNotCallAcknowledge"
    assert ack["record"] == _ack_record(sim, 11)
    assert user_data == _keys(
        "DoNotCallAcknowledge", 11, GSW_CHAIN_ATTR="RecordOnly", GSW_PHONE="3001"
    )
    assert [_status(sim, h) for h in (11, 12, 13)] == [
        RecordStatus.DO_NOT_CALL,
        RecordStatus.READY,
        RecordStatus.READY,
    ]
    assert sim.do_not_call_numbers == {"3001"}


async def test_do_not_call_all_chain_marks_the_chain_and_its_numbers(sim: GWSSimulator, gws: GWS):
    response = await gws.record_op(
        "DoNotCallRecord", 12, chainAttribute="AllChain", phoneNumber="0800"
    )
    assert response.json() == OK
    await _two(sim)
    assert {h for h, s in sim.records.items() if s.status is RecordStatus.DO_NOT_CALL} == {
        11,
        12,
        13,
    }
    assert sim.do_not_call_numbers == {"3001", "3002", "3003", "0800"}
    # Marked once: a second do-not-call of the chain is refused by OCS.
    sim.clear_recorded()
    assert (await gws.record_op("DoNotCallRecord", 13)).json() == OK
    [refusal] = await sim.wait_for_published(1)
    assert refusal.data["userData"]["GSW_ERROR_NUMBER"] == OCSError.RECORD_DO_NOT_CALL == 106


async def test_reschedule_record(sim: GWSSimulator, gws: GWS):
    when = 1_900_000_000  # 2030-03-17T17:46:40Z
    response = await gws.record_op(
        "RescheduleRecord", 14, callbackType="Campaign", timestamp=when, referenceId="r-re"
    )
    assert response.json() == OK
    ack, user_data = await _two(sim)
    assert ack == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "ScheduledRecordRescheduleAcknowledge",
        "referenceId": "r-re",
        # callingList is in the record although the request had none (GWS samples do this).
        "record": _ack_record(sim, 14),
    }
    assert user_data == _keys(
        "ScheduledRecordRescheduleAcknowledge",
        14,
        GSW_CALLBACK_TYPE="Campaign",
        GSW_DATE_TIME="03/17/2030 17:46",
    )
    state = sim.records[14]
    assert (state.status, state.callback_type, state.scheduled_for, state.scheduled_user) == (
        RecordStatus.SCHEDULED,
        "Campaign",
        when,
        "agent1",
    )


async def test_update_record_changes_the_stored_record(sim: GWSSimulator, gws: GWS):
    response = await gws.record_op(
        "UpdateRecord",
        16,
        phoneNumber="3666",
        timeZone="EST",
        phoneType="Mobile",
        **{"from": 32_400, "until": 61_200},
    )
    assert response.json() == OK
    ack, user_data = await _two(sim)
    assert ack == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "UpdateCallCompletionStatsAcknowledge",
        "referenceId": "ref-1",
        "record": _ack_record(sim, 16),
    }
    assert user_data == _keys("UpdateCallCompletionStatsAcknowledge", 16, GSW_PHONE="3666")
    record = sim.records[16].record
    assert (record.phone_number, record.time_zone, record.phone_type) == ("3666", "EST", "Mobile")
    assert (record.dial_from, record.dial_until) == (32_400, 61_200)
    assert sim.records[16].status is RecordStatus.READY


async def test_update_record_with_another_list_is_refused(sim: GWSSimulator, gws: GWS):
    assert (await gws.record_op("UpdateRecord", 16, callingList="CallingList2")).json() == OK
    [refusal] = await sim.wait_for_published(1)
    assert refusal.data["userData"]["GSW_ERROR_NUMBER"] == OCSError.RECORD_NOT_IN_LIST


async def test_get_chained_record_one_by_one_then_data_end(sim: GWSSimulator, gws: GWS):
    response = await gws.record_op("GetChainedRecord", 11, referenceId="r-chain")
    assert response.json() == OK
    published = await sim.wait_for_published(6)
    assert [(m.channel, m.data.get("notificationType")) for m in published] == [
        ("/v2/me/outbound", "ChainedRecord"),
        ("/me/internal", None),
        ("/v2/me/outbound", "ChainedRecord"),
        ("/me/internal", None),
        ("/v2/me/outbound", "ChainedRecordsDataEnd"),
        ("/me/internal", None),
    ]
    first, first_event = published[0].data, without_metrics(published[1].data)
    assert first == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "ChainedRecord",
        "referenceId": "r-chain",
        "record": _ack_record(sim, 12) | {"chainId": 101, "phoneNumber": "3002"},
    }
    user_data = first_event["userData"]
    assert user_data["GSW_USER_EVENT"] == "ChainedRecord"
    assert (user_data["GSW_RECORD_HANDLE"], user_data["GSW_CHAIN_ID"]) == (12, 101)
    assert published[2].data["record"]["recordHandle"] == 13
    assert published[4].data == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "ChainedRecordsDataEnd",
        "referenceId": "r-chain",
        "record": _ack_record(sim, 11),
    }
    assert without_metrics(published[5].data)["userData"] == _keys(
        "ChainedRecordsDataEnd", 11, GSW_CHAIN_ID=101
    )
    # The chained records are handed to the agent; the requested one is left as it was.
    assert [(sim.records[h].status, sim.records[h].held_by) for h in (12, 13)] == [
        (RecordStatus.HELD, "agent1"),
        (RecordStatus.HELD, "agent1"),
    ]
    assert sim.records[11].status is RecordStatus.READY


async def test_chained_records_skip_closed_ones(sim: GWSSimulator, gws: GWS):
    await gws.record_op("CompleteRecord", 13)
    await sim.wait_for_published(2)
    sim.clear_recorded()
    assert (await gws.record_op("GetChainedRecord", 11)).json() == OK
    published = await sim.wait_for_published(4)
    assert [m.data.get("record", {}).get("recordHandle") for m in published[::2]] == [12, 11]
    assert published[2].data["notificationType"] == "ChainedRecordsDataEnd"


async def test_single_record_chain_sends_only_the_end(sim: GWSSimulator, gws: GWS):
    assert (await gws.record_op("GetChainedRecord", 16)).json() == OK
    ack, user_data = await _two(sim)
    assert ack["notificationType"] == "ChainedRecordsDataEnd"
    assert user_data["GSW_CHAIN_ID"] == 103


# ------------------------------------------------------------------- OCS effects
CLOSERS = {
    "CompleteRecord": (RecordStatus.COMPLETED, OCSError.RECORD_ALREADY_COMPLETED),
    "RejectRecord": (RecordStatus.REJECTED, OCSError.RECORD_ALREADY_REJECTED),
    "CancelRecord": (RecordStatus.CANCELLED, OCSError.RECORD_ALREADY_CANCELLED),
    "DoNotCallRecord": (RecordStatus.DO_NOT_CALL, OCSError.RECORD_DO_NOT_CALL),
}
ACKS = {
    "CompleteRecord": "RecordProcessedAcknowledge",
    "RejectRecord": "RecordRejectAcknowledge",
    "CancelRecord": "RecordCancelAcknowledge",
    "RescheduleRecord": "ScheduledRecordRescheduleAcknowledge",
    "UpdateRecord": "UpdateCallCompletionStatsAcknowledge",
}


@pytest.mark.parametrize("first", list(CLOSERS))
@pytest.mark.parametrize(
    "then", ["CancelRecord", "CompleteRecord", "RejectRecord", "RescheduleRecord", "UpdateRecord"]
)
async def test_a_closed_record_cannot_be_processed_again(
    sim: GWSSimulator, gws: GWS, first: str, then: str
):
    status, error = CLOSERS[first]
    assert (await gws.record_op(first, 11)).json() == OK
    await sim.wait_for_published(2)
    assert _status(sim, 11) is status
    sim.clear_recorded()
    assert (await gws.record_op(then, 11, **_valid_fields(then))).json() == OK
    [refusal] = await sim.wait_for_published(1)
    assert refusal.channel == "/me/internal"
    user_data = without_metrics(refusal.data)["userData"]
    assert user_data == _keys(
        ACKS[then], 11, GSW_PHONE="3001", GSW_ERROR=error.text, GSW_ERROR_NUMBER=int(error)
    )
    assert _status(sim, 11) is status  # untouched


async def test_unknown_record_is_an_ocs_error_for_every_operation(sim: GWSSimulator, gws: GWS):
    operations = ["RejectRecord", "CompleteRecord", "RescheduleRecord", "GetChainedRecord"]
    for operation in operations:
        assert (await gws.record_op(operation, 999, **_valid_fields(operation))).json() == OK
    published = await sim.wait_for_published(len(operations))
    assert [m.data["userData"]["GSW_USER_EVENT"] for m in published] == [
        "RecordRejectAcknowledge",
        "RecordProcessedAcknowledge",
        "ScheduledRecordRescheduleAcknowledge",
        "ChainedRecordsDataEnd",
    ]
    for message in published:
        user_data = message.data["userData"]
        assert user_data["GSW_ERROR_NUMBER"] == OCSError.RECORD_NOT_FOUND
        assert user_data["GSW_RECORD_HANDLE"] == 999
    # Without callingList in the request (reschedule), none is made up.
    assert "GSW_CALLING_LIST" not in published[2].data["userData"]
    assert published[0].data["userData"]["GSW_CALLING_LIST"] == "CallingList1"


async def test_cancel_all_chain_skips_closed_records(sim: GWSSimulator, gws: GWS):
    await gws.record_op("CompleteRecord", 12)
    await sim.wait_for_published(2)
    assert (await gws.record_op("CancelRecord", 11, chainAttribute="AllChain")).json() == OK
    await sim.wait_for_published(4)
    assert [_status(sim, h) for h in (11, 12, 13)] == [
        RecordStatus.CANCELLED,
        RecordStatus.COMPLETED,
        RecordStatus.CANCELLED,
    ]


async def test_a_held_record_can_be_completed(sim: GWSSimulator, gws: GWS):
    await gws.record_op("GetChainedRecord", 14)
    await sim.wait_for_published(4)
    assert sim.records[15].status is RecordStatus.HELD
    assert (await gws.record_op("CompleteRecord", 15)).json() == OK
    await sim.wait_for_published(6)
    assert (sim.records[15].status, sim.records[15].held_by) == (RecordStatus.COMPLETED, None)
