"""The promise, broken again and fixed (after tests/faults/test_promise_found.py, 2 and 3):
each test here failed before its fix. Every accepted request ends in exactly one outcome, its
own, within the documented bound, whatever the server, the network, plugins or cancellation
do. These run on ``FakeGWS`` and the virtual clock (the timelines are exact and cost no wall
time)."""

from __future__ import annotations

from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import FailureReason, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


@pytest.fixture
def fake() -> FakeGWS:
    return FakeGWS()


async def _until(condition: Any, step: float = 0.001) -> None:
    with anyio.fail_after(30):
        while not condition():
            await anyio.sleep(step)


# -- lead 1: the CometD session lost again during the grace period of a restoration -----------


async def test_a_grace_period_leaves_alone_what_was_lost_again_since(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The CometD session is lost and restored (a GWS node restarting); a cancel is sent
    right after, and OCS is slow to answer it. The session is lost again within the grace
    period of the first restoration (the node flapping) and restored once more; OCS's answer
    arrives on the restored session, within the grace period of the second restoration.

    With a single loss this cancel is acknowledged. Before, the first restoration's grace
    period, expiring while the session was down again, ended it at once as
    ``outcome_unknown`` ("GWS may have acted: look at the record"), and the acknowledgement
    that came a moment later was dropped as late: the host was told to check a record GWS
    had cancelled, earlier than the documented grace period said. A restoration's grace
    period now settles only what was lost before it and not lost again since; the later
    restoration's grace period settles the rest (the deadline still bounds it)."""
    config = fake_config(merge_window=1.0, ack_timeout=5.0)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.lose_session("re-handshake")
        fake.restore_session()  # grace period 1: until t + 1.0
        fake.faults.delay_notifications(1.2)
        request = request_for(fake, handles(fake, 1)[0])
        ticket = plugin.submit(request)
        await _until(lambda: len(cancels(fake)) == 1)
        await anyio.sleep(0.1)
        fake.lose_session("re-handshake")  # lost again, during grace period 1
        await anyio.sleep(0.4)
        fake.restore_session()  # grace period 2: until t + 1.5; the answer comes at t + 1.2
        with anyio.fail_after(10):
            ack = await ticket
    assert ack.reference_id == request.reference_id
    assert [a.reference_id for a in recorder.acks] == [request.reference_id]
    assert recorder.failures == []
