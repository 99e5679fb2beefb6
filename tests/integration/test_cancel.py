"""A bus cancel ends as exactly one acknowledged-or-failed hook: the core on the simulator
(the outcomes that do not depend on the wire are in tests/engine/test_cancel_outcomes.py)."""

from __future__ import annotations

import threading

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelTicket,
    ChainAttribute,
    FailureReason,
    GWSConfig,
    InvalidCancelRequest,
    NotRunningError,
    OutboundPlugin,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.helpers import AGENT, Recorder, make_request
from tests.integration.conftest import config_for

pytestmark = pytest.mark.anyio


def only_outcome(recorder: Recorder, reference_id: str) -> str:
    outcomes = recorder.outcomes_for(reference_id)
    assert len(outcomes) == 1, outcomes
    return outcomes[0].hook


async def test_full_request_sends_the_exact_body_and_headers(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    request = make_request(
        device_path,
        handle=12,
        phone_number="3002",
        chain_attribute=ChainAttribute.ALL_CHAIN,
        reference_id="123456789",
    )
    ack = await plugin.cancel(request)
    [sent] = sim.cancels
    assert sent.method == "POST"
    assert sent.path == "/api/v2/me/outbound-records/12"
    assert sent.body == {
        "operationName": "CancelRecord",
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": device_path,
        "phoneNumber": "3002",
        "chainAttribute": "AllChain",
        "referenceId": "123456789",
    }
    assert sent.had_session_cookie and sent.had_csrf_token and sent.had_basic_auth
    assert ack.request == request
    assert ack.reference_id == "123456789"
    assert ack.record_handle == 12
    assert ack.chain_attribute is ChainAttribute.ALL_CHAIN
    assert ack.phone_number == "3002"
    assert ack.device_id == sim.device_id(AGENT)
    assert ack.user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert ack.metrics is not None and ack.metrics.server_generation_timestamp
    assert only_outcome(recorder, "123456789") == "on_record_cancel_acknowledged"
    assert len(recorder.user_events) == 1


async def test_minimal_request_omits_optional_fields(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    request = make_request(device_path, handle=13)
    await plugin.cancel(request)
    body = sim.cancels[0].body
    assert body == {
        "operationName": "CancelRecord",
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": device_path,
        "referenceId": request.reference_id,
    }
    # The user event is OCS's, built from its record: the phone number is there although
    # the request had none.
    assert recorder.acks[0].user_data["GSW_PHONE"] == "3003"


async def test_invalid_requests_never_reach_the_server(
    plugin: OutboundPlugin, pm: pluggy.PluginManager, sim: GWSSimulator, device_path: str
) -> None:
    with pytest.raises(InvalidCancelRequest) as info:
        make_request(device_path, handle="11/../x")  # type: ignore[arg-type]
    assert info.value.fields == ("record_handle",)
    with pytest.raises(InvalidCancelRequest) as info:
        pm.hook.on_cancel_requested(request={"recordHandle": 11})
    assert info.value.fields == ("request",)
    with pytest.raises(InvalidCancelRequest):
        make_request("/devices/../../api/v2/me", handle=11)
    assert sim.cancels == []


async def test_http_5xx_is_retried_with_the_same_reference(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.http_error(503, count=2)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert [r.status for r in sim.cancels] == [503, 503, 200]
    assert {r.body["referenceId"] for r in sim.cancels} == {request.reference_id}  # type: ignore[index]
    assert only_outcome(recorder, request.reference_id) == "on_record_cancel_acknowledged"


async def test_http_5xx_without_a_gws_answer_is_never_resent(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    # A 502 from a proxy: GWS may have processed the cancel, so it is not sent again, and
    # without an acknowledgement its outcome is unknown.
    sim.faults.http_error(502, gws_body=False, count=None)
    request = make_request(device_path)
    with pytest.raises(CancelFailed) as info:
        await plugin.cancel(request)
    assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert len(sim.cancels) == 1
    assert only_outcome(recorder, request.reference_id) == "on_cancel_failed"


async def test_expired_session_logs_in_again_and_retries_once(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    logins_before = sum(1 for r in sim.requests if r.path == "/api/v2/me")
    sim.expire_sessions()
    request = make_request(device_path)
    await plugin.cancel(request)
    assert [r.status for r in sim.cancels] == [403, 200]
    logins = sum(1 for r in sim.requests if r.path == "/api/v2/me")
    assert logins == logins_before + 1
    assert only_outcome(recorder, request.reference_id) == "on_record_cancel_acknowledged"


async def test_a_password_with_non_ascii_characters_logs_in_and_cancels(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The plugin sends Basic credentials in UTF-8 (RFC 7617's charset); the simulator reads
    them so (it used to read latin-1 and refused such a password)."""
    sim.set_password(AGENT, "pässwörd-€")
    async with OutboundPlugin(pm, config_for(sim.base_url, password="pässwörd-€")) as plugin:
        request = make_request(await plugin.device_path())
        await plugin.cancel(request)
    assert only_outcome(recorder, request.reference_id) == "on_record_cancel_acknowledged"


async def test_cancels_from_four_threads_all_resolve(
    plugin: OutboundPlugin, pm: pluggy.PluginManager, recorder: Recorder, device_path: str
) -> None:
    results: list[object] = []
    lock = threading.Lock()

    def agent_thread(start: int) -> None:
        tickets: list[CancelTicket] = []
        for handle in range(start, start + 10):
            [ticket] = [
                r
                for r in pm.hook.on_cancel_requested(
                    request=make_request(device_path, handle=handle)
                )
                if isinstance(r, CancelTicket)
            ]
            tickets.append(ticket)
        for ticket in tickets:
            try:
                outcome: object = ticket.result(timeout=10)
            except CancelFailed as error:
                outcome = error.failure
            with lock:
                results.append(outcome)

    async with anyio.create_task_group() as tg:
        for start in (1000, 2000, 3000, 4000):
            tg.start_soon(anyio.to_thread.run_sync, agent_thread, start)
    assert len(results) == 40
    assert len(recorder.acks) + len(recorder.failures) == 40
    references = {
        c.payload.request.reference_id for c in recorder.calls if c.hook != "on_user_event"
    }
    assert len(references) == 40


async def test_ticket_is_awaitable_on_the_loop(
    plugin: OutboundPlugin, pm: pluggy.PluginManager, device_path: str
) -> None:
    results = pm.hook.on_cancel_requested(request=make_request(device_path))
    ticket = results[0]
    assert isinstance(ticket, CancelTicket)
    assert not ticket.done()
    ack = await ticket
    assert ticket.done() and ticket.outcome is ack


async def test_next_cancel_is_acknowledged_after_the_simulator_forgets_the_client(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    await plugin.cancel(make_request(device_path, handle=11))
    assert sim.forget_cometd_clients() >= 1
    await plugin.wait_connected(timeout=5)
    # The listener notices on its next poll (402), re-handshakes and re-subscribes.
    with anyio.fail_after(10):
        while sim.cometd_client_count == 0 or plugin.cometd_state.value != "connected":
            await anyio.sleep(0.02)
    ack = await plugin.cancel(make_request(device_path, handle=12))
    assert ack.record_handle == 12


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_base_url_by_ip_and_by_name(
    pm: pluggy.PluginManager, recorder: Recorder, host: str
) -> None:
    async with GWSSimulator(users={AGENT: "secret"}, host="127.0.0.1") as sim:
        base_url = f"http://{host}:{sim.port}"
        async with OutboundPlugin(pm, config_for(base_url)) as plugin:
            ack = await plugin.cancel(make_request(sim.device_path(AGENT)))
        assert ack.record_handle == 11
        # The CometD requests carried the REST session cookie, also for an IP host.
        bayeux = [r for r in sim.requests if r.path.startswith("/api/v2/notifications")]
        assert bayeux and all(r.had_session_cookie for r in bayeux)


async def test_plugin_refuses_work_when_not_running(
    pm: pluggy.PluginManager, config: GWSConfig, device_path: str
) -> None:
    plugin = OutboundPlugin(pm, config)
    with pytest.raises(NotRunningError) as before:
        await plugin.cancel(make_request(device_path))
    assert str(before.value) == (
        "the GWS outbound plugin is new; nothing was sent (enter it first: "
        "`async with OutboundPlugin(pm, config) as plugin:`)"
    )
    async with plugin:
        pass
    with pytest.raises(NotRunningError) as after:
        plugin.submit(make_request(device_path))
    assert "enter it first" not in str(after.value)
    with pytest.raises(NotRunningError):
        pm.hook.on_cancel_requested(request=make_request(device_path))
