"""Attribution, broken again and fixed (after tests/faults/test_attribution.py and
test_promise_found4.py): each test here failed before its fix. Every accepted request ends in
exactly one outcome, its own: no other client's answer taken as ours, none of ours reported
as another's."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, FailureReason, OutboundPlugin
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.005)
    assert condition(), what


# -- M10: a POST resent after an attempt GWS certainly did not get -----------------------------


async def test_an_answer_by_key_before_a_resend_is_not_the_resent_request_s(
    pm: pluggy.PluginManager, sim: GWSSimulator, recorder: Recorder
) -> None:
    """A cancel's first POST is answered 503 with GWS's ``statusCode`` 4 (GWS changed
    nothing): the plugin sends it again after ``retry_backoff``. Meanwhile another desktop of
    the agent cancels the same record, and OCS's user event for that (without a referenceId)
    is matched by key to our cancel, the one in flight on the record. Then GWS accepts the
    resent POST, and OCS refuses our cancel (a ``GSW_ERROR`` user event).

    Before, GWS's acceptance of the resent POST decided by what had been matched by key while
    the POST was unanswered (M10): the host was told its cancel was acknowledged, with the
    other desktop's user data, before OCS had even seen it; OCS's refusal of our cancel then
    arrived for nobody (``ocs_error_unmatched``). What was matched by key before a POST is
    written again was another client's (GWS had not got the request): the request now waits
    for its own answer, and ends with OCS's refusal."""
    config = fast_config(sim.base_url, retry_backoff=1.0, ack_timeout=3.0)
    handle = handles(sim, 1)[0]
    async with OutboundPlugin(pm, config) as plugin:
        sim.faults.http_error(503, count=1)  # {"statusCode": 4}: resent after retry_backoff
        request = request_for(sim, handle)
        ticket = plugin.submit(request)
        await _until(lambda: [c.status for c in sim.cancels] == [503], "the first attempt")
        other = GWSSession(fast_config(sim.base_url))
        await other.open()
        try:
            mine = request_for(sim, handle, reference_id="other-desktop-1")
            await other.post_operation(mine.gws_path(), mine.to_gws_body())
        finally:
            await other.close()
        await _until(lambda: len(recorder.user_events) == 1, "the other desktop's user event")
        await anyio.sleep(config.merge_window * 2)  # its merge window ended: held (M10)
        assert [c.status for c in sim.cancels] == [503, 200]  # ours not resent yet
        sim.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
            await ticket
        await plugin.wait_hooks_idle(5)
    assert [c.status for c in sim.cancels] == [503, 200, 200]
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR
    assert failure.error_number == 100
    assert [f.request.reference_id for f in recorder.failures] == [request.reference_id]
    assert all(ack.request is None for ack in recorder.acks)
