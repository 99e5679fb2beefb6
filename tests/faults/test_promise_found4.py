"""The promise, broken again and fixed (after tests/faults/test_promise_found.py, 2 and 3):
each test here failed before its fix. Every accepted request ends in exactly one outcome, its
own, within the documented bound, whatever the server, the network, plugins or cancellation
do. These run on ``FakeGWS`` and the virtual clock (the timelines are exact and cost no wall
time)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import another_desktop_answers, handles, request_for, until
from tests.helpers import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_clock]


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
        await until(lambda: len(cancels(fake)) == 1, timeout=30, step=0.001)
        await anyio.sleep(0.1)
        fake.lose_session("re-handshake")  # lost again, during grace period 1
        await anyio.sleep(0.4)
        fake.restore_session()  # grace period 2: until t + 1.5; the answer comes at t + 1.2
        with anyio.fail_after(10):
            ack = await ticket
    assert ack.reference_id == request.reference_id
    assert [a.reference_id for a in recorder.acks] == [request.reference_id]
    assert recorder.failures == []


async def test_a_request_lost_again_and_never_restored_ends_by_its_deadline(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The bound of the test above: the session is lost again during the grace period and
    does not come back. The first grace period leaves the request alone; its acknowledgement
    timer ends it (its deadline, ``OutboundPlugin.outcome_bound``, would else), and as
    ``outcome_unknown``, not ``timed_out``: its answer may have been published to nobody while
    the session was lost, as the documentation of a lost session says."""
    config = fake_config(merge_window=1.0, ack_timeout=5.0)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.lose_session("re-handshake")
        fake.restore_session()
        fake.faults.hold_notifications()
        request = request_for(fake, handles(fake, 1)[0])
        accepted_at = anyio.current_time()
        ticket = plugin.submit(request)
        await until(lambda: len(cancels(fake)) == 1, timeout=30, step=0.001)
        fake.lose_session("re-handshake")
        with anyio.fail_after(plugin.outcome_bound + 5), pytest.raises(CancelFailed) as info:
            await ticket
        ended_after = anyio.current_time() - accepted_at
        bound = plugin.outcome_bound
    assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert info.value.failure.may_have_acted is True
    assert ended_after <= bound + config.hook_timeout
    assert [f.request.reference_id for f in recorder.failures] == [request.reference_id]


# -- lead 4: an answer matched by key while the request's POST is unanswered -------------------


async def test_an_answer_by_key_is_not_the_request_s_when_gws_refuses_its_post(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A cancel is POSTed and GWS is slow to answer; meanwhile another desktop of the agent
    cancels the same record, and OCS's user event for that (without a referenceId, as OCS
    sends it) is matched by key to our cancel, the one in flight on the record. Then GWS
    refuses our POST (``statusCode`` 4: the voice service is down): GWS never handed it to
    OCS, so that user event was the other desktop's.

    Before, the merge window after the user event acknowledged our cancel before GWS had
    answered, with the other desktop's user data, and GWS's refusal was ignored: the host was
    told its cancel succeeded (``RecordCancelAck`` for its referenceId) though GWS refused it
    and never passed it on. An answer matched by key now decides nothing while the request's
    POST is unanswered: GWS's refusal decides (``rejected``, ``may_have_acted`` false)."""
    config = fake_config(merge_window=0.1, ack_timeout=2.0, request_timeout=5.0)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.slow_answer(1.0)
        fake.faults.status_code(4, "Voice service is not available at this time")
        request = request_for(fake, handle)
        ticket = plugin.submit(request)
        await until(lambda: len(cancels(fake)) == 1, timeout=30, step=0.001)
        another_desktop_answers(fake, handle, "other-desktop-1")
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await ticket
        # GWS relays the other desktop's user event again: a repeat, not another answer.
        another_desktop_answers(fake, handle, "other-desktop-1", notification=False)
        await anyio.sleep(1.0)
        await plugin.wait_hooks_idle(5)
    failure = info.value.failure
    assert failure.reason is FailureReason.REJECTED
    assert failure.status_code == 4
    assert failure.may_have_acted is False
    assert [f.request.reference_id for f in recorder.failures] == [request.reference_id]
    # The one acknowledgement is the other desktop's (from its notification: its user event
    # was with our cancel when that merge window ended); each copy of the user event reached
    # on_user_event.
    assert [(a.request, a.reference_id) for a in recorder.acks] == [(None, "other-desktop-1")]
    assert len(recorder.user_events) == 2


async def test_an_answer_by_key_decides_once_gws_accepts_the_post(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The other side of the test above: OCS's user event for our cancel arrives (matched by
    key) while GWS is slow to answer the POST and its notification is lost; once GWS accepts
    the POST, the user event is the cancel's answer, and it is acknowledged at once (not
    after ``ack_timeout``)."""
    config = fake_config(merge_window=0.1, ack_timeout=30.0, request_timeout=5.0)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.slow_answer(1.0)
        fake.faults.drop_notifications("outbound")
        request = request_for(fake, handle)
        accepted_at = anyio.current_time()
        with anyio.fail_after(10):
            ack = await plugin.cancel(request)
        took = anyio.current_time() - accepted_at
    assert ack.reference_id == request.reference_id
    assert ack.user_data["GSW_RECORD_HANDLE"] == handle
    assert 1.0 <= took < 2.0  # GWS's answer to the POST, not the acknowledgement timeout
    assert recorder.failures == []


async def test_a_restored_session_does_not_decide_by_key_before_gws_answers_the_post(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """As above, but the CometD session is lost and restored while GWS is still slow to
    answer our POST, after the other desktop's user event was matched by key to our cancel.
    Before, the grace period after the restoration acknowledged our cancel with that user
    event, before GWS refused the POST. It now waits for GWS's answer to the POST, as the
    merge window does: ``rejected``."""
    config = fake_config(merge_window=0.1, ack_timeout=2.0, request_timeout=5.0)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.slow_answer(1.0)
        fake.faults.status_code(4, "Voice service is not available at this time")
        request = request_for(fake, handle)
        ticket = plugin.submit(request)
        await until(lambda: len(cancels(fake)) == 1, timeout=30, step=0.001)
        another_desktop_answers(fake, handle, "other-desktop-1")
        await anyio.sleep(0.01)
        fake.lose_session("re-handshake")
        await anyio.sleep(0.01)
        fake.restore_session()  # its grace period ends long before GWS answers the POST
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await ticket
    failure = info.value.failure
    assert failure.reason is FailureReason.REJECTED
    assert failure.status_code == 4
    assert [f.request.reference_id for f in recorder.failures] == [request.reference_id]
    assert all(ack.request is None for ack in recorder.acks)
