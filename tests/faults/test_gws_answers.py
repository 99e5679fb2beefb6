"""Fault matrix, GWS answers: every statusCode, HTTP errors, timeouts and broken connections."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    GWSTransportError,
    OutboundPlugin,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import Row, fault
from tests.faults.support import assert_nothing_else, assert_outcome, refused_port
from tests.helpers import PASSWORD, Recorder, make_request

pytestmark = pytest.mark.anyio


def logins(sim: GWSSimulator) -> int:
    return sum(1 for r in sim.requests if r.method == "GET" and r.path == "/api/v2/me")


@fault(*(f"gws-status-{code}" for code in range(1, 20)))
async def test_status_code_is_a_rejection(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    code = int(row.id.rsplit("-", 1)[1])
    sim.faults.status_code(code, f"refused with {code} by the test")
    request = make_request(device_path)
    with pytest.raises(CancelFailed) as info:
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert failure is info.value.failure
    assert failure.status_code == code
    if code in (7, 9):  # GWS may still act: it waited for the CometD outcome
        assert failure.message.startswith(f"refused with {code} by the test; no ack")
        assert failure.may_have_acted is True
    else:
        assert failure.message == f"refused with {code} by the test"
        assert failure.may_have_acted is False
    assert [c.status for c in sim.cancels] == [200]
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-status-20-once")
async def test_status_code_20_once_logs_in_again(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    before = logins(sim)
    sim.faults.status_code(20, "User not authenticated; resend credentials")
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert logins(sim) == before + 1
    assert [c.body["referenceId"] for c in sim.cancels] == [request.reference_id] * 2
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-status-20")
async def test_status_code_20_every_time_is_an_authentication_failure(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    before = logins(sim)
    sim.faults.status_code(20, "User not authenticated; resend credentials", count=None)
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert "after a fresh login" in (failure.message or "")
    assert logins(sim) == before + 1
    assert len(sim.cancels) == 2
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-http-401")
async def test_http_401_logs_in_again(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.unauthorized()
    before = logins(sim)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert sim.faults.active == ()  # exactly one answer was replaced
    assert [c.status for c in sim.cancels] == [401, 200]
    assert logins(sim) == before + 1
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-http-403-csrf")
async def test_http_403_csrf_logs_in_again(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.csrf_reject()
    before = logins(sim)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert [c.status for c in sim.cancels] == [403, 200]
    assert logins(sim) == before + 1
    assert sim.cancels[1].had_csrf_token
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-http-403-session")
async def test_http_403_session_lost_logs_in_again(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    cookie_before = plugin._session.client.cookies.get("JSESSIONID")
    sim.faults.expire_session()
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert [c.status for c in sim.cancels] == [403, 200]
    assert sim.cancels[1].had_session_cookie and sim.cancels[1].had_csrf_token
    assert plugin._session.client.cookies.get("JSESSIONID") != cookie_before
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-http-500")
async def test_http_500_with_a_gws_body_is_a_rejection(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.http_error(500, count=None)
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert failure.status_code == 4
    assert [c.status for c in sim.cancels] == [500]
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-http-503-always")
async def test_http_503_every_time_is_retried_then_a_rejection(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.http_error(503, count=None)
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert failure.status_code == 4
    assert failure.message == "Voice service is not available at this time"
    assert [c.status for c in sim.cancels] == [503] * (plugin.config.retries + 1)
    assert {c.body["referenceId"] for c in sim.cancels} == {request.reference_id}
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-http-502-bare")
async def test_http_502_without_a_gws_body_is_never_resent(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.http_error(502, gws_body=False, count=None)
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert [c.status for c in sim.cancels] == [502]
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-error-message")
async def test_a_cometd_error_message_fails_the_request(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.cometd_error(code=4, message="Voice service is not available at this time")
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert (failure.status_code, failure.message) == (
        4,
        "Voice service is not available at this time",
    )
    assert len(sim.cancels) == 1
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-http-503")
async def test_http_503_twice_is_retried(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.http_error(503, count=2)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert [c.status for c in sim.cancels] == [503, 503, 200]
    assert {c.body["referenceId"] for c in sim.cancels} == {request.reference_id}
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-slow-answer")
async def test_slow_answer_beyond_the_request_timeout(
    row: Row, pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    config = fast_config(sim.base_url, request_timeout=0.5, retries=1)
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.slow_answer(1.0)
        request = make_request(device_path)
        await plugin.cancel(request)
        await anyio.sleep(1.0)  # room for a wrongly repeated POST
    assert_outcome(recorder, request, row)
    assert len(sim.cancels) == 1
    assert_nothing_else(recorder, [request], user_events=1)


@fault("gws-refused-start")
async def test_connection_refused_at_start(
    row: Row, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    config = fast_config(f"http://127.0.0.1:{refused_port()}")
    plugin = OutboundPlugin(pm, config)
    with pytest.raises(GWSTransportError) as info:
        async with plugin:
            raise AssertionError("entered without a server")
    assert "ConnectError" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert not plugin.running
    assert not pm.has_plugin(plugin.name)
    assert recorder.calls == []


@fault("gws-refused")
async def test_connection_refused_while_running(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    await sim.stop()
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    failure = assert_outcome(recorder, request, row)
    assert "ConnectError" in (failure.message or "")
    assert_nothing_else(recorder, [request], user_events=0)


@fault("gws-reset")
async def test_a_connection_reset_after_writing_is_never_resent(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.faults.reset_connection()
    request = make_request(device_path)
    with pytest.raises(CancelFailed):
        await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert [c.status for c in sim.cancels] == [0]
    assert_nothing_else(recorder, [request], user_events=0)
