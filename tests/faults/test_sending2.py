"""The sending path tells the truth about what GWS got and what failed, when what GWS (or a
proxy in front of it) gives the session is not what the session expects: a re-login answered
with a ``statusCode``, a CSRF token or cookie that cannot be written in a header, a POST GWS
answered over CometD while the session was told it never arrived. Each test failed before its
fix (verified on the parent commit)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    FailureReason,
    GWSTransportError,
    OutboundPlugin,
)
from gws_outbound_plugin._session import GWSNoAnswerError, GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import (
    StallingProxy,
    captured_logs,
    events_named,
    handles,
    plugin_tasks,
    request_for,
    until,
)
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


def _http(status: int, reason: bytes, body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(line + b"\r\n" for line in extra)
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        % (status, reason, len(body))
        + headers
        + b"\r\n"
        + body
    )


def logins_answered(
    after: int, status: int, reason: bytes, body: bytes, *extra: bytes
) -> Callable[[bytes, bytes], bytes | None]:
    """A proxy rule: the first ``after`` logins (``GET /api/v2/me``) pass on to the simulator;
    the proxy answers every later one itself (``status``, JSON ``body``, ``extra`` headers)."""
    logins = 0

    def answer(head: bytes, _body: bytes) -> bytes | None:
        nonlocal logins
        if not head.startswith(b"GET /api/v2/me "):
            return None
        logins += 1
        if logins <= after:
            return None
        return _http(status, reason, body, *extra)

    return answer


# -- 1. a re-login that GWS answers with a statusCode ---------------------------------------------

UNAVAILABLE = json.dumps({"statusCode": 4, "statusMessage": "Service unavailable"}).encode()


@pytest.mark.parametrize(
    ("status", "reason", "body", "kind", "says"),
    [
        (
            503,
            b"Service Unavailable",
            UNAVAILABLE,
            FailureReason.AUTHENTICATION_FAILED,
            "was answered HTTP 503, statusCode 4 (Service unavailable)",
        ),
        (
            502,
            b"Bad Gateway",
            b"<html>bad gateway</html>",
            FailureReason.TRANSPORT_FAILURE,
            "answered HTTP 502 without a GWS answer",
        ),
    ],
    ids=["status-code", "no-gws-answer"],
)
async def test_a_failed_relogin_is_not_reported_as_the_requests_own_rejection(
    pm: pluggy.PluginManager,
    sim: GWSSimulator,
    recorder: Recorder,
    status: int,
    reason: bytes,
    body: bytes,
    kind: FailureReason,
    says: str,
) -> None:
    """GWS refuses the cancel unread (HTTP 401: the session expired), and the login that
    should renew the session is answered 503 with ``statusCode`` 4. Before, the cancel ended
    ``rejected`` with ``status_code`` 4, as if GWS had answered *the cancel* with that code
    (a host reading ``status_code`` would look up what the cancel's 4 means). Now it ends
    ``authentication_failed`` (the session could not be renewed), ``status_code`` ``None``,
    and the message names the refusal and the login's answer as such; nothing processed.
    ``no-gws-answer``: the login gets no GWS answer (a proxy's 502 page); the request fails
    as not sent, as before, but the message said only "GET /api/v2/me ... answered HTTP
    502", as if the request had been that GET; it now says the POST was refused unread and
    the re-login failed."""
    handle = handles(sim, 1)[0]
    rule = logins_answered(1, status, reason, body)
    async with StallingProxy(sim.port, answer=rule) as proxy:
        config = fast_config(proxy.base_url, retries=1)
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.unauthorized(count=1)
            request = request_for(sim, handle)
            with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                await plugin.cancel(request)
    failure = info.value.failure
    assert [c.status for c in sim.cancels] == [401]
    assert failure.reason is kind, failure
    assert failure.status_code is None
    assert failure.may_have_acted is False
    assert failure.message is not None
    assert "refused POST /api/v2/me/outbound-records/" in failure.message
    assert "unread (HTTP 401, statusCode 20) and logging in again failed" in failure.message
    assert "GET /api/v2/me" in failure.message and says in failure.message
    assert [f.request for f in recorder.failures] == [request]


# -- 2. a CSRF token or a cookie that cannot be written in a header ------------------------------

#: The secret part of what the proxy gives the session: it must reach no message or log.
SECRET = "s3cret-7d1f"
#: A login answer (``GET /api/v2/me``) as GWS gives it.
LOGGED_IN = json.dumps({"statusCode": 0, "user": {"userName": "agent1"}}).encode()
#: ``€`` in UTF-8: httpx reads the header as UTF-8, and "€" is no Latin-1 character.
EURO = "€".encode()


@pytest.mark.parametrize(
    ("logins_passed", "header", "what"),
    [
        (0, b"X-CSRF-TOKEN: " + SECRET.encode() + EURO, "the CSRF token"),
        (0, b"Set-Cookie: JSESSIONID=" + SECRET.encode() + EURO + b"; Path=/", "a cookie"),
        (1, b"X-CSRF-TOKEN: " + SECRET.encode() + EURO, "the CSRF token"),
    ],
    ids=["csrf-at-login", "cookie-at-login", "csrf-at-relogin"],
)
async def test_a_header_that_cannot_be_written_fails_the_post_as_not_sent(
    sim: GWSSimulator, logins_passed: int, header: bytes, what: str
) -> None:
    """A proxy (or a broken GWS node) answers the login with a CSRF token or a session cookie
    holding a character outside Latin-1 (at the first login, or at the re-login after GWS
    refused the POST unread). Before, building the POST's headers raised
    ``UnicodeEncodeError`` out of ``post_operation``, which the sender counted as "may have
    been processed" (``outcome_unknown`` when it came from the first attempt) though nothing
    was written. Now the session refuses before writing, with the plain
    ``GWSTransportError`` ("certainly not processed") naming what cannot be written, and
    neither the message nor the logs hold the value."""
    rule = logins_answered(
        logins_passed, 200, b"OK", LOGGED_IN, b"X-CSRF-HEADER: X-CSRF-TOKEN", header
    )
    posts: list[bytes] = []

    def counting(head: bytes, body: bytes) -> bytes | None:
        if head.startswith(b"POST "):
            posts.append(head)
        return rule(head, body)

    request = request_for(sim, handles(sim, 1)[0])
    if logins_passed:
        sim.faults.unauthorized(count=1)
    async with StallingProxy(sim.port, answer=counting) as proxy:
        session = GWSSession(fast_config(proxy.base_url))
        with captured_logs() as logs:
            await session.open()
            try:
                with pytest.raises(GWSTransportError) as info:
                    await session.post_operation(request.gws_path(), request.to_gws_body())
            finally:
                await session.close()
    error = info.value
    assert not isinstance(error, GWSNoAnswerError)
    assert what in str(error) and "nothing was sent" in str(error)
    assert SECRET not in str(error) and "€" not in str(error)
    assert SECRET not in "".join(traceback.format_exception(error))
    chain: list[BaseException] = []  # what a tool walking the chain regardless would show
    link: BaseException | None = error
    while link is not None:
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert not [e for e in chain if isinstance(e, UnicodeError)]  # its .object is the value
    assert SECRET not in repr(logs)
    assert len(posts) == logins_passed  # the POST GWS refused unread (401), if any; no other
    assert [c.status for c in sim.cancels] == [401] * logins_passed


# -- 3. a POST GWS answered by reference while the session was told it never arrived ------------


def _is_cancel(head: bytes, _body: bytes) -> bool:
    return head.startswith(b"POST /api/v2/me/outbound-records/")


def first_cancel_got_through_but_answered(
    status: int, reason: bytes, body: bytes
) -> Callable[[bytes, bytes], bytes | None]:
    """A proxy rule: the first cancel POST is answered ``status`` ``body`` by the proxy (and,
    with ``pass_on=_is_cancel``, GWS got it all the same); later ones pass on."""
    cancels = 0

    def answer(head: bytes, _body: bytes) -> bytes | None:
        nonlocal cancels
        if not _is_cancel(head, _body):
            return None
        cancels += 1
        return _http(status, reason, body) if cancels == 1 else None

    return answer


async def test_a_post_answered_by_reference_is_not_written_again(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A node in front of GWS passed the cancel on, and GWS processed it (OCS's
    acknowledgement carries our referenceId over CometD), but the node answered the POST 503
    with GWS's ``statusCode`` 4 ("nothing processed"). The session believes it and waits
    ``retry_backoff`` to write it again; meanwhile the acknowledgement arrives by
    reference: GWS did get the request. Before, ``announce_resend`` still said "write it"
    and the cancel was written a second time (invariant 8: a request GWS may have processed
    is never sent again). Now the evidence wins: it is not written again, and it ends with
    its own acknowledgement."""
    config_changes = {"retry_backoff": 1.0, "retries": 1, "ack_timeout": 2.0}
    handle = handles(sim, 1)[0]
    rule = first_cancel_got_through_but_answered(503, b"Service Unavailable", UNAVAILABLE)
    async with StallingProxy(sim.port, answer=rule, pass_on=_is_cancel) as proxy:
        config = fast_config(proxy.base_url, **config_changes)
        async with OutboundPlugin(pm, config) as plugin:
            request = request_for(sim, handle)
            with anyio.fail_after(10):
                ack = await plugin.cancel(request)
            await anyio.sleep(2 * config.retry_backoff)  # past when it would be written again
    assert ack.request == request
    assert len(sim.cancels) == 1, [c.status for c in sim.cancels]
    assert recorder.failures == []
    assert [a.request for a in recorder.acks] == [request]


# -- 4. a host cancelling the sender again and again during a backoff ----------------------------


@pytest.mark.parametrize("relogin", [False, True], ids=["first-round", "after-a-relogin"])
async def test_a_worker_cancelled_during_backoffs_keeps_the_retry_policy(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder, relogin: bool
) -> None:
    """GWS answers every cancel 503 with ``statusCode`` 4 (nothing processed); the policy
    allows one retry, 1 s after the first attempt. While the session waits, the host cancels
    every task of the plugin three times with a plain ``task.cancel()``. Before, each
    cancellation put the request back in the queue and it was written again at once, its
    retry count starting again: five POSTs to a GWS asking to be left alone, the retry
    policy void (a host cancelling in a loop hammers GWS until the deadline). Now the rest of
    the backoff and the count carry over: two POSTs, the second no sooner than the backoff
    after the first, and the request ends with GWS's refusal as without the cancellations.
    ``after-a-relogin``: GWS first refuses the POST unread (401), one more retry allowed; the
    session logs in again and the 503s come after the re-login, whose retries carry over too
    (not a second re-login, not a fresh round)."""
    config = fast_config(
        sim.base_url, retries=1 + relogin, retry_backoff=1.0, request_timeout=2.0
    )
    handle = handles(sim, 1)[0]
    if relogin:
        sim.faults.unauthorized(count=1)
    sim.faults.http_error(503, count=None)
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config) as plugin:
            request = request_for(sim, handle)
            ticket = plugin.submit(request)
            await until(lambda: events_named(logs, "gws_request_retry"), "the first backoff")
            await _cancel_every_task_thrice()
            with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                await ticket
    sim.faults.clear()
    failure = info.value.failure
    refused = [401] if relogin else []
    assert [c.status for c in sim.cancels] == [*refused, 503, 503]
    assert sim.cancels[-1].time - sim.cancels[-2].time >= config.retry_backoff
    assert len(events_named(logs, "gws_logged_in")) == 1 + relogin
    assert failure.reason is FailureReason.REJECTED, failure
    assert failure.status_code == 4
    assert failure.may_have_acted is False
    assert [f.request for f in recorder.failures] == [request]


async def _cancel_every_task_thrice() -> None:
    """A host cancelling every task of the plugin, three times, 50 ms apart."""
    for _ in range(3):
        for task in plugin_tasks():
            task.cancel()
        await anyio.sleep(0.05)
