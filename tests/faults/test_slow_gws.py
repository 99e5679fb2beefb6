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

from gws_outbound_plugin import CancelFailed, GWSTransportError, OutboundPlugin
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


async def test_a_post_given_up_while_its_answer_drips_is_never_sent_again(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """GWS takes the cancel (OCS acts on it, its outcome is never published) and drips the
    answer: the exchange is given up at ``request_timeout`` with the request written, so it
    may have been processed: never sent again (a second copy could act twice), and it ends
    as a request whose outcome was not heard, ``may_have_acted``. Were the given-up exchange
    taken for one never written (``_transport.Progress``), the retry policy
    would send it again."""
    (request,) = (request_for(sim, handle) for handle in handles(sim, 1))
    sim.faults.drop_notifications(count=None)

    def trickle(head: bytes, _body: bytes) -> float:
        return GAP if head.startswith(b"POST /api/v2/me/outbound-records/") else 0.0

    async with StallingProxy(sim.port, trickle=trickle) as proxy:
        config = fast_config(proxy.base_url, request_timeout=0.5)
        async with OutboundPlugin(pm, config) as plugin:
            assert plugin.config.retries > 0  # a resend was possible
            ticket = plugin.submit(request)
            with anyio.fail_after(2 * plugin.outcome_bound), pytest.raises(CancelFailed) as info:
                await ticket
            assert await plugin.wait_hooks_idle(5)
    failure = info.value.failure
    assert failure.reason in {"timed_out", "outcome_unknown"}
    assert failure.may_have_acted
    assert [entry.reference_id for entry in sim.journal] == [request.reference_id]
    assert [call.hook for call in recorder.outcomes_for(request.reference_id)] == [
        "on_cancel_failed"
    ]
