"""The promise, broken again and fixed (after tests/faults/test_promise_found.py to 5): each
test here failed before its fix. Every accepted request ends in exactly one outcome, its own,
within the documented bound, whatever the server, the network, plugins or cancellation do."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for, until
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


def _handshakes(sim: GWSSimulator) -> int:
    return sum("/meta/handshake" in r.bayeux_channels for r in sim.requests)


# -- a lost CometD session while GWS's refusal of the POST has it waiting to be resent --------


async def test_a_session_lost_while_a_post_waits_to_be_resent_does_not_end_it(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A GWS node restarts: our cancel's POST is answered 503 with GWS's ``statusCode`` 4
    (GWS changed nothing; the plugin sends it again after ``retry_backoff``), and the CometD
    session is lost (``402::Unknown client``) and restored during that wait. GWS then
    accepts the POST written again, and OCS acknowledges the cancel on the restored session.

    Before, the grace period after the restoration ended the cancel as ``outcome_unknown``
    ("GWS may have acted on the request") while its POST was still waiting to be written
    again: nothing of it could have been published during the loss (GWS had refused it
    unread), and the acknowledgement that came a moment later was dropped as late. A request
    whose POST GWS has not answered is now decided by that answer (and its acknowledgement
    after it), not by the grace period: it is acknowledged."""
    config = fast_config(sim.base_url, retry_backoff=1.0, ack_timeout=3.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.http_error(503, count=1)  # {"statusCode": 4}: resent after retry_backoff
        request = request_for(sim, handle)
        ticket = plugin.submit(request)
        await until(lambda: [c.status for c in sim.cancels] == [503], "the first attempt")
        before = _handshakes(sim)
        assert sim.forget_cometd_clients() == 1
        await until(lambda: _handshakes(sim) == before + 1, "the re-handshake")
        await plugin.wait_connected(timeout=5)
        with anyio.fail_after(10):
            ack = await ticket
        await plugin.wait_hooks_idle(5)
    assert [c.status for c in sim.cancels] == [503, 200]
    assert ack.reference_id == request.reference_id
    assert [a.request.reference_id for a in recorder.acks if a.request] == [request.reference_id]
    assert recorder.failures == []
