"""The sending path against the promise (every accepted request ends in exactly one outcome,
its own, within the documented bound; no secret in a log, repr or exception), hunt 16: a
refusal of the POST after GWS answered it by reference, ``Retry-After``, a cookie or CSRF
token that cannot be written in a header, the re-login round and the bound. Each test failed
before its fix (checked on the parent commit)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
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
from tests.helpers import AGENT, Recorder

pytestmark = pytest.mark.anyio


def _is_cancel(head: bytes, _body: bytes) -> bool:
    return head.startswith(b"POST /api/v2/me/outbound-records/")


# -- 1. a refusal of the last attempt, after a message with the request's referenceId ------------


@pytest.mark.parametrize("retries", [0, 1], ids=["only-attempt", "last-retry"])
async def test_a_refusal_after_a_message_by_reference_is_not_taken_as_nothing_done(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder, retries: int
) -> None:
    """GWS answers every attempt 503 with its ``statusCode`` 4 ("nothing processed"), but
    while the last attempt waits for that answer a notification carrying the request's own
    referenceId arrives over CometD (one that is no acknowledgement: OCS's answer itself is
    lost): GWS got the request after all (M1), and a node in front of it answered as if not.
    Before, the 503 was the outcome: ``rejected`` with ``may_have_acted`` false, so a host
    would send again a cancel GWS may have acted on. Now the message by reference wins over
    the refusal, as it does between attempts: the request waits for its answer like one
    GWS did not answer, and ends ``outcome_unknown`` (``may_have_acted`` true), the 503's
    ``statusCode`` and text in the failure."""
    handle = handles(sim, 1)[0]
    request = request_for(sim, handle)
    posts = 0

    def answer(head: bytes, _body: bytes) -> bytes | None:
        nonlocal posts
        if _is_cancel(head, _body):
            posts += 1
            if posts == retries + 1:  # the last attempt: slow, and GWS says it got it
                sim.faults.slow_answer(0.5)
                sim._bayeux.publish(
                    AGENT,
                    "/v2/me/outbound",
                    {
                        "messageType": "OutboundRecordMessage",
                        "notificationType": "RecordProcessingStarted",
                        "referenceId": request.reference_id,
                        "record": {"recordHandle": handle},
                    },
                )
        return None

    sim.faults.http_error(503, count=None)
    async with StallingProxy(sim.port, answer=answer) as proxy:
        config = fast_config(proxy.base_url, retries=retries, retry_backoff=0.05, ack_timeout=0.3)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                await plugin.cancel(request)
    failure = info.value.failure
    assert posts == retries + 1
    assert [c.status for c in sim.cancels] == [503] * (retries + 1)
    assert failure.reason is FailureReason.OUTCOME_UNKNOWN, failure
    assert failure.may_have_acted is True
    assert failure.status_code == 4
    assert [f.request for f in recorder.failures] == [request]
    assert recorder.acks == []


# -- 2. _within(): no exception left unretrieved -------------------------------------------------


class _CleanupFailed(Exception):
    """What a step raises when it is cancelled and its clean-up fails (a client whose
    cancelled connect raises its own error)."""


@pytest.mark.parametrize("how", ["timeout", "caller-cancelled", "fails-as-caller-cancelled"])
async def test_within_leaves_no_task_exception_unretrieved(how: str) -> None:
    """``_within`` (the listener's bound around aiocometd's ``open()``) runs the step in a
    task of its own. When the step ended with an exception nobody asked for (it failed on
    being cancelled at the timeout or with its caller, or failed in the loop turn in which
    its caller was cancelled), asyncio logged "Task exception was never retrieved" (an
    error in a host's log, at an arbitrary later moment: when the task was collected).
    Now the step's exception is always retrieved; the caller still gets ``TimeoutError`` or
    its cancellation."""
    import asyncio
    import gc

    from gws_outbound_plugin._cometd import _within

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    callers: list[asyncio.Task[None]] = []

    async def step() -> None:
        if how == "fails-as-caller-cancelled":
            await asyncio.sleep(0)
            callers[0].cancel()  # the host cancels the caller in the turn the step fails in
            raise _CleanupFailed
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise _CleanupFailed from None

    async def call() -> None:
        await _within(0.05 if how == "timeout" else 60, step())

    try:
        callers.append(asyncio.ensure_future(call()))
        if how == "caller-cancelled":
            await asyncio.sleep(0.01)
            callers[0].cancel()
        outcome = (await asyncio.wait(callers))[0].pop()
        if how == "timeout":
            assert isinstance(outcome.exception(), TimeoutError)
        else:
            assert outcome.cancelled()
        del callers[:], outcome
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []


# -- 3. a cookie or CSRF token that cannot be written: one request, not an outage ----------------

#: A value a proxy puts in a header; ``€`` (UTF-8, as httpx reads it) is no Latin-1 character.
SECRET = "s3cret-91c4"
EURO = "€".encode()
LOGGED_IN = b'{"statusCode":0,"user":{"userName":"agent1"}}'


def _second_login_answered_with(header: bytes) -> Callable[[bytes, bytes], bytes | None]:
    """A proxy rule: the second login (``GET /api/v2/me``, the re-login after a 401) is
    answered by the proxy with GWS's success and ``header`` (a node setting a cookie, or
    giving a CSRF token, that cannot be written in a header); the session and token of the
    first login stay valid at GWS. Everything else passes on."""
    logins = 0

    def answer(head: bytes, _body: bytes) -> bytes | None:
        nonlocal logins
        if not head.startswith(b"GET /api/v2/me "):
            return None
        logins += 1
        if logins != 2:
            return None
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            % len(LOGGED_IN)
            + header
            + b"\r\n\r\n"
            + LOGGED_IN
        )

    return answer


@pytest.mark.parametrize(
    ("header", "what", "statuses"),
    [
        (
            b"Set-Cookie: AFFINITY=" + SECRET.encode() + EURO + b"; Path=/",
            "a cookie",
            [200, 401, 200],
        ),
        (
            b"X-CSRF-HEADER: X-CSRF-TOKEN\r\nX-CSRF-TOKEN: " + SECRET.encode() + EURO,
            "CSRF",
            [200, 401, 403, 200],  # the third without a token: refused unread, a new login
        ),
    ],
    ids=["cookie", "csrf-token"],
)
async def test_a_header_that_cannot_be_written_fails_one_request_not_every_later_one(
    pm: pluggy.PluginManager,
    sim: GWSSimulator,
    recorder: Recorder,
    header: bytes,
    what: str,
    statuses: list[int],
) -> None:
    """GWS refuses a cancel unread (401); the re-login's answer sets a cookie, or gives a CSRF
    token, holding a character outside Latin-1. The cancel written again is refused before
    anything is written (``transport_failure``, nothing sent), as before. But the value
    stayed in the session (the cookie in its jar, the token until the next login, which
    nothing asked for): every later request of the host failed the same way until the plugin
    was restarted, a lasting outage. Now what cannot be written is dropped when found (a
    request without the token is refused unread and logs in again): the next cancel is
    acknowledged; the value is in no message or log. Before, the cookie also failed the
    CometD client's requests, and closing the plugin raised ``UnwritableHeader`` out of the
    host's ``async with``."""
    handle_1, handle_2, handle_3 = handles(sim, 3)
    rule = _second_login_answered_with(header)
    with captured_logs() as logs:
        async with StallingProxy(sim.port, answer=rule) as proxy:
            config = fast_config(proxy.base_url)
            async with OutboundPlugin(pm, config) as plugin:
                first = await plugin.cancel(request_for(sim, handle_1))
                sim.faults.unauthorized(count=1)
                with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                    await plugin.cancel(request_for(sim, handle_2))
                with anyio.fail_after(10):
                    third = await plugin.cancel(request_for(sim, handle_3))
    failure = info.value.failure
    assert first.record_handle == handle_1 and third.record_handle == handle_3
    assert failure.reason is FailureReason.TRANSPORT_FAILURE, failure
    assert failure.may_have_acted is False
    assert failure.message is not None and "nothing was sent" in failure.message
    assert what in failure.message
    assert SECRET not in failure.message and SECRET not in repr(logs)
    assert [c.status for c in sim.cancels] == statuses  # the second not written again
    assert [a.record_handle for a in recorder.acks] == [handle_1, handle_3]


# -- 4. Retry-After on a 503 or 429 --------------------------------------------------------------

UNAVAILABLE = b'{"statusCode":4,"statusMessage":"Voice service is not available at this time"}'


def _cancels_answered(
    answers: list[bytes | None], arrived: list[float]
) -> Callable[[bytes, bytes], bytes | None]:
    """A proxy rule: the n-th cancel POST is answered with ``answers[n]`` by the proxy (GWS
    never gets it), or passes on to GWS when that is None or the list is used up;
    ``arrived`` gets the loop's time of each cancel POST."""

    def answer(head: bytes, _body: bytes) -> bytes | None:
        if not _is_cancel(head, _body):
            return None
        arrived.append(anyio.current_time())
        return answers[len(arrived) - 1] if len(arrived) <= len(answers) else None

    return answer


def _unavailable(retry_after: bytes, status: bytes = b"503 Service Unavailable") -> bytes:
    body = UNAVAILABLE if status.startswith(b"503") else b"Too many requests"
    kind = b"application/json" if status.startswith(b"503") else b"text/plain"
    return (
        b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nRetry-After: %s\r\n\r\n"
        % (status, kind, len(body), retry_after)
        + body
    )


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(b"503 Service Unavailable", b"1"), (b"429 Too Many Requests", b"1")],
    ids=["503", "429"],
)
async def test_retry_after_is_honoured_within_the_retry_policy(
    pm: pluggy.PluginManager,
    sim: GWSSimulator,
    recorder: Recorder,
    status: bytes,
    retry_after: bytes,
) -> None:
    """GWS answers the cancel 503 (its ``statusCode`` 4) or a rate limiter 429, both with
    ``Retry-After: 1``: nothing was processed, and the server says when to come back. The
    retry policy would wait 0.5 s (``retry_backoff``; 1.5 s in all for two retries). Before,
    the header was ignored (the second attempt came 0.5 s later) and a 429 was not retried at all
    (``transport_failure`` at once). Now the wait is the longer of the two, within what the
    policy waits in all (so ``outcome_bound`` holds), and the cancel is acknowledged."""
    arrived: list[float] = []
    rule = _cancels_answered([_unavailable(retry_after, status)], arrived)
    handle = handles(sim, 1)[0]
    async with StallingProxy(sim.port, answer=rule) as proxy:
        config = fast_config(proxy.base_url, retries=2, retry_backoff=0.5)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(10):
                ack = await plugin.cancel(request_for(sim, handle))
    assert ack.record_handle == handle
    assert len(arrived) == 2
    assert arrived[1] - arrived[0] >= 1.0  # the loop's clock: not before the server asked
    assert [c.status for c in sim.cancels] == [200]
    assert recorder.failures == []


async def test_a_retry_after_beyond_the_retry_policy_ends_the_retries(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """Every attempt is answered 503 with ``Retry-After: 1``; the policy waits 0.5 s, then
    1 s (1.5 s in all). The first wait is 1 s as asked; the second would take the waits past
    the policy's 1.5 s (and the request past ``outcome_bound``): the request is not tried again
    and fails with GWS's refusal (``rejected``, nothing processed), saying why. A
    ``Retry-After: 120`` ends it after the first attempt."""
    handle_1, handle_2 = handles(sim, 2)
    arrived: list[float] = []
    answers = [_unavailable(b"1"), _unavailable(b"1"), _unavailable(b"120")]
    rule = _cancels_answered(answers, arrived)
    async with StallingProxy(sim.port, answer=rule) as proxy:
        config = fast_config(proxy.base_url, retries=2, retry_backoff=0.5)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(10), pytest.raises(CancelFailed) as first:
                await plugin.cancel(request_for(sim, handle_1))
            with anyio.fail_after(10), pytest.raises(CancelFailed) as second:
                await plugin.cancel(request_for(sim, handle_2))
    assert len(arrived) == 3  # two attempts of the first, one of the second
    assert arrived[1] - arrived[0] >= 1.0
    for info, attempts in ((first, 2), (second, 1)):
        failure = info.value.failure
        assert failure.reason is FailureReason.REJECTED, failure
        assert failure.status_code == 4 and failure.may_have_acted is False
        assert failure.message is not None and "Retry-After" in failure.message, failure
        assert f"after {attempts} attempt" in failure.message
    assert sim.cancels == []


async def test_the_waits_asked_before_a_relogin_count_after_it(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A cancel answered 503 with ``Retry-After: 1`` (waited 1 s where the policy waits
    0.25 s), then refused unread (401), then after the re-login 503 ``Retry-After: 1`` again.
    The policy waits 1.75 s in all (0.25 + 0.5 + 1), and ``outcome_bound`` counts that much.
    Before, the round after the re-login counted the waits before it as the policy's own
    (0.25 s), not as the 1 s they took, so it waited another second: 2 s of waits, past what
    the bound counts. Now the second ``Retry-After`` would take the waits past the policy's
    total: the cancel is not tried again and ends with GWS's refusal, saying why."""
    arrived: list[float] = []
    rule = _cancels_answered([_unavailable(b"1"), None, _unavailable(b"1")], arrived)
    handle = handles(sim, 1)[0]
    async with StallingProxy(sim.port, answer=rule) as proxy:
        config = fast_config(proxy.base_url, retries=3, retry_backoff=0.25)
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.unauthorized(count=1)
            with captured_logs() as logs, anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                await plugin.cancel(request_for(sim, handle))
    waits = [e["delay"] for e in logs if e.get("event") == "gws_request_retry"]
    assert sum(waits) <= 0.25 + 0.5 + 1.0, waits
    assert len(arrived) == 3
    failure = info.value.failure
    assert failure.reason is FailureReason.REJECTED, failure
    assert failure.status_code == 4 and failure.may_have_acted is False
    assert failure.message is not None and "Retry-After" in failure.message, failure
    assert sim.cancels and [c.status for c in sim.cancels] == [401]


async def test_the_waits_asked_before_a_sender_was_interrupted_count_after_it(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The same with a host cancelling the plugin's tasks (a plain ``task.cancel()``) while
    the session waits the 1 s the first ``Retry-After`` asked: the sender goes on where the
    retries stood, but counted the wait before as the policy's 0.25 s, and waited another
    second for the second ``Retry-After``. Now the wait as it was carries over too."""
    arrived: list[float] = []
    rule = _cancels_answered([_unavailable(b"1"), _unavailable(b"1")], arrived)
    handle = handles(sim, 1)[0]
    async with StallingProxy(sim.port, answer=rule) as proxy:
        config = fast_config(proxy.base_url, retries=3, retry_backoff=0.25)
        with captured_logs() as logs:
            async with OutboundPlugin(pm, config) as plugin:
                ticket = plugin.submit(request_for(sim, handle))
                await until(lambda: events_named(logs, "gws_request_retry"), "the first wait")
                for task in plugin_tasks():
                    task.cancel()
                with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                    await ticket
    waits = [e["delay"] for e in events_named(logs, "gws_request_retry")]
    assert sum(waits) <= 0.25 + 0.5 + 1.0, waits
    assert len(arrived) == 2
    failure = info.value.failure
    assert failure.reason is FailureReason.REJECTED, failure
    assert failure.message is not None and "Retry-After" in failure.message, failure
    assert sim.cancels == []


def test_retry_after_values() -> None:
    """The two forms of ``Retry-After``: seconds, and an HTTP date (a past one is ``0``);
    anything else is ignored (the policy's own delay applies)."""
    from gws_outbound_plugin._session import retry_after_seconds

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert 80_000 < (retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT") or 0) <= 86_400
    for unreadable in (None, "", "-1", "1.5", "soon", "٣"):
        assert retry_after_seconds(unreadable) is None


# -- 5. the re-login round, counted in the bound ---------------------------------------------------


async def test_a_relogin_round_ends_with_its_own_answer_within_the_bound(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """GWS answers a cancel 503 (its ``statusCode`` 4: nothing processed), the retry 401
    (refused unread), and after the re-login 503 again. Before, the re-login gave the POST a
    fresh round of retries that ``outcome_bound`` did not count: the session waited
    ``retry_backoff`` again and the request's deadline came first, ending it not as GWS
    answered it but as the deadline found it ("GWS got none of its attempts within 4.15s",
    or, with an attempt in flight then, ``outcome_unknown`` for a request GWS went on to
    process). Now one re-login is counted in the bound (the login and the attempt after it,
    ``request_timeout`` each) and the retries go on where they stood: the 503 after the
    re-login was the last attempt the policy allows, and the request ends with GWS's own
    answer (``rejected``, ``statusCode`` 4), within the bound the plugin reports (the loop's
    clock)."""
    config = fast_config(
        sim.base_url,
        request_timeout=0.5,
        retries=1,
        retry_backoff=2.5,
        ack_timeout=0.1,
        merge_window=0.05,
    )
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        bound = plugin.outcome_bound
        sim.faults.http_error(503, count=1)
        sim.faults.unauthorized(count=1)
        sim.faults.http_error(503, count=None)
        request = request_for(sim, handle)
        accepted = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await plugin.cancel(request)
        decided = anyio.current_time()
        await anyio.sleep(config.retry_backoff + 0.5)  # past when a fresh round would write
        sim.faults.clear()
    failure = info.value.failure
    assert [c.status for c in sim.cancels] == [503, 401, 503]
    assert failure.reason is FailureReason.REJECTED, failure
    assert failure.status_code == 4 and failure.may_have_acted is False
    assert decided - accepted <= bound
    assert [f.request for f in recorder.failures] == [request]
    # CometD wait, two attempts, the login and the attempt after it; one backoff.
    assert bound == pytest.approx(0.5 + 0.5 * (2 + 2) + 2.5 + 0.1 + 0.05)


def test_the_bound_counts_one_relogin() -> None:
    """``outcome_bound`` with the defaults: CometD (10 s), three attempts and the re-login's
    login and attempt (10 s each), the backoffs (0.2 + 0.4 s), the acknowledgement (10 s)
    and the merge window (0.25 s)."""
    from gws_outbound_plugin import GWSConfig, make_plugin_manager

    config = GWSConfig(base_url="https://gws.example.com", username="agent1", password="pw")
    plugin = OutboundPlugin(make_plugin_manager(load_entrypoints=False), config)
    assert plugin.outcome_bound == pytest.approx(10 + 10 * (3 + 2) + 0.6 + 10 + 0.25)


async def test_a_request_waiting_for_another_ones_relogin_takes_its_result(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """Two cancels refused unread (401). The first's re-login is slow and GWS answers it 503
    (its ``statusCode`` 4); the second's 401 comes while that login is under way, and it waits
    for it. Before, the second then logged in again itself, with retries of its own (two
    logins, each with a round of retries, none of which ``outcome_bound`` counted). Now a
    request waits for one login at most, as the bound counts: the login it waited for decides
    for it too (its failure: nothing of the POST was processed), and nobody logs in a third
    time."""
    logins = 0
    unavailable = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(UNAVAILABLE) + UNAVAILABLE
    )

    def is_login(head: bytes) -> bool:
        return head.startswith(b"GET /api/v2/me ")

    def answer(head: bytes, _body: bytes) -> bytes | None:
        return unavailable if is_login(head) and logins >= 2 else None

    def hold(head: bytes, _body: bytes) -> float:
        nonlocal logins
        if not is_login(head):
            return 0.0
        logins += 1
        return 0.5 if logins == 2 else 0.0  # the re-login: slow

    handle_1, handle_2 = handles(sim, 2)
    async with StallingProxy(sim.port, answer=answer, hold=hold) as proxy:
        config = fast_config(proxy.base_url, retries=2, retry_backoff=0.01)
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.unauthorized(count=2)
            first = plugin.submit(request_for(sim, handle_1))
            with anyio.fail_after(5):
                while logins < 2:  # the first's re-login is under way
                    await anyio.sleep(0.01)
            second = plugin.submit(request_for(sim, handle_2))
            failures = []
            for ticket in (first, second):
                with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                    await ticket
                failures.append(info.value.failure)
    assert logins == 2  # the start, and the one re-login both waited for
    assert [c.status for c in sim.cancels] == [401, 401]
    for failure in failures:
        assert failure.reason is FailureReason.AUTHENTICATION_FAILED, failure
        assert failure.may_have_acted is False
        assert failure.message is not None and "logging in again failed" in failure.message
