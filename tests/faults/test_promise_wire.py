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
