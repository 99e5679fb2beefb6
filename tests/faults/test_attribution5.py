"""Attribution, broken again and fixed (after test_attribution2.py): each test here failed
before its fix. Every accepted request ends in exactly one outcome, its own."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


# -- M4 and M9: what a finished request is still owed ------------------------------------------


async def test_a_refusal_is_not_the_late_answer_of_a_request_gws_acknowledged(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A cancel is acknowledged by GWS (its ``RecordCancelAcknowledge`` notification with our
    referenceId), but OCS's user event for it never arrives: when the merge window ends the
    cancel is acknowledged without it, and the record is remembered as still owed that user
    event (OCS answers a record's requests in order: the next unreferenced answer on the
    record is the late one). Then the host cancels the record again and OCS refuses the new
    cancel (a ``GSW_ERROR`` user event naming the record, without a referenceId).

    Before, the refusal was taken as the first cancel's late answer: the second cancel heard
    nothing and ended ``timed_out`` ("may have acted") after ``ack_timeout``, instead of with
    OCS's refusal at once. A request GWS acknowledged is owed an acknowledgement, never a
    refusal (M9, as for a request in flight): the second cancel now ends with its own
    ``ocs_error``."""
    config = fast_config(sim.base_url, ack_timeout=5.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.drop_notifications("user_event", count=1, operation="CancelRecord")
        first = request_for(sim, handle)
        with anyio.fail_after(10):
            ack = await plugin.submit(first)
        assert not ack.user_data  # acknowledged by its notification alone

        sim.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        second = request_for(sim, handle)
        with anyio.fail_after(config.ack_timeout / 2), pytest.raises(CancelFailed) as info:
            await plugin.submit(second)
        await plugin.wait_hooks_idle(5)
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR
    assert failure.error_number == 100
    assert [f.request.reference_id for f in recorder.failures] == [second.reference_id]
    assert [a.request.reference_id for a in recorder.acks if a.request] == [first.reference_id]


async def test_a_request_gws_refused_by_an_error_message_is_owed_nothing(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """GWS accepts a cancel's POST, then refuses the cancel with a CometD ``ErrorMessage``
    carrying its referenceId: the cancel ends ``rejected`` (GWS did not act; nothing else is
    published for it). The host cancels the record again, and OCS refuses that cancel (a
    ``GSW_ERROR`` user event naming the record, without a referenceId).

    Before, the refused cancel was remembered as owed its user event on the record (as a
    request that ended without it): OCS's refusal of the second cancel was taken as that late
    answer, and the second cancel ended ``timed_out`` ("may have acted") after
    ``ack_timeout`` instead of ``ocs_error``. A request GWS refused is owed nothing."""
    config = fast_config(sim.base_url, ack_timeout=5.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.cometd_error(4, "Voice service is not available", operation="CancelRecord")
        first = request_for(sim, handle)
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await plugin.submit(first)
        assert info.value.failure.reason is FailureReason.REJECTED

        sim.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        second = request_for(sim, handle)
        with anyio.fail_after(config.ack_timeout * 2), pytest.raises(CancelFailed) as info:
            await plugin.submit(second)
        await plugin.wait_hooks_idle(5)
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR
    assert failure.error_number == 100
    assert [f.request.reference_id for f in recorder.failures] == [
        first.reference_id,
        second.reference_id,
    ]


@pytest.mark.virtual_clock
class TestOnFakeGWS:
    async def test_a_request_gws_refused_after_its_deadline_is_owed_nothing(
        self, pm: pluggy.PluginManager, recorder: Recorder
    ) -> None:
        """A cancel's POST is slow to be answered, longer than the cancel's outcome bound (a
        request queued behind another on its record starts late, and then GWS is slow): at
        its deadline it ends ``outcome_unknown`` (GWS may have got it), and the record is
        remembered as owed its answer. Then GWS answers the POST: ``statusCode`` 4, it did
        nothing with the cancel. The host cancels the record again, and OCS refuses that.

        Before, GWS's late refusal was ignored (the request had its outcome), so the record
        stayed owed an answer that would never come: OCS's refusal of the second cancel was
        taken as the first one's late answer, and the second cancel ended ``timed_out`` after
        ``ack_timeout`` instead of ``ocs_error`` at once. A request GWS refused is owed
        nothing, whenever GWS says so."""
        fake = FakeGWS()
        config = fake_config(ack_timeout=5.0)
        handle = handles(fake, 1)[0]
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            bound = plugin.outcome_bound
            fake.faults.slow_answer(bound + 1.0)
            fake.faults.status_code(4)  # GWS did nothing with it (answered at bound + 1)
            first = request_for(fake, handle)
            with anyio.fail_after(bound + 0.5), pytest.raises(CancelFailed) as unknown:
                await plugin.submit(first)
            assert unknown.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
            await anyio.sleep(1.0)  # GWS's refusal of the first POST arrives

            fake.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
            second = request_for(fake, handle)
            with anyio.fail_after(config.ack_timeout / 2), pytest.raises(CancelFailed) as info:
                await plugin.submit(second)
            await plugin.wait_hooks_idle(5)
        failure = info.value.failure
        assert failure.reason is FailureReason.OCS_ERROR
        assert failure.error_number == 100
        assert [f.request.reference_id for f in recorder.failures] == [
            first.reference_id,
            second.reference_id,
        ]


# -- no POST written for a request that has its outcome ----------------------------------------


async def test_no_post_is_written_again_for_a_request_that_has_its_outcome(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """Two cancels of one record, accepted together: the second waits for the first (one
    request at a time per record), which takes long (its first POST answered 503, resent
    after ``retry_backoff``; OCS slow to answer). The second's first POST is answered 503
    too, and its deadline (counted from its acceptance) passes during the backoff: GWS got
    none of its attempts, so it ends as not processed (``transport_failure``; it ended
    ``outcome_unknown`` before tests/faults/test_sending.py).

    Before, ``GWSSession`` wrote it again after the backoff all the same: a POST for a
    request whose host had its outcome, written while the next request on the record could
    be in flight (two of ours on one record, which matching by key relies on never
    happening). A resend is announced (``announce_resend()``), and the plugin now answers
    that the request has its outcome: nothing more is written, as the sender never writes a
    request that has its outcome."""
    config = fast_config(
        sim.base_url, retries=1, retry_backoff=1.5, request_timeout=0.2, ack_timeout=1.0
    )
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        bound = plugin.outcome_bound
        # The first cancel: 503, then (resent after 1.5 s) accepted, OCS answering 0.9 s
        # later: the second starts about 2.45 s after its acceptance, its deadline at 3.6 s,
        # its resend due about 3.95 s.
        sim.faults.http_error(503, count=1)
        sim.faults.delay_notifications(0.9, count=1)
        first, second = request_for(sim, handle), request_for(sim, handle)
        tickets = [plugin.submit(first), plugin.submit(second)]
        with anyio.fail_after(5):
            while [c.status for c in sim.cancels] != [503, 200]:
                await anyio.sleep(0.01)
        sim.faults.http_error(503, count=1)  # the second's first POST
        with anyio.fail_after(5):
            await tickets[0]
        with anyio.fail_after(bound), pytest.raises(CancelFailed) as info:
            await tickets[1]
        assert info.value.failure.reason is FailureReason.TRANSPORT_FAILURE
        assert info.value.failure.may_have_acted is False
        # Its deadline came during the backoff: the second's POST was written once so far.
        assert [c.status for c in sim.cancels] == [503, 200, 503]
        await anyio.sleep(config.retry_backoff + 0.5)  # past the time the resend was due
        await plugin.wait_hooks_idle(5)
    bodies = [(c.status, c.body["referenceId"]) for c in sim.cancels]
    assert bodies == [
        (503, first.reference_id),
        (200, first.reference_id),
        (503, second.reference_id),
    ]
