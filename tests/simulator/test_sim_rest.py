"""GWS session rules over real HTTP: Basic auth, JSESSIONID, CSRF, /me, /me/devices, 404."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest

from gws_outbound_plugin.simulator import GWSSimulator
from tests.simulator.sim_helpers import GWS, USERS

pytestmark = pytest.mark.anyio

CSRF_TEXT = "Missing or invalid Csrf token"


def _assert_not_authenticated(response: httpx.Response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 20
    assert set(body) == {"statusCode", "statusMessage"}
    assert body["statusMessage"]
    assert "set-cookie" not in response.headers


async def test_get_me_without_credentials_is_401(sim: GWSSimulator, http: httpx.AsyncClient):
    _assert_not_authenticated(await http.get("/api/v2/me"))
    assert sim.session_count == 0


async def test_wrong_password_is_401_and_creates_no_session(
    sim: GWSSimulator, http: httpx.AsyncClient
):
    _assert_not_authenticated(await http.get("/api/v2/me", auth=("agent1", "wrong")))
    _assert_not_authenticated(await http.get("/api/v2/me", auth=("nobody", "secret")))
    assert sim.session_count == 0


async def test_basic_auth_creates_session_cookie_and_csrf_headers(
    sim: GWSSimulator, http: httpx.AsyncClient
):
    response = await http.get("/api/v2/me", auth=("agent1", "secret"))
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("JSESSIONID=")
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert response.headers["X-CSRF-HEADER"] == "X-CSRF-TOKEN"
    assert uuid.UUID(response.headers["X-CSRF-TOKEN"]).version == 4
    body = response.json()
    assert body["statusCode"] == 0
    user = body["user"]
    assert user["userName"] == "agent1"
    assert {"id", "firstName", "lastName"} <= set(user)
    assert sim.session_count == 1


async def test_cookie_alone_authenticates_and_keeps_the_token(http: httpx.AsyncClient):
    first = await http.get("/api/v2/me", auth=("agent1", "secret"))
    second = await http.get("/api/v2/me")  # cookie only
    assert second.status_code == 200
    assert second.json()["user"]["userName"] == "agent1"
    assert second.headers["X-CSRF-TOKEN"] == first.headers["X-CSRF-TOKEN"]
    assert "set-cookie" not in second.headers


async def test_devices_list_the_users_device(sim: GWSSimulator, http: httpx.AsyncClient):
    response = await http.get("/api/v2/me/devices", auth=("agent1", "secret"))
    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 0
    [device] = body["devices"]
    assert device["id"] == sim.device_id("agent1")
    assert device["deviceState"] == "Active"
    assert device["phoneNumber"] == "5001"
    assert device["telephonyNetwork"] == "Private"
    assert device["doNotDisturb"] == "Off"
    assert {"userState", "e164Number", "voiceEnvironmentUri"} <= set(device)
    assert sim.device_path("agent1") == f"/devices/{device['id']}"
    with_sub = await http.get("/api/v2/me", params={"subresources": "*"})
    assert with_sub.json()["user"]["devices"] == [device]


async def test_device_ids_are_uuid5_of_the_user_name():
    first = GWSSimulator(users=USERS)
    second = GWSSimulator(users={"agent1": "other"})
    assert first.device_id("agent1") == second.device_id("agent1")
    assert uuid.UUID(first.device_id("agent1")).version == 5
    assert first.device_id("agent1") != first.device_id("agent2")
    with pytest.raises(KeyError):
        first.device_id("nobody")


@pytest.mark.parametrize("case", ["basic_no_cookie", "cookie_no_token", "wrong_token", "nothing"])
async def test_post_without_session_or_token_is_403_text(sim: GWSSimulator, new_http, case: str):
    http = await new_http()
    gws = GWS(sim, http, "agent1")
    headers: dict[str, str] = {}
    auth = None
    if case == "basic_no_cookie":
        auth = ("agent1", "secret")
    elif case == "cookie_no_token":
        await gws.login()
    elif case == "wrong_token":
        await gws.login()
        headers["X-CSRF-TOKEN"] = str(uuid.uuid4())
    response = await http.post(
        "/api/v2/me/outbound-records/11",
        json=gws.body(),
        headers=headers,
        auth=auth if auth else httpx.USE_CLIENT_DEFAULT,
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == CSRF_TEXT
    assert sim.published == []
    assert not sim.records[11].cancelled
    assert sim.cancels[-1].status == 403


async def test_post_with_cookie_and_token_is_accepted(sim: GWSSimulator, gws: GWS):
    response = await gws.cancel()
    assert response.status_code == 200
    assert response.json() == {"statusCode": 0}
    [recorded] = sim.cancels
    assert recorded.had_session_cookie and recorded.had_csrf_token
    assert not recorded.had_basic_auth
    assert recorded.username == "agent1"


async def test_csrf_off_no_headers_basic_post_creates_session(new_http):
    async with GWSSimulator(users=USERS, csrf=False) as sim:
        http = await new_http(base_url=sim.base_url)
        got = await http.get("/api/v2/me", auth=("agent1", "secret"))
        assert got.status_code == 200
        assert "X-CSRF-TOKEN" not in got.headers
        assert "X-CSRF-HEADER" not in got.headers
        fresh = await new_http(base_url=sim.base_url)
        gws = GWS(sim, fresh, "agent1")
        unauth = await fresh.post("/api/v2/me/outbound-records/11", json=gws.body())
        _assert_not_authenticated(unauth)
        posted = await fresh.post(
            "/api/v2/me/outbound-records/11", json=gws.body(), auth=("agent1", "secret")
        )
        assert posted.json() == {"statusCode": 0}
        assert posted.headers["set-cookie"].startswith("JSESSIONID=")
        again = await gws.cancel(12)  # cookie only, no token needed
        assert again.json() == {"statusCode": 0}


async def test_session_idle_expiry(new_http):
    async with GWSSimulator(users=USERS, session_idle_timeout=0.5) as sim:
        http = await new_http(base_url=sim.base_url)
        gws = GWS(sim, http, "agent1")
        await gws.login()
        for _ in range(3):  # each request restarts the idle timer
            await anyio.sleep(0.25)
            assert (await http.get("/api/v2/me")).status_code == 200
        await anyio.sleep(0.8)
        _assert_not_authenticated(await http.get("/api/v2/me"))
        expired_post = await gws.cancel()
        assert expired_post.status_code == 403
        assert expired_post.text == CSRF_TEXT


async def test_expire_sessions_now(sim: GWSSimulator, gws: GWS, http: httpx.AsyncClient):
    old_token = gws.token
    assert sim.expire_sessions() == 1
    response = await gws.cancel()
    assert response.status_code == 403
    _assert_not_authenticated(await http.get("/api/v2/me"))
    new_token = await gws.login()
    assert new_token != old_token
    assert (await gws.cancel()).json() == {"statusCode": 0}


async def test_end_contact_center_session_invalidates_it(gws: GWS, http: httpx.AsyncClient):
    start = await http.post(
        "/api/v2/me",
        json={"operationName": "StartContactCenterSession", "channels": ["voice"]},
        headers={"X-CSRF-TOKEN": gws.token or ""},
    )
    assert start.json() == {"statusCode": 0}
    end = await http.post(
        "/api/v2/me",
        json={"operationName": "EndContactCenterSession"},
        headers={"X-CSRF-TOKEN": gws.token or ""},
    )
    assert end.json() == {"statusCode": 0}
    _assert_not_authenticated(await http.get("/api/v2/me"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/nothing"),
        ("GET", "/api/v2/me/outbound-records/11"),
        ("GET", "/api/v2/me/outbound-records/11/../12"),
        ("POST", "/api/v2/me/calls"),
        ("DELETE", "/api/v2/me"),
    ],
)
async def test_unknown_paths_are_404_status_code_6(gws: GWS, http: httpx.AsyncClient, method, path):
    response = await http.request(method, path, headers={"X-CSRF-TOKEN": gws.token or ""})
    assert response.status_code == 404
    body = response.json()
    assert body["statusCode"] == 6
    assert set(body) == {"statusCode", "statusMessage"}


async def test_unknown_path_still_needs_authentication(http: httpx.AsyncClient):
    _assert_not_authenticated(await http.get("/api/v2/nothing"))


async def test_recorded_requests_hold_no_secrets(sim: GWSSimulator, gws: GWS):
    await gws.cancel(body=gws.body() | {"password": "p4ssw0rd-in-body"})
    await gws.http.get("/api/v2/me", auth=("agent1", "secret"))
    cookie = gws.http.cookies["JSESSIONID"]
    token = gws.token or ""
    text = repr(sim.requests) + str(sim.requests)
    for secret in ("secret", "YWdlbnQxOnNlY3JldA==", "Basic", cookie, token, "p4ssw0rd-in-body"):
        assert secret not in text, secret
    first, cancel, last = sim.requests
    assert first.had_basic_auth and first.username == "agent1" and first.status == 200
    assert not first.had_session_cookie
    assert cancel.body["password"] == "***"
    assert cancel.body["referenceId"] == "ref-1"
    assert last.had_basic_auth and last.had_session_cookie
    assert first.time <= cancel.time <= last.time
    assert repr(sim).count("secret") == 0


async def test_secret_query_parameters_are_redacted(sim: GWSSimulator, http: httpx.AsyncClient):
    await http.get("/api/v2/me", params={"password": "pw-in-query", "fields": "*"})
    [recorded] = sim.requests
    assert recorded.query == {"password": "***", "fields": "*"}
    assert "pw-in-query" not in repr(recorded)


async def test_request_log_gets_each_answered_request(new_http):
    seen = []

    def log(record) -> None:
        seen.append(record)
        raise RuntimeError("a broken request log must not break the simulator")

    async with GWSSimulator(users=USERS, request_log=log) as sim:
        http = await new_http(base_url=sim.base_url)
        assert (await http.get("/api/v2/me", auth=("agent1", "secret"))).status_code == 200
        assert (await http.get("/api/v2/me/devices")).status_code == 200
        assert [(r.path, r.status, r.username) for r in seen] == [
            ("/api/v2/me", 200, "agent1"),
            ("/api/v2/me/devices", 200, "agent1"),
        ]
        assert seen == sim.requests
