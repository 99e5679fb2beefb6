"""Public GWS facts the simulator follows (issue 12) and faults aimed at one operation."""

from __future__ import annotations

import anyio
import httpx
import pytest

from gws_outbound_plugin.simulator import OPERATIONS, Faults, GWSSimulator, RecordStatus
from tests.simulator.sim_helpers import GWS, MISSING, USERS, Bayeux, events

pytestmark = pytest.mark.anyio

OK = {"statusCode": 0}


async def _settle() -> None:
    """Give already scheduled (undelayed) publications a chance to run."""
    await anyio.sleep(0.05)


# ------------------------------------------------------------ CometD ErrorMessage
async def test_cometd_error_replaces_the_acknowledgement(sim: GWSSimulator, gws: GWS):
    sim.faults.cometd_error(code=50, message="Record is locked by another agent")
    assert (await gws.record_op("RejectRecord", 11, referenceId="r-err")).json() == OK
    [error] = await sim.wait_for_published(1)
    await _settle()
    assert len(sim.published) == 1
    assert error.channel == "/v2/me/outbound"
    assert error.data == {
        "messageType": "ErrorMessage",
        "referenceId": "r-err",
        "errorCode": 50,
        "errorMessage": "Record is locked by another agent",
    }
    assert sim.records[11].status is RecordStatus.READY  # nothing happened
    assert (await gws.record_op("RejectRecord", 11)).json() == OK  # count=1
    assert (await sim.wait_for_published(3))[1].data["notificationType"] == (
        "RecordRejectAcknowledge"
    )


async def test_cometd_error_on_another_channel_without_reference(
    sim: GWSSimulator, gws: GWS, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/devices")
    sim.faults.cometd_error(channel="/v2/me/devices", operation="StartPreviewSession")
    response = await gws.campaign_op("StartPreviewSession", referenceId=MISSING)
    assert response.json() == OK
    [error] = await sim.wait_for_published(1)
    assert error.channel == "/v2/me/devices"
    assert error.data == {
        "messageType": "ErrorMessage",
        "errorCode": 1,
        "errorMessage": "Simulated back-end error",
    }
    assert error.recipients == 1
    [delivered] = events(await bayeux.connect())
    assert delivered == {"channel": "/v2/me/devices", "data": error.data}
    assert not sim.preview_session_active("agent1", "Campaign1")


async def test_cometd_error_takes_precedence_over_ocs_error(sim: GWSSimulator, gws: GWS):
    sim.faults.ocs_error()
    sim.faults.cometd_error()
    await gws.cancel(11)
    [error] = await sim.wait_for_published(1)
    assert error.data["messageType"] == "ErrorMessage"
    assert sim.faults.active == ("ocs_error(number=100, message='Simulated OCS error'): 1 left",)


# ------------------------------------------------------------------ 32-bit ids
@pytest.mark.parametrize(
    ("where", "value", "status_code"),
    [
        ("recordHandle", 2**31, 1),
        ("recordHandle", 2**31 - 1, 0),
        ("applicationId", 2**31, 1),
        ("applicationId", 2**63, 1),
        ("applicationId", 2**31 - 1, 0),
    ],
)
async def test_32_bit_ids(sim: GWSSimulator, gws: GWS, where: str, value: int, status_code: int):
    if where == "recordHandle":
        response = await gws.record_op("CompleteRecord", value)
    else:
        response = await gws.record_op("CompleteRecord", 11, applicationId=value)
    body = response.json()
    assert body["statusCode"] == status_code, body
    if status_code:
        assert where in body["statusMessage"] and "32-bit" in body["statusMessage"]
        assert sim.published == []


# ---------------------------------------------------- a refused /me/internal
async def test_forbidden_channel_subscription_is_refused(new_http):
    async with GWSSimulator(
        users=USERS, forbidden_channels=["/me/internal"], connect_timeout=2.0
    ) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        await bayeux.ready()
        refused, accepted, mixed = await bayeux.subscribe(
            "/me/internal", "/v2/me/outbound", "/v2/me/devices"
        )
        assert refused == {
            "channel": "/meta/subscribe",
            "successful": False,
            "error": "403::Forbidden channel",
            "id": refused["id"],
            "clientId": bayeux.client_id,
            "subscription": "/me/internal",
        }
        assert accepted["successful"] is True and mixed["successful"] is True
        [listed] = await bayeux.send(
            bayeux.message("/meta/subscribe", subscription=["/v2/me/calls", "/me/internal"])
        )
        assert (listed["successful"], listed["error"]) == (False, "403::Forbidden channel")
        assert sim.forbidden_channels == {"/me/internal"}


async def test_forbidden_channel_delivers_nothing_even_to_wildcards(
    sim: GWSSimulator, gws: GWS, bayeux: Bayeux
):
    await bayeux.ready("/me/internal", "/**")
    sim.set_forbidden_channels(["/me/internal"])
    assert (await gws.cancel(11)).json() == OK
    ack, event = await sim.wait_for_published(2)
    assert (ack.recipients, event.recipients) == (1, 0)
    assert [e["channel"] for e in events(await bayeux.connect())] == ["/v2/me/outbound"]
    sim.set_forbidden_channels([])
    [again] = await bayeux.subscribe("/me/internal")
    assert again["successful"] is True


@pytest.mark.parametrize("channels", ["/me/internal", ["/meta/connect"], ["/me/*"], [""]])
def test_forbidden_channels_must_be_channel_names(channels):
    with pytest.raises(ValueError):  # noqa: PT011
        GWSSimulator(forbidden_channels=channels)


async def test_admin_forbidden_channels_endpoint(sim: GWSSimulator, http: httpx.AsyncClient):
    response = await http.post(
        "/_simulator/forbidden-channels", json={"channels": ["/me/internal"]}
    )
    assert response.json() == {"ok": True, "forbidden_channels": ["/me/internal"]}
    assert sim.forbidden_channels == {"/me/internal"}
    for bad in ({"channels": "/me/internal"}, {"channels": ["/meta/x"]}, {}):
        assert (await http.post("/_simulator/forbidden-channels", json=bad)).status_code == 400
    cleared = await http.post("/_simulator/forbidden-channels", json={"channels": []})
    assert cleared.json()["forbidden_channels"] == []


# ------------------------------------------------------------------------ texts
@pytest.mark.parametrize("auth", [None, ("agent1", "wrong"), ("nobody", "secret")])
async def test_access_denied_text(http: httpx.AsyncClient, auth):
    response = await http.get("/api/v2/me", auth=auth)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 20, "statusMessage": "Access denied"}


async def test_status_code_fault_uses_gws_texts(gws: GWS, sim: GWSSimulator):
    sim.faults.status_code(20)
    sim.faults.status_code(18)
    assert (await gws.cancel(11)).json() == {"statusCode": 20, "statusMessage": "Access denied"}
    assert (await gws.cancel(11)).json()["statusMessage"] == "Resource already exists"


# ------------------------------------------------- faults aimed at one operation
async def test_fault_limited_to_one_operation(sim: GWSSimulator, gws: GWS):
    sim.faults.drop_notifications("both", count=None, operation="RejectRecord")
    assert sim.faults.active == (
        "drop_notifications(which='both', operation='RejectRecord'): until cleared",
    )
    assert (await gws.record_op("CancelRecord", 11)).json() == OK
    await sim.wait_for_published(2)
    assert (await gws.record_op("RejectRecord", 14)).json() == OK
    assert (await gws.record_op("RejectRecord", 16)).json() == OK
    await _settle()
    assert len(sim.published) == 2  # the rejects' outcomes were dropped
    assert sim.records[14].status is RecordStatus.REJECTED  # OCS still rejected it


@pytest.mark.parametrize(
    ("arm", "check"),
    [
        ("status_code", lambda r: r.json()["statusCode"] == 4),
        ("http_error", lambda r: r.status_code == 500),
        ("unauthorized", lambda r: r.status_code == 401),
        ("csrf_reject", lambda r: r.status_code == 403),
    ],
)
async def test_answer_faults_skip_other_operations(sim: GWSSimulator, gws: GWS, arm, check):
    arguments = {"code": 4} if arm == "status_code" else {}
    getattr(sim.faults, arm)(operation="GetPreviewRecord", **arguments)
    assert (await gws.cancel(11)).json() == OK
    assert (await gws.campaign_op("StartPreviewSession")).json() == OK
    assert check(await gws.campaign_op("GetPreviewRecord"))
    assert sim.faults.active == ()


async def test_reset_connection_for_one_operation(sim: GWSSimulator, gws: GWS):
    sim.faults.reset_connection(operation="AddRecord")
    assert (await gws.cancel(11)).json() == OK
    with pytest.raises(httpx.RemoteProtocolError):
        await gws.records_op("AddRecord", campaignName="Campaign1")


async def test_every_outcome_fault_applies_to_every_operation(sim: GWSSimulator, gws: GWS):
    sim.faults.reverse_notifications(operation="GetChainedRecord")
    sim.faults.duplicate_notifications(times=2, operation="StartPreviewSession")
    sim.faults.ocs_error(number=7, message="Busy", operation="UpdateRecord")
    assert (await gws.record_op("GetChainedRecord", 14)).json() == OK
    published = await sim.wait_for_published(4)
    # Reversed: the end marker's user event comes first, the chained record last.
    assert [m.data.get("notificationType") for m in published] == [
        None,
        "ChainedRecordsDataEnd",
        None,
        "ChainedRecord",
    ]
    assert (await gws.campaign_op("StartPreviewSession")).json() == OK
    published = await sim.wait_for_published(8)
    assert [m.data.get("notificationType") for m in published[4:]] == [
        "PreviewSessionStarted",
        None,
        "PreviewSessionStarted",
        None,
    ]
    assert (await gws.record_op("UpdateRecord", 16, phoneNumber="1")).json() == OK
    [refusal] = (await sim.wait_for_published(9))[8:]
    assert refusal.data["userData"]["GSW_USER_EVENT"] == "UpdateCallCompletionStatsAcknowledge"
    assert (
        refusal.data["userData"]["GSW_ERROR_NUMBER"],
        refusal.data["userData"]["GSW_ERROR"],
    ) == (
        7,
        "Busy",
    )
    assert sim.records[16].record.phone_number == "3006"  # untouched
    assert sim.faults.active == ()


async def test_hold_and_delay_apply_to_campaign_operations(sim: GWSSimulator, gws: GWS):
    sim.faults.hold_notifications()
    assert (await gws.campaign_op("StartPreviewSession")).json() == OK
    assert (await gws.campaign_op("GetPreviewRecord")).json() == OK
    await _settle()
    assert sim.published == []
    assert sim.faults.held_count == 2
    sim.faults.release_notifications()
    published = await sim.wait_for_published(4)
    assert published[2].data["notificationType"] == "PreviewRecord"


def test_every_operation_is_a_valid_target():
    faults = Faults()
    for operation in OPERATIONS:
        faults.delay_notifications(1, operation=operation)
    assert len(faults.active) == len(OPERATIONS) == 11
    assert faults.active[0] == "delay_notifications(seconds=1, operation='CancelRecord'): 1 left"
    faults.clear()
    faults.reverse_notifications(operation="AddRecord")
    assert faults.active == ("reverse_notifications(operation='AddRecord'): 1 left",)


async def test_admin_faults_endpoint_takes_an_operation(
    sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient
):
    response = await http.post(
        "/_simulator/faults",
        json={"fault": "cometd_error", "code": 9, "operation": "CompleteRecord"},
    )
    assert response.json()["active"] == [
        "cometd_error(code=9, message='Simulated back-end error', channel='/v2/me/outbound', "
        "operation='CompleteRecord'): 1 left"
    ]
    bad = await http.post("/_simulator/faults", json={"fault": "ocs_error", "operation": "Nope"})
    assert bad.status_code == 400
    assert (await gws.record_op("CompleteRecord", 11)).json() == OK
    [error] = await sim.wait_for_published(1)
    assert error.data["errorCode"] == 9
