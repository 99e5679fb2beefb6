"""Fault injection from Python and through the admin HTTP endpoint."""

from __future__ import annotations

import ipaddress
import math
import socket
import time

import anyio
import httpx
import pytest

from gws_outbound_plugin.simulator import Faults, GWSSimulator
from tests.simulator.sim_helpers import GWS, USERS, Bayeux, events

pytestmark = pytest.mark.anyio

OK = {"statusCode": 0}


def _channels(sim: GWSSimulator) -> list[str]:
    return [message.channel for message in sim.published]


async def _settle() -> None:
    """Give already scheduled (undelayed) publications a chance to run."""
    await anyio.sleep(0.05)


async def test_delay_notifications(sim: GWSSimulator, gws: GWS):
    sim.faults.delay_notifications(0.3)
    started = time.monotonic()
    assert (await gws.cancel(11)).json() == OK
    await _settle()
    assert sim.published == []
    await sim.wait_for_published(2)
    assert time.monotonic() - started >= 0.25
    assert _channels(sim) == ["/v2/me/outbound", "/me/internal"]
    assert (await gws.cancel(12)).json() == OK  # count=1: the next one is not delayed
    await _settle()
    assert len(sim.published) == 4


@pytest.mark.parametrize(
    ("which", "expected"),
    [("both", []), ("outbound", ["/me/internal"]), ("user_event", ["/v2/me/outbound"])],
)
async def test_drop_notifications(sim: GWSSimulator, gws: GWS, which: str, expected: list[str]):
    sim.faults.drop_notifications(which=which, count=2)
    await gws.cancel(11)
    await gws.cancel(12)
    await _settle()
    assert _channels(sim) == expected * 2
    assert sim.records[11].cancelled and sim.records[12].cancelled  # OCS still cancelled them
    await gws.cancel(13)
    await sim.wait_for_published(len(expected) * 2 + 2)
    assert _channels(sim)[-2:] == ["/v2/me/outbound", "/me/internal"]
    assert sim.faults.active == ()


async def test_duplicate_notifications(sim: GWSSimulator, gws: GWS):
    sim.faults.duplicate_notifications(times=3)
    await gws.cancel(11)
    await sim.wait_for_published(6)
    assert _channels(sim) == ["/v2/me/outbound", "/me/internal"] * 3
    assert sim.published[0].data == sim.published[2].data == sim.published[4].data


async def test_reverse_notifications(sim: GWSSimulator, gws: GWS):
    sim.faults.reverse_notifications()
    await gws.cancel(11)
    await sim.wait_for_published(2)
    assert _channels(sim) == ["/me/internal", "/v2/me/outbound"]


async def test_ocs_error(sim: GWSSimulator, gws: GWS):
    sim.faults.ocs_error(number=555, message="Record is being dialled")
    assert (await gws.cancel(11, phoneNumber="3001")).json() == OK
    await sim.wait_for_published(1)
    await _settle()
    [event] = sim.published
    assert event.channel == "/me/internal"
    user_data = event.data["userData"]
    assert user_data["GSW_ERROR_NUMBER"] == 555
    assert user_data["GSW_ERROR"] == "Record is being dialled"
    assert user_data["GSW_PHONE"] == "3001"
    assert user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert not sim.records[11].cancelled


async def test_status_code(sim: GWSSimulator, gws: GWS):
    sim.faults.status_code(4)
    sim.faults.status_code(2, "Agent is not logged in")
    first = await gws.cancel(11)
    assert first.status_code == 200
    assert first.json() == {"statusCode": 4, "statusMessage": "Internal error"}
    second = await gws.cancel(11)
    assert second.json() == {"statusCode": 2, "statusMessage": "Agent is not logged in"}
    await _settle()
    assert sim.published == []
    assert not sim.records[11].cancelled
    assert (await gws.cancel(11)).json() == OK


async def test_status_code_does_not_hide_validation_errors(sim: GWSSimulator, gws: GWS):
    sim.faults.status_code(4)
    assert (await gws.cancel("abc")).json()["statusCode"] == 10
    assert (await gws.cancel(11)).json()["statusCode"] == 4


async def test_http_error_500_and_503(sim: GWSSimulator, gws: GWS):
    sim.faults.http_error(500)
    sim.faults.http_error(503)
    sim.faults.http_error(503, gws_body=False)
    sim.faults.http_error(502)
    sim.faults.http_error(502, gws_body=True)
    first = await gws.cancel(11)
    assert first.status_code == 500
    assert first.json() == {"statusCode": 4, "statusMessage": "Simulated internal error"}
    second = await gws.cancel(11)
    assert second.status_code == 503
    assert second.headers["content-type"].startswith("application/json")
    # GWS's own answer when a back end is down (GWS 8.5.2 "Error Handling").
    assert second.json() == {
        "statusCode": 4,
        "statusMessage": "Voice service is not available at this time",
    }
    bare = await gws.cancel(11)
    assert (bare.status_code, bare.headers["content-type"].split(";")[0]) == (503, "text/plain")
    assert bare.text == "Simulated HTTP 503 error"
    assert (await gws.cancel(11)).headers["content-type"].startswith("text/plain")
    gws_502 = await gws.cancel(11)
    assert (gws_502.status_code, gws_502.json()["statusCode"]) == (502, 4)
    assert not sim.records[11].cancelled
    assert [r.status for r in sim.cancels] == [500, 503, 503, 502, 502]
    assert (await gws.cancel(11)).json() == OK


def test_http_error_describes_a_non_default_body():
    faults = Faults()
    faults.http_error(503, gws_body=False, count=2)
    faults.http_error(502)
    assert faults.active == (
        "http_error(status=503, gws_body=False): 2 left",
        "http_error(status=502): 1 left",
    )


async def test_slow_answer(sim: GWSSimulator, gws: GWS):
    sim.faults.slow_answer(0.3)
    started = time.monotonic()
    response = await gws.cancel(11)
    assert time.monotonic() - started >= 0.25
    assert response.json() == OK
    # The cancel was processed at once: its outcome was out before the answer.
    assert _channels(sim) == ["/v2/me/outbound", "/me/internal"]
    assert sim.cancels[0].duration_ms >= 250


async def test_reset_connection(sim: GWSSimulator, gws: GWS):
    sim.faults.reset_connection()
    with pytest.raises(httpx.RemoteProtocolError):
        await gws.cancel(11)
    [reset] = sim.cancels
    assert reset.status == 0
    assert not sim.records[11].cancelled
    assert (await gws.cancel(11)).json() == OK


async def test_expire_session(sim: GWSSimulator, gws: GWS):
    sim.faults.expire_session()
    response = await gws.cancel(11)
    assert response.status_code == 403
    assert response.text == "Missing or invalid Csrf token"
    assert (await gws.http.get("/api/v2/me")).status_code == 401
    await gws.login()
    assert (await gws.cancel(11)).json() == OK


async def test_unauthorized(sim: GWSSimulator, gws: GWS):
    sim.faults.unauthorized(count=2)
    for _ in range(2):
        response = await gws.cancel(11)
        assert response.status_code == 401
        assert response.json() == {"statusCode": 20, "statusMessage": "Access denied"}
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert not sim.records[11].cancelled
    assert sim.faults.active == ()
    # Unprocessed, and the session was left alone: the same cookie and token work on.
    assert sim.session_count == 1
    assert (await gws.cancel(11)).json() == OK
    assert [r.status for r in sim.cancels] == [401, 401, 200]
    assert sim.cancels[0].had_csrf_token


async def test_csrf_reject_keeps_the_session_and_its_token(sim: GWSSimulator, gws: GWS):
    sim.faults.csrf_reject()
    response = await gws.cancel(11)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Missing or invalid Csrf token"
    assert not sim.records[11].cancelled
    # Unlike expire_session, the token sent is still the right one.
    assert (await gws.cancel(11)).json() == OK
    assert [r.status for r in sim.cancels] == [403, 200]


async def test_csrf_reject_also_with_csrf_off(new_http):
    async with GWSSimulator(users=USERS, csrf=False) as sim:
        http = await new_http(base_url=sim.base_url)
        gws = GWS(sim, http, "agent1")
        assert (await http.get("/api/v2/me", auth=("agent1", "secret"))).status_code == 200
        sim.faults.csrf_reject()
        response = await gws.cancel(11)
        assert (response.status_code, response.text) == (403, "Missing or invalid Csrf token")
        assert (await gws.cancel(11)).json() == OK


async def test_refusals_answer_in_arming_order(sim: GWSSimulator, gws: GWS):
    sim.faults.csrf_reject()
    sim.faults.http_error(503)
    sim.faults.unauthorized()
    sim.faults.http_error(500)
    statuses = [(await gws.cancel(11)).status_code for _ in range(5)]
    assert statuses == [403, 503, 401, 500, 200]


async def test_reset_connection_comes_before_a_refusal(sim: GWSSimulator, gws: GWS):
    sim.faults.unauthorized()
    sim.faults.reset_connection()
    with pytest.raises(httpx.RemoteProtocolError):
        await gws.cancel(11)
    assert sim.faults.active == ("unauthorized(): 1 left",)
    assert (await gws.cancel(11)).status_code == 401


async def test_refusal_with_slow_answer(sim: GWSSimulator, gws: GWS):
    sim.faults.slow_answer(0.3)
    sim.faults.unauthorized()
    started = time.monotonic()
    response = await gws.cancel(11)
    assert response.status_code == 401
    assert time.monotonic() - started >= 0.25


async def _timed_connect(bayeux: Bayeux, **connect: int) -> tuple[float, list]:
    """(seconds the connect took, its replies)."""
    started = time.monotonic()
    replies = await bayeux.connect(**connect)
    return time.monotonic() - started, replies


async def test_hold_connects_outlasts_the_advice(new_http):
    async with GWSSimulator(users=USERS, connect_timeout=0.3) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        sim.faults.hold_connects(1.0)
        await bayeux.ready("/v2/me/outbound")
        # The first connect after the handshake is answered at once and does not count.
        assert sim.faults.active == ("hold_connects(seconds=1): 1 left",)
        elapsed, [reply] = await _timed_connect(bayeux)
        assert elapsed >= 0.9
        assert reply["successful"] is True
        # The advice still says connect_timeout: a client trusting it gives up too early.
        assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 300}
        assert sim.faults.active == ()
        elapsed, _ = await _timed_connect(bayeux)
        assert 0.25 <= elapsed < 0.9  # count=1: the next hold is connect_timeout again


async def test_hold_connects_overrides_the_clients_advice_timeout(
    sim: GWSSimulator, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/outbound")
    sim.faults.hold_connects(0.5, count=None)
    elapsed, [reply] = await _timed_connect(bayeux, timeout_ms=0)
    assert elapsed >= 0.45  # without the fault: answered at once
    assert reply["advice"]["timeout"] == 2000
    assert sim.faults.active == ("hold_connects(seconds=0.5): until cleared",)


async def test_hold_connects_makes_a_client_request_time_out(new_http):
    async with GWSSimulator(users=USERS, connect_timeout=0.2) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        await bayeux.ready("/v2/me/outbound")
        sim.faults.hold_connects(2.0)
        advised = 0.2 * 1.2  # what a CometD client waits for a connect it was advised
        with pytest.raises(httpx.ReadTimeout):
            await bayeux.http.post(
                "/api/v2/notifications",
                json=[bayeux.message("/meta/connect", connectionType="long-polling")],
                timeout=advised,
            )
        assert sim.cometd_client_count == 1  # still polling, as far as the server knows


async def test_a_publish_still_ends_a_faulty_hold(sim: GWSSimulator, gws: GWS, bayeux: Bayeux):
    await bayeux.ready("/v2/me/outbound", "/me/internal")
    sim.faults.hold_connects(10.0)
    result: list[list[dict]] = []

    async def poll() -> None:
        result.append(await bayeux.connect())

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        with anyio.fail_after(5):
            while not any(
                r.status == 0 and "/meta/connect" in r.bayeux_channels for r in sim.requests
            ):
                await anyio.sleep(0.01)
        assert (await gws.cancel(11)).json() == OK
    assert time.monotonic() - started < 5
    assert sim.faults.active == ()  # the hold was the fault's, ended by the publish
    [replies] = result
    assert [e["channel"] for e in events(replies)] == ["/v2/me/outbound", "/me/internal"]


async def test_hold_and_release_notifications(sim: GWSSimulator, gws: GWS):
    sim.faults.hold_notifications()
    for handle in (11, 14, 16):
        assert (await gws.cancel(handle)).json() == OK
    await _settle()
    assert sim.published == []
    assert sim.faults.held_count == 3
    assert sim.faults.holding
    assert any("hold_notifications" in line for line in sim.faults.active)
    sim.faults.release_notifications()
    await sim.wait_for_published(6)
    handles = [m.data["record"]["recordHandle"] for m in sim.published[::2]]
    assert handles == [11, 14, 16]
    assert sim.faults.held_count == 0


async def test_count_none_lasts_until_clear(sim: GWSSimulator, gws: GWS):
    sim.faults.drop_notifications("both", count=None)
    sim.faults.hold_notifications()
    for handle in (11, 14, 16):
        await gws.cancel(handle)
    assert sim.faults.active == (
        "drop_notifications(which='both'): until cleared",
        "hold_notifications(): 0 held",
    )
    sim.faults.clear()
    assert sim.faults.active == ()
    await gws.cancel(17)
    await sim.wait_for_published(2)
    assert [m.data["record"]["recordHandle"] for m in sim.published[::2]] == [17]


async def test_faults_combine(sim: GWSSimulator, gws: GWS):
    sim.faults.reverse_notifications()
    sim.faults.duplicate_notifications(times=2)
    sim.faults.delay_notifications(0.1)
    await gws.cancel(11)
    await sim.wait_for_published(4)
    assert _channels(sim) == ["/me/internal", "/v2/me/outbound"] * 2


async def test_clear_releases_held_outcomes(sim: GWSSimulator, gws: GWS):
    sim.faults.hold_notifications()
    await gws.cancel(11)
    sim.faults.clear()
    await sim.wait_for_published(2)
    assert not sim.faults.holding


async def test_armed_faults_and_holding_survive_a_restart(sim: GWSSimulator, gws: GWS):
    sim.faults.hold_notifications()
    sim.faults.unauthorized()
    sim.faults.hold_connects(1.0)
    assert (await gws.cancel(11)).status_code == 401
    assert (await gws.cancel(11)).json() == OK
    assert sim.faults.held_count == 1
    await sim.restart()
    # The parked outcome is lost with the server's memory; holding and the rules are not.
    assert sim.faults.holding
    assert sim.faults.held_count == 0
    assert sim.faults.active == (
        "hold_connects(seconds=1): 1 left",
        "hold_notifications(): 0 held",
    )
    await gws.login()
    assert (await gws.cancel(14)).json() == OK
    assert sim.faults.held_count == 1
    await _settle()
    assert sim.published == []
    sim.faults.release_notifications()
    await sim.wait_for_published(2)
    assert [m.data["record"]["recordHandle"] for m in sim.published[::2]] == [14]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("delay_notifications", {"seconds": -1}),
        ("delay_notifications", {"seconds": float("nan")}),
        ("delay_notifications", {"seconds": 1, "count": 0}),
        ("delay_notifications", {"seconds": 1, "count": True}),
        ("drop_notifications", {"which": "some"}),
        ("duplicate_notifications", {"times": 1}),
        ("ocs_error", {"number": "101"}),
        ("ocs_error", {"message": ""}),
        ("status_code", {"code": 0}),
        ("status_code", {"code": 4, "message": ""}),
        ("http_error", {"status": 404}),
        ("http_error", {"status": 503, "gws_body": "yes"}),
        ("cometd_error", {"code": "1"}),
        ("cometd_error", {"message": ""}),
        ("cometd_error", {"channel": "/meta/connect"}),
        ("cometd_error", {"channel": "/v2/**"}),
        ("drop_notifications", {"operation": "Frobnicate"}),
        ("status_code", {"code": 4, "operation": "cancelrecord"}),
        ("slow_answer", {"seconds": "1"}),
        ("unauthorized", {"count": 0}),
        ("csrf_reject", {"count": 1.5}),
        ("hold_connects", {"seconds": 0}),
        ("hold_connects", {"seconds": -1}),
        ("hold_connects", {"seconds": float("inf")}),
        ("hold_connects", {"seconds": 1, "count": -2}),
    ],
)
def test_invalid_fault_arguments(name: str, kwargs: dict):
    faults = Faults()
    with pytest.raises(ValueError):  # noqa: PT011 - each control names its argument
        getattr(faults, name)(**kwargs)
    assert faults.active == ()


async def test_admin_faults_endpoint(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    response = await http.post(
        "/_simulator/faults", json={"fault": "drop_notifications", "which": "both", "count": 3}
    )
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "active": ["drop_notifications(which='both'): 3 left"],
    }
    await gws.cancel(11)
    assert sim.faults.active == ("drop_notifications(which='both'): 2 left",)
    cleared = await http.post("/_simulator/faults", json={"fault": "clear"})
    assert cleared.json() == {"ok": True, "active": []}


@pytest.mark.parametrize(
    ("body", "active"),
    [
        ({"fault": "unauthorized", "count": 2}, ["unauthorized(): 2 left"]),
        ({"fault": "csrf_reject"}, ["csrf_reject(): 1 left"]),
        (
            {"fault": "hold_connects", "seconds": 2.5, "count": None},
            ["hold_connects(seconds=2.5): until cleared"],
        ),
    ],
)
async def test_admin_faults_endpoint_arms_the_new_faults(
    sim: GWSSimulator, http: httpx.AsyncClient, body: dict, active: list[str]
):
    response = await http.post("/_simulator/faults", json=body)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "active": active}
    assert list(sim.faults.active) == active


async def test_admin_armed_unauthorized_answers(gws: GWS, http: httpx.AsyncClient):
    await http.post("/_simulator/faults", json={"fault": "unauthorized"})
    assert (await gws.cancel(11)).status_code == 401
    assert (await gws.cancel(11)).json() == OK


@pytest.mark.parametrize(
    "body",
    [
        {"fault": "hold_connects"},
        {"fault": "hold_connects", "seconds": 0},
        {"fault": "unauthorized", "status": 401},
        {"fault": "explode"},
        {"fault": "drop_notifications", "bogus": 1},
        {"fault": "drop_notifications", "which": "neither"},
        {"fault": "_take"},
        {"which": "both"},
        ["drop_notifications"],
    ],
)
async def test_admin_faults_endpoint_rejects_bad_requests(
    sim: GWSSimulator, http: httpx.AsyncClient, body
):
    response = await http.post("/_simulator/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sim.faults.active == ()


async def test_admin_endpoints_and_stats(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    recorded = len(sim.requests)
    await gws.cancel(11)
    await sim.wait_for_published(2)
    stats = (await http.get("/_simulator/stats")).json()
    assert stats["requests"] == recorded + 1
    assert stats["cancels"] == 1
    assert stats["published"] == 2
    assert stats["cometd_clients"] == 0
    assert stats["sessions"] == 1
    assert stats["records_cancelled"] == 1
    assert (await http.post("/_simulator/forget-clients")).json() == {"ok": True, "forgotten": 0}
    assert (await http.post("/_simulator/expire-sessions")).json() == {"ok": True, "expired": 1}
    assert sim.session_count == 0
    assert len(sim.requests) == recorded + 1  # admin requests are not recorded


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


async def test_admin_endpoint_refuses_non_loopback_clients(new_http):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    async with GWSSimulator(host="0.0.0.0") as sim:
        remote = await new_http(base_url=f"http://{address}:{sim.port}")
        response = await remote.post("/_simulator/faults", json={"fault": "reset_connection"})
        assert response.status_code == 403
        assert sim.faults.active == ()
        assert (await remote.get("/_simulator/stats")).status_code == 403
        assert (await remote.post("/_simulator/rotate-csrf")).status_code == 403
        users = await remote.post("/_simulator/users", json={"user": "agent1", "password": "x"})
        assert users.status_code == 403
        assert (await remote.get("/api/v2/me", auth=("agent1", "secret"))).status_code == 200
        local = await new_http(base_url=f"http://127.0.0.1:{sim.port}")
        assert (await local.get("/_simulator/stats")).status_code == 200


async def test_advise_connects_changes_the_advice_of_the_next_connect_replies(
    sim: GWSSimulator, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/outbound")
    sim.faults.advise_connects(interval=3_600_000, count=2)
    sim.faults.advise_connects(reconnect="handshake")
    assert sim.faults.active == (
        "advise_connects(interval=3600000): 2 left",
        "advise_connects(reconnect='handshake'): 1 left",
    )
    advices = []
    for _ in range(4):
        [reply] = await bayeux.connect(timeout_ms=0)
        assert reply["successful"] is True
        advices.append(reply["advice"])
    usual = {"reconnect": "retry", "interval": 0, "timeout": advices[3]["timeout"]}
    assert advices == [
        {**usual, "interval": 3_600_000},
        {**usual, "interval": 3_600_000},
        {**usual, "reconnect": "handshake"},
        usual,
    ]
    assert sim.faults.active == ()


async def test_advise_connects_sends_what_a_broken_server_sends(sim: GWSSimulator, bayeux: Bayeux):
    """``Infinity`` and ``NaN`` are not JSON, but Python's parser reads them."""
    await bayeux.ready("/v2/me/outbound")
    sim.faults.advise_connects(timeout=math.inf, interval=math.nan)
    assert sim.faults.active == ("advise_connects(interval=nan, timeout=inf): 1 left",)
    [reply] = await bayeux.connect(timeout_ms=0)
    assert reply["advice"]["timeout"] == math.inf
    assert math.isnan(reply["advice"]["interval"])
    sim.faults.advise_connects(timeout=True)
    assert sim.faults.active == ("advise_connects(timeout=True): 1 left",)
    [reply] = await bayeux.connect(timeout_ms=0)
    assert reply["advice"]["timeout"] is True


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "give interval or timeout"),
        ({"interval": "1000"}, "interval must be a number"),
        ({"timeout": "30000"}, "timeout must be a number"),
        ({"reconnect": "later"}, "reconnect must be one of retry, handshake, none"),
    ],
)
def test_advise_connects_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        GWSSimulator().faults.advise_connects(**arguments)


async def test_refuse_connects_answers_the_next_connects_unsuccessfully(
    sim: GWSSimulator, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/outbound")
    sim.faults.refuse_connects(count=2)
    sim.faults.refuse_connects("403::Not now", reconnect=None)
    assert sim.faults.active == (
        "refuse_connects(): 2 left",
        "refuse_connects(error='403::Not now', reconnect=None): 1 left",
    )
    replies = [await bayeux.connect(timeout_ms=0) for _ in range(4)]
    refused = {"channel": "/meta/connect", "successful": False, "clientId": bayeux.client_id}
    retry = {
        **refused,
        "error": "500::Internal error",
        "advice": {"reconnect": "retry", "interval": 0},
    }
    assert [{k: v for k, v in reply.items() if k != "id"} for [reply] in replies[:3]] == [
        retry,
        retry,
        {**refused, "error": "403::Not now"},
    ]
    [connected] = replies[3]  # the client was kept
    assert connected["successful"] is True
    assert sim.faults.active == ()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"error": ""}, "error must be a non-empty string"),
        ({"reconnect": "later"}, "reconnect must be None or one of retry, handshake, none"),
        ({"count": 0}, "count must be a positive integer"),
    ],
)
def test_refuse_connects_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        GWSSimulator().faults.refuse_connects(**arguments)


async def test_refuse_handshakes_answers_the_next_handshakes_unsuccessfully(
    sim: GWSSimulator, bayeux: Bayeux
):
    sim.faults.refuse_handshakes()
    sim.faults.refuse_handshakes("500::Busy", reconnect=None)
    assert sim.faults.active == (
        "refuse_handshakes(): 1 left",
        "refuse_handshakes(error='500::Busy', reconnect=None): 1 left",
    )
    replies = []
    for _ in range(2):
        message = bayeux.message(
            "/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling"]
        )
        response = await bayeux.post(message, auth=(bayeux.user, "secret"))
        replies.append(response.json())
    assert [{k: v for k, v in r.items() if k != "id"} for [r] in replies] == [
        {
            "channel": "/meta/handshake",
            "successful": False,
            "error": "403::Handshake denied",
            "advice": {"reconnect": "handshake", "interval": 0},
        },
        {"channel": "/meta/handshake", "successful": False, "error": "500::Busy"},
    ]
    assert sim.cometd_client_count == 0
    assert (await bayeux.handshake())["successful"] is True
    assert sim.faults.active == ()
