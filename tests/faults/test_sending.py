"""The sending side tells "certainly not sent" from "may have been processed" (the difference a
host retries on: ``may_have_acted``), whatever a request subclass, GWS's refusals, the
request's deadline, the plugin's close or a plain ``task.cancel()`` do between attempts.
Each test failed before its fix (``outcome_unknown``, "GWS may have acted", or another
client's answer taken as the request's, for a request GWS never got)."""

from __future__ import annotations

import math
from typing import Any

import anyio
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
from tests.faults.support import handles, request_for
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


def _rebuilt(kind: type[Any], request: CancelRequest) -> Any:
    return kind(
        record_handle=request.record_handle,
        application_id=request.application_id,
        campaign_name=request.campaign_name,
        calling_list=request.calling_list,
        device_path=request.device_path,
    )


# -- 1. a request whose POST cannot be made ------------------------------------------------------


@pytest.mark.virtual_clock
class TestARequestWhosePostCannotBeMade:
    @pytest.mark.parametrize(
        ("kind", "error", "method"),
        [
            (PathRaises, InvalidCancelRequest, "gws_path() raised RuntimeError"),
            (BodyRaises, InvalidOperationRequest, "to_gws_body() raised ValueError"),
            (BodyNotJSON, InvalidCancelRequest, "not JSON"),
        ],
        ids=["path", "body", "not-json"],
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
        request = _rebuilt(kind, request_for(fake, handles(fake, 1)[0]))
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
        request = _rebuilt(BodyRaisesWhenSent, request_for(fake, handles(fake, 1)[0]))
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


async def test_a_body_that_is_not_json_when_sent_is_not_written(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """The default transport could not write the body as JSON (``inf``): nothing was
    written. Before, the encoder's ``ValueError`` left ``GWSSession.post_operation`` as it
    was, and the worker counted the request as written without an answer
    (``outcome_unknown``); now the session says it sent nothing, and the request fails as not
    sent."""
    request = _rebuilt(BodyNotJSONWhenSent, request_for(sim, handles(sim, 1)[0]))
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
        for bad in (math.nan, {1, 2}, "\ud83d"):
            body = {**request.to_gws_body(), "extra": bad}
            with pytest.raises(GWSTransportError) as info:
                await session.post_operation(request.gws_path(), body)
            assert not isinstance(info.value, GWSNoAnswerError)
            assert "nothing was sent" in str(info.value)
    finally:
        await session.close()
    assert sim.cancels == []
