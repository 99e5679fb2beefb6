"""The sending side tells "certainly not sent" from "may have been processed" (the difference a
host retries on: ``may_have_acted``), whatever a request subclass, GWS's refusals, the
request's deadline, the plugin's close or a plain ``task.cancel()`` do between attempts.
Each test failed before its fix (``outcome_unknown``, "GWS may have acted", or another
client's answer taken as the request's, for a request GWS never got)."""

from __future__ import annotations

import math
from typing import Any

import anyio
import anyio.lowlevel
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelRequest,
    FailureReason,
    InvalidCancelRequest,
    InvalidOperationRequest,
    OutboundPlugin,
    RejectRecordRequest,
)
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.conftest import fast_config
from tests.faults.support import (
    another_desktop_cancels,
    handles,
    plugin_tasks,
    rebuilt,
    request_for,
    until,
)
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

#: What a host's code might put in an exception text: it must not reach an outcome's message.
SECRET_TEXT = "token=hunter2"


def _break(request: Any) -> None:
    """What a broken subclass's method reads changes (kept in the instance's dict: the
    request is frozen): set right after the request was accepted, before a worker takes it
    (no checkpoint in between)."""
    request.__dict__["broken"] = True


class PathRaises(CancelRequest):
    """A host's subclass whose ``gws_path()`` raises."""

    def gws_path(self) -> str:
        raise RuntimeError(SECRET_TEXT)


class BodyRaises(RejectRecordRequest):
    """A host's subclass whose ``to_gws_body()`` raises."""

    def to_gws_body(self) -> dict[str, Any]:
        raise ValueError(SECRET_TEXT)


class BodyNotJSON(CancelRequest):
    """A host's subclass whose body holds what JSON cannot carry."""

    def to_gws_body(self) -> dict[str, Any]:
        return {**CancelRequest.to_gws_body(self), "weight": math.nan}


def _too_deep() -> list[Any]:
    """A list nested deeper than the JSON encoder can recurse (it raises ``RecursionError``,
    neither ``TypeError`` nor ``ValueError``)."""
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    return nested


class BodyTooDeep(CancelRequest):
    """A host's subclass whose body is nested too deep to be written as JSON."""

    def to_gws_body(self) -> dict[str, Any]:
        return {**CancelRequest.to_gws_body(self), "extra": _too_deep()}


class BodyRaisesWhenSent(CancelRequest):
    """A host's subclass whose ``to_gws_body()`` raises once :func:`_break` was called (what
    it reads changed after the request was accepted)."""

    def to_gws_body(self) -> dict[str, Any]:
        if self.__dict__.get("broken"):
            raise KeyError(SECRET_TEXT)
        return CancelRequest.to_gws_body(self)


class BodyNotJSONWhenSent(CancelRequest):
    """Like :class:`BodyRaisesWhenSent`, with a body that cannot be written as JSON (the
    default transport finds out, before writing anything)."""

    def to_gws_body(self) -> dict[str, Any]:
        body = CancelRequest.to_gws_body(self)
        if self.__dict__.get("broken"):
            body["weight"] = math.inf
        return body


# -- 1. a request whose POST cannot be made ------------------------------------------------------


@pytest.mark.virtual_clock
class TestARequestWhosePostCannotBeMade:
    @pytest.mark.parametrize(
        ("kind", "error", "method"),
        [
            (PathRaises, InvalidCancelRequest, "gws_path() raised RuntimeError"),
            (BodyRaises, InvalidOperationRequest, "to_gws_body() raised ValueError"),
            (BodyNotJSON, InvalidCancelRequest, "not JSON"),
            (BodyTooDeep, InvalidCancelRequest, "not JSON (RecursionError)"),
        ],
        ids=["path", "body", "not-json", "too-deep"],
    )
    async def test_is_refused_before_it_is_accepted(
        self,
        pm: pluggy.PluginManager,
        recorder: Recorder,
        kind: type[Any],
        error: type[Exception],
        method: str,
    ) -> None:
        """Before, it was accepted, marked as being sent, and its POST raised while being
        made: the host was told ``outcome_unknown`` ("GWS may have acted"), though nothing
        was written. It is refused as invalid input now, like a field that fails
        validation: no ticket, nothing sent, no outcome hook."""
        fake = FakeGWS()
        request = rebuilt(kind, request_for(fake, handles(fake, 1)[0]))
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            with pytest.raises(error) as info:
                plugin.submit(request)
            assert plugin.pending_count == 0
        refusal = str(info.value)
        assert type(info.value) is error
        assert kind.__name__ in refusal and method in refusal
        assert "nothing was sent" in refusal
        assert SECRET_TEXT not in refusal
        assert fake.posts == []
        assert recorder.calls == []

    async def test_that_raises_only_when_sent_fails_as_certainly_not_sent(
        self, pm: pluggy.PluginManager, recorder: Recorder
    ) -> None:
        """Its body could be made when it was accepted, not when it was to be written.
        Before, ``outcome_unknown`` with ``may_have_acted`` (the worker's "unexpected error
        while sending: KeyError", after ``ack_timeout``); now a failure at once that says
        nothing was sent, naming the operation, the method and the error's type (not its
        text: it may hold what the host's code read)."""
        fake = FakeGWS()
        request = rebuilt(BodyRaisesWhenSent, request_for(fake, handles(fake, 1)[0]))
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            ticket = plugin.submit(request)
            _break(request)
            with pytest.raises(CancelFailed) as info:
                await ticket
        failure = info.value.failure
        assert failure.reason is FailureReason.TRANSPORT_FAILURE
        assert failure.may_have_acted is False
        assert failure.message is not None
        assert "CancelRecord" in failure.message
        assert "BodyRaisesWhenSent.to_gws_body() raised KeyError" in failure.message
        assert "nothing was sent" in failure.message
        assert SECRET_TEXT not in failure.message
        assert fake.posts == []
        assert [f.request for f in recorder.failures] == [request]


class WaitBreaks(FakeGWS):
    """A transport of a host's own whose ``wait_connected()`` raises (the sender awaits it
    before writing a request while the CometD session is down)."""

    async def wait_connected(self) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError(SECRET_TEXT)


@pytest.mark.virtual_clock
async def test_an_unexpected_error_before_the_post_is_written_fails_it_at_once(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The worker's ``wait_connected()`` raised before anything was written. Before, the
    worker reported "unexpected error while sending" as a POST without an answer, which the
    correlator ignored for a request never written: the ticket waited for its deadline
    (``outcome_bound``) to end as not sent. It fails at once now, as not sent."""
    fake = WaitBreaks()
    config = fake_config()
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.lose_session()
        request = request_for(fake, handles(fake, 1)[0])
        ticket = plugin.submit(request)
        with anyio.fail_after(config.request_timeout), pytest.raises(CancelFailed) as info:
            await ticket  # on the virtual clock: well before the deadline
    failure = info.value.failure
    assert failure.reason is FailureReason.TRANSPORT_FAILURE
    assert failure.may_have_acted is False
    assert failure.message is not None
    assert "unexpected error before the cancel was written: RuntimeError" in failure.message
    assert SECRET_TEXT not in failure.message
    assert fake.posts == []


async def test_a_body_that_is_not_json_when_sent_is_not_written(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The default transport could not write the body as JSON (``inf``): nothing was
    written. Before, the encoder's ``ValueError`` left ``GWSSession.post_operation`` as it
    was, and the worker counted the request as written without an answer
    (``outcome_unknown``); now the session says it sent nothing, and the request fails as not
    sent."""
    request = rebuilt(BodyNotJSONWhenSent, request_for(sim, handles(sim, 1)[0]))
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        ticket = plugin.submit(request)
        _break(request)
        with anyio.fail_after(5), pytest.raises(CancelFailed) as info:
            await ticket
    failure = info.value.failure
    assert failure.reason is FailureReason.TRANSPORT_FAILURE
    assert failure.may_have_acted is False
    assert failure.message is not None and "JSON" in failure.message
    assert "nothing was sent" in failure.message
    assert sim.cancels == []


async def test_the_session_refuses_a_body_that_is_not_json_before_writing(
    sim: GWSSimulator,
) -> None:
    """``GWSSession.post_operation`` with a body JSON cannot carry raises the plain
    ``GWSTransportError`` ("certainly not processed"), not the encoder's ``ValueError`` or
    ``TypeError``."""
    from gws_outbound_plugin import GWSTransportError
    from gws_outbound_plugin._session import GWSNoAnswerError

    session = GWSSession(fast_config(sim.base_url))
    await session.open()
    try:
        request = request_for(sim, handles(sim, 1)[0])
        for bad in (math.nan, {1, 2}, "\ud83d", _too_deep()):
            body = {**request.to_gws_body(), "extra": bad}
            with pytest.raises(GWSTransportError) as info:
                await session.post_operation(request.gws_path(), body)
            assert not isinstance(info.value, GWSNoAnswerError)
            assert "nothing was sent" in str(info.value)
    finally:
        await session.close()
    assert sim.cancels == []


# -- 2. the deadline, or the close, between two attempts GWS certainly did not get ---------------


# The deadline coming between two attempts after a re-login (503, 401, re-login, 503, and the
# deadline during the backoff) cannot happen any more: the re-login is counted in the bound and
# the retries go on where they stood (tests/faults/test_sending3.py,
# test_a_relogin_round_ends_with_its_own_answer_within_the_bound). The deadline during a backoff
# of a request that started late is tests/faults/test_attribution5.py,
# test_no_post_is_written_again_for_a_request_that_has_its_outcome.


async def test_closing_between_attempts_gws_did_not_get_is_shut_down(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The plugin closes while a request waits ``retry_backoff`` after a 503 with GWS's
    ``statusCode`` 4. Before, the close decided it ``outcome_unknown`` (it was "sent");
    GWS got none of its attempts: it ends ``shut_down`` (``may_have_acted`` false)."""
    config = fast_config(sim.base_url, retry_backoff=5.0, drain_timeout=0.2)
    handle = handles(sim, 1)[0]
    sim.faults.http_error(503, count=None)
    request = request_for(sim, handle)
    async with OutboundPlugin(pm, config) as plugin:
        ticket = plugin.submit(request)
        await until(lambda: [c.status for c in sim.cancels] == [503], "the first attempt")
    sim.faults.clear()
    failure = ticket.outcome
    assert failure is not None and failure.reason is FailureReason.SHUT_DOWN, failure
    assert failure.may_have_acted is False
    assert [c.status for c in sim.cancels] == [503]
    assert [f.request for f in recorder.failures] == [request]


async def test_a_deadline_after_an_attempt_that_may_have_been_processed_stays_unknown(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The other side of the line: the POST was written and GWS did not answer it in time
    (a read timeout: it may have been processed); it is not written again, and without an
    acknowledgement it stays ``outcome_unknown`` ("GWS may have acted")."""
    config = fast_config(sim.base_url, request_timeout=0.5, ack_timeout=0.2)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.slow_answer(1.0)
        sim.faults.drop_notifications("both")
        request = request_for(sim, handle)
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await plugin.cancel(request)
    failure = info.value.failure
    assert len(sim.cancels) == 1
    assert failure.reason is FailureReason.OUTCOME_UNKNOWN, failure
    assert failure.may_have_acted is True


# -- 3. a plain task.cancel() of the sender between two attempts --------------------------------


async def test_a_worker_cancelled_between_attempts_sends_the_request_again(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A cancel's first POST is answered 503 (``statusCode`` 4: GWS changed nothing);
    while the session waits ``retry_backoff`` to write it again, another desktop of the agent
    cancels the same record (OCS's user event without a referenceId), and the host cancels
    every task of the plugin with a plain ``task.cancel()``.

    Before, the worker took the cancellation back and reported the POST "interrupted: GWS
    may have processed it", so the other desktop's answer, matched by key, acknowledged our
    cancel, which GWS never got (the host believed its record cancelled by its own request,
    with the other desktop's user data). Between attempts nothing of the request may have
    been processed: the worker sends it again, and it ends with its own answer (here OCS's
    refusal); the other desktop's acknowledgement is reported as another client's."""
    config = fast_config(sim.base_url, retry_backoff=3.0, ack_timeout=3.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.http_error(503, count=1)
        request = request_for(sim, handle)
        ticket = plugin.submit(request)
        await until(lambda: [c.status for c in sim.cancels] == [503], "the first attempt")
        await another_desktop_cancels(sim, handle)
        await until(lambda: len(recorder.user_events) == 1, "the other desktop's user event")
        await anyio.sleep(config.merge_window * 2)  # its merge window ended
        assert [c.status for c in sim.cancels] == [503, 200]  # ours not written again yet
        sim.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        own = plugin_tasks()
        for task in own:
            task.cancel()
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await ticket
        await plugin.wait_hooks_idle(5)
    assert [c.status for c in sim.cancels] == [503, 200, 200]
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR, failure
    assert failure.error_number == 100
    assert [f.request for f in recorder.failures] == [request]
    assert [ack.request for ack in recorder.acks] == [None]  # the other desktop's


async def test_a_worker_cancelled_mid_write_still_counts_it_as_maybe_processed(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The other side of the line: the worker is cancelled while GWS holds the answer to the
    POST (written: it may have been processed). It is not written again, and its own
    acknowledgement still counts."""
    config = fast_config(sim.base_url, request_timeout=3.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.slow_answer(1.0)
        request = request_for(sim, handle)
        ticket = plugin.submit(request)
        await until(lambda: len(sim.cancels) == 1, "the POST")
        own = plugin_tasks()
        for task in own:
            task.cancel()
        with anyio.fail_after(10):
            ack = await ticket
    assert ack.request == request
    assert len(sim.cancels) == 1
