"""M10 at the close: another desktop's answer, matched by key while our POST is still being
written, is not taken as our request's answer when the plugin closes before GWS answers the
POST. That POST may never reach GWS (here a proxy holds it: GWS never gets it), and then the
answer was the other desktop's.

Before, the close ended the request with what was matched by key: the host was told its
record was cancelled by its own request (with the other desktop's user data), for a request
GWS never got. It now ends ``outcome_unknown`` (``may_have_acted`` true: the engine cannot
know the attempt missed), and the other desktop's answer is never the request's."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import (
    StallingProxy,
    another_desktop_cancels,
    handles,
    request_for,
    until,
)
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("event", ["acknowledgement", "refusal"])
async def test_a_close_before_gws_answers_the_post_takes_no_answer_matched_by_key(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder, event: str
) -> None:
    handle = handles(sim, 1)[0]
    request = request_for(sim, handle)
    if event == "refusal":  # OCS refuses the other desktop's cancel: a refusal on our key
        sim.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
    async with StallingProxy(sim.port, (request.reference_id,)) as proxy:
        config = fast_config(proxy.base_url, request_timeout=30.0, drain_timeout=0.2)
        async with OutboundPlugin(pm, config) as plugin:
            ticket = plugin.submit(request)
            with anyio.fail_after(10):
                await proxy.stalled.wait()  # our POST: held by the proxy, GWS never gets it
            await another_desktop_cancels(sim, handle)
            await until(lambda: len(recorder.user_events) == 1, "the other desktop's answer")
            await anyio.sleep(config.merge_window * 2)
            assert not ticket.done()  # matched by key: it waits for GWS's answer to the POST
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await ticket
    # GWS got the other desktop's cancel only: ours never reached it.
    assert [c.body["referenceId"] for c in sim.cancels] == ["other-desktop-1"]
    failure = info.value.failure
    assert failure.reason is FailureReason.OUTCOME_UNKNOWN, failure
    assert failure.may_have_acted
    assert failure.error_number is None
    assert not failure.user_data  # not the other desktop's
    assert "matched by record or campaign alone" in failure.message
    assert all(ack.request is not request for ack in recorder.acks)
