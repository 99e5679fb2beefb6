"""The matching rule as written: scenarios derived from docs/design-notes.md ("Which request
a message answers", rows M1 to M11, the outcome table above it and the lifecycle table below
it) by a reader who had not read the implementation, each expecting what the TEXT says.

The pure correlator is driven on a virtual clock (``Wire``): every ``StartTimer`` effect is
kept and fired at its due time, in order, as the engine does; ``advance(seconds)`` moves the
clock. Messages are the shapes GWS sends (reference §1, §4.4, §4.5, §10.2); each user event
carries its own ``metrics`` (as GWS's do), so two user events are exact copies (M8) only when a
test says so.

Every test also checks, at the end, that each request has exactly one outcome.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from gws_outbound_plugin import (
    CancelRequest,
    DoNotCallPhoneRequest,
    FailureReason,
    GetPreviewRecordRequest,
)
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import (
    Acknowledged,
    CancelTimer,
    Failed,
    Foreign,
    Limits,
    Notice,
    PostResult,
    Resolved,
    StartTimer,
)

MERGE = 0.25
ACK_TIMEOUT = 10.0
DEADLINE = 50.0
APP, CAMPAIGN, LIST, PHONE = 134, "Campaign1", "CallingList1", "5551234"


class Wire:
    """The correlator and the engine's timers, on a clock that only moves when told."""

    def __init__(self, *, merge_window: float = MERGE, ack_timeout: float = ACK_TIMEOUT) -> None:
        self.correlator = Correlator(
            Limits(merge_window=merge_window, ack_timeout=ack_timeout, deadline=DEADLINE)
        )
        self.now = 0.0
        self.timers: dict[Any, float] = {}
        self.outcomes: dict[str, list[tuple[float, Acknowledged | Failed]]] = {}
        self.tokens: dict[str, int] = {}
        self.effects: list[Any] = []
        self._order = itertools.count()

    def _apply(self, effects: list[Any]) -> list[Any]:
        for effect in effects:
            self.effects.append(effect)
            if isinstance(effect, StartTimer):
                self.timers[effect.timer] = self.now + effect.delay
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer, None)
            elif isinstance(effect, Resolved):
                reference = effect.request.reference_id
                self.outcomes.setdefault(reference, []).append((self.now, effect.outcome))
        return effects

    # -- what the engine tells the correlator -------------------------------------------------

    def accept(self, request: Any) -> list[Any]:
        token, effects = self.correlator.accept(request)
        self.tokens[request.reference_id] = token
        self.outcomes.setdefault(request.reference_id, [])
        return self._apply(effects)

    def send(self, request: Any) -> bool:
        return self.correlator.sending(self.tokens[request.reference_id])

    def post(self, request: Any, result: PostResult = PostResult.ACCEPTED, **kw: Any) -> None:
        self._apply(self.correlator.posted(self.tokens[request.reference_id], result, **kw))

    def sent(self, request: Any, result: PostResult = PostResult.ACCEPTED) -> None:
        """Accepted, written and answered ``result``."""
        self.accept(request)
        assert self.send(request)
        self.post(request, result)

    def resend(self, request: Any) -> None:
        self._apply(self.correlator.resending(self.tokens[request.reference_id]))

    def msg(self, message: dict[str, Any]) -> list[Any]:
        return self._apply(self.correlator.message(message))

    def lost(self) -> None:
        self._apply(self.correlator.session_lost())

    def restored(self) -> None:
        self._apply(self.correlator.session_restored())

    def shutdown(self) -> None:
        self._apply(self.correlator.shutdown())

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = [(when, timer) for timer, when in self.timers.items() if when <= target]
            if not due:
                break
            when, timer = min(due, key=lambda pair: pair[0])
            del self.timers[timer]
            self.now = max(self.now, when)
            self._apply(self.correlator.timer_expired(timer))
        self.now = target

    # -- what the test reads ------------------------------------------------------------------

    def outcome(self, request: Any) -> Acknowledged | Failed:
        """The one outcome of ``request`` (fails on none or two)."""
        found = self.outcomes[request.reference_id]
        assert len(found) == 1, (request.reference_id, found)
        return found[0][1]

    def decided(self, request: Any) -> bool:
        return bool(self.outcomes[request.reference_id])

    def reason(self, request: Any) -> str:
        outcome = self.outcome(request)
        return "acknowledged" if isinstance(outcome, Acknowledged) else outcome.reason.value

    def notices(self) -> list[str]:
        return [effect.kind for effect in self.effects if isinstance(effect, Notice)]

    def foreign(self) -> list[Foreign]:
        return [effect for effect in self.effects if isinstance(effect, Foreign)]

    def exactly_one_each(self) -> None:
        self.advance(DEADLINE * 3)
        for reference, found in self.outcomes.items():
            assert len(found) == 1, (reference, found)


_metrics = itertools.count(1)


def cancel(reference: str, handle: int = 11, **extra: Any) -> CancelRequest:
    return CancelRequest(
        record_handle=handle,
        application_id=APP,
        campaign_name=CAMPAIGN,
        calling_list=LIST,
        device_path="/devices/d1",
        reference_id=reference,
        **extra,
    )


def dnc_phone(reference: str, phone: str = PHONE) -> DoNotCallPhoneRequest:
    return DoNotCallPhoneRequest(
        application_id=APP,
        campaign_name=CAMPAIGN,
        phone_number=phone,
        device_path="/devices/d1",
        reference_id=reference,
    )


def preview(reference: str) -> GetPreviewRecordRequest:
    return GetPreviewRecordRequest(
        campaign_name=CAMPAIGN,
        application_id=APP,
        device_path="/devices/d1",
        reference_id=reference,
    )


def notification(
    reference: str | None,
    kind: str = "RecordCancelAcknowledge",
    handle: int | None = 11,
    **record: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"callingList": LIST, "applicationId": APP, "campaignName": CAMPAIGN}
    if handle is not None:
        body["recordHandle"] = handle
    body.update(record)
    data: dict[str, Any] = {
        "messageType": "OutboundRecordMessage",
        "notificationType": kind,
        "record": body,
    }
    if reference is not None:
        data["referenceId"] = reference
    return {"channel": "/v2/me/outbound", "data": data}


def user_event(
    event: str | None = "RecordCancelAcknowledge",
    handle: int | None = 11,
    *,
    reference: str | None = None,
    error: tuple[int, str] | None = None,
    metrics: int | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """OCS's user event as GWS relays it; ``metrics`` fixed makes an exact copy possible."""
    data: dict[str, Any] = {
        "GSW_APPLICATION_ID": APP,
        "GSW_CALLING_LIST": LIST,
        "GSW_CAMPAIGN_NAME": CAMPAIGN,
    }
    if event is not None:
        data["GSW_USER_EVENT"] = event
    if handle is not None:
        data["GSW_RECORD_HANDLE"] = handle
    if reference is not None:
        data["GSW_REFERENCE_ID"] = reference
    if error is not None:
        data["GSW_ERROR_NUMBER"], data["GSW_ERROR"] = error
    data.update(keys)
    stamp = next(_metrics) if metrics is None else metrics
    return {
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "deviceId": "d1",
            "userData": data,
            "metrics": {"eventProcessing": {"serverGenerationTimestamp": stamp}},
        },
    }


def error_message(reference: str, code: int = 4, text: str = "back end refused") -> dict[str, Any]:
    return {
        "channel": "/v2/me/outbound",
        "data": {
            "messageType": "ErrorMessage",
            "referenceId": reference,
            "errorCode": code,
            "errorMessage": text,
        },
    }


def user_data_of(outcome: Acknowledged | Failed) -> dict[str, Any]:
    assert isinstance(outcome, Acknowledged), outcome
    return dict(outcome.user_event.user_data) if outcome.user_event is not None else {}


REFUSED = (104, "Record is locked")


# -- M1: by our reference id ----------------------------------------------------------------------


def test_s01_both_halves_notification_first() -> None:
    """M1 + M4 + "Merging the two messages": the notification with our referenceId, then the
    user event without one (matched by record to the one request in flight): acknowledged
    with the user event's data, without waiting out the window."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A"))
    assert not w.decided(a)
    w.msg(user_event(GSW_PHONE=PHONE))
    assert w.reason(a) == "acknowledged"
    assert user_data_of(w.outcome(a))["GSW_PHONE"] == PHONE
    w.exactly_one_each()


def test_s02_both_halves_user_event_first() -> None:
    """M4 then M1: the user event first (by record key, GWS accepted the POST), the
    notification second: one acknowledgement carrying both halves."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(GSW_PHONE=PHONE))
    w.msg(notification("A"))
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    outcome = w.outcome(a)
    assert isinstance(outcome, Acknowledged) and outcome.outbound is not None
    assert user_data_of(outcome)["GSW_PHONE"] == PHONE
    w.exactly_one_each()


def test_s03_notification_naming_another_record_is_ignored() -> None:
    """M1: "an answer naming another record than the one the request is about ... ignored
    (answer_for_another_record_ignored)": the request then ends as for no answer."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A", handle=12))
    assert "answer_for_another_record_ignored" in w.notices()
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    assert w.outcome(a).may_have_acted is True  # type: ignore[union-attr]
    w.exactly_one_each()


def test_s04_user_event_of_another_operation_with_our_reference_is_ignored() -> None:
    """M1: "a user event, refusals included, naming another operation's answer: logged as
    answer_for_another_operation_ignored"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event("RecordRejectAcknowledge", reference="A", error=REFUSED))
    assert "answer_for_another_operation_ignored" in w.notices()
    w.advance(MERGE * 2)
    assert not w.decided(a)
    w.msg(notification("A"))
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s05_refusal_by_reference_after_acknowledgement_by_reference() -> None:
    """M1: "a refusal carrying it after an acknowledgement carrying it answers a second copy
    of the POST ...: the request is acknowledged (refusal_after_acknowledgement_ignored)"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event(reference="A", error=REFUSED))
    assert "refusal_after_acknowledgement_ignored" in w.notices()
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s06_error_message_by_reference() -> None:
    """Outcome table: "CometD ErrorMessage carrying our referenceId: rejected, with its
    errorCode and text"; may_have_acted false."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(error_message("A", code=6, text="no such record"))
    w.advance(MERGE)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.REJECTED
    assert outcome.status_code == 6 and outcome.may_have_acted is False
    w.exactly_one_each()


# -- M2 / M3: late, and never a request -----------------------------------------------------------


def test_s07_late_answer_and_reused_reference() -> None:
    """M2: after the outcome the reference is reserved: a later message with it is late
    (no second outcome, no foreign acknowledgement); a new request reusing it is refused at
    once (rejected, nothing sent)."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    w.msg(notification("A", kind="RecordCancelAcknowledge", campaignName=CAMPAIGN, extra=1))
    assert w.foreign() == []
    again = cancel("A")
    token, effects = w.correlator.accept(again)
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.REJECTED
    assert not w.correlator.sending(token)


def test_s08_reference_reusable_after_gws_refused_the_post() -> None:
    """M2 / "Reusing the id of a request GWS refused, or never got, is fine"."""
    w = Wire()
    w.sent(cancel("A"), PostResult.REJECTED)
    again = cancel("A")
    effects = w.accept(again)
    assert not [e for e in effects if isinstance(e, Resolved)]
    assert w.send(again)


def test_s09_foreign_acknowledgement_on_another_record() -> None:
    """M3: an unknown referenceId with its user event, on a record none of ours targets:
    another client's acknowledgement (request=None), never a request's."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("other-1", handle=12))
    w.msg(user_event(handle=12))
    w.advance(MERGE)
    assert len(w.foreign()) == 1
    assert not w.decided(a)
    w.exactly_one_each()


def test_s10_nothing_reaches_a_request_not_sent_yet() -> None:
    """M3 + "Only a request that was sent can be matched": B waits behind A on record 11;
    messages with B's referenceId, and user events on record 11 while A waits, never answer
    B. After A's outcome B is sent and gets its own answer."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.accept(b)
    assert not w.send(b)  # held behind A (one request in flight per key)
    w.msg(notification("B"))  # B's reference, B not sent: M3
    assert not w.decided(b)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    assert not w.decided(b)
    assert w.send(b)
    w.post(b)
    w.msg(notification("B", kind="RecordCancelAcknowledge", note="own"))
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


# -- M4: by key -----------------------------------------------------------------------------------


def test_s11_dnc_by_phone_never_takes_a_record_answer_naming_that_phone() -> None:
    """M4: "An answer that names a record and answers an operation on a record ... is matched
    by its record alone: a DoNotCall by phone never takes another desktop's DoNotCall of a
    record with that phone number"."""
    w = Wire()
    d = dnc_phone("D")
    w.sent(d)
    w.msg(user_event("DoNotCallAcknowledge", handle=11, GSW_PHONE=PHONE))
    w.advance(MERGE * 2)
    assert not w.decided(d)
    w.msg(notification("D", kind="DoNotCallAcknowledge", handle=None, phoneNumber=PHONE))
    w.advance(MERGE)
    assert w.reason(d) == "acknowledged"
    assert user_data_of(w.outcome(d)) == {}
    w.exactly_one_each()


def test_s12_dnc_by_phone_takes_its_phone_keyed_answer() -> None:
    """M4 (phone key): a DoNotCallAcknowledge without a referenceId and without a record,
    naming the application, campaign and phone: the by-phone request's. It is the first
    half of the answer ("Merging the two messages"): the request waits merge_window for the
    notification, then is acknowledged with what it has. (Read first as "M10: accepted ...
    an acknowledgement decides at once", which is about a POST answered after the match.)"""
    w = Wire()
    d = dnc_phone("D")
    w.sent(d)
    w.msg(user_event("DoNotCallAcknowledge", handle=None, GSW_PHONE=PHONE))
    assert not w.decided(d)
    w.advance(MERGE)
    assert w.reason(d) == "acknowledged"
    assert user_data_of(w.outcome(d))["GSW_PHONE"] == PHONE
    w.exactly_one_each()


def test_s13_owed_answer_goes_to_the_ended_request_first() -> None:
    """M4: "a reserved request on that key still owed its answer takes it first": A timed
    out; B is in flight on the same record; the next unreferenced acknowledgement is A's
    late answer, not B's. B is acknowledged by its own notification."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s14_foreign_ack_taken_late_then_own_notification_more_than_a_window_later() -> None:
    """M4: A timed out; another desktop's acknowledgement (AllChain) is taken as A's late
    answer; A's own notification comes more than merge_window later, so that one was
    another client's and "the user event that follows is owed to it then": A's own user
    event (RecordOnly) is not given to B, in flight on the record."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))  # another desktop's: taken as A's late answer
    w.advance(MERGE * 4)
    w.msg(notification("A"))  # A's own, late (M2)
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))  # A's own user event: owed to A
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s15_foreign_ack_taken_late_then_own_notification_within_the_window() -> None:
    """M4: "within merge_window, it was its own user event, and nothing more is owed": the
    next unreferenced acknowledgement on the record is B's (with its data)."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))  # A's own late user event
    w.advance(MERGE / 5)
    w.msg(notification("A"))
    w.advance(MERGE / 5)
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))
    w.msg(notification("B"))
    w.advance(MERGE * 2)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b))["GSW_CHAIN_ATTR"] == "RecordOnly"
    w.exactly_one_each()


def test_s16_after_a_lost_session_the_next_refusal_is_the_earlier_requests() -> None:
    """M4 + "What it cannot tell apart after a request ended without its answer": A ends
    outcome_unknown after a lost session; B's refusal on the record (no referenceId) is taken
    as A's late answer: B ends timed_out (may_have_acted true), not ocs_error."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.lost()
    w.restored()
    w.advance(1.0)
    assert w.reason(a) == "outcome_unknown"
    w.sent(b)
    w.msg(user_event(error=REFUSED))
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(b) == "timed_out"
    assert w.outcome(b).may_have_acted is True  # type: ignore[union-attr]
    w.exactly_one_each()


def test_s17_refused_post_is_owed_nothing() -> None:
    """M4: "a request whose POST GWS refused is owed nothing": after A's POST was refused,
    the unreferenced acknowledgement on the record is B's (its first half: B is acknowledged
    with it when merge_window passes without the notification)."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a, PostResult.REJECTED)
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b))["GSW_CHAIN_ATTR"] == "RecordOnly"
    w.exactly_one_each()


def test_s18_error_message_ended_request_is_owed_nothing() -> None:
    """M4: "and so is one GWS refused by an ErrorMessage": B takes the next unreferenced
    acknowledgement on the record."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(error_message("A"))
    w.advance(MERGE)
    assert w.reason(a) == "rejected"
    w.sent(b)
    w.msg(user_event())
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


# -- M5: pushed preview records; the campaign key -------------------------------------------------


def test_s19_preview_empty_by_campaign_ends_preview_request_empty() -> None:
    """M4 (campaign key) + "What it cannot tell apart": an unreferenced PreviewRecordEmpty
    while our GetPreviewRecord waits (GWS accepted it, nothing with its reference arrived):
    acknowledged with empty true."""
    w = Wire()
    g = preview("G")
    w.sent(g)
    w.msg(user_event("PreviewRecordEmpty", handle=None))
    outcome = w.outcome(g)
    assert isinstance(outcome, Acknowledged) and outcome.empty is True
    w.exactly_one_each()


def test_s20_preview_empty_after_our_record_came_by_reference_is_not_ours() -> None:
    """M9 (last sentence): an unreferenced "no record" is not the answer of a GetPreviewRecord
    whose acknowledgement (the record handed out) arrived by reference."""
    w = Wire()
    g = preview("G")
    w.sent(g)
    record = {"userData": {"GSW_RECORD_HANDLE": 20, "GSW_CAMPAIGN_NAME": CAMPAIGN}}
    w.msg(notification("G", kind="PreviewRecord", handle=None, **record))
    w.msg(user_event("PreviewRecordEmpty", handle=None))
    w.advance(MERGE * 2)
    outcome = w.outcome(g)
    assert isinstance(outcome, Acknowledged) and outcome.empty is False
    w.exactly_one_each()


def test_s21_pushed_preview_record_is_never_matched_by_key() -> None:
    """M5: a PreviewRecord user event without our reference id is never matched by key: the
    GetPreviewRecord in flight on the campaign is not answered by it."""
    w = Wire()
    g = preview("G")
    w.sent(g)
    w.msg(user_event("PreviewRecord", handle=21))
    w.advance(MERGE * 2)
    assert not w.decided(g)
    w.exactly_one_each()
    assert w.reason(g) == "timed_out"


# -- M7: a refusal naming no operation ------------------------------------------------------------


def test_s22_refusal_naming_no_operation_by_record() -> None:
    """M7 + M9: a refusal without GSW_USER_EVENT naming record 11: by record to the cancel in
    flight, held merge_window for an acknowledgement by reference; none: ocs_error."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(None, error=REFUSED))
    assert not w.decided(a)
    w.advance(MERGE + 0.01)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.OCS_ERROR
    assert outcome.error_number == 104 and outcome.may_have_acted is False
    w.exactly_one_each()


def test_s23_refusal_naming_no_operation_never_by_phone() -> None:
    """M7: "never by phone or campaign; else unsolicited": a refusal naming only a phone
    does not reach the DoNotCall by phone in flight."""
    w = Wire()
    d = dnc_phone("D")
    w.sent(d)
    w.msg(user_event(None, handle=None, error=REFUSED, GSW_PHONE=PHONE))
    w.advance(MERGE * 2)
    assert not w.decided(d)
    w.advance(ACK_TIMEOUT)
    assert w.reason(d) == "timed_out"
    w.exactly_one_each()


# -- M8: copies -----------------------------------------------------------------------------------


def test_s24_exact_copies_give_one_acknowledgement() -> None:
    """M8: "an exact copy of an earlier message ... dropped as a repeat"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    ue = user_event(metrics=7)
    for _ in range(3):
        w.msg(notification("A"))
        w.msg(ue)
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    assert w.foreign() == []
    w.exactly_one_each()


@pytest.mark.parametrize("own_notification", [True, False])
def test_s25_relayed_copy_of_a_taken_answer_decides_nothing(own_notification: bool) -> None:
    """M8: a user event whose userData equals an answer A took is a repeat; "When M4 would
    give it to a request in flight ... it decides nothing alone; the request is acknowledged
    by its own notification (without it) ... else it ends as for no answer (timed_out)"."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    w.sent(b)
    w.msg(user_event())  # same userData, new metrics: GWS relaying A's answer again, or B's
    assert not w.decided(b)
    if own_notification:
        w.msg(notification("B"))
        w.advance(MERGE)
        assert w.reason(b) == "acknowledged"
        assert w.outcome(b).user_event is None  # type: ignore[union-attr]
    else:
        w.advance(ACK_TIMEOUT + 1)
        assert w.reason(b) == "timed_out"
    w.exactly_one_each()


# -- M9: unreferenced refusals --------------------------------------------------------------------


def test_s26_refusal_then_our_acknowledgement_within_the_window() -> None:
    """M9: another desktop's refusal on the record (no referenceId) before our
    acknowledgement by reference, within merge_window: acknowledged."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s27_refusal_then_our_acknowledgement_after_the_window() -> None:
    """M9: "a refusal later than that is taken as the outcome, ocs_error"; the notification
    after it is late (M2)."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE + 0.05)
    assert w.reason(a) == "ocs_error"
    w.msg(notification("A"))
    w.exactly_one_each()


def test_s28_refusal_with_merge_window_zero_decides_at_once() -> None:
    """M9: "merge_window 0 decides at once"."""
    w = Wire(merge_window=0.0)
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s29_acknowledgement_first_then_unreferenced_refusal() -> None:
    """M9: a refusal without a reference id after the request's acknowledgement by reference
    is not the request's: acknowledged (by its notification alone)."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s30_refusal_by_reference_then_acknowledgement_within_the_window() -> None:
    """M9: "a refusal (with or without its reference id) never decides at once; ... it waits
    merge_window ... for that acknowledgement"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(reference="A", error=REFUSED))
    assert not w.decided(a)
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s31_no_acknowledgement_timer_decides_during_the_refusals_window() -> None:
    """M9 + lifecycle "awaiting": "No other timer ends the window" / "no acknowledgement
    timer decides meanwhile": the refusal arrives just before ack_timeout; the request ends
    ocs_error at the window's end, not timed_out."""
    w = Wire(ack_timeout=1.0)
    a = cancel("A")
    w.sent(a)
    w.advance(0.9)
    w.msg(user_event(error=REFUSED))
    w.advance(0.2)  # the acknowledgement timer's moment passes within the window
    assert not w.decided(a)
    w.advance(MERGE)
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s32_refusal_window_counts_from_gws_acceptance_if_later() -> None:
    """M9 + M10: a refusal matched by key while GWS had not answered the POST; GWS accepts
    later; the acknowledgement by reference comes within merge_window of the acceptance
    (but more than merge_window after the refusal): acknowledged."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event(error=REFUSED))
    w.advance(1.0)
    assert not w.decided(a)
    w.post(a)
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s33_close_during_the_refusals_window_decides_with_the_refusal() -> None:
    """M9: "the request's deadline, the close or a lost session's grace period during it
    decide with the refusal"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.shutdown()
    assert w.reason(a) == "ocs_error"


# -- M10: matched by key before GWS answered the POST ---------------------------------------------


def test_s34_key_matched_acknowledgement_waits_for_the_post_answer() -> None:
    """M10: "decides nothing until GWS answers the POST: accepted ... an acknowledgement
    decides at once"."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.advance(MERGE * 4)
    assert not w.decided(a)
    w.post(a)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s35_key_matched_acknowledgement_then_post_refused() -> None:
    """M10: "refused (statusCode ...) ...: the request ends with GWS's refusal" (rejected,
    status code, may_have_acted false); the user event was another client's."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.post(a, PostResult.REJECTED, status_code=2, message="not valid")
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.REJECTED
    assert outcome.status_code == 2 and outcome.may_have_acted is False
    w.exactly_one_each()


def test_s36_key_matched_acknowledgement_then_deadline_before_the_post_answer() -> None:
    """M10: "the request's deadline or the close coming before GWS's answer end it
    outcome_unknown"."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.advance(DEADLINE + 1)
    assert w.reason(a) == "outcome_unknown"
    assert w.outcome(a).may_have_acted is True  # type: ignore[union-attr]


def test_s37_key_matched_acknowledgement_forgotten_when_the_post_is_written_again() -> None:
    """M10: "when the transport writes the POST again ...: what was matched by key before
    that was another client's; it is forgotten (a copy is a repeat, M8) and the request waits
    for its own answer, as if just sent"."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.resend(a)
    w.post(a)
    assert not w.decided(a)
    w.msg(notification("A"))
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s38_referenced_half_before_the_post_answer_is_not_m10() -> None:
    """M10 applies only when "no message with its reference id arrived": the notification
    by reference, then the user event by key, before GWS answers the POST: acknowledged
    without waiting for that answer (M1, M4)."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(notification("A"))
    w.msg(user_event())
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.post(a)
    w.exactly_one_each()


def test_s39_gws_refusal_after_a_referenced_message_is_not_not_acted() -> None:
    """Lifecycle "sending": "once a message with its referenceId arrived, a refusal is not
    taken as 'not acted' (GWS got an attempt): it waits as unanswered": the notification
    arrived, then GWS refuses the POST: acknowledged, not rejected."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(notification("A"))
    w.post(a, PostResult.REJECTED, status_code=4, message="Voice service is not available")
    w.advance(MERGE * 2)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s40_key_matched_refusal_then_post_refused() -> None:
    """M10 for a refusal: held until GWS answers; GWS refuses the POST: rejected with GWS's
    status code, not ocs_error."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE * 2)
    w.post(a, PostResult.REJECTED, status_code=3, message="forbidden")
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.REJECTED
    assert outcome.status_code == 3
    w.exactly_one_each()


# -- M11: a key-matched acknowledgement withheld --------------------------------------------------


def _a_ended_by_another_clients_refusal(w: Wire) -> tuple[CancelRequest, CancelRequest]:
    """A on record 11 ended ocs_error by an unreferenced refusal (another client's, as it
    turns out); B, in flight on record 11, GWS accepted its POST."""
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE + 0.01)
    assert w.reason(a) == "ocs_error"
    w.sent(b)
    return a, b


def test_s41_withheld_user_event_is_the_earlier_requests_late_answer() -> None:
    """M11: the unreferenced acknowledgement is withheld merge_window; A's notification by
    its reference id arrives within the window: the user event was A's late answer
    (dropped), B waits for its own and is acknowledged by its notification; A keeps its one
    outcome."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    assert not w.decided(b)
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.advance(MERGE)
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b)).get("GSW_CHAIN_ATTR") != "AllChain"
    w.exactly_one_each()


def test_s42_withheld_user_event_given_at_the_windows_end() -> None:
    """M11: no notification for A within the window: at its end the user event is given as
    M4 gave it: B's, as the first half of B's answer, so B then waits merge_window for its
    notification like any request given a first half (the window it was withheld is not
    counted), and is acknowledged with it."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE + 0.01)
    assert not w.decided(b)
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b))["GSW_CHAIN_ATTR"] == "AllChain"
    w.exactly_one_each()


def test_s43_nothing_withheld_with_merge_window_zero() -> None:
    """M11: "nor is anything with merge_window 0"."""
    w = Wire(merge_window=0.0)
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    assert w.reason(a) == "ocs_error"
    w.sent(b)
    w.msg(user_event())
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s44_ack_timeout_during_the_withholding_decides_without_it() -> None:
    """M11: "The acknowledgement timer, the deadline, the close or a lost session's grace
    period during the window decide without it (as for no answer)": B ends timed_out."""
    w = Wire(ack_timeout=1.0)
    _, b = _a_ended_by_another_clients_refusal(w)
    w.advance(0.9)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(0.2)
    assert w.reason(b) == "timed_out"
    w.exactly_one_each()


def test_s45_close_during_the_withholding_decides_without_it() -> None:
    """M11: the close during the window decides without the withheld user event: B was
    sent and nothing of its answer is taken: outcome_unknown."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.shutdown()
    assert w.reason(b) == "outcome_unknown"


def test_s46_withheld_copy_is_a_repeat() -> None:
    """M11: "a copy of one withheld, the same userData, is a repeat, M8": A's late user
    event withheld, then a copy of it (new metrics), then A's notification: both were A's;
    B waits for its own."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.advance(MERGE * 2)
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s47_unreferenced_refusal_is_not_withheld_by_m11() -> None:
    """M11: "An unreferenced refusal has no half with a reference id: not withheld (M9 holds
    it for the request's own acknowledgement)": B's refusal ends B ocs_error after
    merge_window (A, ended by a refusal, is owed nothing)."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(error=(105, "Record not found")))
    w.advance(MERGE + 0.01)
    assert w.reason(b) == "ocs_error"
    w.exactly_one_each()


# -- lifecycle: deadlines and the close -----------------------------------------------------------


def test_s48_deadline_and_close_by_phase() -> None:
    """Outcome table: at the deadline a request never sent is transport_failure, one in
    flight without an answer outcome_unknown, one GWS accepted timed_out (ack_timeout beyond
    the deadline); at the close: acknowledged if part of the answer arrived, outcome_unknown
    if sent, shut_down if never sent."""
    w = Wire(ack_timeout=DEADLINE * 2)
    queued, flying, accepted = cancel("Q", handle=1), cancel("F", handle=2), cancel("X", 3)
    w.accept(queued)
    w.accept(flying)
    assert w.send(flying)
    w.sent(accepted)
    w.advance(DEADLINE + 1)
    assert w.reason(queued) == "transport_failure"
    assert w.reason(flying) == "outcome_unknown"
    assert w.reason(accepted) == "timed_out"

    w2 = Wire()
    half, sent, never = cancel("H", handle=1), cancel("S", handle=2), cancel("N", handle=3)
    w2.sent(half)
    w2.msg(notification("H", handle=1))
    w2.sent(sent)
    w2.accept(never)
    w2.shutdown()
    assert w2.reason(half) == "acknowledged"
    assert w2.reason(sent) == "outcome_unknown"
    assert w2.reason(never) == "shut_down"


def test_s49_lost_session_with_half_an_answer() -> None:
    """ "The CometD session and lost outcomes": after a loss and restoration, a request sent
    before it ends acknowledged if part of its answer arrived, else outcome_unknown."""
    w = Wire()
    half, none = cancel("H", handle=1), cancel("N", handle=2)
    w.sent(half)
    w.sent(none)
    w.msg(notification("H", handle=1))
    w.lost()
    w.restored()
    w.advance(1.0)
    assert w.reason(half) == "acknowledged"
    assert w.reason(none) == "outcome_unknown"
    w.exactly_one_each()


# -- rows interacting -----------------------------------------------------------------------------


def test_s50_withheld_while_the_post_is_unanswered() -> None:
    """M11 + M10: B's POST not answered yet when the unreferenced acknowledgement arrives
    (withheld, M11); A's notification within the window makes it A's late answer; GWS then
    accepts B's POST: B waits for its own answer and is acknowledged by its notification."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE + 0.01)
    assert w.reason(a) == "ocs_error"
    w.accept(b)
    assert w.send(b)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.post(b)
    w.advance(MERGE * 2)
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s51_post_refused_while_an_answer_is_withheld() -> None:
    """M11 + M10: GWS refuses B's POST while the unreferenced acknowledgement is withheld for
    B: B ends with GWS's refusal; nothing else gets a second outcome."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE + 0.01)
    w.accept(b)
    assert w.send(b)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.post(b, PostResult.REJECTED, status_code=2, message="not valid")
    assert w.reason(b) == "rejected"
    w.exactly_one_each()


def test_s52_deadline_during_the_refusals_window() -> None:
    """M9: "the request's deadline ... during it decide with the refusal" (ack_timeout
    beyond the deadline)."""
    w = Wire(ack_timeout=DEADLINE * 2)
    a = cancel("A")
    w.sent(a)
    w.advance(DEADLINE - MERGE / 2)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE)
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s53_referenced_refusal_replaces_the_key_matched_one() -> None:
    """M9: "one with the request's reference id arriving during it replaces one matched by
    key": the outcome carries the referenced refusal's error number."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=(104, "Record is locked")))
    w.advance(MERGE / 2)
    w.msg(user_event(reference="A", error=(106, "Record already cancelled")))
    w.advance(MERGE * 2)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.OCS_ERROR
    assert outcome.error_number == 106
    w.exactly_one_each()


def test_s54_refusal_goes_to_the_owed_request_then_the_acknowledgement_to_ours() -> None:
    """M4 + M9: A timed out (owed its answer); B's acknowledgement by reference arrived; an
    unreferenced refusal on the record is not B's (M9) and is A's late answer (M4); the
    unreferenced acknowledgement after it is B's user event."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.sent(b)
    w.msg(notification("B"))
    w.msg(user_event(error=REFUSED))
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b)).get("GSW_CHAIN_ATTR") == "RecordOnly"
    w.exactly_one_each()


def test_s55_copy_of_a_taken_answer_before_the_post_answer() -> None:
    """M8 + M10: a relayed copy of A's answer while B's POST is unanswered decides nothing,
    also once GWS accepts B's POST: B ends timed_out without its notification."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    w.accept(b)
    assert w.send(b)
    w.msg(user_event())
    w.post(b)
    w.advance(MERGE * 2)
    assert not w.decided(b)
    w.advance(ACK_TIMEOUT)
    assert w.reason(b) == "timed_out"
    w.exactly_one_each()


def test_s56_close_while_a_key_matched_refusal_waits_for_the_post_answer() -> None:
    """M10: "the request's deadline or the close coming before GWS's answer end it
    outcome_unknown" (a refusal matched by key alone, too)."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event(error=REFUSED))
    w.shutdown()
    assert w.reason(a) == "outcome_unknown"


def test_s57_lost_session_during_the_withholding() -> None:
    """M11: "a lost session's grace period during the window decide[s] without it": B, sent
    before the loss, nothing of its answer taken: outcome_unknown."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.lost()
    w.restored()
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))  # arrives right after the restoration
    w.advance(w.correlator.settle_delay + 0.01)
    assert w.reason(b) == "outcome_unknown"
    w.exactly_one_each()


def test_s58_own_notification_during_the_withholding() -> None:
    """M11 says nothing of B's own notification arriving while the user event is withheld
    for B: whatever the user event is taken for, B ends acknowledged, once."""
    w = Wire()
    _, b = _a_ended_by_another_clients_refusal(w)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE / 4)
    w.msg(notification("B"))
    w.advance(MERGE * 3)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s59_grace_period_during_the_refusals_window() -> None:
    """M9: "a lost session's grace period during it decide[s] with the refusal": the
    refusal arrives after the restoration, the grace period ends within its window."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.lost()
    w.restored()
    w.advance(w.correlator.settle_delay / 2)
    w.msg(user_event(error=REFUSED))
    w.advance(w.correlator.settle_delay / 2 + 0.01)
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s60_key_matched_answer_over_a_lost_session_waits_for_the_post_answer() -> None:
    """ "The CometD session and lost outcomes": a request whose POST GWS has not answered is
    not decided by the grace period; what was matched by key alone meanwhile (M10) decides
    once GWS accepts."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.lost()
    w.restored()
    w.advance(1.0)
    assert not w.decided(a)
    w.post(a)
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


def test_s61_acceptance_after_a_lost_session_then_nothing() -> None:
    """Lifecycle "awaiting": ack_timeout gives outcome_unknown "when ... the CometD session
    was lost since it was sent": the POST answered after the grace period, nothing came."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.lost()
    w.restored()
    w.advance(1.0)
    assert not w.decided(a)
    w.post(a)
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "outcome_unknown"
    w.exactly_one_each()


def test_s62_key_matched_answer_then_attempt_not_received_then_deadline() -> None:
    """M10 + lifecycle "sending"/"ready": an attempt GWS certainly did not get (not
    received): what was matched by key is forgotten; the deadline while it waits to be
    written again: transport_failure, may_have_acted false."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w._apply(w.correlator.not_received(w.tokens["A"]))
    w.advance(DEADLINE + 1)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.TRANSPORT_FAILURE
    assert outcome.may_have_acted is False


def test_s63_referenced_message_while_waiting_to_be_written_again() -> None:
    """Lifecycle "ready": back from "sending", "a message with its referenceId (GWS got an
    attempt after all ...): sending": its answer then decides; acknowledged."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w._apply(w.correlator.not_received(w.tokens["A"]))
    w.msg(notification("A"))
    w.msg(user_event())
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


@pytest.mark.parametrize("answer", [PostResult.REJECTED, PostResult.NOT_SENT])
def test_s64_ended_before_its_post_was_refused_is_owed_nothing(answer: PostResult) -> None:
    """M4: "a request whose POST GWS refused is owed nothing, even when GWS says so after the
    request ended" (reliability: "once that attempt turns out not to have reached GWS
    either, no late answer is owed to it"): A's deadline comes while its POST is unanswered
    (outcome_unknown); GWS then refuses it; the next unreferenced acknowledgement on the
    record is B's."""
    w = Wire(ack_timeout=DEADLINE * 2)
    a, b = cancel("A"), cancel("B")
    w.accept(a)
    assert w.send(a)
    w.advance(DEADLINE + 1)
    assert w.reason(a) == "outcome_unknown"
    w.post(a, answer, status_code=2 if answer is PostResult.REJECTED else None)
    w.sent(b)
    w.msg(user_event())
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    assert user_data_of(w.outcome(b))
    w.exactly_one_each()


def test_s65_user_event_with_our_reference_naming_another_record() -> None:
    """M1: "an answer naming another record than the one the request is about ... ignored"
    (a user event carrying GSW_REFERENCE_ID)."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(handle=12, reference="A"))
    assert "answer_for_another_record_ignored" in w.notices()
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.exactly_one_each()


def test_s66_notification_without_reference_never_answers_a_request() -> None:
    """M3: "a notification without one [reference id]: never a request": alone on the
    record of a request in flight, it does not acknowledge it."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification(None))
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.exactly_one_each()


@pytest.mark.parametrize("refusal", ["error_message", "error_notification"])
def test_s67_refusal_by_reference_from_gws_then_acknowledgement_within_the_window(
    refusal: str,
) -> None:
    """M9: "A request in flight is acknowledged, whichever of the two came first: a refusal
    (with or without its reference id) never decides at once; ... it waits merge_window ...
    for that acknowledgement (... OCS acted on one copy of a POST written twice and refused
    the other)". M1 counts GWS's ErrorMessage (and an outbound ``Error`` notification) with
    our reference id among the refusals: after the acknowledgement it is the copy's
    (refusal_after_acknowledgement_ignored); before it, it must wait for it too. Before,
    it decided at once (rejected / ocs_error, may_have_acted false) though OCS acted on the
    request, whose acknowledgement by reference then arrived as late."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    if refusal == "error_message":
        w.msg(error_message("A", code=4, text="second copy refused"))
    else:
        w.msg(notification("A", kind="Error", errorMessage="second copy refused", errorCode=4))
    assert not w.decided(a)
    w.advance(MERGE / 2)
    w.msg(notification("A"))
    w.msg(user_event())
    w.advance(MERGE)
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


@pytest.mark.parametrize("merge_window", [0.0, MERGE])
def test_s68_error_message_by_reference_without_acknowledgement(merge_window: float) -> None:
    """M9 + outcome table: without an acknowledgement by reference within merge_window the
    ErrorMessage is the outcome (rejected, its errorCode, may_have_acted false); merge_window
    0 decides at once; the acknowledgement timer does not decide during the window."""
    w = Wire(merge_window=merge_window, ack_timeout=1.0)
    a = cancel("A")
    w.sent(a)
    w.advance(0.95)
    w.msg(error_message("A", code=6, text="no such record"))
    assert w.decided(a) is (merge_window == 0)
    w.advance(MERGE + 0.01)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.REJECTED
    assert outcome.status_code == 6 and outcome.may_have_acted is False
    w.exactly_one_each()


def test_s69_late_notification_after_a_refusal_ended_it_makes_its_user_event_owed() -> None:
    """M4: one "OCS's refusal by user event ended" is owed nothing "until the request's own
    acknowledgement arrives late by its reference id ...: the user event that follows is
    owed to it then, as an acknowledged request's": A ended ocs_error (another client's
    refusal, matched by key); A's notification arrives late; the next unreferenced
    acknowledgement on the record is A's, not B's. B is acknowledged by its notification."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE + 0.01)
    assert w.reason(a) == "ocs_error"
    w.msg(notification("A"))
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE * 3)
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def test_s70_refusal_taken_as_late_answer_then_own_notification() -> None:
    """M4: "also when a refusal matched by key alone ... was taken as its late answer
    meanwhile, which was another client's": A timed out; an unreferenced refusal is taken
    as A's late answer (B, in flight, unaffected); A's notification arrives late: the
    unreferenced acknowledgement after it is A's, not B's."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.sent(b)
    w.msg(user_event(error=REFUSED))
    w.advance(MERGE * 2)
    assert not w.decided(b)
    w.msg(notification("A"))
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE * 3)
    assert not w.decided(b)
    w.msg(notification("B"))
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()


def _chained(reference: str) -> Any:
    from gws_outbound_plugin import GetChainedRecordRequest

    return GetChainedRecordRequest(
        record_handle=11,
        application_id=APP,
        campaign_name=CAMPAIGN,
        device_path="/devices/d1",
        reference_id=reference,
    )


def _part_handles(outcome: Acknowledged | Failed) -> list[int]:
    assert isinstance(outcome, Acknowledged), outcome
    return [
        part.user_data["GSW_RECORD_HANDLE"]
        if hasattr(part, "user_data")
        else part["record"]["recordHandle"]  # type: ignore[index]
        for part in outcome.parts
    ]


def test_s71_chained_parts_without_reference() -> None:
    """M6: the parts of the chain "that arrived after it was sent and before its end marker,
    except its own record, and each record once (its last copy)"; a straggler after the end
    marker joins "while it is the one GetChainedRecord in flight"; acknowledged merge_window
    after its last message."""
    w = Wire()
    g = _chained("G")
    w.msg(user_event("ChainedRecord", handle=14, GSW_CHAIN_ID=5))  # before it was sent
    w.sent(g)
    for handle in (12, 11, 13):
        w.msg(user_event("ChainedRecord", handle=handle, GSW_CHAIN_ID=5))
    w.msg(user_event("ChainedRecord", handle=12, GSW_CHAIN_ID=5, note="again"))
    w.msg(notification("G", kind="ChainedRecordsDataEnd"))
    w.msg(user_event("ChainedRecordsDataEnd", handle=11, GSW_CHAIN_ID=5))
    w.advance(MERGE / 2)
    w.msg(user_event("ChainedRecord", handle=15, GSW_CHAIN_ID=5))  # a straggler
    w.advance(MERGE / 2 + 0.01)
    assert not w.decided(g)  # the window starts again at the straggler
    w.advance(MERGE)
    assert sorted(_part_handles(w.outcome(g))) == [12, 13, 15]
    w.exactly_one_each()


@pytest.mark.parametrize("pushed_record", [20, 21])
def test_s72_preview_record_user_event_joins_only_its_own_notifications_record(
    pushed_record: int,
) -> None:
    """M5: a PreviewRecord user event without our reference id "joins our GetPreviewRecord
    only when that request's own PreviewRecord notification (with our reference id) names
    the same record (held for late_window to pair)": here it comes first; our notification
    names record 20. Naming record 21, it is OCS's push: the request is acknowledged
    without a user event."""
    w = Wire()
    g = preview("G")
    w.sent(g)
    w.msg(user_event("PreviewRecord", handle=pushed_record))
    record = {"userData": {"GSW_RECORD_HANDLE": 20, "GSW_CAMPAIGN_NAME": CAMPAIGN}}
    w.msg(notification("G", kind="PreviewRecord", handle=None, **record))
    w.advance(MERGE)
    outcome = w.outcome(g)
    assert isinstance(outcome, Acknowledged) and outcome.empty is False
    if pushed_record == 20:
        assert user_data_of(outcome)["GSW_RECORD_HANDLE"] == 20
    else:
        assert outcome.user_event is None
    w.exactly_one_each()


@pytest.mark.parametrize("then", ["user_event_by_reference", "close", "deadline", "post_refused"])
def test_s73_error_message_held_then(then: str) -> None:
    """M9 for GWS's ErrorMessage by reference, held merge_window: the acknowledgement by
    reference may also be a user event carrying GSW_REFERENCE_ID (acknowledged); the close
    or the deadline during the window decide with the refusal (rejected); GWS refusing the
    POST meanwhile does not make it "not acted" (a message with its referenceId arrived):
    the ErrorMessage decides (rejected with its code)."""
    w = Wire(ack_timeout=DEADLINE * 2)
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    if then != "post_refused":
        w.post(a)
    if then == "deadline":
        w.advance(DEADLINE - MERGE / 2)
    w.msg(error_message("A", code=4, text="refused"))
    if then == "user_event_by_reference":
        w.msg(user_event(reference="A"))
        w.advance(MERGE)
        assert w.reason(a) == "acknowledged"
        return
    if then == "close":
        w.shutdown()
    elif then == "deadline":
        w.advance(MERGE)
    else:
        w.post(a, PostResult.REJECTED, status_code=2, message="not valid")
        w.advance(MERGE)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.REJECTED
    assert outcome.status_code == 4 and outcome.may_have_acted is False


@pytest.mark.parametrize("earlier_notification", [True, False])
def test_s74_withheld_after_an_acknowledgement_was_taken_as_a_late_answer(
    earlier_notification: bool,
) -> None:
    """M11 (as reworded) + M4: A timed out; another desktop's unreferenced acknowledgement
    (AllChain) was taken as A's late answer and A's notification has not come: A ended
    before anything with its reference id arrived and is owed nothing, so B's unreferenced
    acknowledgement is withheld merge_window. A's notification within the window: it was
    A's own user event (RecordOnly), and B waits for its own; else it is B's at the window's
    end (then B waits merge_window for its notification, as for any first half). The text
    named only the refusal cases ("another client's refusal was taken as its late answer,
    or ended it"), so a reader did not predict the withholding."""
    w = Wire()
    a, b = cancel("A"), cancel("B")
    w.sent(a)
    w.advance(ACK_TIMEOUT + 1)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.advance(MERGE * 4)
    w.sent(b)
    w.msg(user_event(GSW_CHAIN_ATTR="RecordOnly"))
    assert "user_event_withheld" in w.notices()
    if earlier_notification:
        w.advance(MERGE / 2)
        w.msg(notification("A"))
        w.advance(MERGE * 4)
        assert not w.decided(b)
        w.msg(notification("B"))
        w.advance(MERGE)
        assert w.reason(b) == "acknowledged"
        assert w.outcome(b).user_event is None  # type: ignore[union-attr]
    else:
        w.advance(MERGE + 0.01)
        assert not w.decided(b)
        w.advance(MERGE)
        assert user_data_of(w.outcome(b))["GSW_CHAIN_ATTR"] == "RecordOnly"
    w.exactly_one_each()


def test_s75_post_accepted_within_the_merge_window_of_a_key_matched_half() -> None:
    """M10 (as reworded): a key-matched acknowledgement before GWS answers; GWS accepts
    within its merge window: the request is acknowledged when that window is over (not at
    the acceptance), and its notification may still join it meanwhile."""
    w = Wire()
    a = cancel("A")
    w.accept(a)
    assert w.send(a)
    w.msg(user_event())
    w.advance(MERGE / 5)
    w.post(a)
    assert not w.decided(a)
    w.advance(MERGE / 5)
    w.msg(notification("A"))
    outcome = w.outcome(a)
    assert isinstance(outcome, Acknowledged) and outcome.outbound is not None
    assert outcome.user_event is not None
    w.exactly_one_each()


def test_s76_record_key_ignores_application_and_campaign() -> None:
    """M4: the record key is "GSW_RECORD_HANDLE alone: OCS keys its refusals on the stored
    record, whose application and campaign may differ from the request's"."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(error=REFUSED, GSW_APPLICATION_ID=999, GSW_CAMPAIGN_NAME="Stored campaign"))
    w.advance(MERGE + 0.01)
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s77_values_spelled_two_ways() -> None:
    """Design notes, "Values are read one way": GSW_REFERENCE_ID 7 is "7"; GSW_RECORD_HANDLE
    "11" is 11; an ErrorMessage's referenceId 8 is "8"."""
    w = Wire()
    seven, eight = cancel("7", handle=1), cancel("8", handle=2)
    w.sent(seven)
    w.sent(eight)
    w.msg(notification("7", handle=1))
    w.msg(user_event(handle="1", reference=7))  # type: ignore[arg-type]
    assert w.reason(seven) == "acknowledged"
    assert user_data_of(w.outcome(seven))["GSW_REFERENCE_ID"] == 7
    message = error_message("8", code=6)
    message["data"]["referenceId"] = 8
    w.msg(message)
    w.advance(MERGE)
    assert w.reason(eight) == "rejected"
    w.exactly_one_each()


def test_s78_user_event_with_another_reference_is_never_matched_by_key() -> None:
    """M3: a message that "carries any other reference id (unknown ...)" is never a
    request's, also when it names the record of one in flight."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(reference="someone-else"))
    w.msg(user_event(reference="someone-else", error=REFUSED))
    w.advance(ACK_TIMEOUT + 1)
    assert w.reason(a) == "timed_out"
    w.exactly_one_each()


def test_s79_refusal_by_reference_after_a_key_matched_acknowledgement() -> None:
    """M9: a refusal with the request's reference id waits merge_window for an
    acknowledgement *by reference id*; an unreferenced acknowledgement matched by key before
    it does not count (it may be another desktop's): ocs_error."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(user_event(GSW_CHAIN_ATTR="AllChain"))
    w.msg(user_event(reference="A", error=REFUSED))
    w.advance(MERGE + 0.01)
    assert w.reason(a) == "ocs_error"
    w.exactly_one_each()


def test_s80_no_records_available_by_reference_is_an_empty_result() -> None:
    """M9: "an error text that means 'no records', No Records Available, is an empty
    result, not a refusal"."""
    w = Wire()
    g = preview("G")
    w.sent(g)
    w.msg(
        user_event("PreviewRecord", handle=None, reference="G", error=(3, "No Records Available"))
    )
    w.advance(MERGE)
    outcome = w.outcome(g)
    assert isinstance(outcome, Acknowledged) and outcome.empty is True
    w.exactly_one_each()


def test_s81_error_message_after_the_outcome_is_late() -> None:
    """M2: an ErrorMessage carrying the reference id of a reserved request is late: dropped,
    not counted as unmatched."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    w.msg(error_message("A"))
    assert "cometd_error_unmatched" not in w.notices()
    assert w.correlator.stats["unmatched_errors"] == 0
    w.exactly_one_each()


def test_s82_chained_parts_without_the_end_markers_user_event() -> None:
    """M6 (as clarified): the chain is named by the end marker's user event (GSW_CHAIN_ID;
    the notification's record does not carry it). Without that user event, parts without a
    reference id cannot be tied to the request: it is acknowledged with the parts that came
    with its reference id."""
    w = Wire()
    g = _chained("G")
    w.sent(g)
    w.msg(notification("G", kind="ChainedRecord", handle=12))
    w.msg(user_event("ChainedRecord", handle=13, GSW_CHAIN_ID=5))
    w.msg(notification("G", kind="ChainedRecordsDataEnd"))
    w.advance(MERGE + 0.01)
    assert _part_handles(w.outcome(g)) == [12]
    w.exactly_one_each()


@pytest.mark.parametrize("refusal", ["user_event", "error_notification"])
def test_s83_refusal_with_our_reference_naming_another_record_is_ignored(refusal: str) -> None:
    """M1: the message belongs to the request "and no other: its acknowledgement, partial
    result, empty result or refusal; ... and so is [ignored] an answer naming another record
    than the one the request is about (a server putting our reference id on the wrong
    message: logged as answer_for_another_record_ignored, a warning)". A refusal is one of
    those answers: OCS's refusal with our GSW_REFERENCE_ID naming record 12, or an outbound
    Error notification with our referenceId naming record 12, for a cancel of record 11, is
    not the cancel's. Its own acknowledgement then arrives. Before, the refusal was taken
    (ocs_error, may_have_acted false, at the end of its merge window; at once before M9 held
    it), and a cancel whose own answer came later than that ended with another record's
    refusal."""
    w = Wire()
    a = cancel("A")
    w.sent(a)
    if refusal == "user_event":
        w.msg(user_event(handle=12, reference="A", error=REFUSED))
    else:
        w.msg(notification("A", kind="Error", handle=12, errorMessage="refused", errorCode=4))
    assert "answer_for_another_record_ignored" in w.notices()
    w.advance(MERGE * 4)
    assert not w.decided(a)
    w.msg(notification("A"))
    w.msg(user_event())
    assert w.reason(a) == "acknowledged"
    w.exactly_one_each()


@pytest.mark.parametrize("code", [7, 9])
def test_s84_unfinished_status_codes_wait_like_an_unanswered_post(code: int) -> None:
    """Outcome table / may_have_acted: statusCode 7 "partial success" and 9 "processing
    incomplete": "the request waits for its CometD outcome like an unanswered one":
    outcome_unknown (may_have_acted, the status code in the failure) without one; and what
    was matched by key before that answer decides as after an accepted POST (M10: "or no
    answer: it may have been processed")."""
    w = Wire()
    a, b = cancel("A", handle=1), cancel("B", handle=2)
    w.accept(a)
    assert w.send(a)
    w.post(a, PostResult.REJECTED, status_code=code, message="unfinished")
    w.advance(ACK_TIMEOUT + 1)
    outcome = w.outcome(a)
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert outcome.status_code == code and outcome.may_have_acted is True
    w.accept(b)
    assert w.send(b)
    w.msg(user_event(handle=2))
    w.post(b, PostResult.REJECTED, status_code=code, message="unfinished")
    w.advance(MERGE)
    assert w.reason(b) == "acknowledged"
    w.exactly_one_each()
