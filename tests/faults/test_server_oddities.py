"""What the server and the network between us and GWS may do, end to end on the simulator:
each accepted request ends in exactly one outcome, its own (rows M1 to M10 of
``docs/design-notes.md``), within ``OutboundPlugin.outcome_bound``.

* A node in front of GWS writes our POST to GWS twice (an upstream retry): OCS acts on the
  first copy and refuses the second ("Record already cancelled"), in either order over
  CometD, with or without our referenceId on the user events (``echo_reference_ids``). The
  request's outcome is the first copy's: acknowledged, once. Before, a refusal that came
  first ended the cancel ``ocs_error`` (``may_have_acted`` false: the host would think the
  record still live) and the acknowledgement that followed was reported as another client's.
* A message with our referenceId about another record, or answering another operation
  (``mislabel_notifications``): not the request's answer.
* GWS restarting mid-run (sessions, CSRF tokens and CometD clients lost), and answers of
  requests of the old CometD session arriving after the re-handshake: no request is
  acknowledged by an answer to another. Before, the late acknowledgement of a cancel that
  ended ``outcome_unknown`` (the session lost) acknowledged the next cancel of the record,
  whose own answer was OCS's refusal.
* Acknowledgements just before and just after ``ack_timeout``, and after the close.
"""

from __future__ import annotations

from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    CancelRequest,
    FailureReason,
    OutboundPlugin,
    RecordCancelAck,
)
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import Acknowledged, Limits, Notice, PostResult, Resolved
from gws_outbound_plugin.simulator import GWSSimulator, RecordStatus
from gws_outbound_plugin.testing import HookRecorder
from tests.faults.conftest import fast_config
from tests.faults.support import (
    StallingProxy,
    captured_logs,
    events_named,
    handles,
    request_for,
    until,
)

pytestmark = pytest.mark.anyio

OUTCOMES = (
    "on_record_cancel_acknowledged",
    "on_cancel_failed",
    "on_operation_acknowledged",
    "on_operation_failed",
)
UNSOLICITED = ("on_record_cancelled", "on_preview_record", "on_scheduled_call")


def cancel_posts(head: bytes, _body: bytes) -> bool:
    return head.startswith(b"POST /api/v2/me/outbound-records/")


def recorded(pm: pluggy.PluginManager) -> HookRecorder:
    recorder = HookRecorder()
    pm.register(recorder)
    return recorder


async def outcome_of(ticket: Any) -> RecordCancelAck | CancelFailure:
    try:
        ack: RecordCancelAck = await ticket
    except CancelFailed as failed:
        return failed.failure
    return ack


def assert_own_outcomes(recorder: HookRecorder, requests: list[CancelRequest]) -> None:
    """One outcome per request (both hooks of it), each about that request, and no
    acknowledgement reported as another client's or unsolicited."""
    ours = sorted(request.reference_id for request in requests)
    for hook in ("on_operation_acknowledged", "on_operation_failed"):
        for call in recorder.calls_of(hook):
            payload = call.ack if hook.endswith("acknowledged") else call.failure
            assert payload.request is not None, call  # never another client's
    cancel_outcomes = [
        call.ack if call.name == "on_record_cancel_acknowledged" else call.failure
        for call in recorder.calls
        if call.name in OUTCOMES[:2]
    ]
    assert all(payload.request is not None for payload in cancel_outcomes), cancel_outcomes
    assert sorted(p.request.reference_id for p in cancel_outcomes) == ours, cancel_outcomes
    operation_outcomes = [call for call in recorder.calls if call.name in OUTCOMES[2:]]
    assert len(operation_outcomes) == len(requests), operation_outcomes
    for payload in cancel_outcomes:
        if isinstance(payload, RecordCancelAck):
            assert payload.record_handle == payload.request.record_handle, payload
    assert [call for call in recorder.calls if call.name in UNSOLICITED] == []


# -- the POST written twice ----------------------------------------------------------------------


@pytest.mark.parametrize("echoed", [False, True], ids=["unreferenced", "echoed"])
@pytest.mark.parametrize("first", ["acknowledgement", "refusal"])
async def test_a_post_gws_got_twice_is_acknowledged_once(
    sim: GWSSimulator, pm: pluggy.PluginManager, first: str, echoed: bool
) -> None:
    """The proxy writes the cancel to GWS twice: OCS cancels the record for the first copy
    and refuses the second ("Record already cancelled", error 102). ``refusal`` first: the
    first copy's messages are published late (within the merge window), so the refusal
    arrives before the acknowledgement. ``echoed``: OCS puts our referenceId on both user
    events (the acknowledgement's and the refusal's)."""
    recorder = recorded(pm)
    request = request_for(sim, handles(sim, 1)[0])
    if echoed:
        sim.faults.echo_reference_ids(count=2)
    if first == "refusal":
        sim.faults.delay_notifications(0.2)  # the first copy's outcome
    async with StallingProxy(sim.port, twice=cancel_posts) as proxy:
        config = fast_config(proxy.base_url, merge_window=1.0, ack_timeout=3.0, request_timeout=3.0)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(plugin.outcome_bound + 5):
                outcome = await outcome_of(plugin.submit(request))
            await until(lambda: len(recorder.calls_of("on_user_event")) == 2)
            await plugin.wait_hooks_idle(5)
    assert proxy.written == 1
    assert sim.records[request.record_handle].status is RecordStatus.CANCELLED
    assert isinstance(outcome, RecordCancelAck), outcome
    assert outcome.request == request
    assert_own_outcomes(recorder, [request])
    assert recorder.calls_of("on_record_cancel_acknowledged")[0].ack is outcome


async def test_a_copys_refusal_after_the_merge_window_leaves_no_stray_acknowledgement(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """As above, the first copy's acknowledgement coming later than the merge window: the
    refusal was all there was to go on (``ocs_error``, the limit of what the plugin can
    tell, docs/design-notes.md M9). The late acknowledgement is the cancel's own: never
    reported as another client's acknowledgement of the record (before, its user event
    reached ``on_record_cancel_acknowledged`` with ``request=None``)."""
    recorder = recorded(pm)
    request = request_for(sim, handles(sim, 1)[0])
    sim.faults.delay_notifications(0.6)
    async with StallingProxy(sim.port, twice=cancel_posts) as proxy:
        config = fast_config(proxy.base_url, merge_window=0.1, ack_timeout=3.0)
        async with OutboundPlugin(pm, config) as plugin:
            with anyio.fail_after(plugin.outcome_bound + 5):
                outcome = await outcome_of(plugin.submit(request))
            await until(lambda: len(recorder.calls_of("on_user_event")) == 2)
            await anyio.sleep(0.3)  # a foreign acknowledgement waits a merge window
            await plugin.wait_hooks_idle(5)
    assert isinstance(outcome, CancelFailure)
    assert outcome.reason is FailureReason.OCS_ERROR
    assert_own_outcomes(recorder, [request])


# -- our referenceId on the wrong message --------------------------------------------------------


@pytest.mark.parametrize("user_event", [True, False], ids=["with_user_event", "alone"])
async def test_an_acknowledgement_naming_another_record_is_not_the_requests(
    sim: GWSSimulator, pm: pluggy.PluginManager, user_event: bool
) -> None:
    """GWS puts our referenceId on an acknowledgement of record 12 (our cancel is of record
    11). It is not the cancel's answer: with OCS's user event for record 11 the cancel is
    acknowledged as record 11; without it, it ends ``timed_out`` (OCS may have acted). A
    warning names both records. Before, the cancel was acknowledged as record 12."""
    recorder = recorded(pm)
    ours, other = handles(sim, 2)
    request = request_for(sim, ours)
    sim.faults.mislabel_notifications(record_handle=other)
    if not user_event:
        sim.faults.drop_notifications("user_event")
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            with anyio.fail_after(plugin.outcome_bound + 5):
                outcome = await outcome_of(plugin.submit(request))
            await plugin.wait_hooks_idle(5)
    if user_event:
        assert isinstance(outcome, RecordCancelAck), outcome
        assert outcome.record_handle == ours
    else:
        assert isinstance(outcome, CancelFailure), outcome
        assert outcome.reason is FailureReason.TIMED_OUT and outcome.may_have_acted
    assert_own_outcomes(recorder, [request])
    (warning,) = events_named(logs, "answer_for_another_record_ignored")
    assert (warning["record_handle"], warning["request_record_handle"]) == (other, ours)


async def test_an_acknowledgement_of_another_operation_is_not_the_requests(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """A reject's acknowledgement carrying our cancel's referenceId (and no user event): the
    cancel is not acknowledged by it, nor is it reported as another client's reject; the
    cancel ends ``timed_out``."""
    recorder = recorded(pm)
    request = request_for(sim, handles(sim, 1)[0])
    sim.faults.mislabel_notifications(notification_type="RecordRejectAcknowledge")
    sim.faults.drop_notifications("user_event")
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        with anyio.fail_after(plugin.outcome_bound + 5):
            outcome = await outcome_of(plugin.submit(request))
        await plugin.wait_hooks_idle(5)
    assert isinstance(outcome, CancelFailure), outcome
    assert outcome.reason is FailureReason.TIMED_OUT and outcome.may_have_acted
    assert_own_outcomes(recorder, [request])


# -- GWS restarting, the old session's answers ---------------------------------------------------


async def test_answers_of_the_old_cometd_session_are_not_the_next_requests(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """Cancel 1 of record 11 is accepted; its answer is published late, and GWS forgets the
    CometD client meanwhile: cancel 1 ends ``outcome_unknown`` once the session is back.
    Cancel 2 of record 11 is sent next; OCS refuses it (the record is cancelled already),
    then cancel 1's late acknowledgement arrives. Cancel 2 is never acknowledged by it.
    Before, cancel 2's refusal was taken as cancel 1's late answer and cancel 1's
    acknowledgement then acknowledged cancel 2."""
    recorder = recorded(pm)
    handle = handles(sim, 1)[0]
    first, second = request_for(sim, handle), request_for(sim, handle)
    sim.faults.delay_notifications(0.8)
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=3.0)) as plugin:
        await plugin.wait_connected()
        tickets = [plugin.submit(first)]
        await until(lambda: len(sim.cancels) == 1)
        sim.forget_cometd_clients()
        tickets.append(plugin.submit(second))
        with anyio.fail_after(plugin.outcome_bound + 5):
            outcomes = [await outcome_of(ticket) for ticket in tickets]
        await plugin.wait_hooks_idle(5)
    assert len(sim.cancels) == 2
    assert isinstance(outcomes[0], CancelFailure)
    assert outcomes[0].reason is FailureReason.OUTCOME_UNKNOWN
    assert not isinstance(outcomes[1], RecordCancelAck), outcomes[1]
    assert outcomes[1].may_have_acted or outcomes[1].reason is FailureReason.OCS_ERROR
    assert_own_outcomes(recorder, [first, second])


@pytest.mark.parametrize("outcomes_lost", ["delayed", "held"])
async def test_gws_restarting_mid_run_ends_every_request_with_its_own_outcome(
    sim: GWSSimulator, pm: pluggy.PluginManager, outcomes_lost: str
) -> None:
    """Two cancels are in flight (their answers delayed, or held) when GWS restarts: its
    sessions, CSRF tokens, CometD clients and unpublished answers are gone. A third cancel
    of the first record waits behind the first; a fourth is made after the restart (the
    session must be made again: the old cookie is refused). Each ends with one outcome of
    its own within the bound; none is acknowledged by another's answer."""
    recorder = recorded(pm)
    one, two, three = handles(sim, 3)
    requests = [request_for(sim, handle) for handle in (one, two, one, three)]
    if outcomes_lost == "delayed":
        sim.faults.delay_notifications(0.5, count=2)
    else:
        sim.faults.hold_notifications()
    config = fast_config(sim.base_url, ack_timeout=3.0)
    async with OutboundPlugin(pm, config) as plugin:
        await plugin.wait_connected()
        tickets = [plugin.submit(request) for request in requests[:3]]
        await until(lambda: len(sim.cancels) == 2)
        await sim.restart()
        sim.faults.clear()
        tickets.append(plugin.submit(requests[3]))
        with anyio.fail_after(plugin.outcome_bound + 5):
            outcomes = [await outcome_of(ticket) for ticket in tickets]
        await plugin.wait_hooks_idle(5)
    for request, outcome in zip(requests, outcomes, strict=True):
        assert outcome.request == request
        if isinstance(outcome, CancelFailure):
            assert outcome.may_have_acted or outcome.reason is FailureReason.OCS_ERROR, outcome
    assert_own_outcomes(recorder, requests)


# -- slow delivery ------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before_ack_timeout", "after_ack_timeout", "after_close"])
async def test_a_slow_acknowledgement_at_the_boundaries(
    sim: GWSSimulator, pm: pluggy.PluginManager, when: str
) -> None:
    """The acknowledgement is published well before ``ack_timeout`` runs out (acknowledged),
    after it (``timed_out``, and the late answer is dropped: no second outcome, not another
    client's), or after the plugin closed (``outcome_unknown`` at the close)."""
    recorder = recorded(pm)
    request = request_for(sim, handles(sim, 1)[0])
    delay = {"before_ack_timeout": 1.0, "after_ack_timeout": 2.5, "after_close": 3.0}[when]
    sim.faults.delay_notifications(delay)
    config = fast_config(sim.base_url, ack_timeout=2.0, request_timeout=2.0)
    async with OutboundPlugin(pm, config) as plugin:
        await plugin.wait_connected()
        ticket = plugin.submit(request)
        if when != "after_close":
            with anyio.fail_after(plugin.outcome_bound + 5):
                outcome = await outcome_of(ticket)
            await until(lambda: len(recorder.calls_of("on_user_event")) == 1)
            await anyio.sleep(0.3)  # a foreign acknowledgement waits a merge window
            await plugin.wait_hooks_idle(5)
        else:
            await until(lambda: len(sim.cancels) == 1)
    if when == "after_close":
        outcome = await outcome_of(ticket)
        assert recorder.calls_of("on_user_event") == []
    assert_own_outcomes(recorder, [request])
    if when == "before_ack_timeout":
        assert isinstance(outcome, RecordCancelAck), outcome
    else:
        assert isinstance(outcome, CancelFailure), outcome
        expected = FailureReason.TIMED_OUT if when == "after_ack_timeout" else None
        assert outcome.reason is (expected or FailureReason.OUTCOME_UNKNOWN)
        assert outcome.may_have_acted


# -- the same, at the correlator: a refusal between the two halves of the acknowledgement -------


def _cancel_messages(reference: str, *, error: bool) -> dict[str, Any]:
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": "RecordCancelAcknowledge",
        "GSW_APPLICATION_ID": 134,
        "GSW_RECORD_HANDLE": 11,
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_REFERENCE_ID": reference,
    }
    if error:
        user_data |= {"GSW_ERROR": "Record already cancelled", "GSW_ERROR_NUMBER": 102}
    return {
        "channel": "/me/internal",
        "data": {"messageType": "DeviceUserEventMessage", "userData": user_data},
    }


def _notification(reference: str, notification: str = "RecordCancelAcknowledge") -> Any:
    record = {
        "callingList": "CallingList1",
        "applicationId": 134,
        "recordHandle": 11,
        "campaignName": "Campaign1",
    }
    data = {
        "messageType": "OutboundRecordMessage",
        "notificationType": notification,
        "referenceId": reference,
        "record": record,
    }
    return {"channel": "/v2/me/outbound", "data": data}


@pytest.mark.parametrize("refusal", ["user_event", "error_message"])
def test_a_refusal_by_reference_after_the_acknowledgement_is_the_copys(refusal: str) -> None:
    """The acknowledgement notification with our referenceId, then a refusal carrying it
    too (OCS's error user event, or GWS's ``ErrorMessage``), then the acknowledgement's user
    event: acknowledged (OCS acted on the request). Before, the refusal ended the cancel
    (``ocs_error`` / ``rejected``, ``may_have_acted`` false) during the merge window."""
    correlator, _ = _accepted_cancel()
    assert not _resolved(correlator.message(_notification("r1")))
    if refusal == "user_event":
        refused = _cancel_messages("r1", error=True)
    else:
        refused = {
            "channel": "/v2/me/outbound",
            "data": {"messageType": "ErrorMessage", "referenceId": "r1", "errorCode": 4},
        }
    effects = correlator.message(refused)
    assert not _resolved(effects)
    notices = [e.kind for e in effects if isinstance(e, Notice)]
    assert "refusal_after_acknowledgement_ignored" in notices
    (done,) = _resolved(correlator.message(_cancel_messages("r1", error=False)))
    assert isinstance(done.outcome, Acknowledged)


def _accepted_cancel() -> tuple[Correlator, int]:
    """A correlator with one cancel (referenceId ``r1``, record 11) whose POST GWS accepted,
    and the cancel's token."""
    correlator = Correlator(Limits(merge_window=0.25, deadline=50.0))
    request = CancelRequest(
        record_handle=11,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path="/devices/d",
        reference_id="r1",
    )
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    return correlator, token


def _resolved(effects: list[Any]) -> list[Resolved]:
    return [effect for effect in effects if isinstance(effect, Resolved)]


def test_a_refusal_of_another_operation_with_our_reference_is_not_the_requests() -> None:
    """OCS's refusal of a reject (``GSW_USER_EVENT`` ``RecordRejectAcknowledge``) carrying
    our cancel's referenceId: not the cancel's answer (M1: another operation's message is
    ignored), whose own acknowledgement then arrives. Before, the refusal ended the cancel
    ``ocs_error``."""
    correlator, token = _accepted_cancel()
    refusal = _cancel_messages("r1", error=True)
    refusal["data"]["userData"]["GSW_USER_EVENT"] = "RecordRejectAcknowledge"
    correlator.message(refusal)
    effects = correlator.timer_expired(("merge", token))
    assert not _resolved(effects)
    assert not _resolved(correlator.message(_notification("r1")))
    (done,) = _resolved(correlator.message(_cancel_messages("r1", error=False)))
    assert isinstance(done.outcome, Acknowledged)
