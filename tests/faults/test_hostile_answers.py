"""GWS answers a POST with a body nested deeper than Python's JSON parser goes (a broken or
hostile node behind a proxy): the answer is read as one that is no GWS answer, exactly as a
body that is no JSON at all. ``json.loads`` raises ``RecursionError`` there, which is no
``ValueError``: it escaped the session's parsing, the sender logged a crash (with a traceback
whose frames hold the request's headers) and ended the request "may have been processed",
even for a 4xx that GWS refused unread."""

from __future__ import annotations

from collections.abc import Callable

import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    FailureReason,
    GWSTransportError,
    OutboundPlugin,
)
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import (
    StallingProxy,
    captured_logs,
    events_named,
    handles,
    request_for,
)

pytestmark = pytest.mark.anyio

#: Deeper than the JSON parser's recursion limit: ``json.loads`` raises RecursionError.
TOO_DEEP = b"[" * 100_000 + b"]" * 100_000
#: No JSON at all: ``json.loads`` raises ValueError.
BROKEN = b"{"


def post_answer(status: int, *bodies: bytes) -> Callable[[bytes, bytes], bytes | None]:
    """A proxy rule: outbound-record POSTs answered ``status``, the first with the first of
    ``bodies`` (JSON), the next with the next one, and so on (the last one for the rest)."""
    reason = {200: b"OK", 400: b"Bad Request", 503: b"Service Unavailable"}[status]
    posts = 0

    def answer(head: bytes, _body: bytes) -> bytes | None:
        nonlocal posts
        if not head.startswith(b"POST /api/v2/me/outbound-records/"):
            return None
        body = bodies[min(posts, len(bodies) - 1)]
        posts += 1
        length = str(len(body)).encode()
        return (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n"
            % (status, reason, length)
        ) + body

    return answer


async def session_errors(sim: GWSSimulator, status: int, *bodies: bytes) -> list[Exception]:
    """What ``GWSSession.post_operation`` raises for a cancel GWS answers ``status`` with
    each of ``bodies`` (no retries: one POST each)."""
    request = request_for(sim, handles(sim, 1)[0])
    errors: list[Exception] = []
    async with StallingProxy(sim.port, answer=post_answer(status, *bodies)) as proxy:
        session = GWSSession(fast_config(proxy.base_url, retries=0))
        await session.open()
        try:
            for _ in bodies:
                try:
                    await session.post_operation(request.gws_path(), request.to_gws_body())
                except Exception as error:
                    errors.append(error)
                else:
                    raise AssertionError("the POST was taken as accepted")
        finally:
            await session.close()
    return errors


@pytest.mark.parametrize("status", [200, 400, 503])
async def test_a_body_too_deep_to_parse_is_read_as_no_gws_answer(
    sim: GWSSimulator, status: int
) -> None:
    deep, broken = await session_errors(sim, status, TOO_DEEP, BROKEN)
    assert isinstance(broken, GWSTransportError)
    assert type(deep) is type(broken)
    assert str(deep) == str(broken)


async def test_a_refusal_too_deep_to_parse_is_certainly_not_processed(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """A 4xx is refused unread whatever its body: the cancel fails ``transport_failure``
    (``may_have_acted`` false) at once, and no crash is logged."""
    request = request_for(sim, handles(sim, 1)[0])
    async with StallingProxy(sim.port, answer=post_answer(400, TOO_DEEP)) as proxy:
        with captured_logs() as logs:
            async with OutboundPlugin(pm, fast_config(proxy.base_url)) as plugin:
                with pytest.raises(CancelFailed) as info:
                    await plugin.cancel(request)
    failure = info.value.failure
    assert failure.reason is FailureReason.TRANSPORT_FAILURE, failure.message
    assert not failure.may_have_acted
    assert events_named(logs, "request_send_crashed") == []
    assert not sim.records[request.record_handle].cancelled
