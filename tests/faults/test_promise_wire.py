"""The promise over the wire (issue 10): the reproductions that need HTTP itself, a second
desktop of the agent on the same GWS or a POST answered after ``request_timeout``. The others
run on FakeGWS in tests/engine/test_promise.py."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin, make_plugin_manager
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def test_a_queued_request_is_not_acknowledged_by_another_desktops_cancel(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Reproduction 4: with one POST at a time and the first POST slow, another desktop of
    the agent cancels the record the second (queued) request targets. The queued request
    must still be POSTed, and end with its own outcome."""
    config = fast_config(sim.base_url, max_concurrent_requests=1, request_timeout=3.0)
    first_handle, target = handles(sim, 2)
    async with OutboundPlugin(pm, config) as plugin:
        other_pm = make_plugin_manager(load_entrypoints=False)
        async with OutboundPlugin(other_pm, fast_config(sim.base_url)) as other_desktop:
            sim.faults.slow_answer(1.0)
            slow = plugin.submit(request_for(sim, first_handle))
            queued = plugin.submit(request_for(sim, target))
            with anyio.fail_after(5):
                while not sim.cancels:
                    await anyio.sleep(0.005)
            await other_desktop.cancel(request_for(sim, target))  # acknowledged elsewhere
            assert not queued.done()
            await slow
            with pytest.raises(CancelFailed) as info:
                await queued
        # It was sent (GWS/OCS then refused a second cancel of the same record).
        references = [r.body["referenceId"] for r in sim.cancels]  # type: ignore[index]
        assert queued.reference_id in references
        assert info.value.failure.reason is FailureReason.OCS_ERROR
        foreign = [ack for ack in recorder.acks if ack.request is None]
        assert len(foreign) == 1 and foreign[0].record_handle == target


async def test_a_post_that_may_have_been_processed_is_never_resent(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Reproduction 5: the first answer is slower than request_timeout; GWS processed it.
    The POST is not resent, and the acknowledgement that arrives counts, once."""
    config = fast_config(sim.base_url, request_timeout=0.3, retries=2, ack_timeout=3.0)
    request = request_for(sim, handles(sim, 1)[0])
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.slow_answer(0.8)
        ack = await plugin.cancel(request)
        await anyio.sleep(0.5)  # room for a wrongly resent POST and its second answer
        assert ack.request == request
    assert len(sim.cancels) == 1
    assert len(recorder.acks) == 1
    assert recorder.failures == []


async def test_another_desktops_refusal_on_the_record_does_not_fail_our_acted_request(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Another desktop of the agent cancels record X just before us and OCS refuses it; OCS
    then acts on our cancel of X. Its refusal (a user event without referenceId, keyed on the
    record) reaches us before our acknowledgement: matched by key, it waits ``merge_window``
    for our own acknowledgement by reference (M9), which comes, so our cancel is acknowledged.
    Before, the refusal decided at once: ``ocs_error`` with ``may_have_acted`` false, though
    OCS cancelled the record for us (found by tests/faults/test_attribution_e2e.py)."""
    from gws_outbound_plugin._session import GWSSession  # the other desktop: a bare session

    target = handles(sim, 1)[0]
    config = fast_config(sim.base_url, merge_window=0.25)
    other = GWSSession(fast_config(sim.base_url))
    await other.open()
    try:
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.hold_notifications()  # OCS's answers reach CometD together, in order
            sim.faults.ocs_error(number=104, message="Record is locked by another desktop")
            theirs = request_for(sim, target, reference_id="other-desktop-1")
            await other.post_operation(theirs.gws_path(), dict(theirs.to_gws_body()))
            ticket = plugin.submit(request_for(sim, target))
            with anyio.fail_after(5):
                while len(sim.journal) < 2:  # GWS got ours: OCS acted on it (its answer held)
                    await anyio.sleep(0.005)
            sim.faults.release_notifications()
            with anyio.fail_after(5):
                ack = await ticket
    finally:
        await other.close()
    refused, acted = sim.journal
    assert refused.reference_id == "other-desktop-1" and refused.ocs is not None
    assert refused.ocs.kind == "refused"
    assert acted.reference_id == ticket.reference_id and acted.ocs is not None
    assert acted.ocs.kind == "acted"
    assert ack.request is not None and ack.request.reference_id == ticket.reference_id
    assert recorder.failures == []


async def test_another_desktops_refusal_before_gws_answers_our_post_waits_for_our_acknowledgement(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The same, GWS slow to answer our POST: the other desktop's refusal arrives before that
    answer (held, M10), our acknowledgement a little after it. The refusal's window starts
    when GWS accepts the POST, so our acknowledgement, arriving within it, wins (M9). Before,
    the held refusal decided as soon as GWS accepted the POST: ``ocs_error``."""
    from gws_outbound_plugin._session import GWSSession  # the other desktop: a bare session

    target = handles(sim, 1)[0]
    config = fast_config(sim.base_url, merge_window=0.6, request_timeout=3.0)
    other = GWSSession(fast_config(sim.base_url))
    await other.open()
    try:
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.ocs_error(number=104, message="Record is locked by another desktop")
            theirs = request_for(sim, target, reference_id="other-desktop-1")
            await other.post_operation(theirs.gws_path(), dict(theirs.to_gws_body()))
            sim.faults.slow_answer(0.3)  # our POST's answer, after the refusal arrived
            sim.faults.delay_notifications(0.45)  # our acknowledgement, after that answer
            with anyio.fail_after(5):
                ack = await plugin.cancel(request_for(sim, target))
    finally:
        await other.close()
    refused, acted = sim.journal
    assert refused.ocs is not None and refused.ocs.kind == "refused"
    assert acted.reference_id == ack.request.reference_id  # type: ignore[union-attr]
    assert acted.ocs is not None and acted.ocs.kind == "acted"
    assert recorder.failures == []
