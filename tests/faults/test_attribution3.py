"""Attribution, broken again and fixed (after tests/faults/test_attribution.py,
test_attribution2.py and test_promise_found4.py): each test here failed before its fix. Every
accepted request ends in exactly one outcome, its own: no other client's answer taken as ours.
These run on ``FakeGWS`` and the virtual clock (the timelines are exact and cost no wall
time)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import handles, request_for, until
from tests.helpers import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_clock]


# -- M9 with M10: a refusal matched by key, then the request's own acknowledgement ----------


async def test_a_refusal_by_key_does_not_outweigh_the_request_s_own_acknowledgement(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Two desktops of the agent cancel the same record at once. OCS takes ours first and
    refuses the other desktop's (a ``GSW_ERROR`` user event, without a referenceId, as OCS
    sends it); that refusal reaches us first and is matched by key to our cancel, the one in
    flight on the record, while GWS has not answered our POST yet (M10: it decides nothing
    until GWS does). Then our cancel's acknowledgement notification arrives, carrying our
    referenceId (its user event is lost), and GWS answers our POST with ``statusCode`` 0,
    within the merge window.

    Before, GWS's answer to the POST decided by the refusal matched by key, although the
    acknowledgement with the request's own referenceId had arrived meanwhile: the host was
    told OCS refused its cancel (``ocs_error``, the other desktop's error number) for a
    record OCS had cancelled for it; had the merge window ended first, the same messages
    acknowledged it. A refusal without a referenceId is not the request's once its
    acknowledgement notification arrived (M9), whichever came first: it is acknowledged."""
    config = fake_config(merge_window=0.5, ack_timeout=5.0, request_timeout=5.0)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.slow_answer(1.0)  # GWS answers our POST at t + 1.0
        fake.faults.delay_notifications(0.8)  # OCS's answer to ours arrives at t + 0.8
        fake.faults.drop_notifications("user_event")  # ... without its user event
        request = request_for(fake, handle)
        ticket = plugin.submit(request)
        await until(lambda: len(cancels(fake)) == 1, timeout=30, step=0.001)
        # The other desktop's cancel of the same record: OCS refuses it at once.
        fake.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        other = request_for(fake, handle, reference_id="other-desktop-1")
        await fake.post_operation(other.gws_path(), other.to_gws_body())
        with anyio.fail_after(10):
            ack = await ticket
        await plugin.wait_hooks_idle(5)
    assert ack.reference_id == request.reference_id
    assert [a.request.reference_id for a in recorder.acks if a.request] == [request.reference_id]
    assert recorder.failures == []
