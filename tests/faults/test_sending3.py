"""The sending path against the promise (every accepted request ends in exactly one outcome,
its own, within the documented bound; no secret in a log, repr or exception), hunt 16: a
refusal of the POST after GWS answered it by reference, ``Retry-After``, a cookie or CSRF
token that cannot be written in a header, the re-login round and the bound. Each test failed
before its fix (checked on the parent commit)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import StallingProxy, handles, request_for
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
        config = fast_config(
            proxy.base_url, retries=retries, retry_backoff=0.05, ack_timeout=0.3
        )
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
    caller: asyncio.Task[None] | None = None

    async def step() -> None:
        if how == "fails-as-caller-cancelled":
            assert caller is not None
            await asyncio.sleep(0)
            caller.cancel()  # the host cancels the caller in the turn the step fails in
            raise _CleanupFailed
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise _CleanupFailed from None

    async def call() -> None:
        await _within(0.05 if how == "timeout" else 60, step())

    try:
        caller = asyncio.ensure_future(call())
        if how == "caller-cancelled":
            await asyncio.sleep(0.01)
            caller.cancel()
        outcome = (await asyncio.wait((caller,)))[0].pop()
        if how == "timeout":
            assert isinstance(outcome.exception(), TimeoutError)
        else:
            assert outcome.cancelled()
        del caller, outcome
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
