"""Fault matrix, HTTP session: expiry, CSRF token rotation, a changed password."""

from __future__ import annotations

import pytest

from gws_outbound_plugin import CancelFailed, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.matrix import Row, fault
from tests.faults.support import assert_nothing_else, assert_outcome
from tests.helpers import AGENT, Recorder, make_request

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
