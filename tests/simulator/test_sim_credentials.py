"""Server-side credential changes over real HTTP: CSRF token rotation and a user's new
password, from Python (``sim.rotate_csrf_tokens()``, ``sim.set_password()``) and through the
admin endpoint (``POST /_simulator/rotate-csrf``, ``POST /_simulator/users``)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import structlog

from gws_outbound_plugin.simulator import GWSSimulator, RecordedRequest
from tests.simulator.conftest import ClientFactory
from tests.simulator.sim_helpers import GWS, USERS, Bayeux

pytestmark = pytest.mark.anyio

OK = {"statusCode": 0}
CSRF_TEXT = "Missing or invalid Csrf token"
NEW_PASSWORD = "n3w-pa55word"


async def _login(http: httpx.AsyncClient, user: str, password: str) -> int:
    return (await http.get("/api/v2/me", auth=(user, password))).status_code


# ------------------------------------------------------------------ CSRF token rotation
async def test_rotate_csrf_tokens_refuses_the_old_token_once(
    sim: GWSSimulator, gws: GWS, new_http: ClientFactory
):
    other = GWS(sim, await new_http(), "agent2")
    await other.login()
    old_token, other_token = gws.token, other.token
    assert sim.rotate_csrf_tokens() == 2
    assert sim.session_count == 2  # the sessions live on
    refused = await gws.cancel(11)
    assert (refused.status_code, refused.text) == (403, CSRF_TEXT)
    assert not sim.records[11].cancelled
    # The cookie alone still authenticates, and the answer carries the new token.
    me = await gws.http.get("/api/v2/me")
    assert me.status_code == 200
    assert "set-cookie" not in me.headers  # same session
    gws.token = me.headers["X-CSRF-TOKEN"]
    assert gws.token != old_token
    assert (await gws.cancel(11)).json() == OK
    assert (await other.cancel(14)).status_code == 403
    assert await other.login() != other_token
    assert (await other.cancel(14)).json() == OK
    assert [r.status for r in sim.cancels] == [403, 200, 403, 200]


async def test_rotate_csrf_tokens_without_sessions(sim: GWSSimulator):
    assert sim.rotate_csrf_tokens() == 0


async def test_rotate_csrf_tokens_counts_live_sessions_only(sim: GWSSimulator, gws: GWS):
    sim.expire_sessions()
    assert sim.rotate_csrf_tokens() == 0
    await gws.login()
    assert sim.rotate_csrf_tokens() == 1


async def test_admin_rotate_csrf(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    recorded = len(sim.requests)
    response = await http.post("/_simulator/rotate-csrf")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "rotated": 1}
    assert len(sim.requests) == recorded  # admin requests are not recorded
    assert (await gws.cancel(11)).status_code == 403
    await gws.login()
    assert (await gws.cancel(11)).json() == OK


# -------------------------------------------------------------------- password change
async def test_set_password_keeps_live_sessions(
    sim: GWSSimulator, gws: GWS, new_http: ClientFactory
):
    sim.set_password("agent1", NEW_PASSWORD)
    assert sim.session_count == 1
    # The live session goes on working with the cookie alone...
    assert (await gws.http.get("/api/v2/me")).status_code == 200
    assert (await gws.cancel(11)).json() == OK
    # ...but credentials are checked whenever they are sent: the old ones are refused.
    refused = await gws.http.get("/api/v2/me", auth=("agent1", "secret"))
    assert refused.status_code == 401
    assert refused.json()["statusCode"] == 20
    fresh = await new_http()
    assert await _login(fresh, "agent1", "secret") == 401
    assert await _login(fresh, "agent1", NEW_PASSWORD) == 200
    assert await _login(fresh, "agent2", USERS["agent2"]) == 200  # other users unchanged


async def test_set_password_after_the_session_expires(sim: GWSSimulator, gws: GWS):
    sim.set_password("agent1", NEW_PASSWORD)
    sim.expire_sessions()
    assert (await gws.http.get("/api/v2/me")).status_code == 401
    assert await _login(gws.http, "agent1", "secret") == 401
    assert sim.session_count == 0
    assert await _login(gws.http, "agent1", NEW_PASSWORD) == 200
    assert sim.session_count == 1


async def test_set_password_applies_to_cometd_handshakes(
    sim: GWSSimulator, new_http: ClientFactory
):
    sim.set_password("agent1", NEW_PASSWORD)
    bayeux = Bayeux(await new_http())
    handshake = bayeux.message("/meta/handshake", version="1.0")
    refused = await bayeux.post(handshake, auth=("agent1", "secret"))
    assert refused.status_code == 401
    accepted = await bayeux.post(handshake, auth=("agent1", NEW_PASSWORD))
    assert accepted.status_code == 200
    assert accepted.json()[0]["successful"] is True


async def test_set_password_survives_a_restart(sim: GWSSimulator, http: httpx.AsyncClient):
    sim.set_password("agent2", NEW_PASSWORD)
    await sim.restart()
    assert await _login(http, "agent2", USERS["agent2"]) == 401
    assert await _login(http, "agent2", NEW_PASSWORD) == 200


async def test_set_password_argument_errors(sim: GWSSimulator, http: httpx.AsyncClient):
    with pytest.raises(KeyError, match="nobody"):
        sim.set_password("nobody", NEW_PASSWORD)
    with pytest.raises(ValueError, match="must be a string"):
        sim.set_password("agent1", 1234)  # type: ignore[arg-type]
    assert sim.users == ("agent1", "agent2")
    assert await _login(http, "agent1", "secret") == 200


async def test_set_password_to_an_empty_one(sim: GWSSimulator, http: httpx.AsyncClient):
    sim.set_password("agent1", "")
    assert await _login(http, "agent1", "secret") == 401
    assert await _login(http, "agent1", "") == 200


async def test_admin_users_changes_a_password_without_a_trace(
    new_http: ClientFactory, caplog: pytest.LogCaptureFixture
):
    logged: list[RecordedRequest] = []
    async with GWSSimulator(users=USERS, request_log=logged.append) as sim:
        http = await new_http(base_url=sim.base_url)
        with (
            caplog.at_level(logging.DEBUG),
            structlog.testing.capture_logs() as events,
        ):
            response = await http.post(
                "/_simulator/users", json={"user": "agent1", "password": NEW_PASSWORD}
            )
        assert response.status_code == 200
        assert response.json() == {"ok": True, "user": "agent1"}
        assert await _login(http, "agent1", NEW_PASSWORD) == 200
        assert await _login(http, "agent1", "secret") == 401
        # Neither recorded, nor handed to the request log, nor logged, nor shown.
        assert [r.path for r in sim.requests] == ["/api/v2/me", "/api/v2/me"]
        assert logged == sim.requests
        traces = [
            response.text,
            repr(sim),
            repr(sim.requests),
            repr(sim.stats()),
            repr(events),
            caplog.text,
        ]
        assert all(NEW_PASSWORD not in trace for trace in traces)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"user": "nobody", "password": NEW_PASSWORD}, 404),
        ({"user": "agent1"}, 400),
        ({"password": NEW_PASSWORD}, 400),
        ({"user": "agent1", "password": 12345}, 400),
        ({"user": ["agent1"], "password": NEW_PASSWORD}, 400),
        ({"user": "agent1", "password": NEW_PASSWORD, "admin": True}, 400),
        (["agent1", NEW_PASSWORD], 400),
        (f"agent1:{NEW_PASSWORD}", 400),
    ],
)
async def test_admin_users_rejects_bad_requests(
    sim: GWSSimulator, http: httpx.AsyncClient, body: Any, status: int
):
    if isinstance(body, str):
        response = await http.post("/_simulator/users", content=body.encode())
    else:
        response = await http.post("/_simulator/users", json=body)
    assert response.status_code == status
    assert response.json()["error"]
    assert NEW_PASSWORD not in response.text  # the password is never echoed
    assert await _login(http, "agent1", "secret") == 200  # nothing changed
