"""Rows of the matching rule (docs/design-notes.md, "Which request a message answers") that
are best shown on the pure core: reservations kept by time rather than by count, evidence at a
lost session, one rule for values spelled two ways, statusCode 7/9, and refusal rather than
forgetting when memory limits are reached."""

from __future__ import annotations

from typing import Any

from gws_outbound_plugin import CancelRequest, FailureReason
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import (
    Acknowledged,
    Effect,
    Failed,
    Foreign,
    Limits,
    Notice,
    PostResult,
    Resolved,
    Send,
    StartTimer,
    Unsolicited,
)

DEVICE = "/devices/dev-1"


def cancel(handle: int, reference: str, **changes: Any) -> CancelRequest:
    values: dict[str, Any] = {
        "record_handle": handle,
        "application_id": 134,
        "campaign_name": "Campaign1",
        "calling_list": "CallingList1",
        "device_path": DEVICE,
        "reference_id": reference,
    }
    values.update(changes)
    return CancelRequest(**values)


def ack(reference: str | None, handle: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messageType": "OutboundRecordMessage",
        "notificationType": "RecordCancelAcknowledge",
        "record": {"recordHandle": handle, "applicationId": 134, "campaignName": "Campaign1"},
    }
    if reference is not None:
        data["referenceId"] = reference
    return {"channel": "/v2/me/outbound", "data": data}


def event(handle: object, **extra: Any) -> dict[str, Any]:
    user_data = {
        "GSW_USER_EVENT": "RecordCancelAcknowledge",
        "GSW_RECORD_HANDLE": handle,
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        **extra,
    }
    return {
        "channel": "/me/internal",
        "data": {"messageType": "DeviceUserEventMessage", "userData": user_data},
    }


def sent(correlator: Correlator, request: CancelRequest) -> int:
    token, effects = correlator.accept(request)
    assert any(isinstance(e, Send) for e in effects)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    return token


def resolved(effects: list[Effect]) -> list[Resolved]:
    return [e for e in effects if isinstance(e, Resolved)]


def sweep_all(correlator: Correlator) -> None:
    """Fire the sweep timer until nothing is kept any more (late_window passed)."""
    for _ in range(100):
        effects = correlator.timer_expired(("sweep",))
        if not any(isinstance(e, StartTimer) and e.timer == ("sweep",) for e in effects):
            return
    raise AssertionError("the sweep never ends")


def test_a_late_answer_stays_late_after_any_number_of_later_requests() -> None:
    """Reproduction 4: the recent-referenceId list used to drop its oldest entry past 10,000
    requests; a late acknowledgement then became "foreign" and the reference id reusable."""
    correlator = Correlator(Limits(merge_window=0))
    token = sent(correlator, cancel(1, "old"))
    (timed_out,) = resolved(correlator.timer_expired(("ack", token)))
    assert isinstance(timed_out.outcome, Failed)
    assert timed_out.outcome.reason is FailureReason.TIMED_OUT
    assert timed_out.outcome.may_have_acted is True
    for n in range(12_000):
        later = sent(correlator, cancel(100 + n, f"r{n}"))
        (done,) = resolved(correlator.message(ack(f"r{n}", 100 + n)))
        assert done.token == later
    effects = correlator.message(ack("old", 1))
    assert not [e for e in effects if isinstance(e, Resolved | Foreign | Unsolicited)]
    assert correlator.stats["foreign_acks"] == 0
    _, refused = correlator.accept(cancel(1, "old"))
    (outcome,) = resolved(refused)
    assert isinstance(outcome.outcome, Failed) and "referenceId old" in outcome.outcome.message
    # After late_window (time, not a count) the reservation ends and the id may be reused.
    sweep_all(correlator)
    _, effects = correlator.accept(cancel(1, "old"))
    assert any(isinstance(e, Send) for e in effects)


def test_when_reservations_are_full_new_requests_are_refused_nothing_forgotten() -> None:
    correlator = Correlator(Limits(merge_window=0, max_reserved=3))
    for n in range(3):
        sent(correlator, cancel(n + 1, f"r{n}"))
        correlator.message(ack(f"r{n}", n + 1))
    _, effects = correlator.accept(cancel(9, "new"))
    (outcome,) = resolved(effects)
    assert isinstance(outcome.outcome, Failed)
    assert outcome.outcome.reason is FailureReason.REJECTED
    assert "max_reserved" in outcome.outcome.message and outcome.outcome.may_have_acted is False
    assert correlator.state_sizes()["reserved"] == 3
    again = ack("r0", 1)
    again["data"]["record"]["callingList"] = "CallingList1"  # not byte-identical
    effects = correlator.message(again)  # still known to be late
    assert correlator.stats["late"] == 1 and not resolved(effects)


def test_a_lost_session_keeps_the_half_that_arrived() -> None:
    """Reproduction 7, the session half: the acknowledgement arrived after the session was
    lost; the session is back before the merge window ends: it is acknowledged, not unknown."""
    correlator = Correlator(Limits(merge_window=5.0))
    token = sent(correlator, cancel(1, "a"))
    correlator.session_lost()
    assert not resolved(correlator.message(ack("a", 1)))
    (settle,) = correlator.session_restored()
    assert isinstance(settle, StartTimer)
    (done,) = resolved(correlator.timer_expired(settle.timer))
    assert done.token == token and isinstance(done.outcome, Acknowledged)
    unanswered = sent(correlator, cancel(2, "b"))
    correlator.session_lost()
    (settle,) = correlator.session_restored()
    (unknown,) = resolved(correlator.timer_expired(settle.timer))
    assert unknown.token == unanswered and isinstance(unknown.outcome, Failed)
    assert unknown.outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert unknown.outcome.may_have_acted is True


def test_identifiers_and_reference_ids_correlate_however_they_are_spelled() -> None:
    """``GSW_RECORD_HANDLE`` "11" is 11; ``GSW_REFERENCE_ID`` 7 is "7"."""
    correlator = Correlator(Limits(merge_window=0))
    token = sent(correlator, cancel(11, "x"))
    (done,) = resolved(correlator.message(event("11")))
    assert done.token == token and isinstance(done.outcome, Acknowledged)
    token = sent(correlator, cancel(12, "7"))
    # By its reference id (M1): an answer about another record is not the cancel's.
    effects = correlator.message(event(99, GSW_REFERENCE_ID=7))
    assert not resolved(effects)
    (notice,) = [e for e in effects if isinstance(e, Notice)]
    assert notice.kind == "answer_for_another_record_ignored"
    assert notice.fields["reference_id"] == "7"
    (done,) = resolved(correlator.message(event(12, GSW_REFERENCE_ID=7)))
    assert done.token == token


def test_status_code_9_waits_for_the_outcome() -> None:
    """statusCode 9 (processing incomplete) is no refusal: GWS may still act."""
    correlator = Correlator(Limits(merge_window=0))
    token, _ = correlator.accept(cancel(1, "p"))
    correlator.sending(token)
    assert not resolved(correlator.posted(token, PostResult.REJECTED, status_code=9))
    (done,) = resolved(correlator.message(ack("p", 1)))
    assert isinstance(done.outcome, Acknowledged)
    token, _ = correlator.accept(cancel(2, "q"))
    correlator.sending(token)
    correlator.posted(token, PostResult.REJECTED, status_code=9)
    (unknown,) = resolved(correlator.timer_expired(("ack", token)))
    assert isinstance(unknown.outcome, Failed)
    assert unknown.outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert unknown.outcome.may_have_acted is True


def test_a_refused_request_says_gws_did_not_act() -> None:
    correlator = Correlator(Limits(merge_window=0))
    token, _ = correlator.accept(cancel(1, "r"))
    correlator.sending(token)
    (done,) = resolved(correlator.posted(token, PostResult.REJECTED, status_code=2))
    assert isinstance(done.outcome, Failed) and done.outcome.may_have_acted is False


def test_a_queued_request_fails_at_shutdown_as_never_sent() -> None:
    correlator = Correlator()
    sent(correlator, cancel(1, "first"))
    queued, _ = correlator.accept(cancel(1, "second"))  # waits behind the first on record 1
    outcomes = {r.token: r.outcome for r in resolved(correlator.shutdown())}
    failure = outcomes[queued]
    assert isinstance(failure, Failed) and failure.reason is FailureReason.SHUT_DOWN
    assert failure.may_have_acted is False


def test_a_refusal_naming_no_operation_is_matched_by_record_only() -> None:
    """M7: an OCS error without ``GSW_USER_EVENT`` (or with one that answers nothing of ours)
    never fails a request by campaign or phone number, only the request on its record."""
    from gws_outbound_plugin import StartPreviewSessionRequest

    correlator = Correlator(Limits(merge_window=0))
    session = StartPreviewSessionRequest(
        campaign_name="Campaign1", application_id=134, device_path=DEVICE, reference_id="s"
    )
    token, _ = correlator.accept(session)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    nameless = {
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "userData": {
                "GSW_APPLICATION_ID": 134,
                "GSW_CAMPAIGN_NAME": "Campaign1",
                "GSW_ERROR": "Campaign is not running",
                "GSW_ERROR_NUMBER": 120,
            },
        },
    }
    effects = correlator.message(nameless)
    assert not resolved(effects) and any(isinstance(e, Unsolicited) for e in effects)
    record = sent(correlator, cancel(11, "c"))
    on_record = event(11, GSW_ERROR="Record not found", GSW_ERROR_NUMBER=101)
    del on_record["data"]["userData"]["GSW_USER_EVENT"]
    (refused,) = resolved(correlator.message(on_record))
    assert refused.token == record and isinstance(refused.outcome, Failed)
    assert refused.outcome.reason is FailureReason.OCS_ERROR
    assert refused.outcome.error_number == 101


def test_another_clients_acknowledgement_is_one_foreign_effect_with_both_halves() -> None:
    """M3: the two halves of an acknowledgement that is not ours (a notification without our
    reference id, its user event) pair on the record they name: one ``Foreign`` effect."""
    correlator = Correlator(Limits(merge_window=0.25))
    first = correlator.message(ack("someone-elses", 11))
    assert "foreign" in [e.timer[0] for e in first if isinstance(e, StartTimer)]
    assert not any(isinstance(e, Foreign) for e in first)
    (pair,) = [e for e in correlator.message(event(11)) if isinstance(e, Foreign)]
    assert pair.outbound is not None and pair.outbound["referenceId"] == "someone-elses"
    assert pair.user_event is not None and pair.user_event.user_data["GSW_RECORD_HANDLE"] == 11
    assert correlator.stats["foreign_acks"] == 1


# -- between two attempts GWS certainly did not get (Correlator.not_received) -------------------


def _between_attempts(correlator: Correlator, request: CancelRequest) -> int:
    """``request`` written once, that attempt certainly not received (a 503 with GWS's
    ``statusCode``, a 401), the transport waiting to write it again."""
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    correlator.not_received(token)
    assert correlator.is_queued(token)
    return token


def test_a_deadline_between_attempts_gws_did_not_get_says_nothing_was_processed() -> None:
    correlator = Correlator(Limits(merge_window=0, deadline=30.0))
    token = _between_attempts(correlator, cancel(1, "a"))
    (done,) = resolved(correlator.timer_expired(("deadline", token)))
    assert isinstance(done.outcome, Failed)
    assert done.outcome.reason is FailureReason.TRANSPORT_FAILURE
    assert done.outcome.may_have_acted is False
    assert "none of its attempts" in (done.outcome.message or "")


def test_a_close_between_attempts_gws_did_not_get_is_shut_down() -> None:
    correlator = Correlator(Limits(merge_window=0))
    token = _between_attempts(correlator, cancel(1, "a"))
    (done,) = resolved(correlator.shutdown())
    assert done.token == token and isinstance(done.outcome, Failed)
    assert done.outcome.reason is FailureReason.SHUT_DOWN
    assert done.outcome.may_have_acted is False


def test_an_answer_by_key_before_an_attempt_gws_did_not_get_is_another_clients() -> None:
    """M10: matched by key while the first attempt was unanswered; that attempt certainly did
    not reach GWS, so it was another client's: forgotten (its copy is a repeat), and what
    arrives by key while the request waits to be written again is another client's too."""
    correlator = Correlator(Limits(merge_window=0))
    token, _ = correlator.accept(cancel(1, "a"))
    correlator.sending(token)
    assert resolved(correlator.message(event(1))) == []  # held for the POST's answer (M10)
    correlator.not_received(token)
    effects = correlator.message(ack("other", 1)) + correlator.message(event(1, n=2))
    assert resolved(effects) == []
    assert [e for e in effects if isinstance(e, Foreign)]  # reported as another client's
    assert correlator.resending(token) == []  # written again: in flight, as if just sent
    assert not correlator.is_queued(token)
    correlator.posted(token, PostResult.ACCEPTED)
    (done,) = resolved(correlator.message(ack("a", 1)))
    assert done.token == token and isinstance(done.outcome, Acknowledged)
    assert done.outcome.user_event is None  # not the other client's user event


def test_a_request_answered_by_reference_is_not_taken_back() -> None:
    """A message with its reference id arrived: GWS got it, whatever the transport says."""
    correlator = Correlator(Limits(merge_window=0.25))
    token, _ = correlator.accept(cancel(1, "a"))
    correlator.sending(token)
    correlator.message(ack("a", 1))
    assert correlator.not_received(token) == []
    assert not correlator.is_queued(token)
    (done,) = resolved(correlator.timer_expired(("merge", token)))
    assert isinstance(done.outcome, Acknowledged)


def test_an_answer_by_reference_between_attempts_means_gws_got_it() -> None:
    """The transport was told an attempt did not reach GWS (a node in front of GWS passed it
    on, then answered 503 with GWS's ``statusCode`` 4) and waits to write it again; the
    acknowledgement with the request's reference id arrives meanwhile. Before, the request,
    back at ``ready``, could not be matched: the acknowledgement was reported as another
    client's, the transport was let write it again, and the second write's answer decided.
    Now it is the request's own answer, the request counts as sent (not queued, not to be
    written again), and it is acknowledged with it."""
    correlator = Correlator(Limits(merge_window=0.25))
    token = _between_attempts(correlator, cancel(1, "a"))
    effects = correlator.message(ack("a", 1))
    assert not [e for e in effects if isinstance(e, Foreign | Unsolicited)]
    assert not correlator.is_queued(token)
    assert not correlator.may_write_again(token)
    assert correlator.posted(token, PostResult.NOT_SENT, message="not written again") == []
    (done,) = resolved(correlator.message(event(1)))
    assert done.token == token and isinstance(done.outcome, Acknowledged)
    assert done.outcome.outbound is not None and done.outcome.user_event is not None


def test_an_attempt_gws_did_not_get_after_the_deadline_owes_the_key_nothing() -> None:
    """The deadline ended ``a`` while an attempt was being written (``outcome_unknown``: it
    may have reached GWS), so an answer on its key was owed to it (M4) and ``b``, behind it
    on that key, was sent. The attempt then certainly did not reach GWS (and none before it
    did): nothing is owed any more, and the next answer by key is ``b``'s. Before, the debt
    stood until the transport gave up (after its backoff or a re-login, ``posted``), and
    ``b``'s answer arriving meanwhile was taken as ``a``'s late one: ``b`` never got it."""
    correlator = Correlator(Limits(merge_window=0, deadline=30.0))
    first, _ = correlator.accept(cancel(1, "a"))
    second, _ = correlator.accept(cancel(1, "b"))
    assert correlator.sending(first)
    (done,) = resolved(correlator.timer_expired(("deadline", first)))
    assert done.token == first and isinstance(done.outcome, Failed)
    assert done.outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert correlator.not_received(first) == []  # the attempt in flight did not reach GWS
    assert correlator.sending(second)
    correlator.posted(second, PostResult.ACCEPTED)
    (answered,) = resolved(correlator.message(event(1)))  # by key alone: b's
    assert answered.token == second and isinstance(answered.outcome, Acknowledged)
    assert correlator.posted(first, PostResult.NOT_SENT, message="gave up") == []


def test_an_answer_by_key_decides_nothing_at_the_deadline_before_gws_answers_the_post() -> None:
    """M10 at the deadline: an acknowledgement matched by key alone arrives while ``a``'s POST
    is being written, and the deadline comes before GWS answers it. That attempt may never
    reach GWS (here it does not): the answer is then another client's. ``a`` ends
    ``outcome_unknown``, not acknowledged with it. Before, the deadline acknowledged ``a``
    with the other client's user event."""
    correlator = Correlator(Limits(merge_window=0, deadline=30.0))
    first, _ = correlator.accept(cancel(1, "a"))
    assert correlator.sending(first)
    assert resolved(correlator.message(event(1))) == []  # held for GWS's answer to the POST
    (done,) = resolved(correlator.timer_expired(("deadline", first)))
    assert done.token == first and isinstance(done.outcome, Failed)
    assert done.outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert done.outcome.may_have_acted
    assert correlator.not_received(first) == []
    assert correlator.posted(first, PostResult.NOT_SENT, message="gave up") == []


def test_an_answer_by_key_decides_nothing_at_the_close_before_gws_answers_the_post() -> None:
    """The same at the close: ``outcome_unknown``, not the answer matched by key."""
    correlator = Correlator(Limits(merge_window=0, deadline=30.0))
    first, _ = correlator.accept(cancel(1, "a"))
    assert correlator.sending(first)
    assert resolved(correlator.message(event(1))) == []
    (done,) = resolved(correlator.shutdown())
    assert isinstance(done.outcome, Failed)
    assert done.outcome.reason is FailureReason.OUTCOME_UNKNOWN


# -- M9: a refusal matched by key waits merge_window for the request's own acknowledgement --

REFUSED = {"GSW_ERROR": "Record is being processed", "GSW_ERROR_NUMBER": 102}


def _refused_by_key(correlator: Correlator, *, accepted_first: bool = True) -> int:
    """A cancel of record 11 that GWS accepts, and another desktop's refusal on that record
    (no referenceId) matched to it by key: before GWS's answer (held, M10) or after."""
    token, _ = correlator.accept(cancel(11, "c"))
    assert correlator.sending(token)
    effects: list[Effect] = []
    if accepted_first:
        effects += correlator.posted(token, PostResult.ACCEPTED)
    effects += correlator.message(event(11, **REFUSED))
    if not accepted_first:
        effects += correlator.posted(token, PostResult.ACCEPTED)
    assert not resolved(effects)  # it waits merge_window from GWS's acceptance
    windows = [e for e in effects if isinstance(e, StartTimer) and e.timer[0] == "refusal"]
    assert [w.delay for w in windows] == [0.25]
    return token


def test_a_refusal_by_key_yields_to_the_request_s_own_acknowledgement_in_merge_window() -> None:
    """Another desktop's refusal on the record arrives first, then OCS's acknowledgement of our
    cancel, with our referenceId, within merge_window: the cancel is acknowledged (M9), not
    failed ``ocs_error``/``may_have_acted=False`` though OCS acted on it. Before, the refusal
    decided at once and our acknowledgement was dropped as late."""
    for accepted_first in (True, False):
        correlator = Correlator(Limits(merge_window=0.25))
        token = _refused_by_key(correlator, accepted_first=accepted_first)
        effects = correlator.message(ack("c", 11))
        effects += correlator.timer_expired(("refusal", token))  # cancelled; a no-op if fired
        effects += correlator.timer_expired(("merge", token))
        (outcome,) = resolved(effects)
        assert outcome.token == token and isinstance(outcome.outcome, Acknowledged)
        assert outcome.outcome.outbound is not None


def test_a_refusal_by_key_decides_at_the_end_of_merge_window() -> None:
    """Nothing with our referenceId within merge_window: the refusal decides then, as it did
    at once before (it may be OCS's refusal of our cancel); the acknowledgement timer does not
    decide meanwhile. A late acknowledgement by reference changes nothing."""
    correlator = Correlator(Limits(merge_window=0.25))
    token = _refused_by_key(correlator)
    assert not resolved(correlator.timer_expired(("ack", token)))
    (outcome,) = resolved(correlator.timer_expired(("refusal", token)))
    assert isinstance(outcome.outcome, Failed)
    assert outcome.outcome.reason is FailureReason.OCS_ERROR
    assert outcome.outcome.error_number == 102 and not outcome.outcome.may_have_acted
    assert not resolved(correlator.message(ack("c", 11)))  # late (M2)


def test_a_refusal_by_key_decides_at_the_deadline_or_close_within_merge_window() -> None:
    """The deadline or the close during the window: the refusal decides then."""
    for end in ("deadline", "close"):
        correlator = Correlator(Limits(merge_window=0.25, deadline=30.0))
        token = _refused_by_key(correlator)
        if end == "deadline":
            effects = correlator.timer_expired(("deadline", token))
        else:
            effects = correlator.shutdown()
        (outcome,) = resolved(effects)
        assert isinstance(outcome.outcome, Failed), end
        assert outcome.outcome.reason is FailureReason.OCS_ERROR, end


def test_without_merge_window_a_refusal_by_key_decides_at_once() -> None:
    """``merge_window=0``: as before, the refusal matched by key decides at once."""
    correlator = Correlator(Limits(merge_window=0))
    token, _ = correlator.accept(cancel(11, "c"))
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    (outcome,) = resolved(correlator.message(event(11, **REFUSED)))
    assert isinstance(outcome.outcome, Failed)
    assert outcome.outcome.reason is FailureReason.OCS_ERROR


def _unconfirmed_then_next(correlator: Correlator) -> int:
    """M11's setting: cancel "a" of record 11 ends ``outcome_unknown`` at a lost session
    (owed its answer, M4); another desktop's refusal on the record is taken as that late
    answer; cancel "b" of the record is then sent and accepted. The user event of "a"'s
    acknowledgement arrives (no reference id): nothing is owed on the record any more, and
    "b", in flight, would take it by key."""
    first = sent(correlator, cancel(11, "a"))
    correlator.session_lost()
    (settle,) = correlator.session_restored()
    assert isinstance(settle, StartTimer)
    (unknown,) = resolved(correlator.timer_expired(settle.timer))
    assert unknown.token == first and isinstance(unknown.outcome, Failed)
    assert unknown.outcome.reason is FailureReason.OUTCOME_UNKNOWN
    assert not resolved(correlator.message(event(11, **REFUSED)))  # another desktop's
    token = sent(correlator, cancel(11, "b"))
    assert not resolved(correlator.message(event(11)))
    return token


def test_a_late_user_event_before_its_own_notification_is_not_the_next_request_s() -> None:
    """M11: "a"'s notification, with its referenceId, follows its user event within
    merge_window: the user event was "a"'s. "b" does not take it: at the end of the window
    it has no outcome (before, it was acknowledged by "a"'s answer), and waits for its own
    (its refusal, later, decides)."""
    correlator = Correlator(Limits(merge_window=0.25))
    token = _unconfirmed_then_next(correlator)
    effects = correlator.message(ack("a", 11))
    assert not resolved(effects + correlator.timer_expired(("merge", token)))
    assert any(isinstance(e, Notice) and e.kind == "late_user_event_given_back" for e in effects)
    own = event(11, GSW_ERROR="Record is being dialled", GSW_ERROR_NUMBER=217)
    effects = correlator.message(own) + correlator.timer_expired(("refusal", token))
    (outcome,) = resolved(effects)
    assert outcome.token == token and isinstance(outcome.outcome, Failed)
    assert outcome.outcome.reason is FailureReason.OCS_ERROR
    assert outcome.outcome.error_number == 217


def test_a_withheld_user_event_no_earlier_notification_claims_is_the_request_s() -> None:
    """M11: nothing with "a"'s referenceId within merge_window: the user event is "b"'s, as
    M4 gives it (GWS accepted "b"'s POST): acknowledged at the end of the window. A late
    notification of "a" after that changes nothing."""
    correlator = Correlator(Limits(merge_window=0.25))
    token = _unconfirmed_then_next(correlator)
    effects = correlator.timer_expired(("merge", token))
    effects += correlator.timer_expired(("merge", token))  # the merge window of the pair
    (outcome,) = resolved(effects)
    assert outcome.token == token and isinstance(outcome.outcome, Acknowledged)
    assert outcome.outcome.user_event is not None
    assert not resolved(correlator.message(ack("a", 11)))


def test_a_copy_of_a_withheld_user_event_is_not_the_next_request_s_either() -> None:
    """M11 with M8: GWS relays "a"'s user event again (the same userData, new metrics) while
    it is withheld. "a"'s notification takes the first; the copy is no answer of "b"'s: "b"
    has no outcome at the end of the window, and times out without its own answer."""
    correlator = Correlator(Limits(merge_window=0.25))
    token = _unconfirmed_then_next(correlator)
    copy = event(11)
    copy["data"]["metrics"] = {"eventProcessing": {"serverGenerationTimestamp": 2}}
    assert not resolved(correlator.message(copy))
    assert not resolved(correlator.message(ack("a", 11)))
    assert not resolved(correlator.timer_expired(("merge", token)))
    (outcome,) = resolved(correlator.timer_expired(("ack", token)))
    assert isinstance(outcome.outcome, Failed)
    assert outcome.outcome.reason is FailureReason.TIMED_OUT


def _unknown_then_claimed(correlator: Correlator) -> None:
    """Cancel "a" of record 11 ends ``outcome_unknown`` at a lost session, owed its answer
    (M4); another desktop's acknowledgement on the record (its user event, no reference id;
    here with ``GSW_CHAIN_ATTR``, so not a copy of "a"'s) is taken as that late answer."""
    first = sent(correlator, cancel(11, "a"))
    correlator.session_lost()
    (settle,) = correlator.session_restored()
    assert isinstance(settle, StartTimer)
    (unknown,) = resolved(correlator.timer_expired(settle.timer))
    assert unknown.token == first and isinstance(unknown.outcome, Failed)
    assert not resolved(correlator.message(event(11, GSW_CHAIN_ATTR="AllChain")))


def test_an_acknowledgement_taken_as_a_late_answer_long_before_its_notification_was_not_its() -> (
    None
):
    """M4: "a"'s own acknowledgement comes later than merge_window after the one taken as its
    late answer: its notification (by reference) then its user event. The one taken was
    another client's: "a"'s user event is owed to it, and cancel "b" of the record, in
    flight, does not take it. Before, it did, and was acknowledged by it (at the end of its
    merge window) though OCS refused it (217, later)."""
    correlator = Correlator(Limits(merge_window=0.25))
    _unknown_then_claimed(correlator)
    assert not resolved(correlator.timer_expired(("claim", "a")))  # merge_window passed
    token = sent(correlator, cancel(11, "b"))
    effects = correlator.message(ack("a", 11)) + correlator.message(event(11))
    assert not resolved(effects + correlator.timer_expired(("merge", token)))
    own = event(11, GSW_ERROR="Record is being dialled", GSW_ERROR_NUMBER=217)
    effects = correlator.message(own) + correlator.timer_expired(("refusal", token))
    (outcome,) = resolved(effects)
    assert isinstance(outcome.outcome, Failed) and outcome.outcome.error_number == 217


def test_an_acknowledgement_taken_as_a_late_answer_just_before_its_notification_was_its() -> None:
    """M4: "a"'s notification by reference comes within merge_window of the acknowledgement
    taken as its late answer: that was its own user event (the two halves of one answer come
    together). Nothing more is owed to it: cancel "b"'s answer, matched by key, is "b"'s."""
    correlator = Correlator(Limits(merge_window=0.25))
    _unknown_then_claimed(correlator)
    assert not resolved(correlator.message(ack("a", 11)))
    correlator.timer_expired(("claim", "a"))
    token = sent(correlator, cancel(11, "b"))
    effects = correlator.message(event(11)) + correlator.timer_expired(("merge", token))
    (outcome,) = resolved(effects)
    assert outcome.token == token and isinstance(outcome.outcome, Acknowledged)
