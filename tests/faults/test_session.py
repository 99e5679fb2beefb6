"""Fault matrix, HTTP session: expiry, CSRF token rotation, a changed password; and the
transport alone on the simulator: which POSTs are resent and which never are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gws_outbound_plugin import (
    CancelFailed,
    GWSNoAnswerError,
    GWSStatusError,
    GWSTransportError,
    OutboundPlugin,
)
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.matrix import Row, fault
from tests.faults.support import (
    assert_nothing_else,
    assert_outcome,
    captured_logs,
    events_named,
)
from tests.helpers import AGENT, PASSWORD, Recorder, make_request

pytestmark = pytest.mark.anyio


def rest_calls(sim: GWSSimulator, since: int) -> list[tuple[str, str, int]]:
    return [
        (r.method, r.path, r.status)
        for r in sim.requests[since:]
        if not r.path.startswith("/api/v2/notifications")
    ]


@fault("session-expired-between")
async def test_session_expires_between_two_cancels(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    first = make_request(device_path, handle=11)
    await plugin.cancel(first)
    assert sim.expire_sessions() == 1
    handshakes = sum("/meta/handshake" in r.bayeux_channels for r in sim.requests)
    since = len(sim.requests)
    second = make_request(device_path, handle=12)
    await plugin.cancel(second)
    assert_outcome(recorder, first, row)
    assert_outcome(recorder, second, row)
    assert rest_calls(sim, since) == [
        ("POST", "/api/v2/me/outbound-records/12", 403),
        ("GET", "/api/v2/me", 200),
        ("POST", "/api/v2/me/outbound-records/12", 200),
    ]
    # The CometD session lives on: no re-handshake was needed.
    assert sum("/meta/handshake" in r.bayeux_channels for r in sim.requests) == handshakes
    assert plugin.stats["failed"] == 0
    assert_nothing_else(recorder, [first, second], user_events=2)


@fault("session-csrf-rotated")
async def test_csrf_token_rotated(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    old = plugin._session.csrf_header()
    assert sim.rotate_csrf_tokens() == 1
    since = len(sim.requests)
    request = make_request(device_path)
    await plugin.cancel(request)
    assert_outcome(recorder, request, row)
    assert rest_calls(sim, since) == [
        ("POST", "/api/v2/me/outbound-records/11", 403),
        ("GET", "/api/v2/me", 200),
        ("POST", "/api/v2/me/outbound-records/11", 200),
    ]
    new = plugin._session.csrf_header()
    assert new is not None and old is not None and new[1] != old[1]
    assert_nothing_else(recorder, [request], user_events=1)


@fault("session-password-changed")
async def test_password_changed_fails_clearly_without_a_retry_storm(
    row: Row, plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    sim.set_password(AGENT, "a-new-password")
    since = len(sim.requests)
    requests = [make_request(device_path, handle=handle) for handle in (11, 12, 13)]
    for request in requests:
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(request)
        failure = assert_outcome(recorder, request, row)
        assert info.value.failure is failure
        assert f"GWS refused the credentials of {AGENT!r}" in (failure.message or "")
        assert "a-new-password" not in str(info.value)
    # One login attempt for the three cancels, one POST each, nothing repeated.
    assert rest_calls(sim, since) == [
        ("POST", "/api/v2/me/outbound-records/11", 401),
        ("GET", "/api/v2/me", 401),
        ("POST", "/api/v2/me/outbound-records/12", 401),
        ("POST", "/api/v2/me/outbound-records/13", 401),
    ]
    assert_nothing_else(recorder, requests, user_events=0)


# -- the transport alone (GWSSession on the simulator): what is resent and what is not ---------


@pytest.fixture
async def session(sim: GWSSimulator) -> AsyncIterator[GWSSession]:
    opened = GWSSession(fast_config(sim.base_url, request_timeout=0.5))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def post_cancel(session: GWSSession, sim: GWSSimulator) -> Any:
    request = make_request(sim.device_path(AGENT))
    return await session.post_operation(request.gws_path(), request.to_gws_body())


async def test_gws_unavailable_503_is_retried_until_gws_takes_it(
    session: GWSSession, sim: GWSSimulator
) -> None:
    sim.faults.http_error(503, count=2)  # GWS's own answer: statusCode 4, nothing processed
    assert await post_cancel(session, sim) == {"statusCode": 0}
    assert [c.status for c in sim.cancels] == [503, 503, 200]
    assert len({c.body["referenceId"] for c in sim.cancels}) == 1


async def test_gws_unavailable_503_to_the_end_is_a_gws_answer(
    session: GWSSession, sim: GWSSimulator
) -> None:
    sim.faults.http_error(503, count=None)
    with pytest.raises(GWSStatusError) as info:
        await post_cancel(session, sim)
    assert info.value.status_code == 4
    assert info.value.status_message == "Voice service is not available at this time"
    assert info.value.http_status == 503
    assert [c.status for c in sim.cancels] == [503] * 3  # retries + 1


async def test_a_bare_5xx_after_the_post_was_sent_is_never_resent(
    session: GWSSession, sim: GWSSimulator
) -> None:
    sim.faults.http_error(502, gws_body=False, count=None)
    with pytest.raises(GWSNoAnswerError, match="answered HTTP 502 without a GWS answer"):
        await post_cancel(session, sim)
    assert [c.status for c in sim.cancels] == [502]


@pytest.mark.parametrize("fault", ["reset_connection", "slow_answer"])
async def test_no_answer_after_the_post_was_sent_is_never_resent(
    session: GWSSession, sim: GWSSimulator, fault: str
) -> None:
    if fault == "reset_connection":
        sim.faults.reset_connection(count=None)
    else:
        sim.faults.slow_answer(1.0, count=None)
    with pytest.raises(GWSNoAnswerError) as info:
        await post_cancel(session, sim)
    assert len(sim.cancels) == 1
    assert str(info.value).endswith("GWS may have processed it, so it was not sent again")
    assert PASSWORD not in str(info.value)


async def test_a_post_to_a_stopped_gws_is_retried_and_certainly_not_processed(
    session: GWSSession, sim: GWSSimulator
) -> None:
    await sim.stop()
    with captured_logs() as logs, pytest.raises(GWSTransportError) as info:
        await post_cancel(session, sim)
    assert not isinstance(info.value, GWSNoAnswerError)
    assert "failed: connection refused (ConnectError); 3 attempts" in str(info.value)
    assert [e["attempt"] for e in events_named(logs, "gws_request_retry")] == [1, 2]
