"""Attribution, broken again and fixed (after tests/faults/test_attribution.py and
test_promise_found4.py): each test here failed before its fix. Every accepted request ends in
exactly one outcome, its own: no other client's answer taken as ours, none of ours reported
as another's."""

from __future__ import annotations

from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    DoNotCallPhoneRequest,
    FailureReason,
    OperationFailed,
    OutboundPlugin,
    announce_resend,
)
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.conftest import fast_config
from tests.faults.support import (
    another_desktop_answers,
    another_desktop_cancels,
    handles,
    request_for,
    until,
)
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


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
        await until(lambda: [c.status for c in sim.cancels] == [503], "the first attempt")
        await another_desktop_cancels(sim, handle)
        await until(lambda: len(recorder.user_events) == 1, "the other desktop's user event")
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


# -- M4: DoNotCall by phone and another desktop's DoNotCall of a record with that phone -------


@pytest.mark.virtual_clock
class TestOnFakeGWS:
    async def test_a_do_not_call_by_phone_does_not_take_a_record_s_answer(
        self, pm: pluggy.PluginManager
    ) -> None:
        """Our ``DoNotCallRecord`` by phone number is accepted by GWS and OCS is slow to
        answer it. Meanwhile another desktop of the agent marks one record with that phone
        number DoNotCall (``DoNotCallRecord`` by record): OCS's user event for that names the
        record (``GSW_RECORD_HANDLE``), its application, campaign and ``GSW_PHONE``, and no
        referenceId. Then OCS refuses our request (a ``GSW_ERROR`` user event, by phone).

        Before, the other desktop's user event was matched by its phone key to our request
        (no request of ours was on its record key) and acknowledged it when the merge window
        ended: the host was told the phone number was marked DoNotCall, and OCS's refusal of
        it then reached nobody. An answer naming a record, of a name that answers an
        operation on a record (``DoNotCallAcknowledge`` answers both forms of DoNotCall), is
        now matched by its record alone (M4): the request ends with OCS's refusal."""
        fake = FakeGWS()
        config = fake_config(merge_window=0.1, ack_timeout=5.0)
        handle = handles(fake, 1)[0]
        record = fake.records[handle].record
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            fake.faults.delay_notifications(1.0)
            fake.faults.ocs_error(100, "Phone number cannot be marked", operation="DoNotCallRecord")
            request = DoNotCallPhoneRequest(
                application_id=record.application_id,
                campaign_name=record.campaign_name,
                phone_number=record.phone_number,
                device_path=fake.device_path(),
            )
            ticket = plugin.submit(request)
            await until(lambda: len(fake.posts) == 1, "our POST")
            await anyio.sleep(0.2)  # GWS accepted it; OCS answers at 1.0
            another_desktop_answers(fake, handle, "other-desktop-1", event="DoNotCallAcknowledge")
            with anyio.fail_after(10), pytest.raises(OperationFailed) as info:
                await ticket
        failure = info.value.failure
        assert failure.reason is FailureReason.OCS_ERROR
        assert failure.error_number == 100


class ResendsOnItsOwn(FakeGWS):
    """A transport of a host's own that retries a POST itself: its first attempt "certainly
    did not reach GWS"; during the backoff another desktop of the agent cancels the same
    record; then, if ``announcing``, it calls ``announce_resend()`` and writes the POST again,
    which GWS accepts and OCS refuses."""

    def __init__(self, *, announcing: bool, backoff: float) -> None:
        super().__init__()
        self.announcing = announcing
        self.backoff = backoff
        self.resent = 0

    async def post_operation(self, path: str, body: Any) -> Any:
        if body.get("referenceId") != "other-desktop-1" and not self.resent:
            other = dict(body, referenceId="other-desktop-1")
            await super().post_operation(path, other)  # the other desktop's cancel
            await anyio.sleep(self.backoff)  # its user event arrives, matched by key (M10)
            self.resent += 1
            if self.announcing:
                announce_resend()
            self.faults.ocs_error(100, "Record is already cancelled", operation="CancelRecord")
        return await super().post_operation(path, body)


@pytest.mark.virtual_clock
class TestOwnTransport:
    async def test_a_transport_of_the_host_s_own_announces_its_resends(
        self, pm: pluggy.PluginManager, recorder: Recorder
    ) -> None:
        """``announce_resend()`` is public: a transport of a host's own that writes a POST again
        (its last attempt certainly did not reach GWS) tells the plugin so, and what was matched
        to the request by key meanwhile (here another desktop's cancel of the same record, OCS's
        user event without a referenceId) is forgotten: the request ends with its own answer,
        OCS's refusal, not with the other desktop's acknowledgement."""
        config = fake_config(merge_window=0.1, ack_timeout=3.0)
        fake = ResendsOnItsOwn(announcing=True, backoff=1.0)
        handle = handles(fake, 1)[0]
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            request = request_for(fake, handle)
            ticket = plugin.submit(request)
            with anyio.fail_after(10), pytest.raises(CancelFailed) as info:
                await ticket
            await plugin.wait_hooks_idle(5)
        assert fake.resent == 1
        assert len(recorder.user_events) >= 1  # the other desktop's answer was seen
        failure = info.value.failure
        assert failure.reason is FailureReason.OCS_ERROR
        assert failure.error_number == 100
