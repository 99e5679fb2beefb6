"""The HTTP transport (``GWSSession``) against a scripted GWS: a raw aiohttp server on
loopback answering each request with the next answer its test wrote. What is retried, what is
never resent, how GWS answers on 4xx/5xx become ``GWSStatusError``, and what the start-up
errors say (target and cause on one line, never a secret).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog
from aiohttp import web

from gws_outbound_plugin import (
    GWSAuthenticationError,
    GWSConfig,
    GWSNoAnswerError,
    GWSStatusError,
    GWSTransportError,
)
from gws_outbound_plugin._cometd import CometDListener
from gws_outbound_plugin._session import GWSSession, _Transient

pytestmark = pytest.mark.anyio

USER, PASSWORD = "agent1", "s3cret-Pa55"
BASIC = "YWdlbnQxOnMzY3JldC1QYTU1"  # base64("agent1:s3cret-Pa55")
CSRF = "0f8e6d2c-csrf-token-value"
TLS = Path(__file__).resolve().parents[1] / "security" / "tls"
RECORD_PATH = "/api/v2/me/outbound-records/11"
UNAVAILABLE = {"statusCode": 4, "statusMessage": "Voice service is not available at this time"}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    json: object = None
    text: str | None = None
    close: bool = False
    """Read the request, then close the connection without an answer."""
    hang: float = 0.0
    """Wait this long before answering."""
    cookies: tuple[str, ...] = ()
    """``Set-Cookie`` header values of the answer."""
    gzip: bool = False
    """Send the JSON body gzip-compressed (``Content-Encoding: gzip``)."""


@dataclass
class ScriptedGWS:
    """Answers each request to a path with the next scripted answer; by default a GWS login
    (``GET /api/v2/me``) or ``{"statusCode": 0}``."""

    port: int = 0
    script: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    requests: list[tuple[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each request (in the order of ``requests``)."""
    logins: int = 0
    rotate: bool = False
    """Every login sets a new session cookie and CSRF token (``S<n>``, ``csrf-<n>``)."""
    keep_alive: bool = True
    """False: every answer closes its connection (each request on a new one)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        reply = await self._answer(request)
        if not self.keep_alive:
            reply.force_close()
        return reply

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, path: str, *answers: Answer) -> None:
        self.script[path].extend(answers)

    def count(self, method: str, path: str) -> int:
        return self.requests.count((method, path))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append((request.method, request.path))
        self.headers.append(dict(request.headers))
        queue = self.script.get(request.path)
        answer = queue.popleft() if queue else None
        if answer is None:
            if request.path == "/api/v2/me" and request.method == "GET":
                self.logins += 1
                token = f"csrf-{self.logins}" if self.rotate else CSRF
                response = web.json_response(
                    {"statusCode": 0, "user": {"userName": USER}},
                    headers={"X-CSRF-HEADER": "X-CSRF-TOKEN", "X-CSRF-TOKEN": token},
                )
                if self.rotate:
                    response.headers.add("Set-Cookie", f"JSESSIONID=S{self.logins}; Path=/")
                return response
            return web.json_response({"statusCode": 0})
        if answer.hang:
            await asyncio.sleep(answer.hang)
        if answer.close:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=204)
        if answer.text is not None:
            reply = web.Response(status=answer.status, text=answer.text, content_type="text/html")
        elif answer.gzip:
            reply = web.Response(
                status=answer.status,
                body=gzip.compress(json.dumps(answer.json).encode()),
                content_type="application/json",
                headers={"Content-Encoding": "gzip"},
            )
        else:
            reply = web.json_response(answer.json, status=answer.status)
        for cookie in answer.cookies:
            reply.headers.add("Set-Cookie", cookie)
        return reply


async def serve(gws: ScriptedGWS, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gws.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", gws.port, ssl_context=ssl_context)
    await site.start()
    gws.port = runner.addresses[0][1]
    return runner


@pytest.fixture
async def gws() -> AsyncIterator[ScriptedGWS]:
    scripted = ScriptedGWS()
    runner = await serve(scripted)
    try:
        yield scripted
    finally:
        await runner.cleanup()


def config(base_url: str, **changes: Any) -> GWSConfig:
    values: dict[str, Any] = {
        "base_url": base_url,
        "username": USER,
        "password": PASSWORD,
        "request_timeout": 0.5,
        "retry_backoff": 0.01,
        "retries": 2,
    }
    values.update(changes)
    return GWSConfig(**values)


@pytest.fixture
async def session(gws: ScriptedGWS) -> AsyncIterator[GWSSession]:
    opened = GWSSession(config(gws.base_url))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def assert_no_secret(text: str) -> None:
    for secret in (PASSWORD, BASIC, CSRF):
        assert secret not in text
    assert "\n" not in text


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def post(session: GWSSession) -> Any:
    return await session.post_record_operation(11, {"operationName": "CancelRecord"})


# -- operations (POST): resent only when GWS certainly did not process them -------------------


async def test_a_post_answered_by_a_closed_connection_is_not_resent(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, Answer(close=True))
    with pytest.raises(GWSNoAnswerError) as info:
        await post(session)
    assert gws.count("POST", RECORD_PATH) == 1
    message = str(info.value)
    assert message == (
        f"POST {RECORD_PATH} to GWS at {gws.base_url} failed: the server closed the "
        "connection without an answer (RemoteProtocolError); GWS may have processed it, "
        "so it was not sent again"
    )
    assert_no_secret(message)


async def test_a_post_without_an_answer_in_time_is_not_resent(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, Answer(hang=1.0))
    with pytest.raises(GWSNoAnswerError, match=r"no answer within 0\.5s \(ReadTimeout\)"):
        await post(session)
    assert gws.count("POST", RECORD_PATH) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_post_answered_5xx_without_a_gws_body_is_not_resent(
    gws: ScriptedGWS, session: GWSSession, status: int
) -> None:
    gws.then(RECORD_PATH, Answer(status=status, text="<html>Bad gateway</html>"))
    with pytest.raises(GWSNoAnswerError) as info:
        await post(session)
    assert gws.count("POST", RECORD_PATH) == 1
    assert f"answered HTTP {status} without a GWS answer (text/html" in str(info.value)


async def test_a_post_to_a_server_that_is_gone_is_retried_then_certainly_not_processed(
    gws: ScriptedGWS,
) -> None:
    scripted = ScriptedGWS()
    runner = await serve(scripted)
    session = GWSSession(config(scripted.base_url))
    await session.open()
    try:
        await runner.cleanup()  # nothing listens any more: the connection is refused
        with structlog.testing.capture_logs() as logs, pytest.raises(GWSTransportError) as info:
            await post(session)
    finally:
        await session.close()
    assert type(info.value) is GWSTransportError  # not GWSNoAnswerError: nothing was sent
    assert str(info.value) == (
        f"POST {RECORD_PATH} to GWS at {scripted.base_url} failed: connection refused "
        "(ConnectError); 3 attempts"
    )
    retries = [e for e in logs if e["event"] == "gws_request_retry"]
    assert [(e["method"], e["attempt"]) for e in retries] == [("POST", 1), ("POST", 2)]


async def test_gws_unavailable_503_is_retried_then_succeeds(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, Answer(503, UNAVAILABLE), Answer(503, UNAVAILABLE))
    assert await post(session) == {"statusCode": 0}
    assert gws.count("POST", RECORD_PATH) == 3


async def test_gws_unavailable_503_every_time_is_a_gws_answer(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, *[Answer(503, UNAVAILABLE)] * 3)
    with pytest.raises(GWSStatusError) as info:
        await post(session)
    error = info.value
    assert (error.status_code, error.status_message, error.http_status) == (
        4,
        "Voice service is not available at this time",
        503,
    )
    assert gws.count("POST", RECORD_PATH) == 3  # retries + 1


@pytest.mark.parametrize("code", [7, 9])
async def test_a_503_saying_gws_may_still_act_is_not_resent(
    gws: ScriptedGWS, session: GWSSession, code: int
) -> None:
    """A 503 whose GWS body is ``statusCode`` 7 (partial success) or 9 (processing
    incomplete): GWS may still act on the request, so it is not written again (the plugin
    then waits for its CometD outcome, as for the same codes on a 200). Before, every 503 with
    a GWS body was taken for "back end not available, nothing processed" and the POST was
    written up to ``retries`` more times, each copy an operation GWS may carry out (and each
    resend made the plugin forget, as another client's, the answer OCS had sent by key for
    the first: M10)."""
    gws.then(RECORD_PATH, Answer(503, {"statusCode": code, "statusMessage": "incomplete"}))
    with pytest.raises(GWSStatusError) as info:
        await post(session)
    assert (info.value.status_code, info.value.http_status) == (code, 503)
    assert gws.count("POST", RECORD_PATH) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(400, 1), (403, 3), (404, 6), (409, 19), (500, 4), (502, 9), (200, 2)]
)
async def test_a_gws_body_on_any_status_is_a_gws_answer_sent_once(
    gws: ScriptedGWS, session: GWSSession, status: int, code: int
) -> None:
    gws.then(RECORD_PATH, Answer(status, {"statusCode": code, "statusMessage": f"no ({code})"}))
    with pytest.raises(GWSStatusError) as info:
        await post(session)
    assert (info.value.status_code, info.value.status_message) == (code, f"no ({code})")
    assert info.value.http_status == status
    assert gws.count("POST", RECORD_PATH) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        Answer(401, {"statusCode": 20, "statusMessage": "User not authenticated"}),
        Answer(403, text="Missing or invalid Csrf token"),
        Answer(200, {"statusCode": 20, "statusMessage": "User not authenticated"}),
    ],
    ids=["401", "403-csrf", "statusCode-20"],
)
async def test_a_refused_session_logs_in_again_and_resends_once(
    gws: ScriptedGWS, session: GWSSession, refusal: Answer
) -> None:
    gws.then(RECORD_PATH, refusal)
    assert await post(session) == {"statusCode": 0}
    assert gws.requests[1:] == [
        ("POST", RECORD_PATH),
        ("GET", "/api/v2/me"),
        ("POST", RECORD_PATH),
    ]


async def test_refused_again_after_a_fresh_login_is_an_authentication_failure(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, *[Answer(403, text="Missing or invalid Csrf token")] * 2)
    with pytest.raises(GWSAuthenticationError) as info:
        await post(session)
    assert str(info.value) == (
        f"GWS at {gws.base_url} refused the session after a fresh login (HTTP 403)"
    )
    assert gws.count("POST", RECORD_PATH) == 2


async def test_a_4xx_without_a_gws_body_is_not_processed_and_not_resent(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, Answer(400, text="Bad request"))
    with pytest.raises(GWSTransportError) as info:
        await post(session)
    assert type(info.value) is GWSTransportError
    assert gws.count("POST", RECORD_PATH) == 1


async def test_a_429_is_not_processed_and_is_retried(gws: ScriptedGWS, session: GWSSession) -> None:
    """Too many requests: refused unread, so tried again with the retry policy (and its
    ``Retry-After``, tests/faults/test_sending3.py); the next attempt is accepted."""
    gws.then(RECORD_PATH, Answer(429, text="Too many requests"))
    await post(session)
    assert gws.count("POST", RECORD_PATH) == 2


# -- the POST path: headers and cookies as httpx's client would send them ---------------------


def cookie_of(gws: ScriptedGWS, index: int) -> str | None:
    return gws.headers[index].get("Cookie")


async def test_a_post_carries_the_session_headers(gws: ScriptedGWS, session: GWSSession) -> None:
    await post(session)
    sent = gws.headers[-1]
    assert sent["Authorization"] == f"Basic {BASIC}"
    assert sent["X-CSRF-TOKEN"] == CSRF
    assert sent["Content-Type"] == "application/json"
    assert sent["Accept"] == "application/json"
    assert sent["Host"] == f"127.0.0.1:{gws.port}"
    assert sent["Content-Length"] == str(len(b'{"operationName":"CancelRecord"}'))


async def test_cookies_go_only_where_their_path_and_domain_allow(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(
        RECORD_PATH,
        Answer(
            json={"statusCode": 0},
            cookies=(
                "HERE=1; Path=/api/v2/me/outbound-records/11",
                "ELSEWHERE=2; Path=/api/v2/other",
                "FOREIGN=3; Domain=gws.example.com; Path=/",
                "EVERYWHERE=4; Path=/",
            ),
        ),
    )
    await post(session)  # sets the cookies
    await post(session)
    await session.post_record_operation(111, {"operationName": "CancelRecord"})
    await session.post_record_operation(12, {"operationName": "CancelRecord"})
    assert cookie_of(gws, -3) == "HERE=1; EVERYWHERE=4"
    assert cookie_of(gws, -2) == "EVERYWHERE=4"  # /11 is not a prefix of /111
    assert cookie_of(gws, -1) == "EVERYWHERE=4"
    # The CometD requests get what the jar gives their URL.
    assert session.cookie_header(f"{gws.base_url}/api/v2/notifications") == "EVERYWHERE=4"


async def test_a_cookie_set_by_a_post_answer_replaces_the_old_one(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(RECORD_PATH, Answer(json={"statusCode": 0}, cookies=("JSESSIONID=A; Path=/",)))
    await post(session)
    gws.then(RECORD_PATH, Answer(json={"statusCode": 0}, cookies=("JSESSIONID=B; Path=/",)))
    await post(session)
    await post(session)
    assert [cookie_of(gws, i) for i in (-3, -2, -1)] == [None, "JSESSIONID=A", "JSESSIONID=B"]


async def test_a_cookie_the_cometd_client_received_goes_with_the_next_post(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    await post(session)
    assert cookie_of(gws, -1) is None
    session.store_cookies(f"{gws.base_url}/api/v2/notifications", ["BAYEUX=7; Path=/"])
    await post(session)
    assert cookie_of(gws, -1) == "BAYEUX=7"
    session.store_cookies(f"{gws.base_url}/api/v2/notifications", ["BAYEUX=8; Path=/"])
    await post(session)
    assert cookie_of(gws, -1) == "BAYEUX=8"


async def test_a_cookie_that_expires_is_not_sent_after_it_expired(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then(
        RECORD_PATH,
        Answer(json={"statusCode": 0}, cookies=("SHORT=1; Max-Age=1; Path=/", "LONG=2; Path=/")),
    )
    await post(session)
    await post(session)
    assert cookie_of(gws, -1) == "SHORT=1; LONG=2"
    await anyio.sleep(1.1)  # the jar's clock counts whole seconds
    await post(session)
    assert cookie_of(gws, -1) == "LONG=2"


async def test_a_compressed_answer_is_decoded(gws: ScriptedGWS, session: GWSSession) -> None:
    gws.then(RECORD_PATH, Answer(json={"statusCode": 0, "id": 5}, gzip=True))
    assert await post(session) == {"statusCode": 0, "id": 5}
    gws.then(RECORD_PATH, Answer(409, {"statusCode": 19, "statusMessage": "busy"}, gzip=True))
    with pytest.raises(GWSStatusError) as info:
        await post(session)
    assert (info.value.status_code, info.value.status_message) == (19, "busy")


async def test_a_session_opened_again_has_none_of_the_earlier_cookies(gws: ScriptedGWS) -> None:
    session = GWSSession(config(gws.base_url))
    await session.open()
    try:
        gws.then(RECORD_PATH, Answer(json={"statusCode": 0}, cookies=("EARLIER=1; Path=/",)))
        await post(session)
        await post(session)
        assert cookie_of(gws, -1) == "EARLIER=1"
    finally:
        await session.close()
    await session.open()
    try:
        await post(session)
        assert cookie_of(gws, -1) is None
    finally:
        await session.close()


async def test_a_fresh_login_changes_the_cookie_and_token_of_the_requests_in_flight(
    gws: ScriptedGWS,
) -> None:
    gws.rotate = True
    session = GWSSession(config(gws.base_url))
    await session.open()
    try:
        await post(session)
        assert (cookie_of(gws, -1), gws.headers[-1]["X-CSRF-TOKEN"]) == ("JSESSIONID=S1", "csrf-1")
        # Three POSTs in flight are refused together: one fresh login, all three resent
        # with the new session cookie and CSRF token.
        refused = Answer(
            401, {"statusCode": 20, "statusMessage": "User not authenticated"}, hang=0.1
        )
        gws.then(RECORD_PATH, refused, refused, refused)
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(post, session)
        assert gws.logins == 2
        resent = [
            (cookie_of(gws, i), gws.headers[i]["X-CSRF-TOKEN"])
            for i, request in enumerate(gws.requests)
            if request == ("POST", RECORD_PATH)
        ][-3:]
        assert resent == [("JSESSIONID=S2", "csrf-2")] * 3
    finally:
        await session.close()


# -- reads (GET): idempotent, retried on transport errors and 5xx ----------------------------


async def test_a_get_is_retried_after_5xx_and_broken_connections(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    path = "/api/v2/me/devices"
    gws.then(path, Answer(502, text="bad gateway"), Answer(close=True))
    assert await session.devices() == []
    assert gws.count("GET", path) == 3


@pytest.mark.parametrize("code", [4, 7, 9])
async def test_a_get_is_retried_after_a_503_with_any_gws_status(
    gws: ScriptedGWS, session: GWSSession, code: int
) -> None:
    """A read changes nothing: a 503 with GWS's ``statusCode`` is retried whatever the code.
    Only a POST answered 503 with 7 (partial success) or 9 (processing incomplete) is not
    written again (GWS may still act on it); before, that rule stopped GETs' retries too."""
    path = "/api/v2/me/devices"
    gws.then(path, Answer(503, {"statusCode": code, "statusMessage": "incomplete"}))
    assert await session.devices() == []
    assert gws.count("GET", path) == 2


async def test_a_get_failing_every_time_says_how_often_it_tried(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    path = "/api/v2/me/devices"
    gws.then(path, *[Answer(502, text="bad gateway")] * 3)
    with pytest.raises(GWSTransportError) as info:
        await session.devices()
    assert type(info.value) is GWSTransportError
    assert str(info.value) == (
        f"GET {path}?fields=*: GWS at {gws.base_url} answered HTTP 502 without a GWS answer "
        "(text/html; charset=utf-8); 3 attempts"
    )


# -- classification of every httpx failure (pure) -----------------------------------------------


@pytest.mark.parametrize(
    ("error", "post_outcome"),
    [
        (httpx.ConnectError("refused"), "retried"),
        (httpx.ConnectTimeout("slow"), "retried"),
        (httpx.PoolTimeout("busy"), "retried"),
        (httpx.ProxyError("proxy"), "retried"),
        (httpx.ReadTimeout("slow"), "no answer"),
        (httpx.WriteTimeout("slow"), "no answer"),
        (httpx.ReadError("reset"), "no answer"),
        (httpx.WriteError("reset"), "no answer"),
        (httpx.RemoteProtocolError("garbage"), "no answer"),
        (httpx.UnsupportedProtocol("ftp"), "failed"),
        (httpx.LocalProtocolError("bad header"), "failed"),
    ],
)
def test_which_failures_a_post_may_be_resent_after(
    error: httpx.TransportError, post_outcome: str
) -> None:
    session = GWSSession(config("http://127.0.0.1:1"))
    with pytest.raises((_Transient, GWSTransportError)) as post_info:
        session._raise_transport_error("POST", "/me/outbound-records/11", error)
    outcome = {_Transient: "retried", GWSNoAnswerError: "no answer", GWSTransportError: "failed"}
    assert outcome[type(post_info.value)] == post_outcome
    with pytest.raises((_Transient, GWSTransportError)) as get_info:
        session._raise_transport_error("GET", "/me", error)
    expected_get = GWSTransportError if post_outcome == "failed" else _Transient
    assert type(get_info.value) is expected_get


# -- start-up errors: target and cause in one line ------------------------------------------------


async def test_login_to_a_port_nobody_listens_on() -> None:
    port = unused_port()
    session = GWSSession(config(f"http://127.0.0.1:{port}"))
    with pytest.raises(GWSTransportError) as info:
        await session.open()
    assert str(info.value) == (
        f"GET /api/v2/me to GWS at http://127.0.0.1:{port} failed: connection refused "
        "(ConnectError); 3 attempts"
    )
    assert_no_secret(str(info.value))


async def test_login_to_a_host_that_does_not_exist() -> None:
    # .invalid never resolves (RFC 6761).
    session = GWSSession(
        config("https://gws.does-not-exist.invalid:8443", retries=0, request_timeout=5.0)
    )
    with pytest.raises(GWSTransportError) as info:
        await session.open()
    message = str(info.value)
    assert message.startswith(
        "GET /api/v2/me to GWS at https://gws.does-not-exist.invalid:8443 failed: "
        "host name lookup failed: "
    ), message
    assert message.endswith("(ConnectError)")
    assert_no_secret(message)


async def test_login_to_an_untrusted_certificate() -> None:
    scripted = ScriptedGWS()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "self-signed-127.0.0.1.crt", TLS / "self-signed-127.0.0.1.key")
    runner = await serve(scripted, context)
    try:
        session = GWSSession(config(f"https://127.0.0.1:{scripted.port}", retries=0))
        with pytest.raises(GWSTransportError) as info:
            await session.open()
    finally:
        await runner.cleanup()
    assert str(info.value) == (
        f"GET /api/v2/me to GWS at https://127.0.0.1:{scripted.port} failed: TLS certificate "
        "verify failed: self-signed certificate (CERTIFICATE_VERIFY_FAILED) (ConnectError)"
    )
    assert scripted.requests == []


async def test_login_without_an_answer(gws: ScriptedGWS) -> None:
    gws.then("/api/v2/me", *[Answer(hang=1.0)] * 2)
    session = GWSSession(config(gws.base_url, retries=1, request_timeout=0.3))
    with pytest.raises(GWSTransportError) as info:
        await session.open()
    assert str(info.value) == (
        f"GET /api/v2/me to GWS at {gws.base_url} failed: no answer within 0.3s "
        "(ReadTimeout); 2 attempts"
    )


async def test_login_refused(gws: ScriptedGWS) -> None:
    gws.then("/api/v2/me", Answer(401, {"statusCode": 20, "statusMessage": "Access denied"}))
    session = GWSSession(config(gws.base_url))
    with pytest.raises(GWSAuthenticationError) as info:
        await session.open()
    assert str(info.value) == (
        f"GWS refused the credentials of 'agent1' at {gws.base_url} (HTTP 401, statusCode 20)"
    )
    assert gws.count("GET", "/api/v2/me") == 1  # refused credentials are not retried
    assert_no_secret(str(info.value))


async def test_cometd_handshake_refused_by_something_that_is_not_bayeux(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then("/api/v2/notifications", Answer(502, text="<html>Bad gateway</html>"))
    listener = CometDListener(
        config(gws.base_url),
        session,
        ["/v2/me/outbound"],
        on_lost=lambda why: None,
        on_restored=lambda: None,
    )
    with anyio.fail_after(10), pytest.raises(GWSTransportError) as info:
        await listener.open()
    message = str(info.value)
    assert message.startswith(
        f"the CometD handshake at {gws.base_url}/api/v2/notifications failed: HTTP 502 "
    ), message
    assert_no_secret(message)


async def test_cometd_handshake_without_an_answer_does_not_stall_the_start(
    gws: ScriptedGWS, session: GWSSession
) -> None:
    gws.then("/api/v2/notifications", Answer(hang=3.0))
    listener = CometDListener(
        config(gws.base_url, request_timeout=0.3),
        session,
        ["/v2/me/outbound"],
        on_lost=lambda why: None,
        on_restored=lambda: None,
    )
    with anyio.fail_after(2), pytest.raises(GWSTransportError) as info:
        await listener.open()
    assert str(info.value) == (
        f"the CometD handshake at {gws.base_url}/api/v2/notifications failed: no answer "
        "within 0.3s (TimeoutError)"
    )
