"""CancelRecord over real HTTP: validation like GWS, the OCS model and the CometD messages."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from gws_outbound_plugin.simulator import GWSSimulator, OCSError
from tests.simulator.sim_helpers import GWS, MISSING, Bayeux, events

pytestmark = pytest.mark.anyio


def _error(response: httpx.Response, status_code: int) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"statusCode", "statusMessage"}, body
    assert body["statusCode"] == status_code, body
    message: str = body["statusMessage"]
    return message


async def test_accepted_cancel_publishes_the_two_messages(sim: GWSSimulator, gws: GWS):
    before_ms = time.time() * 1000
    response = await gws.cancel(
        11, chainAttribute="AllChain", phoneNumber="3001", referenceId="123456789"
    )
    assert response.json() == {"statusCode": 0}
    ack, event = await sim.wait_for_published(2)
    device_id = sim.device_id("agent1")
    assert ack.channel == "/v2/me/outbound"
    assert ack.data == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "RecordCancelAcknowledge",
        "referenceId": "123456789",
        "record": {
            "devicePath": f"/devices/{device_id}",
            "callingList": "CallingList1",
            "applicationId": 134,
            "recordHandle": 11,
            "campaignName": "Campaign1",
        },
    }
    assert event.channel == "/me/internal"
    metrics = event.data.pop("metrics")
    assert event.data == {
        "messageType": "DeviceUserEventMessage",
        "deviceId": device_id,
        "userData": {
            "GSW_USER_EVENT": "RecordCancelAcknowledge",
            "GSW_APPLICATION_ID": 134,
            "GSW_RECORD_HANDLE": 11,
            "GSW_CALLING_LIST": "CallingList1",
            "GSW_CAMPAIGN_NAME": "Campaign1",
            "GSW_CHAIN_ATTR": "AllChain",
            "GSW_PHONE": "3001",
        },
    }
    processing = metrics["eventProcessing"]
    assert set(processing) == {
        "serverGenerationTimestamp",
        "nodeProcessingTimeNanos",
        "serverProcessingTimeTotalMs",
    }
    assert all(type(value) is int for value in processing.values())
    assert before_ms - 1000 <= processing["serverGenerationTimestamp"] <= time.time() * 1000 + 1000
    assert processing["nodeProcessingTimeNanos"] > 0
    assert processing["serverProcessingTimeTotalMs"] == math.ceil(
        processing["nodeProcessingTimeNanos"] / 1_000_000
    )
    assert ack.username == event.username == "agent1"


async def test_optional_keys_are_absent_when_not_sent(sim: GWSSimulator, gws: GWS):
    response = await gws.cancel(
        11, referenceId=MISSING, chainAttribute=MISSING, phoneNumber=MISSING
    )
    assert response.json() == {"statusCode": 0}
    ack, event = await sim.wait_for_published(2)
    assert "referenceId" not in ack.data
    assert "GSW_CHAIN_ATTR" not in event.data["userData"]
    # The phone number comes from OCS's record, whether or not the request named one.
    assert event.data["userData"]["GSW_PHONE"] == "3001"


async def test_acknowledgement_is_built_from_the_record_store(sim: GWSSimulator, gws: GWS):
    # A phoneNumber that is not the record's: OCS answers with what it holds.
    response = await gws.cancel(12, phoneNumber="9999", referenceId="r-store")
    assert response.json() == {"statusCode": 0}
    ack, event = await sim.wait_for_published(2)
    assert ack.data["record"]["callingList"] == "CallingList1"
    assert event.data["userData"]["GSW_PHONE"] == "3002"
    assert "GSW_REFERENCE_ID" not in event.data["userData"]


async def test_messages_reach_a_subscribed_bayeux_client_in_one_answer(
    sim: GWSSimulator, gws: GWS, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/outbound", "/me/internal")
    assert (await gws.cancel(11)).json() == {"statusCode": 0}
    await sim.wait_for_published(2)
    replies = await bayeux.connect()
    assert [reply["channel"] for reply in replies] == [
        "/v2/me/outbound",
        "/me/internal",
        "/meta/connect",
    ]
    assert replies[0]["data"]["referenceId"] == "ref-1"
    assert replies[1]["data"]["userData"]["GSW_RECORD_HANDLE"] == 11
    assert replies[-1]["successful"] is True
    assert [p.recipients for p in sim.published] == [1, 1]


async def test_messages_go_only_to_the_cancelling_users_clients(
    sim: GWSSimulator, gws: GWS, new_http
):
    other = Bayeux(await new_http(), user="agent2")
    await other.ready("/v2/me/outbound", "/me/internal")
    own = Bayeux(await new_http())
    await own.ready("/v2/me/outbound")
    assert (await gws.cancel(11)).json() == {"statusCode": 0}
    await sim.wait_for_published(2)
    assert len(events(await own.connect())) == 1  # subscribed to /v2/me/outbound only
    assert events(await other.connect(timeout_ms=0)) == []


@pytest.mark.parametrize(
    ("chain_attribute", "cancelled"),
    [("AllChain", {11, 12, 13}), ("RecordOnly", {11}), (MISSING, {11})],
)
async def test_chain_attribute(sim: GWSSimulator, gws: GWS, chain_attribute, cancelled):
    assert (await gws.cancel(11, chainAttribute=chain_attribute)).json() == {"statusCode": 0}
    assert {handle for handle, state in sim.records.items() if state.cancelled} == cancelled
    state = sim.records[11]
    assert state.cancelled_by == "agent1"
    assert state.reference_id == "ref-1"
    assert state.cancelled_at is not None
    assert (await sim.wait_for_published(2))[0].channel == "/v2/me/outbound"


async def _only_error_event(sim: GWSSimulator, number: int, text: str) -> dict:
    await sim.wait_for_published(1)
    [message] = sim.published
    assert message.channel == "/me/internal"
    user_data = message.data["userData"]
    assert user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert user_data["GSW_ERROR_NUMBER"] == number
    assert user_data["GSW_ERROR"] == text
    assert message.data["messageType"] == "DeviceUserEventMessage"
    return dict(user_data)


async def test_unknown_record_is_accepted_then_refused_by_ocs(sim: GWSSimulator, gws: GWS):
    assert (await gws.cancel(999)).json() == {"statusCode": 0}
    user_data = await _only_error_event(sim, 101, "Record not found")
    assert user_data["GSW_RECORD_HANDLE"] == 999
    assert user_data["GSW_CHAIN_ATTR"] == "RecordOnly"
    assert OCSError.RECORD_NOT_FOUND == 101


async def test_already_cancelled_record_is_refused_by_ocs(sim: GWSSimulator, gws: GWS):
    assert (await gws.cancel(11, chainAttribute="AllChain")).json() == {"statusCode": 0}
    await sim.wait_for_published(2)
    sim.clear_recorded()
    assert (await gws.cancel(12)).json() == {"statusCode": 0}  # cancelled with the chain
    await _only_error_event(sim, 102, "Record already cancelled")
    assert sim.records[12].reference_id == "ref-1"


async def test_record_of_another_list_is_refused_by_ocs(sim: GWSSimulator, gws: GWS):
    assert (await gws.cancel(11, callingList="CallingList2")).json() == {"statusCode": 0}
    await _only_error_event(sim, 103, OCSError.RECORD_NOT_IN_LIST.text)
    assert not sim.records[11].cancelled


VALIDATION_CASES = [
    # (handle, body changes, statusCode, text the statusMessage must contain)
    (11, {"operationName": MISSING}, 1, "operationName"),
    (11, {"applicationId": MISSING}, 1, "applicationId"),
    (11, {"campaignName": MISSING}, 1, "campaignName"),
    (11, {"callingList": MISSING}, 1, "callingList"),
    (11, {"devicePath": MISSING}, 1, "devicePath"),
    (11, {"applicationId": "134"}, 10, "applicationId"),
    (11, {"applicationId": True}, 10, "applicationId"),
    (11, {"applicationId": None}, 10, "applicationId"),
    (11, {"applicationId": 0}, 10, "applicationId"),
    (11, {"applicationId": 1.5}, 10, "applicationId"),
    (11, {"applicationId": 2**31}, 1, "applicationId"),
    (11, {"applicationId": 2**31 - 1}, 0, ""),
    (11, {"campaignName": ""}, 10, "campaignName"),
    (11, {"campaignName": None}, 10, "campaignName"),
    (11, {"callingList": "   "}, 10, "callingList"),
    (11, {"callingList": 7}, 10, "callingList"),
    (11, {"chainAttribute": "Everything"}, 10, "chainAttribute"),
    (11, {"chainAttribute": None}, 10, "chainAttribute"),
    (11, {"referenceId": 123456789}, 10, "referenceId"),
    (11, {"referenceId": ""}, 10, "referenceId"),
    (11, {"phoneNumber": 3001}, 10, "phoneNumber"),
    (11, {"devicePath": "devices/abc"}, 10, "devicePath"),
    (11, {"devicePath": False}, 10, "devicePath"),
    (11, {"devicePath": "/devices/not-my-device"}, 6, "devicePath"),
    ("11abc", {}, 10, "recordHandle"),
    ("0", {}, 10, "recordHandle"),
    ("-1", {}, 10, "recordHandle"),
    ("1.5", {}, 10, "recordHandle"),
    ("99999999999", {}, 1, "recordHandle"),
    (str(2**31), {}, 1, "recordHandle"),
    ("9" * 5000, {}, 1, "recordHandle"),
    ("000", {}, 10, "recordHandle"),
    (11, {"operationName": 5}, 10, "operationName"),
    (11, {"operationName": "Frobnicate"}, 10, "operationName"),
    (11, {"operationName": "GetPreviewRecord"}, 3, "GetPreviewRecord"),
    (11, {"operationName": "AddRecord"}, 3, "AddRecord"),
]


@pytest.mark.parametrize(("handle", "changes", "status_code", "names"), VALIDATION_CASES)
async def test_validation(sim: GWSSimulator, gws: GWS, handle, changes, status_code, names):
    if status_code == 0:  # the limit itself is valid: OCS answers (the record is not there)
        assert (await gws.cancel(handle, **changes)).json() == {"statusCode": 0}
        return
    message = _error(await gws.cancel(handle, **changes), status_code)
    assert names in message
    assert not any(state.cancelled for state in sim.records.values())
    assert sim.published == []


async def test_several_missing_parameters_are_all_named(gws: GWS):
    message = _error(await gws.cancel(11, applicationId=MISSING, callingList=MISSING), 1)
    assert "applicationId" in message and "callingList" in message


async def test_several_invalid_parameters_are_all_named(gws: GWS):
    message = _error(await gws.cancel(11, applicationId="x", referenceId=5), 10)
    assert "applicationId" in message and "referenceId" in message


async def test_another_users_device_is_not_found(sim: GWSSimulator, gws: GWS):
    _error(await gws.cancel(11, devicePath=sim.device_path("agent2")), 6)


@pytest.mark.parametrize("body", ["not json at all", "[1, 2]", "null", '"CancelRecord"', "42", ""])
async def test_body_that_is_not_a_json_object(sim: GWSSimulator, gws: GWS, body: str):
    response = await gws.http.post(
        "/api/v2/me/outbound-records/11",
        content=body.encode(),
        headers={"X-CSRF-TOKEN": gws.token or "", "Content-Type": "application/json"},
    )
    assert "body" in _error(response, 10)
    if body == "not json at all":
        assert sim.cancels[-1].body == "not json at all"


async def test_post_without_handle(gws: GWS):
    headers = {"X-CSRF-TOKEN": gws.token or ""}
    cancel = await gws.http.post("/api/v2/me/outbound-records", json=gws.body(), headers=headers)
    assert "recordHandle" in _error(cancel, 1)
    preview = await gws.http.post(
        "/api/v2/me/outbound-records",
        json=gws.body(operationName="StartPreviewSession"),
        headers=headers,
    )
    assert _error(preview, 3).startswith("Operation forbidden: StartPreviewSession")


async def test_cancels_lists_only_outbound_record_posts(sim: GWSSimulator, gws: GWS):
    await gws.cancel(11)
    await gws.cancel("11abc")
    await gws.http.get("/api/v2/me/devices")
    assert [(r.method, r.path, r.status) for r in sim.cancels] == [
        ("POST", "/api/v2/me/outbound-records/11", 200),
        ("POST", "/api/v2/me/outbound-records/11abc", 200),
    ]
    assert sim.cancels[0].body == gws.body()
    assert len(sim.requests) == 4  # the login GET, two cancels, the devices GET
