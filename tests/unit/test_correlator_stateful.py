"""The correlator against a simple model: random interleavings of everything that can happen.

Requests are accepted (reference ids drawn from a small pool, so they collide), sent or not,
answered by GWS in every way; CometD messages arrive for them, duplicated, reordered, dropped,
for requests that were never sent, for nobody; timers fire in any order; the CometD session is
lost and restored; the plugin shuts down. After every step:

* no request has more than one outcome, and after shutdown every accepted one has exactly one;
* a request is acknowledged only if it was sent and a message naming it or its key arrived
  after it was sent;
* the correlator's indexes stay within their limits.

This machine checks the count and the bounds. Whether each outcome is the request's *own* is
checked by ``test_correlator_oracle.py``, whose simulated OCS knows which request each message
answers and shares no matching code with the correlator.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import (
    UNFINISHED_STATUS_CODES,
    Acknowledged,
    CancelTimer,
    Failed,
    Foreign,
    Limits,
    Notice,
    PostResult,
    Resolved,
    Send,
    StartTimer,
)
from gws_outbound_plugin._payloads import FailureReason
from gws_outbound_plugin._spec import (
    CANCEL_RECORD,
    GET_CHAINED_RECORD,
    GET_PREVIEW_RECORD,
    REJECT_RECORD,
    START_PREVIEW_SESSION,
    CorrelationKey,
    OperationSpec,
    Target,
    campaign_key,
    record_key,
)

APP = 134
CAMPAIGN = "Campaign1"
SPECS = (
    CANCEL_RECORD,
    REJECT_RECORD,
    GET_CHAINED_RECORD,
    GET_PREVIEW_RECORD,
    START_PREVIEW_SESSION,
)
#: What may end the merge window of a refusal matched by key alone (M9): the window's own
#: timer, the request's deadline, the grace period after a lost session, the close.
DECIDE_REFUSAL = ("refusal", "deadline", "settle", "shutdown")
LIMITS = Limits(
    ack_timeout=1.0,
    merge_window=0.25,
    fingerprint_limit=8,
    foreign_limit=3,
    max_reserved=6,
    parts_limit=4,
    late_window=5.0,
    deadline=30.0,
)


@dataclasses.dataclass(frozen=True)
class FakeRequest:
    """The Operation protocol, as small as it gets."""

    spec: OperationSpec
    reference_id: str
    handle: int

    @property
    def correlation_key(self) -> CorrelationKey | None:
        if self.spec.target is Target.CAMPAIGN:
            return campaign_key(APP, CAMPAIGN)
        return record_key(self.handle)

    def gws_path(self) -> str:
        return f"/me/outbound-records/{self.handle}"

    def to_gws_body(self) -> dict[str, Any]:
        return {"operationName": self.spec.name, "referenceId": self.reference_id}


@dataclasses.dataclass
class Model:
    request: FakeRequest
    sent: bool = False
    send_emitted: bool = False
    answered_after_send: bool = False
    errored_after_send: bool = False
    by_reference: bool = False  # a message with its reference id arrived after it was sent
    acked_by_reference: bool = False  # ... its acknowledgement (M9: no refusal by key then)
    errored_by_reference: bool = False  # ... a refusal
    refused: bool = False  # GWS's first answer to its POST refused it (or it never got it)
    post_answered: bool = False
    # M9 after a refusal matched by key: an unreferenced refusal for it arrived after the last
    # message with its reference id (an OCS refusal by key decides only then, and only at
    # the end of merge_window, its deadline, a lost session's grace period or the close).
    refused_by_key_since: bool = False
    post_called: bool = False  # the sender reported how its POST ended (at least once)
    # Back from "being sent": its last attempt certainly did not reach GWS, and it waits to
    # be written again (``Correlator.not_received``); nothing of it may have been processed.
    unsent: bool = False
    outcomes: list[Any] = dataclasses.field(default_factory=list)


def outbound(
    request: FakeRequest, notification: str, *, reference: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messageType": request.spec.message_type,
        "notificationType": notification,
        "referenceId": reference if reference is not None else request.reference_id,
    }
    if request.spec.target is Target.CAMPAIGN:
        data["campaign"] = {"name": CAMPAIGN, "applicationId": APP}
    else:
        data["record"] = {
            "recordHandle": request.handle,
            "applicationId": APP,
            "campaignName": CAMPAIGN,
        }
    return {"channel": "/v2/me/outbound", "data": data}


def user_event(
    request: FakeRequest,
    name: str,
    *,
    with_reference: bool,
    error: bool = False,
    unique: int | None = None,
) -> dict[str, Any]:
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": name,
        "GSW_APPLICATION_ID": APP,
        "GSW_CAMPAIGN_NAME": CAMPAIGN,
    }
    if request.spec.target is not Target.CAMPAIGN:
        user_data["GSW_RECORD_HANDLE"] = request.handle
        user_data["GSW_CHAIN_ID"] = request.handle
    if with_reference:
        user_data["GSW_REFERENCE_ID"] = request.reference_id
    if error:
        user_data["GSW_ERROR"] = "Record not found"
        user_data["GSW_ERROR_NUMBER"] = 101
    data: dict[str, Any] = {"messageType": "DeviceUserEventMessage", "userData": user_data}
    if unique is not None:  # a distinct copy (another fingerprint), as a re-publication would be
        data["metrics"] = {"eventProcessing": {"serverGenerationTimestamp": unique}}
    return {"channel": "/me/internal", "data": data}


class CorrelatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.correlator = Correlator(LIMITS)
        self.models: dict[int, Model] = {}
        self.timers: set[tuple[Any, ...]] = set()
        # (message, the request it answers by its key, whether it is an error): a copy is
        # judged as the original was (see ``repeat``).
        self.sent_messages: list[tuple[dict[str, Any], FakeRequest | None, bool]] = []
        self.stamps = itertools.count()  # per run: a replayed run builds the same messages
        self.closed = False
        self.forcing = False  # a deadline or the shutdown is deciding on the evidence at hand
        self.deciding: str | None = None  # the timer kind firing, or "shutdown"

    # -- helpers -------------------------------------------------------------------------------

    def apply(self, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, StartTimer):
                self.timers.add(effect.timer)
            elif isinstance(effect, CancelTimer):
                self.timers.discard(effect.timer)
            elif isinstance(effect, Resolved):
                model = self.models[effect.token]
                assert not model.outcomes, f"second outcome for {effect.token}: {effect.outcome}"
                model.outcomes.append(effect.outcome)
                if isinstance(effect.outcome, Failed) and (
                    effect.outcome.reason is FailureReason.OCS_ERROR
                ):
                    assert model.errored_after_send, "an OCS error that was not its own"
                    # M9: once an acknowledgement with its reference id arrived, a refusal
                    # without one was another client's.
                    assert model.errored_by_reference or not model.acked_by_reference, (
                        "an OCS refusal by key outweighed the request's own acknowledgement"
                    )
                    if not model.errored_by_reference:
                        # A refusal matched by key waits merge_window for a message with the
                        # request's reference id (M9): one that came after it rescues it, and
                        # it decides only when that window (or the request) ends.
                        assert model.refused_by_key_since, (
                            "an OCS refusal by key outweighed a later message with the "
                            "request's reference id"
                        )
                        assert self.deciding in DECIDE_REFUSAL, (
                            f"an OCS refusal by key decided by {self.deciding}, not at the "
                            "end of its merge window"
                        )
                if isinstance(effect.outcome, Failed) and model.unsent:
                    # GWS got none of its attempts: never "may have acted".
                    assert not effect.outcome.may_have_acted, effect.outcome
                if isinstance(effect.outcome, Acknowledged):
                    assert model.sent, "acknowledged a request that was never sent"
                    assert model.answered_after_send, "acknowledged without an answer of its own"
                    # M10: what was matched by key decides only once GWS answered the POST
                    # without refusing it (a refusal proves it was another's); only the
                    # deadline and the shutdown decide on the evidence at hand before.
                    assert model.by_reference or not model.refused, "acknowledged a refused POST"
                    assert model.by_reference or model.post_answered or self.forcing, (
                        "acknowledged by key before GWS answered the POST"
                    )
                    data = effect.outcome.outbound
                    if data is not None:
                        assert data.get("referenceId") == model.request.reference_id
                    for part in effect.outcome.parts:
                        if isinstance(part, Mapping):
                            assert part.get("referenceId") == model.request.reference_id
            elif isinstance(effect, Send):
                model = self.models[effect.token]
                assert not model.outcomes and not model.send_emitted
                model.send_emitted = True
                # One request at a time per record: no other of ours on its key is out.
                key = model.request.correlation_key
                others = [
                    m
                    for m in self.models.values()
                    if m is not model and m.send_emitted and not m.outcomes
                ]
                assert all(m.request.correlation_key != key for m in others), "two sent on a key"
            elif isinstance(effect, Foreign):
                continue  # another client's acknowledgement: no request of ours to check

    def pending(self) -> list[int]:
        return [t for t, m in self.models.items() if not m.outcomes]

    def deliver(
        self, message: dict[str, Any], *, answers: FakeRequest | None = None, error: bool = False
    ) -> None:
        # Which pending sent requests this message can answer (the model's "belongs to"): by
        # its reference, else any sent request of that operation on that record (without a
        # reference, another desktop's message cannot be told from ours).
        data = message["data"]
        reference = data.get("referenceId") or data.get("userData", {}).get("GSW_REFERENCE_ID")
        # A message with the reference id of a request waiting to be written again (its last
        # attempt, the transport said, did not reach GWS): GWS got an attempt after all, so it
        # counts as sent again (unless the correlator drops the message as a copy of one it
        # saw before the request was sent: checked below, after delivery).
        reached = [
            (token, model)
            for token, model in self.models.items()
            if model.unsent
            and not model.outcomes
            and reference is not None
            and reference == model.request.reference_id
        ]
        for _, model in reached:
            model.sent, model.unsent = True, False
        # Acknowledged or refused by reference: counted once the correlator took the message
        # (not an exact copy of one it saw before, maybe before the request was sent, which
        # its duplicate filter drops: the first was never this request's answer then).
        by_reference: list[tuple[Model, bool]] = []
        for model in self.models.values():
            if model.outcomes or not model.sent:
                continue
            request = model.request
            reference = data.get("referenceId") or data.get("userData", {}).get("GSW_REFERENCE_ID")
            if reference is not None:
                belongs = reference == request.reference_id
                model.by_reference = model.by_reference or belongs
                if belongs and error:
                    by_reference.append((model, True))
                elif belongs and (
                    data.get("notificationType") == request.spec.acknowledgement
                    or data.get("userData", {}).get("GSW_USER_EVENT")
                    in request.spec.user_events - {request.spec.part}
                ):
                    by_reference.append((model, False))
            else:
                belongs = (
                    answers is not None
                    and answers.spec is request.spec
                    and answers.correlation_key == request.correlation_key
                )
            if belongs:
                if error:
                    model.errored_after_send = True
                else:
                    model.answered_after_send = True
        self.sent_messages.append((message, answers, error))
        effects = self.correlator.message(message)
        dropped = any(
            isinstance(e, Notice) and e.kind == "cometd_duplicate_dropped" for e in effects
        )
        for model, refused in by_reference if not dropped else ():
            if refused:
                model.errored_by_reference = True
            else:
                model.acked_by_reference = True
        for model in self.models.values():
            if dropped or model.outcomes or not model.sent:
                continue
            request = model.request
            if reference is not None:
                if (
                    reference == request.reference_id
                    and (
                        data.get("notificationType") == request.spec.acknowledgement
                        or data.get("userData", {}).get("GSW_USER_EVENT")
                        in request.spec.user_events - {request.spec.part}
                    )
                    and not error
                ):
                    model.refused_by_key_since = False  # M9: acknowledged by reference
            elif (
                error
                and answers is not None
                and answers.spec is request.spec
                and answers.correlation_key == request.correlation_key
            ):
                model.refused_by_key_since = True
        self.apply(effects)
        for token, model in reached:
            if not model.outcomes and self.correlator.is_queued(token):  # dropped as a copy
                model.sent, model.unsent = False, True
                model.answered_after_send = model.errored_after_send = False
                model.by_reference = model.acked_by_reference = False
                model.errored_by_reference = False

    def stamp(self, unique: bool) -> int | None:
        """A fresh ``metrics`` stamp for a distinct copy, or None for none."""
        return next(self.stamps) if unique else None

    # -- rules -----------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.correlator = Correlator(LIMITS)

    @rule(
        spec=st.sampled_from(SPECS),
        reference=st.sampled_from(["r1", "r2", "r3", "r4", "r5"]),
        handle=st.integers(1, 3),
    )
    def accept(self, spec: OperationSpec, reference: str, handle: int) -> None:
        request = FakeRequest(spec, reference, handle)
        token, effects = self.correlator.accept(request)
        self.models[token] = Model(request)
        self.apply(effects)
        outcome = self.models[token].outcomes
        duplicate = any(
            m.request.reference_id == reference and not m.outcomes
            for t, m in self.models.items()
            if t != token
        )
        if duplicate or self.closed:
            assert outcome and isinstance(outcome[0], Failed)

    def sendable(self) -> list[int]:
        return [t for t in self.pending() if self.models[t].send_emitted]

    @precondition(lambda self: self.sendable())
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(self.sendable()))
        model = self.models[token]
        expected = not model.sent
        assert self.correlator.sending(token) is expected
        model.sent = True
        model.unsent = False  # written (again): a sender interrupted between attempts

    @precondition(lambda self: self.pending())
    @rule(data=st.data())
    def send_unreleased(self, data: st.DataObject) -> None:
        """A sender must not send what the correlator did not hand it."""
        token = data.draw(st.sampled_from(self.pending()))
        if not self.models[token].send_emitted:
            assert self.correlator.sending(token) is False

    @precondition(lambda self: any(m.sent for m in self.models.values()))
    @rule(
        data=st.data(),
        result=st.sampled_from(list(PostResult)),
        status=st.sampled_from([None, 1, 4]),
    )
    def post_answer(self, data: st.DataObject, result: PostResult, status: int | None) -> None:
        token = data.draw(st.sampled_from([t for t, m in self.models.items() if m.sent]))
        model = self.models[token]
        model.post_called = True
        if not model.post_answered and not model.outcomes:
            model.post_answered = True
            model.refused = result in (
                PostResult.AUTHENTICATION_FAILED,
                PostResult.NOT_SENT,
            ) or (result is PostResult.REJECTED and status not in UNFINISHED_STATUS_CODES)
        self.apply(self.correlator.posted(token, result, status_code=status, message="x"))

    def resendable(self) -> list[int]:
        return [
            t
            for t, m in self.models.items()
            if (m.sent or m.unsent) and not m.post_answered and not m.outcomes
        ]

    @precondition(lambda self: self.resendable())
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """The transport writes a POST again: its last attempt certainly did not reach GWS
        (a re-login, a retry). What was matched to it by key before was another client's."""
        token = data.draw(st.sampled_from(self.resendable()))
        model = self.models[token]
        if not model.by_reference:
            model.answered_after_send = model.errored_after_send = False
        self.apply(self.correlator.resending(token))
        model.sent, model.unsent = True, False

    def in_flight(self) -> list[int]:
        return [
            t for t, m in self.models.items() if m.sent and not m.post_answered and not m.outcomes
        ]

    @precondition(lambda self: self.in_flight())
    @rule(data=st.data())
    def not_received(self, data: st.DataObject) -> None:
        """An attempt of a POST certainly did not reach GWS (no connection, refused unread),
        and the transport waits to write it again: unless something with its reference id
        answered it, it is back to "not sent" (what was matched by key was another's)."""
        token = data.draw(st.sampled_from(self.in_flight()))
        model = self.models[token]
        effects = self.correlator.not_received(token)
        if self.correlator.is_queued(token):
            # (The model's ``by_reference`` may come from a byte-identical copy of a message
            # that arrived before the request was sent: the correlator drops that copy, so
            # nothing with its reference id answered it.)
            model.sent, model.unsent = False, True
            model.answered_after_send = model.errored_after_send = False
            model.by_reference = model.acked_by_reference = model.errored_by_reference = False
        self.apply(effects)

    @precondition(lambda self: any(m.unsent and not m.outcomes for m in self.models.values()))
    @rule(
        data=st.data(),
        result=st.sampled_from(
            [PostResult.NOT_SENT, PostResult.REJECTED, PostResult.AUTHENTICATION_FAILED]
        ),
    )
    def give_up(self, data: st.DataObject, result: PostResult) -> None:
        """The transport gives up on a POST waiting to be written again (its retries are
        used up, the re-login was refused): it ends as GWS's refusal, or not sent."""
        token = data.draw(
            st.sampled_from([t for t, m in self.models.items() if m.unsent and not m.outcomes])
        )
        model = self.models[token]
        model.post_called = True
        status = 4 if result is PostResult.REJECTED else None
        self.apply(self.correlator.posted(token, result, status_code=status, message="x"))
        assert model.outcomes, "a POST given up on left its request without an outcome"

    @precondition(lambda self: self.models)
    @rule(
        data=st.data(),
        kind=st.sampled_from(
            ["ack", "event", "event_ref", "error", "part", "part_event", "empty", "gws_error"]
        ),
        unique=st.booleans(),
    )
    def answer(self, data: st.DataObject, kind: str, unique: bool) -> None:
        """A message for some request (sent or not, pending or not)."""
        token = data.draw(st.sampled_from(sorted(self.models)))
        request = self.models[token].request
        spec = request.spec
        if kind == "ack":
            self.deliver(outbound(request, spec.acknowledgement), answers=request)
        elif kind in ("event", "event_ref"):
            message = user_event(
                request,
                spec.acknowledgement,
                with_reference=kind == "event_ref",
                unique=self.stamp(unique),
            )
            self.deliver(message, answers=request)
        elif kind == "error":
            message = user_event(request, spec.acknowledgement, with_reference=unique, error=True)
            self.deliver(message, answers=request, error=True)
        elif kind == "part" and spec.part is not None:
            self.deliver(outbound(request, spec.part), answers=None)
        elif kind == "part_event" and spec.part is not None:
            message = user_event(request, spec.part, with_reference=unique, unique=self.stamp(True))
            self.deliver(message, answers=None)
        elif kind == "empty" and spec.empty:
            self.deliver(outbound(request, sorted(spec.empty)[0]), answers=request)
        elif kind == "gws_error":
            message = {
                "channel": "/v2/me/outbound",
                "data": {
                    "messageType": "ErrorMessage",
                    "referenceId": request.reference_id,
                    "errorCode": 4,
                    "errorMessage": "failed",
                },
            }
            self.deliver(message, answers=request)

    @precondition(lambda self: self.sent_messages)
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        """An exact copy of an earlier message (duplicated or reordered delivery). The
        correlator drops it while it remembers the original (``fingerprint_limit``, here 8);
        past that it is a message like any other, so the model judges it as the original."""
        message, answers, error = data.draw(st.sampled_from(self.sent_messages))
        self.deliver(message, answers=answers, error=error)

    @rule(
        spec=st.sampled_from(SPECS),
        handle=st.integers(1, 5),
        with_reference=st.booleans(),
        unique=st.booleans(),
    )
    def foreign(self, spec: OperationSpec, handle: int, with_reference: bool, unique: bool) -> None:
        """Another client's acknowledgement (a reference id we never use)."""
        request = FakeRequest(spec, "someone-else", handle)
        if with_reference:
            self.apply(self.correlator.message(outbound(request, spec.acknowledgement)))
        else:
            message = user_event(
                request, spec.acknowledgement, with_reference=False, unique=self.stamp(unique)
            )
            # Without a reference it is indistinguishable from ours: the model allows it to
            # answer a sent request of ours with that key.
            self.deliver(message, answers=request)

    @rule(junk=st.sampled_from([None, 1, {"data": 3}, {"data": {"messageType": "X"}}, {}]))
    def garbage(self, junk: object) -> None:
        self.apply(self.correlator.message(junk))

    @rule(
        name=st.sampled_from(["RecordCancel", "ScheduledCall", "CampaignStarted"]),
        handle=st.integers(1, 3),
    )
    def unsolicited(self, name: str, handle: int) -> None:
        request = FakeRequest(CANCEL_RECORD, "x", handle)
        self.apply(self.correlator.message(user_event(request, name, with_reference=False)))

    @precondition(lambda self: self.timers)
    @rule(data=st.data())
    def timer(self, data: st.DataObject) -> None:
        timer = data.draw(st.sampled_from(sorted(self.timers, key=repr)))
        self.timers.discard(timer)
        self.forcing = timer[0] == "deadline"
        self.deciding = timer[0]
        try:
            self.apply(self.correlator.timer_expired(timer))
        finally:
            self.forcing = False
            self.deciding = None

    @rule()
    def session_lost(self) -> None:
        self.apply(self.correlator.session_lost())

    @rule()
    def session_restored(self) -> None:
        self.apply(self.correlator.session_restored())

    @rule()
    def shutdown(self) -> None:
        self.closed = True
        self.forcing = True
        self.deciding = "shutdown"
        try:
            self.apply(self.correlator.shutdown())
        finally:
            self.forcing = False
            self.deciding = None
        assert not self.pending()

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def bounded(self) -> None:
        sizes = self.correlator.state_sizes()
        assert sizes["entries"] == len(self.pending())
        assert sizes["by_reference"] <= sizes["entries"]
        assert sizes["queued"] <= sizes["entries"]
        assert sizes["reserved"] <= LIMITS.max_reserved
        assert sizes["fingerprints"] <= LIMITS.fingerprint_limit
        assert sizes["foreign"] <= LIMITS.foreign_limit
        assert sizes["parts"] <= LIMITS.parts_limit
        # Only requests whose POST has not ended yet wait for it to say whether they are owed.
        unposted = sum(1 for m in self.models.values() if m.sent and not m.post_called)
        assert sizes["owed_unposted"] <= unposted

    @invariant()
    def at_most_one_outcome(self) -> None:
        for model in self.models.values():
            assert len(model.outcomes) <= 1

    def teardown(self) -> None:
        self.forcing = True
        self.deciding = "shutdown"
        self.apply(self.correlator.shutdown())
        for token, model in self.models.items():
            assert len(model.outcomes) == 1, f"request {token} has {len(model.outcomes)} outcomes"


CorrelatorMachine.TestCase.settings = settings(
    max_examples=2000,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCorrelator = CorrelatorMachine.TestCase


# -- the reproductions of the issue, at the correlator's level ------------------------------------


def _ack_user_event(request: FakeRequest) -> Mapping[str, Any]:
    return user_event(request, request.spec.acknowledgement, with_reference=False)


def test_a_queued_request_is_never_matched_by_a_user_event() -> None:
    """Issue 10, reproduction 4: another desktop's user event for the record a queued (not yet
    sent) request targets must not acknowledge it."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(CANCEL_RECORD, "a", 1)
    second = FakeRequest(CANCEL_RECORD, "b", 2)
    token1, _ = correlator.accept(first)
    token2, _ = correlator.accept(second)
    assert correlator.sending(token1)
    effects = correlator.message(_ack_user_event(second))
    assert not [e for e in effects if isinstance(e, Resolved)]
    assert correlator.sending(token2)  # still to be sent


def test_a_reused_reference_id_cannot_take_a_late_acknowledgement() -> None:
    """Issue 10, reproduction 3: a request that timed out, then a new one with the same id."""
    correlator = Correlator(LIMITS)
    old = FakeRequest(CANCEL_RECORD, "same", 1)
    token, _ = correlator.accept(old)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    (resolved, *_) = correlator.timer_expired(("ack", token))
    assert isinstance(resolved, Resolved)
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.TIMED_OUT
    _, effects = correlator.accept(FakeRequest(CANCEL_RECORD, "same", 1))
    (refused,) = effects
    assert isinstance(refused, Resolved) and isinstance(refused.outcome, Failed)
    assert refused.outcome.reason is FailureReason.REJECTED
    assert "referenceId same" in refused.outcome.message
    # The old request's late acknowledgement is just late.
    late = correlator.message(outbound(old, "RecordCancelAcknowledge"))
    assert not [e for e in late if isinstance(e, Resolved | Foreign)]
    assert correlator.stats["late"] == 1


def test_a_rejected_reference_id_may_be_reused() -> None:
    """GWS did nothing with a request it refused: nothing can arrive late for it."""
    correlator = Correlator(LIMITS)
    token, _ = correlator.accept(FakeRequest(CANCEL_RECORD, "same", 1))
    correlator.sending(token)
    correlator.posted(token, PostResult.REJECTED, status_code=1, message="missing")
    _, effects = correlator.accept(FakeRequest(CANCEL_RECORD, "same", 1))
    assert [type(e) for e in effects[:1]] == [Send]


def test_no_answer_waits_for_the_acknowledgement_then_reports_unknown() -> None:
    """Issue 10, reproduction 5: a POST that may have reached GWS is never resent; its
    acknowledgement still counts, and without one the outcome is unknown."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "n", 1)
    token, _ = correlator.accept(request)
    correlator.sending(token)
    correlator.posted(token, PostResult.NO_ANSWER, message="read timeout")
    (resolved, *_) = correlator.timer_expired(("ack", token))
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.OUTCOME_UNKNOWN

    # (Another record: on record 1 the next unreferenced user event is taken as the late
    # answer of the request above, sent before.)
    token, _ = correlator.accept(FakeRequest(CANCEL_RECORD, "m", 2))
    correlator.sending(token)
    correlator.posted(token, PostResult.NO_ANSWER, message="read timeout")
    request = FakeRequest(CANCEL_RECORD, "m", 2)
    correlator.message(outbound(request, "RecordCancelAcknowledge"))
    effects = correlator.message(_ack_user_event(request))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Acknowledged)


def test_chained_records_are_collected_until_the_end_marker() -> None:
    correlator = Correlator(Limits(merge_window=0))
    request = FakeRequest(GET_CHAINED_RECORD, "c", 1)
    token, _ = correlator.accept(request)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    for handle in (1, 2, 3):
        part = outbound(request, "ChainedRecord")
        part["data"]["record"]["recordHandle"] = handle
        assert not [e for e in correlator.message(part) if not isinstance(e, StartTimer)]
    effects = correlator.message(outbound(request, "ChainedRecordsDataEnd"))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Acknowledged)
    assert [p["record"]["recordHandle"] for p in resolved.outcome.parts] == [1, 2, 3]


def test_an_error_message_with_our_reference_fails_the_request() -> None:
    correlator = Correlator(LIMITS)
    request = FakeRequest(REJECT_RECORD, "e", 1)
    token, _ = correlator.accept(request)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    message = {
        "channel": "/v2/me/outbound",
        "data": {
            "messageType": "ErrorMessage",
            "referenceId": "e",
            "errorCode": 4,
            "errorMessage": "Voice service is not available at this time",
        },
    }
    held = correlator.message(message)  # held merge_window for an acknowledgement (M9)
    assert not [e for e in held if isinstance(e, Resolved)]
    (resolved,) = [
        e for e in correlator.timer_expired(("refusal", token)) if isinstance(e, Resolved)
    ]
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.status_code == 4
    assert "Voice service" in resolved.outcome.message
    other = correlator.message({**message, "data": {**message["data"], "referenceId": "zz"}})
    assert correlator.stats["unmatched_errors"] == 1
    assert other[0].kind == "cometd_error_unmatched"  # type: ignore[union-attr]


def test_preview_record_exhausted_is_an_empty_success() -> None:
    correlator = Correlator(LIMITS)
    request = FakeRequest(GET_PREVIEW_RECORD, "p", 1)
    token, _ = correlator.accept(request)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    message = user_event(request, "PreviewRecord", with_reference=True, error=True)
    message["data"]["userData"]["GSW_ERROR"] = "No Records Available"
    effects = correlator.message(message)
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Acknowledged) and resolved.outcome.empty


@pytest.mark.parametrize("phase", ["queued", "sending", "awaiting"])
def test_shutdown_resolves_everything(phase: str) -> None:
    correlator = Correlator(LIMITS)
    token, _ = correlator.accept(FakeRequest(CANCEL_RECORD, "s", 1))
    if phase != "queued":
        correlator.sending(token)
    if phase == "awaiting":
        correlator.posted(token, PostResult.ACCEPTED)
    (resolved, *_) = correlator.shutdown()
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Failed)
    # Evidence counts (issue 16): only a request never sent is "shut_down"; one that was
    # written may have been acted on, so its outcome is unknown.
    expected = FailureReason.SHUT_DOWN if phase == "queued" else FailureReason.OUTCOME_UNKNOWN
    assert resolved.outcome.reason is expected
    assert resolved.outcome.may_have_acted is (phase != "queued")
    assert correlator.pending == 0
    _, effects = correlator.accept(FakeRequest(CANCEL_RECORD, "t", 1))
    assert isinstance(effects[0], Resolved)


def test_a_late_answer_is_taken_before_a_newer_request_on_the_record() -> None:
    """A request that ended without its user event was sent before any pending one on that
    record: an unreferenced user event is its late answer, not the newer request's."""
    correlator = Correlator(LIMITS)
    old = FakeRequest(CANCEL_RECORD, "old", 1)
    token, _ = correlator.accept(old)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    correlator.timer_expired(("ack", token))
    retry = FakeRequest(CANCEL_RECORD, "retry", 1)
    token, _ = correlator.accept(retry)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    effects = correlator.message(_ack_user_event(old))
    # Nothing for the newer request (the ``claim`` timer is the old one's: M4).
    assert not [
        e
        for e in effects
        if isinstance(e, Resolved) or (isinstance(e, StartTimer) and e.timer != ("claim", "old"))
    ]
    assert correlator.stats["late"] == 1


def test_requests_on_one_record_are_sent_one_at_a_time() -> None:
    correlator = Correlator(LIMITS)
    first, effects = correlator.accept(FakeRequest(CANCEL_RECORD, "a", 1))
    assert [type(e) for e in effects if isinstance(e, Send)] == [Send]
    second, effects = correlator.accept(FakeRequest(REJECT_RECORD, "b", 1))
    assert not [e for e in effects if isinstance(e, Send)]
    assert correlator.sending(second) is False
    correlator.sending(first)
    effects = correlator.posted(first, PostResult.REJECTED, status_code=1, message="no")
    assert [e.token for e in effects if isinstance(e, Send)] == [second]
    assert correlator.sending(second) is True


@pytest.mark.parametrize("own", ["notification", "user_event"])
def test_an_unreferenced_error_does_not_fail_a_request_gws_acknowledged(own: str) -> None:
    """M9: an acknowledgement with the request's reference id arrived (its notification, or
    a user event carrying ``GSW_REFERENCE_ID``: the latter failed before); a refusal without
    a reference id on its record is another client's."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "a", 1)
    token, _ = correlator.accept(request)
    correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    if own == "notification":
        correlator.message(outbound(request, "RecordCancelAcknowledge"))
    else:
        correlator.message(user_event(request, "RecordCancelAcknowledge", with_reference=True))
    error = user_event(request, "RecordCancelAcknowledge", with_reference=False, error=True)
    assert not [e for e in correlator.message(error) if isinstance(e, Resolved)]
    (resolved, *_) = correlator.timer_expired(("merge", token))
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Acknowledged)


def test_a_user_event_naming_another_reference_never_matches_by_record() -> None:
    """Found by the stateful test: a user event carrying the referenceId of a request that was
    not sent (held behind another on the same record) must not answer the one that was."""
    correlator = Correlator(LIMITS)
    sent = FakeRequest(REJECT_RECORD, "r1", 1)
    held = FakeRequest(REJECT_RECORD, "r2", 1)
    token, _ = correlator.accept(sent)
    correlator.accept(held)
    correlator.sending(token)
    for error in (False, True):
        message = user_event(held, "RecordRejectAcknowledge", with_reference=True, error=error)
        effects = correlator.message(message)
        assert not [e for e in effects if isinstance(e, Resolved)]
        assert not [e for e in effects if isinstance(e, StartTimer) and e.timer[0] == "merge"]
    (resolved, *_) = correlator.timer_expired(("deadline", token))
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Failed)


@pytest.mark.parametrize("error", [False, True])
def test_an_answer_by_key_decides_nothing_before_gws_answers_the_post(error: bool) -> None:
    """M10: a user event without our reference id (another desktop's answer on the record
    looks the same) reaches the request in flight while GWS has not answered its POST; GWS
    then refuses the POST: the refusal is the outcome, not an acknowledgement (or an OCS
    error) made of the other desktop's message."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    effects = correlator.message(
        user_event(request, "RecordCancelAcknowledge", with_reference=False, error=error)
    )
    effects += correlator.timer_expired(("merge", token))
    assert not [e for e in effects if isinstance(e, Resolved)]
    (resolved, *_) = correlator.posted(token, PostResult.REJECTED, status_code=4, message="down")
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.REJECTED
    assert resolved.outcome.may_have_acted is False


@pytest.mark.parametrize("error", [False, True])
def test_an_answer_by_key_decides_once_gws_accepts_the_post(error: bool) -> None:
    """M10, the other side: once GWS accepts the POST, the user event matched by key is the
    request's answer: an acknowledgement decides at once; OCS's refusal at the end of
    ``merge_window`` from then (M9: unless a message with its reference id comes first)."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    correlator.message(
        user_event(request, "RecordCancelAcknowledge", with_reference=False, error=error)
    )
    correlator.timer_expired(("merge", token))
    effects = correlator.posted(token, PostResult.ACCEPTED)
    if error:
        assert not [e for e in effects if isinstance(e, Resolved)]
        effects = correlator.timer_expired(("refusal", token))
    (resolved, *_) = effects
    assert isinstance(resolved, Resolved)
    if error:
        assert isinstance(resolved.outcome, Failed)
        assert resolved.outcome.reason is FailureReason.OCS_ERROR
    else:
        assert isinstance(resolved.outcome, Acknowledged)
        assert resolved.outcome.user_event is not None


@pytest.mark.parametrize("error", [False, True])
def test_an_answer_by_key_before_a_resend_is_forgotten(error: bool) -> None:
    """M10 and a resend: a user event without our reference id (an acknowledgement, or an OCS
    refusal naming the record) reaches the request while its first attempt is refused unread
    (a re-login, a retry). The POST is written again and GWS accepts it: that user event was
    another client's, so nothing is decided; a copy of it is a repeat; the request's own
    answer (another acknowledgement of the record) decides."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    foreign = user_event(
        request, "RecordCancelAcknowledge", with_reference=False, error=error, unique=1
    )
    effects = correlator.message(foreign)
    effects += correlator.timer_expired(("merge", token))
    effects += correlator.resending(token)
    effects += correlator.posted(token, PostResult.ACCEPTED)
    assert not [e for e in effects if isinstance(e, Resolved)]
    copy = {**foreign, "data": {**foreign["data"], "metrics": {}}}  # GWS relaying it again
    assert not [e for e in correlator.message(copy) if isinstance(e, Resolved)]
    own = user_event(request, "RecordCancelAcknowledge", with_reference=False, unique=2)
    own["data"]["userData"]["GSW_PHONE"] = "5551234"  # not the same userData as the other's
    correlator.message(own)
    (resolved, *_) = correlator.timer_expired(("merge", token))
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Acknowledged)
    assert resolved.outcome.user_event is not None
    assert resolved.outcome.user_event.user_data["GSW_PHONE"] == "5551234"


@pytest.mark.parametrize("own", ["notification", "user_event"])
@pytest.mark.parametrize("decider", ["post", "deadline", "settle"])
def test_a_refusal_by_key_before_the_request_s_own_acknowledgement_is_another_s(
    decider: str, own: str
) -> None:
    """M9 with M10: an OCS refusal without a reference id (another desktop's, on the record)
    reaches the request while GWS has not answered its POST, and is held for that answer;
    then the request's acknowledgement with its reference id arrives (its notification, or
    a user event carrying ``GSW_REFERENCE_ID``). The refusal was another client's: whatever
    decides next (GWS's answer to the POST, the deadline, the grace period after a lost
    session), the request is acknowledged, as when the merge window ends first."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    refusal = user_event(request, "RecordCancelAcknowledge", with_reference=False, error=True)
    effects = correlator.message(refusal)
    if decider == "settle":
        effects += correlator.session_lost()
        effects += correlator.session_restored()
    if own == "notification":
        effects += correlator.message(outbound(request, "RecordCancelAcknowledge"))
    else:
        effects += correlator.message(
            user_event(request, "RecordCancelAcknowledge", with_reference=True)
        )
    assert not [e for e in effects if isinstance(e, Resolved)]
    if decider == "post":
        effects = correlator.posted(token, PostResult.ACCEPTED)
    elif decider == "deadline":
        effects = correlator.timer_expired(("deadline", token))
    else:
        effects = correlator.timer_expired(("settle", 1))
    if not [e for e in effects if isinstance(e, Resolved)]:
        effects += correlator.timer_expired(("merge", token))  # its user event is lost
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Acknowledged)


@pytest.mark.parametrize("result", [PostResult.ACCEPTED, PostResult.REJECTED])
def test_a_grace_period_leaves_a_request_whose_post_gws_has_not_answered(
    result: PostResult,
) -> None:
    """The CometD session is lost and restored while GWS has not answered a request's POST
    (it is being written, or waits to be written again after GWS refused it unread): the
    grace period leaves it alone. GWS's answer decides: a refusal is the outcome (GWS did
    nothing), an acceptance is followed by the request's own answer (or its acknowledgement
    timer)."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    effects = correlator.session_lost()
    effects += correlator.session_restored()
    effects += correlator.timer_expired(("settle", 1))
    assert not [e for e in effects if isinstance(e, Resolved)]
    effects = correlator.posted(token, result, status_code=4, message="down")
    if result is PostResult.ACCEPTED:
        assert not [e for e in effects if isinstance(e, Resolved)]
        effects = correlator.message(outbound(request, "RecordCancelAcknowledge"))
        effects += correlator.timer_expired(("merge", token))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    if result is PostResult.ACCEPTED:
        assert isinstance(resolved.outcome, Acknowledged)
    else:
        assert isinstance(resolved.outcome, Failed)
        assert resolved.outcome.reason is FailureReason.REJECTED


def test_a_copy_of_a_refusal_dropped_by_m9_is_a_repeat() -> None:
    """M9 with M10, then M8: another desktop's refusal on the record was held for our POST's
    answer and dropped when our acknowledgement notification arrived; GWS then relays that
    refusal again (the same ``userData``, other metrics) while our next request on the record
    is in flight. The copy is a repeat: it does not fail that request."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(CANCEL_RECORD, "k1", 1)
    token, _ = correlator.accept(first)
    assert correlator.sending(token)
    refusal = user_event(
        first, "RecordCancelAcknowledge", with_reference=False, error=True, unique=True
    )
    effects = correlator.message(refusal)
    effects += correlator.message(outbound(first, "RecordCancelAcknowledge"))
    effects += correlator.posted(token, PostResult.ACCEPTED)
    effects += correlator.timer_expired(("merge", token))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Acknowledged)
    second = FakeRequest(CANCEL_RECORD, "k2", 1)
    token, _ = correlator.accept(second)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    copy = {**refusal, "data": {**refusal["data"], "metrics": {}}}  # GWS relaying it again
    assert not [e for e in correlator.message(copy) if isinstance(e, Resolved)]


def test_a_late_no_records_event_is_the_late_answer_of_an_empty_result() -> None:
    """M9 for owed answers reads a refusal as OCS's "no" to the request; "No Records
    Available" (``GSW_ERROR`` on an exhausted preview list) is not a refusal but the empty
    result itself. A ``GetPreviewRecord`` acknowledged empty by its notification is still owed
    its user event; when that comes late, error-shaped and without our reference id, it is
    that request's late answer, not the empty result of the next ``GetPreviewRecord`` of the
    campaign, which then waits for its own answer."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(GET_PREVIEW_RECORD, "p1", 1)
    token1, _ = correlator.accept(first)
    assert correlator.sending(token1)
    correlator.posted(token1, PostResult.ACCEPTED)
    effects = correlator.message(outbound(first, "PreviewRecordEmpty"))
    assert [e.outcome.empty for e in effects if isinstance(e, Resolved)] == [True]
    second = FakeRequest(GET_PREVIEW_RECORD, "p2", 1)
    token2, _ = correlator.accept(second)
    assert correlator.sending(token2)
    correlator.posted(token2, PostResult.ACCEPTED)
    late = user_event(first, "PreviewRecord", with_reference=False, error=True)
    late["data"]["userData"]["GSW_ERROR"] = "No Records Available"
    late["data"]["userData"]["GSW_ERROR_NUMBER"] = 108
    effects = correlator.message(late)
    assert not [e for e in effects if isinstance(e, Resolved)], effects
    assert correlator.state_sizes()["entries"] == 1  # the second still waits for its own


def test_a_no_record_is_not_the_late_answer_of_a_request_handed_a_record() -> None:
    """M9 for owed answers: a ``GetPreviewRecord`` acknowledged by its notification with a
    record (its user event late) is owed that record's user event, not a "no record". An
    unreferenced ``PreviewRecordEmpty`` that comes next on the campaign is the next
    ``GetPreviewRecord``'s own answer: it ends empty at once (it timed out before)."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(GET_PREVIEW_RECORD, "p1", 1)
    token1, _ = correlator.accept(first)
    assert correlator.sending(token1)
    correlator.posted(token1, PostResult.ACCEPTED)
    correlator.message(outbound(first, "PreviewRecord"))
    effects = correlator.timer_expired(("merge", token1))
    assert [e.outcome.empty for e in effects if isinstance(e, Resolved)] == [False]
    second = FakeRequest(GET_PREVIEW_RECORD, "p2", 1)
    token2, _ = correlator.accept(second)
    assert correlator.sending(token2)
    correlator.posted(token2, PostResult.ACCEPTED)
    effects = correlator.message(user_event(second, "PreviewRecordEmpty", with_reference=False))
    resolved = [e for e in effects if isinstance(e, Resolved)]
    assert [(e.token, e.outcome.empty) for e in resolved] == [(token2, True)], effects


@pytest.mark.parametrize("decider", ["post", "deadline"])
def test_a_refusal_by_key_that_decides_after_the_post_leaves_nothing_owed(decider: str) -> None:
    """M10 then M4: OCS's refusal of a cancel (a user event without our reference id) arrives
    before GWS answers the POST and is held; GWS accepts the POST, so the refusal was ours and
    the cancel ends ``ocs_error``. Or the deadline comes first: the refusal may be another
    client's (GWS has not answered the POST), so the cancel ends ``outcome_unknown``; GWS then
    accepts the POST. Either way that user event was its answer (or, had GWS refused the POST,
    nothing was owed): nothing more is owed on the record. The next cancel of the record is
    refused by OCS too (another error): that refusal is the next cancel's own.

    Before, a refusal that decided after the POST's answer left the request without its user
    event, so the record stayed owed one: the next cancel's refusal was taken as the first
    one's late answer, and the next cancel ended ``timed_out`` instead of ``ocs_error``."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(CANCEL_RECORD, "k1", 1)
    token, _ = correlator.accept(first)
    assert correlator.sending(token)
    refused = user_event(first, "RecordCancelAcknowledge", with_reference=False, error=True)
    correlator.message(refused)
    if decider == "post":
        effects = correlator.posted(token, PostResult.ACCEPTED)
        effects += correlator.timer_expired(("refusal", token))
    else:
        effects = correlator.timer_expired(("deadline", token))
        effects += correlator.posted(token, PostResult.ACCEPTED)
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Failed)
    if decider == "post":
        assert resolved.outcome.reason is FailureReason.OCS_ERROR
    else:
        assert resolved.outcome.reason is FailureReason.OUTCOME_UNKNOWN
        assert resolved.outcome.may_have_acted
    second = FakeRequest(CANCEL_RECORD, "k2", 1)
    token, _ = correlator.accept(second)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    refusal = user_event(second, "RecordCancelAcknowledge", with_reference=False, error=True)
    refusal["data"]["userData"]["GSW_ERROR"] = "Record is already cancelled"
    refusal["data"]["userData"]["GSW_ERROR_NUMBER"] = 100
    held = correlator.message(refusal)  # held for the merge window (M9)
    assert not [e for e in held if isinstance(e, Resolved)]
    effects = correlator.timer_expired(("refusal", token))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.OCS_ERROR
    assert resolved.outcome.error_number == 100


def test_a_request_answered_by_reference_before_gws_refused_its_post_leaves_no_trace() -> None:
    """A cancel is acknowledged by its notification (with our reference id) before GWS
    answers the POST, and GWS then refuses the POST: the acknowledgement stands, and the
    cancel ends acknowledged without its user event (owed it, M4). GWS has answered its POST:
    nothing is kept waiting for that answer.

    Before, the refused POST left the request marked as not answered by GWS, so at its
    outcome it was kept in ``owed_unposted`` (for a POST answer that had come already):
    one entry per such request, never removed."""
    correlator = Correlator(LIMITS)
    request = FakeRequest(CANCEL_RECORD, "k", 1)
    token, _ = correlator.accept(request)
    assert correlator.sending(token)
    correlator.message(outbound(request, "RecordCancelAcknowledge"))
    assert correlator.posted(token, PostResult.REJECTED, status_code=1, message="no") == []
    (resolved, *_) = correlator.timer_expired(("merge", token))
    assert isinstance(resolved, Resolved) and isinstance(resolved.outcome, Acknowledged)
    assert correlator.state_sizes()["owed"] == 1
    assert correlator.state_sizes()["owed_unposted"] == 0


def test_a_request_gws_refused_by_an_error_message_is_owed_nothing() -> None:
    """A cancel GWS accepted is then refused by a CometD ``ErrorMessage`` with its reference
    id: it ends ``rejected`` (GWS did not pass it on; nothing else is published for it), so it
    is owed no answer on its record (M4). The host cancels the record again and OCS refuses
    that cancel (a user event without our reference id): the refusal is the new cancel's own.

    Before, the refused cancel was remembered as owed its user event, like one that ended
    without it: the new cancel's refusal was taken as that late answer, and the new cancel
    ended ``timed_out`` after ``ack_timeout`` instead of ``ocs_error`` (after
    ``merge_window``)."""
    correlator = Correlator(LIMITS)
    first = FakeRequest(CANCEL_RECORD, "e1", 1)
    token, _ = correlator.accept(first)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    error = {
        "channel": "/v2/me/outbound",
        "data": {
            "messageType": "ErrorMessage",
            "referenceId": "e1",
            "errorCode": 4,
            "errorMessage": "Voice service is not available at this time",
        },
    }
    held = correlator.message(error)  # held merge_window for an acknowledgement (M9)
    assert not [e for e in held if isinstance(e, Resolved)]
    (resolved,) = [
        e for e in correlator.timer_expired(("refusal", token)) if isinstance(e, Resolved)
    ]
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.REJECTED
    second = FakeRequest(CANCEL_RECORD, "e2", 1)
    token, _ = correlator.accept(second)
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    refusal = user_event(second, "RecordCancelAcknowledge", with_reference=False, error=True)
    held = correlator.message(refusal)  # held for the merge window (M9)
    assert not [e for e in held if isinstance(e, Resolved)]
    effects = correlator.timer_expired(("refusal", token))
    (resolved,) = [e for e in effects if isinstance(e, Resolved)]
    assert isinstance(resolved.outcome, Failed)
    assert resolved.outcome.reason is FailureReason.OCS_ERROR
