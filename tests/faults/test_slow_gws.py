"""A GWS, node or network that drips its answers (one byte at a time, each byte within
httpx's read timeout) against the promise, hunt 18. httpx's timeouts bound each step of an
exchange on its own, so before, a dripping answer held its exchange for as long as it
dripped: a POST worker (the requests queued behind it failed at their deadline, never sent)
or entering the plugin (for ever). Each test failed before its fix (checked on the parent
commit)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import GWSTransportError, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import StallingProxy, handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

#: Seconds between two bytes of a dripping answer: each byte well within the read timeout
#: of the tests (0.5 s), the whole answer (some 150 bytes) far beyond their outcome bound.
GAP = 0.2


async def test_a_dripping_answer_does_not_hold_the_requests_queued_behind_it(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """One POST worker; the answer to the first cancel drips (GWS processed it: OCS cancels
    the record and its acknowledgement arrives over CometD), the second cancel's is quick.
    Before, the dripping answer held the worker past ``request_timeout`` and the outcome
    bound: the second cancel, never sent, failed at its deadline (``transport_failure``,
    "not sent within ...") although GWS was there to take it. Now an exchange gets
    ``request_timeout`` in all: the first POST's wait ends as a read timeout (written, so
    never resent), its acknowledgement decides it, and the second cancel is sent and
    acknowledged."""
    first, second = (request_for(sim, handle) for handle in handles(sim, 2))

    def trickle(head: bytes, body: bytes) -> float:
        is_first = head.startswith(b"POST ") and first.reference_id.encode() in body
        return GAP if is_first else 0.0

    async with StallingProxy(sim.port, trickle=trickle) as proxy:
        config = fast_config(proxy.base_url, request_timeout=0.5, max_concurrent_requests=1)
        async with OutboundPlugin(pm, config) as plugin:
            tickets = [plugin.submit(first), plugin.submit(second)]
            with anyio.fail_after(2 * plugin.outcome_bound):
                acks = [await ticket for ticket in tickets]
            assert await plugin.wait_hooks_idle(5)
    assert [ack.reference_id for ack in acks] == [first.reference_id, second.reference_id]
    for request in (first, second):
        assert [call.hook for call in recorder.outcomes_for(request.reference_id)] == [
            "on_record_cancel_acknowledged"
        ]
    # Each POST written once: the dripping one was not sent again.
    posted = [entry.reference_id for entry in sim.journal]
    assert sorted(posted) == sorted([first.reference_id, second.reference_id])


async def test_a_dripping_login_does_not_hold_the_start(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """GWS drips its answer to the login (``GET /api/v2/me``). Before, entering the plugin
    never ended (each byte came within the read timeout); now each attempt gets
    ``request_timeout`` in all, and entering fails as after any login without an answer:
    ``GWSTransportError`` naming the wait, nothing registered."""

    def trickle(head: bytes, _body: bytes) -> float:
        return GAP if head.startswith(b"GET /api/v2/me ") else 0.0

    async with StallingProxy(sim.port, trickle=trickle) as proxy:
        config = fast_config(proxy.base_url, request_timeout=0.5)
        with anyio.fail_after(30), pytest.raises(GWSTransportError) as info:
            async with OutboundPlugin(pm, config):
                pytest.fail("the plugin started on a login that never finished")
    assert "GET /api/v2/me" in str(info.value)
    assert "no answer within 0.5s" in str(info.value)
    assert pm.get_plugin("gws_outbound_core") is None
    assert recorder.calls == []
