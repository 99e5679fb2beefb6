"""Preview sessions, AddRecord, DoNotCall by phone number, callbacks and unsolicited events."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from gws_outbound_plugin.simulator import (
    GWSSimulator,
    OCSError,
    RecordStatus,
    SeedRecord,
    SimulatorClock,
)
from tests.simulator.sim_helpers import GWS, MISSING, USERS, Bayeux, events, without_metrics

pytestmark = pytest.mark.anyio

OK = {"statusCode": 0}
ADD = {
    "campaignName": "Campaign1",
    "callingList": "CallingList1",
    "phoneNumber": "3100",
    "timeZone": "EST",
    "phoneType": "Mobile",
    "from": 0,
    "until": 86399,
}


def _error(response: httpx.Response, status_code: int) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"statusCode", "statusMessage"}, body
    assert body["statusCode"] == status_code, body
    message: str = body["statusMessage"]
    return message


def _user_data(message) -> dict:
    assert message.channel == "/me/internal"
    assert message.data["messageType"] == "DeviceUserEventMessage"
    return dict(without_metrics(message.data)["userData"])


# ------------------------------------------------------------------- validation
VALIDATION = [
    # (resource, operation, body changes, statusCode, text the statusMessage names)
    ("records", "AddRecord", {"phoneNumber": MISSING, "until": MISSING}, 1, "phoneNumber, until"),
    ("records", "AddRecord", {"timeZone": MISSING}, 1, "timeZone"),
    ("records", "AddRecord", {"chainId": 2**31}, 1, "chainId"),
    (
        "records",
        "AddRecord",
        {"applicationId": 2**40, "chainId": 2**31},
        1,
        "applicationId, chainId",
    ),
    ("records", "AddRecord", {"chainId": 0}, 10, "chainId"),
    ("records", "AddRecord", {"phoneType": "Fax"}, 10, "phoneType"),
    ("records", "AddRecord", {"from": 90_000}, 10, "from"),
    ("records", "AddRecord", {"otherFields": ["a"]}, 10, "otherFields"),
    ("records", "AddRecord", {"otherFields": {"a": {"b": 1}}}, 10, "otherFields"),
    ("records", "AddRecord", {"otherFields": {"a": None}}, 10, "otherFields"),
    ("records", "AddRecord", {"otherFields": {"": 1}}, 10, "otherFields"),
    ("records", "DoNotCallRecord", {"phoneNumber": MISSING}, 1, "phoneNumber"),
    ("records", "DoNotCallRecord", {"callingList": ""}, 10, "callingList"),
    ("records", "GetPreviewRecord", {}, 3, "outbound-campaigns"),
    ("records", "RejectRecord", {}, 1, "recordHandle"),
    ("campaign", "StartPreviewSession", {"applicationId": MISSING}, 1, "applicationId"),
    ("campaign", "GetPreviewRecord", {"applicationId": 2**31}, 1, "applicationId"),
    ("campaign", "GetPreviewRecord", {"devicePath": "/devices/nobody"}, 6, "devicePath"),
    ("campaign", "StartPreviewSession", {"applicationId": 135}, 6, "applicationId"),
    ("campaign", "CancelRecord", {}, 3, "outbound-records"),
    ("campaign", "AddRecord", {}, 3, "outbound-records"),
    ("campaign", "Dial", {}, 10, "operationName"),
]


@pytest.mark.parametrize(("resource", "operation", "changes", "status_code", "names"), VALIDATION)
async def test_validation(
    sim: GWSSimulator, gws: GWS, resource, operation, changes, status_code, names
):
    if resource == "records":
        fields = (ADD if operation == "AddRecord" else {"campaignName": "Campaign1"}) | changes
        fields = ({"phoneNumber": "3001"} if operation == "DoNotCallRecord" else {}) | fields
        response = await gws.records_op(operation, **fields)
    else:
        response = await gws.campaign_op(operation, "Campaign1", **changes)
    assert names in _error(response, status_code)
    assert sim.published == []
    assert len(sim.records) == 16
    assert not sim.preview_session_active("agent1", "Campaign1")


async def test_unknown_campaign_is_not_found(sim: GWSSimulator, gws: GWS):
    message = _error(await gws.campaign_op("StartPreviewSession", "NoSuchCampaign"), 6)
    assert "NoSuchCampaign" in message and "campaignName" in message


async def test_campaign_name_is_percent_decoded(new_http):
    records = [SeedRecord(1, 134, "Sales/East 1", "L", "100", 1)]
    async with GWSSimulator(users=USERS, records=records) as sim:
        gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
        await gws.login()
        response = await gws.campaign_op("StartPreviewSession", "Sales%2FEast%201")
        assert response.json() == OK
        [ack, _] = await sim.wait_for_published(2)
        assert ack.data["campaign"]["name"] == "Sales/East 1"
        assert sim.preview_session_active("agent1", "Sales/East 1")


# --------------------------------------------------------------------- AddRecord
async def test_add_record_creates_a_record_in_a_new_chain(sim: GWSSimulator, gws: GWS):
    fields = ADD | {"otherFields": {"customer_name": "Niklaus Wirth", "vip": True}}
    response = await gws.records_op("AddRecord", referenceId="r-add", **fields)
    assert response.json() == OK
    ack, event = await sim.wait_for_published(2)
    assert ack.data == {
        "messageType": "OutboundRecordMessage",
        "notificationType": "AddRecordAcknowledge",
        "referenceId": "r-add",
        "record": {
            "recordHandle": 27,
            "phoneNumber": "3100",
            "callingList": "CallingList1",
            "campaignName": "Campaign1",
            "applicationId": 134,
            "devicePath": sim.device_path("agent1"),
            "chainId": 303,
        },
    }
    assert _user_data(event) == {
        "GSW_USER_EVENT": "AddRecordAcknowledge",
        "GSW_APPLICATION_ID": 134,
        "GSW_RECORD_HANDLE": 27,
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CHAIN_ID": 303,
        "GSW_PHONE": "3100",
    }
    state = sim.records[27]
    assert state.status is RecordStatus.READY
    assert (state.record.time_zone, state.record.phone_type) == ("EST", "Mobile")
    assert dict(state.record.other_fields) == {"customer_name": "Niklaus Wirth", "vip": True}


async def test_add_record_to_a_chain_then_get_it_chained(sim: GWSSimulator, gws: GWS):
    assert (await gws.records_op("AddRecord", chainId=106, **ADD)).json() == OK
    await sim.wait_for_published(2)
    assert sim.records[27].record.chain_id == 106
    assert (await gws.record_op("GetChainedRecord", 20)).json() == OK
    published = await sim.wait_for_published(6)
    assert published[2].data["notificationType"] == "ChainedRecord"
    assert published[2].data["record"]["recordHandle"] == 27


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"chainId": 201}, OCSError.CHAIN_NOT_FOUND),  # a chain of another list
        ({"callingList": "CallingList2"}, OCSError.LIST_NOT_FOUND),
        ({"campaignName": "Campaign9"}, OCSError.LIST_NOT_FOUND),
    ],
)
async def test_add_record_refused_by_ocs(sim: GWSSimulator, gws: GWS, changes, error):
    assert (await gws.records_op("AddRecord", referenceId="r-no", **(ADD | changes))).json() == OK
    [refusal] = await sim.wait_for_published(1)
    user_data = _user_data(refusal)
    assert user_data["GSW_USER_EVENT"] == "AddRecordAcknowledge"
    assert user_data["GSW_ERROR_NUMBER"] == error
    assert user_data["GSW_ERROR"] == error.text
    # No record handle to match on: the reference id is echoed instead.
    assert user_data["GSW_REFERENCE_ID"] == "r-no"
    assert "GSW_RECORD_HANDLE" not in user_data
    assert len(sim.records) == 16


# ------------------------------------------------------- DoNotCall by phone number
async def test_do_not_call_by_phone_number(new_http):
    records = [
        SeedRecord(1, 134, "C", "L1", "555", 1),
        SeedRecord(2, 134, "C", "L2", "555", 2),
        SeedRecord(3, 134, "C", "L1", "556", 3),
        SeedRecord(4, 134, "Other", "L3", "555", 4),
    ]
    async with GWSSimulator(users=USERS, records=records) as sim:
        gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
        await gws.login()
        response = await gws.records_op(
            "DoNotCallRecord", campaignName="C", phoneNumber="555", referenceId="r-dnc"
        )
        assert response.json() == OK
        ack, event = await sim.wait_for_published(2)
        assert ack.data == {
            "messageType": "OutboundRecordMessage",
            "notificationType": "DoNotCallAcknowledge",
            "referenceId": "r-dnc",
            # phoneNumber instead of recordHandle
            "record": {
                "devicePath": sim.device_path("agent1"),
                "applicationId": 134,
                "phoneNumber": "555",
                "campaignName": "C",
            },
        }
        assert _user_data(event) == {
            "GSW_USER_EVENT": "DoNotCallAcknowledge",
            "GSW_APPLICATION_ID": 134,
            "GSW_CAMPAIGN_NAME": "C",
            "GSW_PHONE": "555",
        }
        assert [sim.records[h].status for h in (1, 2, 3, 4)] == [
            RecordStatus.DO_NOT_CALL,
            RecordStatus.DO_NOT_CALL,
            RecordStatus.READY,
            RecordStatus.READY,  # another campaign: not marked, but its number is listed
        ]
        assert sim.do_not_call_numbers == {"555"}
        # The other campaign's record with that number is not handed out any more.
        assert (await gws.campaign_op("StartPreviewSession", "Other")).json() == OK
        assert (await gws.campaign_op("GetPreviewRecord", "Other")).json() == OK
        *_, empty = await sim.wait_for_published(5)
        assert _user_data(empty)["GSW_ERROR"] == "No Records Available"


async def test_do_not_call_by_phone_number_in_one_list(sim: GWSSimulator, gws: GWS):
    response = await gws.records_op(
        "DoNotCallRecord",
        campaignName="Campaign2",
        callingList="CallingList3",
        phoneNumber="4005",
        chainAttribute="AllChain",
    )
    assert response.json() == OK
    ack, event = await sim.wait_for_published(2)
    assert ack.data["record"]["callingList"] == "CallingList3"
    assert _user_data(event)["GSW_CALLING_LIST"] == "CallingList3"
    assert _user_data(event)["GSW_CHAIN_ATTR"] == "AllChain"
    assert sim.records[25].status is RecordStatus.DO_NOT_CALL


# --------------------------------------------------------------- preview sessions
async def test_start_preview_session(sim: GWSSimulator, gws: GWS):
    response = await gws.campaign_op("StartPreviewSession", "Campaign1", referenceId="r-start")
    assert response.json() == OK
    ack, event = await sim.wait_for_published(2)
    assert ack.channel == "/v2/me/outbound"
    assert ack.data == {
        "messageType": "OutboundCampaignMessage",
        "notificationType": "PreviewSessionStarted",
        "referenceId": "r-start",
        "campaign": {
            "name": "Campaign1",
            "dialingMode": "Preview",
            "groupName": "Campaign1@AgentGroup1",
            "state": "Started",
            "devicePath": sim.device_path("agent1"),
            "applicationId": 134,
            "groupDescription": "",
            "description": "",
        },
    }
    assert _user_data(event) == {
        "GSW_USER_EVENT": "PreviewDialingModeStartAcknowledge",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CAMPAIGN_GROUP_NAME": "Campaign1@AgentGroup1",
    }
    assert sim.preview_session_active("agent1", "Campaign1")
    assert not sim.preview_session_active("agent2", "Campaign1")


async def test_get_preview_record(sim: GWSSimulator, gws: GWS):
    await gws.campaign_op("StartPreviewSession")
    await sim.wait_for_published(2)
    assert (await gws.campaign_op("GetPreviewRecord", referenceId="r-prev")).json() == OK
    _, _, ack, event = await sim.wait_for_published(4)
    assert set(ack.data) == {"messageType", "notificationType", "referenceId", "record"}
    assert (ack.data["notificationType"], ack.data["referenceId"]) == ("PreviewRecord", "r-prev")
    user_data = ack.data["record"]["userData"]
    assert _user_data(event) == user_data
    guid = user_data.pop("GSW_CALL_ATTEMPT_GUID")
    assert re.fullmatch(r"[0-9A-F]{32}", guid)
    assert user_data == {
        "GSW_USER_EVENT": "PreviewRecord",
        "GSW_AGENT_ID": "agent1",
        "GSW_RECORD_HANDLE": 11,
        "GSW_CHAIN_ID": 101,
        "GSW_PHONE": "3001",
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_CALLING_LIST_DBID": 101,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CAMPAIGN_GROUP_NAME": "Campaign1@AgentGroup1",
        "GSW_CAMPAIGN_GROUP_DBID": 201,
        "GSW_CAMPAIGN_GROUP_DESCRIPTION": "",
        "GSW_APPLICATION_ID": 134,
        "GSW_SWITCH_DBID": 101,
        "GSW_ATTEMPTS": 0,
        "GSW_CALL_RESULT": 28,
        "GSW_TZ_NAME": "PST",
        "GSW_TZ_OFFSET": -28800,
        "InteractionType": "Outbound",
        "InteractionSubtype": "OutboundNew",
        "customer_name": "Ada Lovelace",
        "contact_info": "3001",
    }
    assert (sim.records[11].status, sim.records[11].held_by) == (RecordStatus.HELD, "agent1")


async def test_preview_session_hands_out_records_until_the_list_is_empty(
    sim: GWSSimulator, gws: GWS
):
    await gws.record_op("CancelRecord", 23, campaignName="Campaign2", callingList="CallingList2")
    await gws.campaign_op("StartPreviewSession", "Campaign2")
    await sim.wait_for_published(4)
    sim.clear_recorded()
    handles = []
    for index in range(6):
        before = len(sim.published)
        response = await gws.campaign_op("GetPreviewRecord", "Campaign2", referenceId=f"r-{index}")
        assert response.json() == OK
        await sim.wait_for_published(before + 1)  # an outcome's messages come together
        outcome = sim.published[before:]
        if len(outcome) == 1:
            break
        ack, _ = outcome
        assert ack.data["referenceId"] == f"r-{index}"
        handles.append(ack.data["record"]["userData"]["GSW_RECORD_HANDLE"])
    # List by list (CallingList2 then CallingList3), lowest handle first, skipping 23.
    assert handles == [21, 22, 24, 25, 26]
    empty = sim.published[-1]
    assert _user_data(empty) == {
        "GSW_USER_EVENT": "PreviewRecord",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign2",
        "GSW_REFERENCE_ID": "r-5",
        "GSW_ERROR": "No Records Available",
        "GSW_ERROR_NUMBER": OCSError.NO_RECORDS_AVAILABLE,
    }
    assert len(sim.published) == 11  # five records (two messages each), then the error


async def test_preview_record_needs_a_session(sim: GWSSimulator, gws: GWS):
    assert (await gws.campaign_op("GetPreviewRecord", referenceId="r-x")).json() == OK
    [refusal] = await sim.wait_for_published(1)
    assert _user_data(refusal) == {
        "GSW_USER_EVENT": "PreviewRecord",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_REFERENCE_ID": "r-x",
        "GSW_ERROR": OCSError.NO_PREVIEW_SESSION.text,
        "GSW_ERROR_NUMBER": 107,
    }
    assert all(state.status is RecordStatus.READY for state in sim.records.values())


async def test_end_preview_session(sim: GWSSimulator, gws: GWS):
    await gws.campaign_op("StartPreviewSession")
    await sim.wait_for_published(2)
    assert (await gws.campaign_op("EndPreviewSession", referenceId="r-end")).json() == OK
    _, _, ack, event = await sim.wait_for_published(4)
    assert ack.data == {
        "messageType": "OutboundCampaignMessage",
        "notificationType": "PreviewSessionEnded",
        "referenceId": "r-end",
        "campaign": {
            "devicePath": sim.device_path("agent1"),
            "state": "Started",
            "applicationId": 134,
            "name": "Campaign1",
        },
    }
    assert _user_data(event) == {
        "GSW_USER_EVENT": "PreviewDialingModeOverAcknowledge",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CAMPAIGN_GROUP_NAME": "Campaign1@AgentGroup1",
    }
    assert not sim.preview_session_active("agent1", "Campaign1")
    # Ended: a second end and a record request are refused by OCS.
    await gws.campaign_op("EndPreviewSession")
    await gws.campaign_op("GetPreviewRecord")
    published = await sim.wait_for_published(6)
    assert [_user_data(m)["GSW_ERROR_NUMBER"] for m in published[4:]] == [107, 107]


async def test_preview_sessions_are_per_user(sim: GWSSimulator, gws: GWS, new_http):
    other = GWS(sim, await new_http(), "agent2")
    await other.login()
    await gws.campaign_op("StartPreviewSession")
    await other.campaign_op("GetPreviewRecord", devicePath=sim.device_path("agent2"))
    published = await sim.wait_for_published(3)
    assert published[-1].username == "agent2"
    assert _user_data(published[-1])["GSW_ERROR_NUMBER"] == 107


# ------------------------------------------------------------ callbacks and the clock
async def test_rescheduled_record_comes_back_when_the_clock_reaches_it(sim: GWSSimulator, gws: GWS):
    when = int(sim.clock.now()) + 3600
    response = await gws.record_op("RescheduleRecord", 17, callbackType="Personal", timestamp=when)
    assert response.json() == OK
    await sim.wait_for_published(2)
    sim.clock.advance(1800)
    assert len(sim.published) == 2  # not yet
    sim.clock.advance(1800)
    # Delivered by the time advance() returns.
    [call] = sim.published[2:]
    user_data = _user_data(call)
    assert call.data["deviceId"] == sim.device_id("agent1")
    assert user_data["GSW_USER_EVENT"] == "ScheduledCall"
    assert user_data["GSW_CALLBACK_TYPE"] == "Personal"
    assert user_data["GSW_DATE_TIME"] == datetime.fromtimestamp(when, UTC).strftime(
        "%m/%d/%Y %H:%M"
    )
    assert {key: user_data[key] for key in ("GSW_RECORD_HANDLE", "GSW_CHAIN_ID", "GSW_PHONE")} == {
        "GSW_RECORD_HANDLE": 17,
        "GSW_CHAIN_ID": 104,
        "GSW_PHONE": "3007",
    }
    assert user_data["GSW_CALLING_LIST"] == "CallingList1"
    assert (sim.records[17].status, sim.records[17].held_by) == (RecordStatus.HELD, "agent1")
    sim.clock.advance(3600)
    assert len(sim.published) == 3  # delivered once
    # The callback is the agent's again: they complete it.
    assert (await gws.record_op("CompleteRecord", 17)).json() == OK
    await sim.wait_for_published(5)
    assert sim.records[17].status is RecordStatus.COMPLETED


async def test_a_cancelled_callback_never_comes(sim: GWSSimulator, gws: GWS):
    when = int(sim.clock.now()) + 60
    await gws.record_op("RescheduleRecord", 17, callbackType="Campaign", timestamp=when)
    await gws.record_op("CancelRecord", 17)
    await sim.wait_for_published(4)
    sim.clock.advance(120)
    assert len(sim.published) == 4


async def test_clock_set_delivers_callbacks_in_time_order(new_http):
    clock = SimulatorClock(datetime(2030, 1, 1, tzinfo=UTC), frozen=True)
    async with GWSSimulator(users=USERS, clock=clock) as sim:
        gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
        await gws.login()
        start = int(clock.now())
        for handle, offset in ((14, 7200), (19, 3600), (20, 10_800)):
            response = await gws.record_op(
                "RescheduleRecord", handle, callbackType="Personal", timestamp=start + offset
            )
            assert response.json() == OK
        await sim.wait_for_published(6)
        assert sim.clock.now() == start  # frozen
        sim.clock.set(datetime(2030, 1, 1, 2, 30, tzinfo=UTC))
        assert [_user_data(m)["GSW_RECORD_HANDLE"] for m in sim.published[6:]] == [19, 14]
        assert sim.records[20].status is RecordStatus.SCHEDULED


async def test_a_due_callback_is_delivered_in_real_time(sim: GWSSimulator, gws: GWS):
    # A timestamp already reached: the background scheduler delivers it, no advance needed.
    when = int(sim.clock.now())
    await gws.record_op("RescheduleRecord", 18, callbackType="Personal", timestamp=when)
    published = await sim.wait_for_published(3, timeout=2)
    assert [m.channel for m in published] == ["/v2/me/outbound", "/me/internal", "/me/internal"]
    assert _user_data(published[2])["GSW_USER_EVENT"] == "ScheduledCall"


async def test_a_callback_waits_for_the_clock_while_the_simulator_is_stopped(
    sim: GWSSimulator, gws: GWS
):
    await gws.record_op(
        "RescheduleRecord", 18, callbackType="Personal", timestamp=int(sim.clock.now()) + 60
    )
    await sim.wait_for_published(2)
    await sim.stop()
    sim.clock.advance(120)
    assert len(sim.published) == 2
    await sim.start()
    published = await sim.wait_for_published(3, timeout=2)
    assert _user_data(published[2])["GSW_USER_EVENT"] == "ScheduledCall"


# ------------------------------------------------------------ unsolicited events
async def test_record_cancel_of_a_held_record(sim: GWSSimulator, gws: GWS, bayeux: Bayeux):
    await bayeux.ready("/me/internal")
    await gws.campaign_op("StartPreviewSession")
    await gws.campaign_op("GetPreviewRecord")
    await sim.wait_for_published(4)
    sim.send_record_cancel(11)
    event = sim.published[-1]
    assert _user_data(event) == {
        "GSW_USER_EVENT": "RecordCancel",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_RECORD_HANDLE": 11,
        "GSW_CHAIN_ID": 101,
        "GSW_PHONE": "3001",
    }
    assert event.data["deviceId"] == sim.device_id("agent1")
    state = sim.records[11]
    assert (state.status, state.held_by, state.changed_by) == (RecordStatus.CANCELLED, None, None)
    assert [e["data"]["userData"]["GSW_USER_EVENT"] for e in events(await bayeux.connect())] == [
        "PreviewDialingModeStartAcknowledge",
        "PreviewRecord",
        "RecordCancel",
    ]
    with pytest.raises(ValueError, match="not held"):
        sim.send_record_cancel(11)
    with pytest.raises(ValueError, match="not held"):
        sim.send_record_cancel(12)
    with pytest.raises(KeyError):
        sim.send_record_cancel(999)


async def test_campaign_status_events(sim: GWSSimulator, gws: GWS):
    sim.send_campaign_status("Campaign1", "CampaignStopped")
    assert [m.username for m in sim.published] == ["agent1", "agent2"]
    assert _user_data(sim.published[0]) == {
        "GSW_USER_EVENT": "CampaignStopped",
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_GROUP_NAME": "Campaign1@AgentGroup1",
        "GSW_CAMPAIGN_MODE": "Preview",
    }
    assert sim.campaigns[("Campaign1", 134)].state == "Stopped"
    # A stopped campaign hands out nothing.
    await gws.campaign_op("StartPreviewSession")
    await gws.campaign_op("GetPreviewRecord")
    published = await sim.wait_for_published(5)
    assert _user_data(published[-1])["GSW_ERROR"] == "No Records Available"
    sim.send_campaign_status("Campaign1", "CampaignModeChanged", mode="Progressive", user="agent2")
    [changed] = sim.published[5:]
    assert changed.username == "agent2"
    assert _user_data(changed)["GSW_CAMPAIGN_MODE"] == "Progressive"
    sim.send_campaign_status("Campaign1", "CampaignStarted", user="agent1")
    assert sim.campaigns[("Campaign1", 134)].state == "Started"
    for name in ("CampaignLoaded", "CampaignUnloaded"):
        sim.send_campaign_status("Campaign2", name, user="agent1")
        assert _user_data(sim.published[-1])["GSW_USER_EVENT"] == name


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("Campaign1", "CampaignPaused"), {}, ValueError),
        (("Campaign1", "CampaignModeChanged"), {}, ValueError),
        (("Campaign1", "CampaignStarted"), {"mode": "Preview"}, ValueError),
        (("Nope", "CampaignStarted"), {}, KeyError),
        (("Campaign1", "CampaignStarted"), {"user": "nobody"}, KeyError),
    ],
)
async def test_campaign_status_argument_errors(sim: GWSSimulator, args, kwargs, error):
    with pytest.raises(error):
        sim.send_campaign_status(*args, **kwargs)
    assert sim.published == []


async def test_pushed_preview_record(sim: GWSSimulator):
    handle = sim.send_preview_record("Campaign2", "agent2")
    assert handle == 21
    ack, event = sim.published
    assert ack.username == event.username == "agent2"
    assert set(ack.data) == {"messageType", "notificationType", "record"}  # no referenceId
    assert ack.data["notificationType"] == "PreviewRecord"
    assert ack.data["record"]["userData"]["GSW_AGENT_ID"] == "agent2"
    assert _user_data(event) == ack.data["record"]["userData"]
    assert event.data["deviceId"] == sim.device_id("agent2")
    assert (sim.records[21].status, sim.records[21].held_by) == (RecordStatus.HELD, "agent2")
    for _ in range(5):
        sim.send_preview_record("Campaign2")
    with pytest.raises(LookupError, match="no record available"):
        sim.send_preview_record("Campaign2")


# ----------------------------------------------------------------- admin endpoints
async def test_admin_events_endpoint(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    pushed = await http.post(
        "/_simulator/events",
        json={"event": "PreviewRecord", "campaignName": "Campaign1", "user": "agent1"},
    )
    assert pushed.json() == {"ok": True, "event": "PreviewRecord", "recordHandle": 11}
    cancelled = await http.post(
        "/_simulator/events", json={"event": "RecordCancel", "recordHandle": 11}
    )
    assert cancelled.json() == {"ok": True, "event": "RecordCancel", "recordHandle": 11}
    again = await http.post(
        "/_simulator/events", json={"event": "RecordCancel", "recordHandle": 11}
    )
    assert again.status_code == 409
    started = await http.post(
        "/_simulator/events",
        json={"event": "CampaignModeChanged", "campaignName": "Campaign2", "mode": "Predictive"},
    )
    assert started.json() == {
        "ok": True,
        "event": "CampaignModeChanged",
        "campaignName": "Campaign2",
    }
    assert sim.campaigns[("Campaign2", 134)].dialing_mode == "Predictive"
    assert [_user_data(m)["GSW_USER_EVENT"] for m in sim.published[1:]] == [
        "PreviewRecord",
        "RecordCancel",
        "CampaignModeChanged",
        "CampaignModeChanged",
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"event": "RecordCancel"}, 400),
        ({"event": "RecordCancel", "recordHandle": "11"}, 400),
        ({"event": "RecordCancel", "recordHandle": 999}, 404),
        ({"event": "PreviewRecord", "campaignName": "Nope"}, 404),
        ({"event": "CampaignStarted", "campaignName": "Campaign1", "bogus": 1}, 400),
        ({"event": "CampaignModeChanged", "campaignName": "Campaign1"}, 400),
        ({"event": "Explode", "campaignName": "Campaign1"}, 400),
        ({"campaignName": "Campaign1"}, 400),
        (["RecordCancel"], 400),
    ],
)
async def test_admin_events_endpoint_rejects_bad_requests(
    sim: GWSSimulator, http: httpx.AsyncClient, body, status: int
):
    response = await http.post("/_simulator/events", json=body)
    assert response.status_code == status
    assert response.json()["error"]
    assert sim.published == []


async def test_admin_clock_endpoint(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    now = (await http.get("/_simulator/clock")).json()
    assert now["ok"] is True and now["frozen"] is False
    when = int(now["now"]) + 600
    await gws.record_op("RescheduleRecord", 17, callbackType="Personal", timestamp=when)
    await sim.wait_for_published(2)
    advanced = await http.post("/_simulator/clock", json={"advance": 600})
    assert advanced.json()["now"] >= when
    assert _user_data(sim.published[-1])["GSW_USER_EVENT"] == "ScheduledCall"
    moved = await http.post("/_simulator/clock", json={"set": "2031-02-03T04:05:06+00:00"})
    assert moved.json()["iso"].startswith("2031-02-03T04:05")
    for bad in ({"advance": -1}, {"set": "2031-02-03T04:05:06"}, {"jump": 1}, {}):
        assert (await http.post("/_simulator/clock", json=bad)).status_code == 400
