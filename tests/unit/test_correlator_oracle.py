"""The correlator against a simulated OCS that decides the truth (an oracle of its own).

The test plays every part around the pure correlator (no I/O):

* the host: it submits real request objects (``CancelRequest``, ``DoNotCallPhoneRequest``,
  ``GetChainedRecordRequest``, ...) on a small universe of records, chains, phone numbers and
  one campaign, so that their keys collide, with referenceIds sometimes reused;
* the engine: it calls ``sending`` for a ``Send`` when it chooses, then ``posted`` with any
  :class:`PostResult`; it keeps a fake clock and fires the started timers in due order (the
  latest ``StartTimer`` of an id replaces the earlier one, ``CancelTimer`` removes it);
* the transport's resends: an attempt may certainly not reach GWS (a 503 with GWS's
  ``statusCode``, a connection that could not be made, a re-login); the transport then calls
  ``not_received`` (as ``GWSSession`` does; a host's own transport may not: *silent*), waits,
  and either gives up (``posted`` NOT_SENT, REJECTED 503 or AUTHENTICATION_FAILED) or asks
  ``resending`` (the engine's ``Engine.resending``: not once the request has its outcome, and
  then nothing is written again) and writes it again: a request may miss several attempts
  before one reaches GWS (or none does);
* OCS and GWS: they answer only requests that reached them (``sending`` returned True and the
  attempt written last, the only one that reached GWS, ended ACCEPTED or NO_ANSWER), in the
  order they reached them, each one way: acknowledged
  (notification + user event; the user event of a record operation carries no
  ``GSW_REFERENCE_ID``, as OCS sends it), refused (an error user event keyed on the *stored*
  record, e.g. for a request with a wrong application id or campaign), an exhausted preview
  list, chained records (parts, then the end marker, as notifications and/or as user events),
  a CometD ``ErrorMessage``, or never. OCS also pushes messages on its own (a preview record of
  another record of the campaign, ``RecordCancel``, ``ScheduledCall``, campaign status), and
  other clients of the agent get acknowledgements (with their own referenceIds, or on records
  of another campaign); another desktop of the agent gets an unreferenced answer (or refusal)
  on the key of a request of ours while GWS has none of that request's attempts (delivered at
  once: matched by key, it must be forgotten when the attempt is known not to have reached
  GWS, M10); or OCS refuses another desktop's request on the record of a request of ours that
  GWS got, just before it acts on ours (property 7);
* CometD: it delivers each message zero, one or several times (byte-identical or regenerated
  with new ``metrics``), reordered within a window (never ahead of an earlier request's answer:
  OCS answers in order and CometD keeps that order), late (after the outcome), and again after
  the outcome.

The oracle builds every message itself from the shapes in the GWS reference (§4, §7); it
imports nothing from the implementation but the public inputs and effect classes, and it
records, for every message it emits, which request it truly answers (or that it is a push,
or another client's). A message is recognised in an outcome by its content (the notification's
``data``, the user event's ``userData``); messages of equal content are interchangeable, so an
outcome may carry any of them.

Properties, checked on every ``Resolved`` and at the end:

1. every accepted request gets exactly one outcome (at most one at every step; shutdown
   resolves the rest);
2. an ``Acknowledged`` outcome goes only to a request that was sent, and carries at least one
   message; its ``outbound`` is the request's own acknowledgement notification, its
   ``user_event`` the request's own acknowledgement user event, each of its ``parts`` one of the
   request's own chained records, no chained record twice; ``empty`` only when OCS answered
   "no records";
3. ``Failed`` with ``ocs_error`` only for a request OCS refused, with OCS's error number;
4. a message carrying the referenceId of a request of ours, or a repeat of a user event that
   an acknowledged request of ours carried, is never reported as another client's
   acknowledgement (``Foreign``) or as ``Unsolicited``;
5. what GWS got (the oracle's truth about each attempt): a request none of whose attempts
   reached GWS is never acknowledged nor failed with ``ocs_error``; one whose deadline or the
   close comes while it waits to be written again (``not_received`` heard, ``resending`` not
   yet) ends not sent: ``transport_failure`` / ``shut_down`` (or the transport's refusal when
   it gives up), ``may_have_acted`` false; a failure that says nothing was acted on
   (``transport_failure`` or ``shut_down`` with ``may_have_acted`` false) goes only to a
   request GWS got none of the attempts of; a request an attempt of which reached GWS and was
   accepted or left unanswered fails only with ``may_have_acted`` true, unless OCS refused it
   or GWS sent its ``ErrorMessage``. While an attempt that will not reach GWS is still being
   written (or after it, for a silent transport) the engine cannot know it missed: the
   request counts as possibly processed, and is still never acknowledged nor ``ocs_error``
   (an answer matched by key decides nothing before GWS answers the POST, not even at the
   deadline or the close: M10);
6. liveness, where the truth is unambiguous. A request is *cleanly answered* when every
   message of its answer was delivered exactly once (no loss, no copy, not regenerated), in
   the order OCS sent them, while the request had no outcome yet (so before any of its timers
   fired), and either one of them carries its referenceId or GWS answered its POST before
   its outcome (else what arrived was matched by key alone, which decides nothing until
   GWS answers the POST, M10: its deadline or the close may come first). A cleanly answered
   request then has this outcome:

   * acknowledged: ``Acknowledged`` with its notification as ``outbound``; and with its user
     event as ``user_event`` when that event is *attributable*: it carries our referenceId, or
     it is not of a kind OCS also pushes (``PreviewRecord``: without our referenceId it could be
     a push), no other request emitted a user event with the same ``userData`` (else it is
     indistinguishable from a repeat), and no
     request sent earlier on the same target (record handle, phone number, or campaign) and
     answered by the same event name was still owed an unreferenced user event when it arrived
     (OCS answers in order: that earlier request's answer comes first), unless the event is a
     refusal and GWS's acknowledgement of that earlier request had arrived (what OCS still
     owes a request it acted on is no refusal);
   * chained records: ``Acknowledged`` whose ``parts`` are all its chained records, in order
     (when they came as user events only: provided no other request's chained record of the
     same chain arrived between its sending and its end marker);
   * refused: ``Failed(ocs_error)`` with OCS's error number, when the error event carries our
     referenceId or is attributable (as above);
   * no records: ``Acknowledged`` with ``empty``, under the same condition;
   * a CometD ``ErrorMessage``: ``Failed`` (any reason).
7. another desktop's refusal (see :meth:`Oracle.foreign_refusal_taken`): OCS refuses another
   desktop's request on the record of one of ours that GWS got and OCS has not answered yet;
   the refusal, without referenceId, is delivered at once, and OCS answers ours after it (or
   never). It cannot be told from a refusal of ours, so ours may end with it, but only when
   no acknowledgement with its referenceId arrived before its outcome, and only once
   ``merge_window`` passed from that refusal and GWS's answer to the POST (or at its deadline
   or the close).

Each example starts with one of two ``Limits``: the defaults (with short timeouts), or small
bounds (``recent_limit``, ``fingerprint_limit``, ``foreign_limit``, ``max_reserved``,
``parts_limit``: those of them the ``Limits`` in use has), so that an example holds more
finished requests than any count-based bound. Each rule draws a single number and reads its
choices from it (thousands of examples then run in seconds); a failing example is told step by
step in words (``# t=...`` lines) after each rule call.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context, note
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from gws_outbound_plugin import (
    CallbackType,
    CancelRequest,
    ChainAttribute,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    FailureReason,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    RejectRecordRequest,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
)
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import (
    Acknowledged,
    CancelTimer,
    Failed,
    Foreign,
    Limits,
    PostResult,
    Resolved,
    Send,
    StartTimer,
    Unsolicited,
)

# -- the universe (small, so that keys collide) ---------------------------------------------------

APP = 134
WRONG_APP = 135
CAMPAIGN = "Preview1"
WRONG_CAMPAIGN = "Preview9"
CALLING_LIST = "List1"
GROUP = "Group1"
DEVICE_ID = "5e9b2c1a"
DEVICE_PATH = f"/devices/{DEVICE_ID}"
OUTBOUND = "/v2/me/outbound"
INTERNAL = "/me/internal"
RECORD_MESSAGE = "OutboundRecordMessage"
CAMPAIGN_MESSAGE = "OutboundCampaignMessage"


@dataclasses.dataclass(frozen=True)
class Rec:
    handle: int
    chain: int
    phone: str


#: Records as OCS stores them: two chains; 11 and 13 share a phone number, as do 12 and 22.
RECORDS = {
    11: Rec(11, 1, "5550101"),
    12: Rec(12, 1, "5550102"),
    13: Rec(13, 1, "5550101"),
    21: Rec(21, 2, "5550201"),
    22: Rec(22, 2, "5550102"),
}
PHONES = ("5550101", "5550102", "5550201")
#: Another client's records: another campaign, handles and phone numbers we never use.
OTHER_CAMPAIGN = "Elsewhere"
OTHER_RECORDS = (Rec(91, 9, "5559901"), Rec(92, 9, "5559902"))
#: referenceIds drawn from this pool collide; the others are fresh.
REFERENCE_POOL = ("r1", "r2", "1001", "1002")

#: The oracle's own table (reference §3, §4.6, §7.3): operation -> (message type, notification
#: of its acknowledgement, GSW_USER_EVENT names of the user events that answer it).
OPERATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cancel": (RECORD_MESSAGE, "RecordCancelAcknowledge", ("RecordCancelAcknowledge",)),
    "reject": (RECORD_MESSAGE, "RecordRejectAcknowledge", ("RecordRejectAcknowledge",)),
    "complete": (RECORD_MESSAGE, "RecordProcessedAcknowledge", ("RecordProcessedAcknowledge",)),
    "dnc_record": (RECORD_MESSAGE, "DoNotCallAcknowledge", ("DoNotCallAcknowledge",)),
    "reschedule": (
        RECORD_MESSAGE,
        "ScheduledRecordRescheduleAcknowledge",
        ("ScheduledRecordRescheduleAcknowledge", "RecordRescheduleAcknowledge"),
    ),
    "chained": (RECORD_MESSAGE, "ChainedRecordsDataEnd", ("ChainedRecordsDataEnd",)),
    "dnc_phone": (RECORD_MESSAGE, "DoNotCallAcknowledge", ("DoNotCallAcknowledge",)),
    "start": (
        CAMPAIGN_MESSAGE,
        "PreviewSessionStarted",
        ("PreviewDialingModeStartAcknowledge",),
    ),
    "preview": (RECORD_MESSAGE, "PreviewRecord", ("PreviewRecord", "PreviewRecordEmpty")),
    "end": (CAMPAIGN_MESSAGE, "PreviewSessionEnded", ("PreviewDialingModeOverAcknowledge",)),
}
#: GSW_USER_EVENT names OCS also sends on its own (reference §4.6, §7.3).
PUSHED_BY_OCS = frozenset({"PreviewRecord", "RecordCancel", "ScheduledCall", "CampaignStarted"})
RECORD_OPERATIONS = ("cancel", "reject", "complete", "dnc_record", "reschedule", "chained")
CAMPAIGN_OPERATIONS = ("start", "preview", "end")
#: What the host asks for (record operations twice as often).
REQUESTED = (*RECORD_OPERATIONS, "dnc_phone", *CAMPAIGN_OPERATIONS, *RECORD_OPERATIONS)
RESCHEDULE_AT = datetime.datetime(2026, 12, 24, 9, 30, tzinfo=datetime.UTC)

ACK_TIMEOUT = 1.0
MERGE_WINDOW = 0.25
DEADLINE = 8.0
LATE_WINDOW = 20.0
#: OCS and CometD deliver nothing for a request later than this after its outcome (the
#: referenceId is reserved for LATE_WINDOW; after that a message for it is not ours to judge).
DELIVERY_HORIZON = 0.8 * LATE_WINDOW
REORDER_WINDOW = 4
#: The error number of another desktop's refusal on the key of a request of ours GWS got
#: (none of our requests is refused with it): how the oracle tells that refusal in an outcome.
FOREIGN_ERROR = 120
#: How the engine's POST ends, and how CometD carries a message (weighted by repetition).
PLANNED = (PostResult.ACCEPTED,) * 6 + (
    PostResult.NO_ANSWER,
    PostResult.REJECTED,
    PostResult.NOT_SENT,
)
HOWS = ("once",) * 5 + ("copy", "regenerated", "lost")
#: How many attempts of a request miss GWS before the one that ends as planned.
MISSES = (0,) * 5 + (1, 1, 2)
#: The transport gives up between attempts: how its POST ends, and the outcome that follows.
GIVING_UP = {
    PostResult.NOT_SENT: FailureReason.TRANSPORT_FAILURE,  # no connection, after the retries
    PostResult.REJECTED: FailureReason.REJECTED,  # 503 with GWS's statusCode, after the retries
    PostResult.AUTHENTICATION_FAILED: FailureReason.AUTHENTICATION_FAILED,  # re-login refused
}


def _limits(**values: Any) -> Limits:
    """``Limits`` with those of ``values`` the correlator in use knows."""
    known = {f.name for f in dataclasses.fields(Limits)}
    return Limits(**{name: value for name, value in values.items() if name in known})


LIMIT_SETS = (
    _limits(
        ack_timeout=ACK_TIMEOUT,
        merge_window=MERGE_WINDOW,
        deadline=DEADLINE,
        late_window=LATE_WINDOW,
    ),
    # Small bounds, as an old count-bound correlator had them: more finished requests than fit.
    _limits(
        ack_timeout=ACK_TIMEOUT,
        merge_window=MERGE_WINDOW,
        deadline=DEADLINE,
        late_window=LATE_WINDOW,
        recent_limit=3,
        fingerprint_limit=6,
        foreign_limit=3,
        max_reserved=8,
        parts_limit=4,
    ),
)


def _replaying() -> bool:
    """Whether hypothesis is replaying a failing example (False outside hypothesis)."""
    try:
        return current_build_context().is_final
    except InvalidArgument:
        return False


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_of(item: object) -> str:
    """What identifies a message in an outcome or effect: a notification's ``data``, or a user
    event's ``userData`` (its metrics differ between regenerated copies)."""
    user_data = getattr(item, "user_data", None)
    if isinstance(user_data, Mapping):
        return "u" + canonical(dict(user_data))
    if isinstance(item, Mapping):
        if item.get("messageType") == "DeviceUserEventMessage":
            return "u" + canonical(dict(item["userData"]))
        return "n" + canonical(dict(item))
    raise AssertionError(f"cannot tell what message this is: {item!r}")


# -- the oracle's records -------------------------------------------------------------------------


@dataclasses.dataclass
class Msg:
    """One message OCS/GWS emitted, and the truth about it."""

    mid: int
    owner: int | str
    """The token of the request it answers, or ``"push"`` / ``"foreign"``."""
    role: str
    """``ack`` (acknowledgement notification or user event), ``part``, ``error``, ``empty``,
    ``cometd_error``, ``push``, ``foreign``."""
    channel: str
    data: dict[str, Any]
    referenced: bool
    """It carries our referenceId."""
    part: int | None = None
    chain: int | None = None
    deliveries: list[tuple[int, bool]] = dataclasses.field(default_factory=list)
    """(delivery sequence number, regenerated) of every copy delivered."""

    @property
    def is_event(self) -> bool:
        return self.data.get("messageType") == "DeviceUserEventMessage"

    @property
    def content(self) -> str:
        return content_of(self.data)


@dataclasses.dataclass
class Req:
    token: int
    request: Any
    operation: str
    reference: str
    handle: int | None
    phone: str | None
    wrong: bool
    """Sent with a wrong application id or campaign name: OCS refuses it."""
    send_emitted: bool = False
    sending_called: bool = False
    sent: bool = False
    sent_seq: int = -1
    """When the attempt written last was written (the one OCS got, if any)."""
    post_seq: int | None = None
    """When the POST's answer (of its attempt written last) was given to the engine."""
    planned: PostResult = PostResult.ACCEPTED
    """How the last attempt ends (the ones before it miss GWS)."""
    posted: bool = False
    reaches_ocs: bool = False
    misses_left: int = 0
    """Attempts still to be written that will not reach GWS (the current one included)."""
    silent: bool = False
    """The transport does not call ``not_received`` (only ``resending``)."""
    attempts: int = 0
    reached: bool = False
    """Truth: an attempt reached GWS (it may have acted, or refused it)."""
    between: bool = False
    """An attempt missed GWS and the transport waits to write it again (or to give up)."""
    kind: str | None = None
    """How OCS answered: ack, chained, refuse, empty, cometd_error, never (None: not yet)."""
    error_number: int | None = None
    batch: list[int] = dataclasses.field(default_factory=list)
    outcomes: list[Acknowledged | Failed] = dataclasses.field(default_factory=list)
    resolved_at: float | None = None
    accepted_at: float = 0.0
    posted_at: float | None = None
    """When GWS answered the attempt that reached it without refusing it."""
    foreign_refused_at: float | None = None
    """When another desktop's refusal on its key (unreferenced) was delivered while it waited
    for OCS, GWS having got it (the known limit: it cannot be told from OCS's refusal of it)."""

    @property
    def answer_names(self) -> frozenset[str]:
        return frozenset(OPERATIONS[self.operation][2])

    @property
    def target(self) -> tuple[Any, ...]:
        """What it acts on (its own key, in the oracle's words)."""
        if self.operation in CAMPAIGN_OPERATIONS:
            return ("campaign",)
        if self.operation == "dnc_phone":
            return ("phone", self.phone)
        return ("record", self.handle)


# -- message builders (reference §4.4, §4.5, §7) ---------------------------------------------------


def notification(
    message_type: str, kind: str, reference: str | None, key: str, payload: dict[str, Any]
) -> dict[str, Any]:
    data: dict[str, Any] = {"messageType": message_type, "notificationType": kind}
    if reference is not None:
        data["referenceId"] = reference
    data[key] = payload
    return data


def ack_record(rec: Rec, campaign: str = CAMPAIGN) -> dict[str, Any]:
    return {
        "devicePath": DEVICE_PATH,
        "callingList": CALLING_LIST,
        "applicationId": APP,
        "recordHandle": rec.handle,
        "campaignName": campaign,
    }


def record_keys(name: str, rec: Rec, campaign: str = CAMPAIGN) -> dict[str, Any]:
    return {
        "GSW_USER_EVENT": name,
        "GSW_APPLICATION_ID": APP,
        "GSW_RECORD_HANDLE": rec.handle,
        "GSW_CALLING_LIST": CALLING_LIST,
        "GSW_CAMPAIGN_NAME": campaign,
    }


def campaign_keys(name: str, campaign: str = CAMPAIGN) -> dict[str, Any]:
    return {
        "GSW_USER_EVENT": name,
        "GSW_APPLICATION_ID": APP,
        "GSW_CAMPAIGN_NAME": campaign,
        "GSW_CAMPAIGN_GROUP_NAME": GROUP,
    }


class Oracle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.correlator = Correlator(LIMIT_SETS[0])
        self.now = 0.0
        self.reqs: dict[int, Req] = {}
        self.msgs: dict[int, Msg] = {}
        self.by_content: dict[str, list[Msg]] = {}
        self.wire: list[int] = []
        self.archive: list[int] = []
        self.to_send: list[int] = []
        self.in_post: list[int] = []
        self.retrying: list[int] = []
        """Requests the transport waits to write again (an attempt missed GWS)."""
        self.ocs_queue: list[int] = []
        self.timers: dict[Any, tuple[float, int]] = {}
        self.acked_events: dict[str, float] = {}
        """userData of the user events our acknowledged requests carried, and when."""
        self.ids = itertools.count(1)
        self.seq = itertools.count(1)
        self.stamp = itertools.count(1_767_225_600_000)
        self.closed = False
        #: Hypothesis is replaying the failing example: tell each step in words.
        self.final = _replaying()

    # -- the engine's part --

    def say(self, text: str) -> None:
        note(f"    # t={self.now:g}: {text}")

    def apply(self, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                req = self.reqs[effect.token]
                assert not req.send_emitted and not req.outcomes, f"second Send for {req.token}"
                req.send_emitted = True
                self.to_send.append(req.token)
            elif isinstance(effect, StartTimer):
                self.timers[effect.timer] = (self.now + effect.delay, next(self.seq))
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer, None)
            elif isinstance(effect, Resolved):
                self.resolved(self.reqs[effect.token], effect.outcome)
            elif isinstance(effect, Foreign):
                for item in (effect.outbound, effect.user_event):
                    if item is not None:
                        self.check_not_ours(item, "Foreign")
            elif isinstance(effect, Unsolicited):
                for item in (effect.outbound, effect.event):
                    if item is not None:
                        self.check_not_ours(item, "Unsolicited")

    def check_not_ours(self, item: object, what: str) -> None:
        content = content_of(item)
        emitted = self.by_content.get(content, [])
        ours = [m for m in emitted if isinstance(m.owner, int)]
        if not ours or len(ours) < len(emitted):
            return  # a push or another client's, or indistinguishable from one
        assert not any(m.referenced for m in ours), (
            f"{what}: a message with the referenceId of our request {ours[0].owner}"
        )
        acknowledged_at = self.acked_events.get(content)
        assert acknowledged_at is None or self.now - acknowledged_at > DELIVERY_HORIZON, (
            f"{what}: a repeat of the user event request {ours[0].owner} was acknowledged with"
        )

    def own(self, req: Req, item: object, roles: tuple[str, ...]) -> Msg:
        """The message of ``req`` (of one of ``roles``) that ``item`` is a copy of."""
        content = content_of(item)
        emitted = self.by_content.get(content, [])
        mine = [m for m in emitted if m.owner == req.token and m.role in roles]
        owners = sorted({str(m.owner) for m in emitted})
        assert mine, (
            f"request {req.token} ({req.operation}, OCS: {req.kind}) got a message that is not "
            f"its own ({'/'.join(roles)}): it answers {owners or 'nobody'}: {item!r}"
        )
        return mine[0]

    def resolved(self, req: Req, outcome: Acknowledged | Failed) -> None:
        assert not req.outcomes, f"second outcome for request {req.token}: {outcome}"
        if self.final:
            self.say(f"request {req.token} resolved: {outcome!r:.300}")
        req.outcomes.append(outcome)
        req.resolved_at = self.now
        if self.unknowable(req):
            # An attempt that will not reach GWS is being written (or a silent transport
            # waits to write it again): the engine cannot tell it from one that reaches GWS.
            # But it may not take another client's answer, matched by key alone, as this
            # request's (M10: that decides nothing while GWS has not answered the POST, even
            # at the deadline or the close).
            what = f"request {req.token} ({req.operation}), none of whose attempts reached GWS"
            assert isinstance(outcome, Failed), f"{what}, was acknowledged: {outcome}"
            assert outcome.reason is not FailureReason.OCS_ERROR, f"{what}: {outcome}"
            return
        if self.foreign_refusal_taken(req, outcome):
            return
        self.check_what_gws_got(req, outcome)
        if isinstance(outcome, Acknowledged):
            assert req.sent, f"request {req.token} acknowledged but never sent"
            assert (
                outcome.outbound is not None
                or outcome.user_event is not None
                or outcome.parts
                or outcome.empty
            ), "acknowledged with nothing"
            if outcome.outbound is not None:
                self.own(req, outcome.outbound, ("ack", "empty"))
            if outcome.user_event is not None:
                self.own(req, outcome.user_event, ("ack", "empty"))
                self.acked_events[content_of(outcome.user_event)] = self.now
            seen: set[int] = set()
            for part in outcome.parts:
                msg = self.own(req, part, ("part",))
                assert msg.part not in seen, (
                    f"request {req.token} got chained record {msg.part} twice"
                )
                assert msg.part is not None
                seen.add(msg.part)
            if outcome.empty:
                assert req.kind == "empty", (
                    f"request {req.token} empty, but OCS answered {req.kind}"
                )
        elif outcome.reason is FailureReason.OCS_ERROR:
            assert req.kind == "refuse", (
                f"request {req.token} ({req.operation}) failed with an OCS error, but OCS "
                f"answered it {req.kind}: {outcome}"
            )
            assert outcome.error_number == req.error_number, outcome
        self.check_liveness(req, outcome)

    def foreign_refusal_taken(self, req: Req, outcome: Acknowledged | Failed) -> bool:
        """Property 7, the known limit: another desktop's refusal on the key of ``req`` (no
        referenceId) was delivered while OCS had not answered ``req`` yet, GWS having got
        ``req``. It cannot be told from OCS's refusal of ``req``, so ``req`` may end with it
        (``ocs_error`` with its error number, ``may_have_acted`` false) even though OCS acted
        on ``req``, but only when no acknowledgement with ``req``'s referenceId was delivered
        before the outcome (that proves OCS acted on ``req``: M9), and not before
        ``merge_window`` passed from the later of that refusal's delivery and GWS's answer to
        the POST (the time given to ``req``'s own answer to arrive), unless ``req``'s deadline
        or the close came first. Whether the outcome is that refusal is told by its error number."""
        if not (
            isinstance(outcome, Failed)
            and outcome.reason is FailureReason.OCS_ERROR
            and outcome.error_number == FOREIGN_ERROR
        ):
            return False
        what = f"request {req.token} ({req.operation}, OCS: {req.kind})"
        assert req.foreign_refused_at is not None, f"{what} got another desktop's refusal"
        referenced = [
            m.role
            for m in map(self.msgs.__getitem__, req.batch)
            if m.referenced and m.role in ("ack", "empty") and m.deliveries
        ]
        assert not referenced, (
            f"{what} ended with another desktop's refusal matched by key, though its own "
            f"{referenced[0]} with its referenceId had arrived (M9)"
        )
        assert req.posted_at is not None, f"{what}: a refusal by key before GWS answered (M10)"
        since = max(req.foreign_refused_at, req.posted_at)
        assert (
            self.closed
            or self.now >= req.accepted_at + DEADLINE - 1e-9
            or self.now >= since + MERGE_WINDOW - 1e-9
        ), (
            f"{what} ended with a refusal matched by key at t={self.now:g}, "
            f"before merge_window passed from t={since:g} (M9: its own answer may follow)"
        )
        return True

    def unknowable(self, req: Req) -> bool:
        """Whether the engine cannot know yet that GWS did not get ``req``'s last attempt."""
        if req.silent:
            return req.between or (req.misses_left > 0 and req.token in self.in_post)
        return req.misses_left > 0 and req.token in self.in_post

    def check_what_gws_got(self, req: Req, outcome: Acknowledged | Failed) -> None:
        """Property 5: the outcome against what GWS truly got of the request's attempts."""
        what = f"request {req.token} ({req.operation}, {req.attempts} attempts"
        what += f", {'one reached GWS' if req.reached else 'none reached GWS'})"
        if not req.reached:
            assert isinstance(outcome, Failed), f"{what} was acknowledged: {outcome}"
            assert outcome.reason is not FailureReason.OCS_ERROR, f"{what}: {outcome}"
        if req.between:
            # Its deadline, the close, or the transport giving up, between attempts.
            expected = FailureReason.SHUT_DOWN if self.closed else FailureReason.TRANSPORT_FAILURE
            if req.posted:  # the transport gave up
                expected = GIVING_UP[req.planned]
            assert isinstance(outcome, Failed), f"{what} waits to be written again: {outcome}"
            assert outcome.reason is expected and not outcome.may_have_acted, (
                f"{what} waits to be written again: expected {expected.name} with "
                f"may_have_acted false, got {outcome}"
            )
        if (
            isinstance(outcome, Failed)
            and outcome.reason in (FailureReason.TRANSPORT_FAILURE, FailureReason.SHUT_DOWN)
            and not outcome.may_have_acted
        ):
            assert not req.reached, f"{what} failed as not sent: {outcome}"
        if (
            isinstance(outcome, Failed)
            and req.reaches_ocs
            and req.kind not in ("refuse", "cometd_error")
        ):
            assert outcome.may_have_acted, f"{what} may have been processed: {outcome}"

    # -- liveness --

    def cleanly_answered(self, req: Req) -> bool:
        if req.kind in (None, "never") or not req.batch:
            return False
        last = 0
        for mid in req.batch:
            deliveries = self.msgs[mid].deliveries
            if len(deliveries) != 1 or deliveries[0][1] or deliveries[0][0] < last:
                return False
            last = deliveries[0][0]
        return True

    def attributable(self, req: Req, msg: Msg) -> bool:
        """Whether an unreferenced user event of ``req`` can only be ``req``'s (see the module
        docstring); a referenced one always is."""
        if msg.referenced:
            return True
        if msg.data["userData"].get("GSW_USER_EVENT") in PUSHED_BY_OCS:
            return False  # OCS sends it on its own too: without our referenceId, it could be one
        if any(m.owner != req.token for m in self.by_content[msg.content]):
            return False
        arrived = msg.deliveries[0][0]
        for other in self.reqs.values():
            # One whose POST GWS had not answered when it arrived may have reached OCS for
            # all the engine can know (it is owed its answer even once ended, M4).
            unposted = other.sent and (other.post_seq is None or other.post_seq > arrived)
            if (
                other is req
                or not (other.reaches_ocs or unposted)
                or other.sent_seq > req.sent_seq
                or other.target != req.target
                or not other.answer_names & req.answer_names
            ):
                continue
            answered = any(
                self.msgs[mid].is_event
                and not self.msgs[mid].referenced
                and any(seq < arrived for seq, _ in self.msgs[mid].deliveries)
                for mid in other.batch
            )
            if not answered and not (msg.role == "error" and self.gws_acknowledged(other, arrived)):
                return False
        return True

    def gws_acknowledged(self, req: Req, before: int) -> bool:
        """Whether GWS's acknowledgement notification of ``req`` (with its referenceId) was
        delivered before the delivery numbered ``before``: OCS then acted on it, so what OCS
        still owes it is no refusal."""
        return any(
            not self.msgs[mid].is_event
            and self.msgs[mid].role == "ack"
            and self.msgs[mid].referenced
            and any(seq < before for seq, _ in self.msgs[mid].deliveries)
            for mid in req.batch
        )

    def check_liveness(self, req: Req, outcome: Acknowledged | Failed) -> None:
        if not self.cleanly_answered(req):
            return
        batch = [self.msgs[mid] for mid in req.batch]
        if not req.posted and not any(m.referenced for m in batch):
            return  # matched by key alone, its answer waits for GWS's answer to the POST (M10)
        what = f"request {req.token} ({req.operation}) was cleanly answered ({req.kind})"
        if req.kind == "cometd_error":
            assert isinstance(outcome, Failed), f"{what} but got {outcome}"
            return
        if req.kind == "refuse":
            if self.attributable(req, batch[0]):
                assert isinstance(outcome, Failed), f"{what} but got {outcome}"
                assert outcome.reason is FailureReason.OCS_ERROR, f"{what} but got {outcome}"
            return
        if req.kind == "empty":
            if self.attributable(req, batch[0]):
                assert isinstance(outcome, Acknowledged) and outcome.empty, f"{what}: {outcome}"
            return
        if req.kind == "ack":
            notifications = [m for m in batch if not m.is_event]
            events = [m for m in batch if m.is_event]
            if notifications or self.attributable(req, events[0]):
                assert isinstance(outcome, Acknowledged), f"{what} but got {outcome}"
            if notifications:
                assert isinstance(outcome, Acknowledged)
                assert outcome.outbound is not None, f"{what} but without its notification"
                assert content_of(outcome.outbound) == notifications[0].content
            if events and self.attributable(req, events[0]):
                assert isinstance(outcome, Acknowledged)
                assert outcome.user_event is not None, f"{what} but without its user event"
                assert content_of(outcome.user_event) == events[0].content
            return
        assert req.kind == "chained"
        end = [m for m in batch if m.role == "ack"]
        parts = [m for m in batch if m.role == "part"]
        referenced_end = any(m.referenced for m in end)
        if not referenced_end and not self.attributable(req, end[0]):
            return
        assert isinstance(outcome, Acknowledged), f"{what} but got {outcome}"
        part_notifications = [m for m in parts if not m.is_event]
        if part_notifications:
            expected = [m.part for m in part_notifications]
        else:
            first = req.sent_seq
            last = max(m.deliveries[0][0] for m in batch)
            for other in self.msgs.values():
                if (
                    other.owner != req.token
                    and other.role == "part"
                    and other.is_event
                    and other.chain == RECORDS[req.handle or 0].chain
                    and any(first < seq < last for seq, _ in other.deliveries)
                ):
                    return  # another request's chained record arrived meanwhile
            expected = [m.part for m in parts]
        got = [self.own(req, part, ("part",)).part for part in outcome.parts]
        assert got == expected, f"{what}: parts {got}, expected {expected}"

    # -- the host's part --

    @initialize(limits=st.sampled_from(LIMIT_SETS))
    def start(self, limits: Limits) -> None:
        self.correlator = Correlator(limits)

    def accept(
        self, operation: str, handle: int, phone: str, pooled: str | None, wrong: str | None
    ) -> None:
        number = next(self.ids)
        reference = pooled or (f"u{number}" if number % 2 else str(5000 + number))
        is_record = operation in RECORD_OPERATIONS
        app = WRONG_APP if is_record and wrong == "application" else APP
        campaign = WRONG_CAMPAIGN if is_record and wrong == "campaign" else CAMPAIGN
        common: dict[str, Any] = {
            "application_id": app,
            "campaign_name": campaign,
            "device_path": DEVICE_PATH,
            "reference_id": reference,
        }
        rec = RECORDS[handle]
        request: Any
        if operation == "cancel":
            request = CancelRequest(
                record_handle=handle,
                calling_list=CALLING_LIST,
                phone_number=rec.phone,
                chain_attribute=ChainAttribute.RECORD_ONLY,
                **common,
            )
        elif operation == "reject":
            request = RejectRecordRequest(record_handle=handle, calling_list=CALLING_LIST, **common)
        elif operation == "complete":
            request = CompleteRecordRequest(
                record_handle=handle, calling_list=CALLING_LIST, **common
            )
        elif operation == "dnc_record":
            request = DoNotCallRecordRequest(
                record_handle=handle, calling_list=CALLING_LIST, phone_number=rec.phone, **common
            )
        elif operation == "reschedule":
            request = RescheduleRecordRequest(
                record_handle=handle,
                callback_type=CallbackType.CAMPAIGN,
                scheduled_time=RESCHEDULE_AT,
                **common,
            )
        elif operation == "chained":
            request = GetChainedRecordRequest(record_handle=handle, **common)
        elif operation == "dnc_phone":
            request = DoNotCallPhoneRequest(phone_number=phone, calling_list=CALLING_LIST, **common)
        else:
            kind = {
                "start": StartPreviewSessionRequest,
                "preview": GetPreviewRecordRequest,
                "end": EndPreviewSessionRequest,
            }[operation]
            request = kind(**common)
        token, effects = self.correlator.accept(request)
        if self.final:
            self.say(
                f"request {token}: {operation} (record {handle}, phone {phone}, referenceId "
                f"{reference}{', wrong ' + wrong if wrong and is_record else ''})"
            )
        assert token not in self.reqs
        self.reqs[token] = Req(
            token=token,
            request=request,
            operation=operation,
            reference=reference,
            handle=handle if is_record else None,
            phone=phone if operation == "dnc_phone" else (rec.phone if is_record else None),
            wrong=app != APP or campaign != CAMPAIGN,
            accepted_at=self.now,
        )
        self.apply(effects)

    # -- the engine's part --

    def send(
        self,
        token: int,
        planned: PostResult,
        answer_now: bool,
        misses: int = 0,
        silent: bool = False,
    ) -> None:
        self.to_send.remove(token)
        req = self.reqs[token]
        req.sending_called = True
        sending = self.correlator.sending(token)
        if self.final:
            missing = f" after {misses} attempts GWS does not get" if misses else ""
            quiet = " (a silent transport)" if misses and silent else ""
            self.say(
                f"sending({token}) -> {sending}; its POST will end {planned.name}{missing}{quiet}"
            )
        assert sending is not bool(req.outcomes), (
            f"sending({token}) returned {sending} for a request "
            f"{'with' if req.outcomes else 'without'} an outcome"
        )
        if not sending:
            return
        req.sent = True
        req.planned = planned
        req.misses_left = misses
        req.silent = silent
        self.attempt(req, answer_now)

    def attempt(self, req: Req, answer_now: bool) -> None:
        """An attempt of ``req``'s POST is written: it reaches GWS unless it is to miss."""
        req.attempts += 1
        req.sent_seq = next(self.seq)
        self.in_post.append(req.token)
        if req.misses_left == 0:
            req.reached = req.planned is not PostResult.NOT_SENT
            if req.planned in (PostResult.ACCEPTED, PostResult.NO_ANSWER):
                req.reaches_ocs = True
                self.ocs_queue.append(req.token)
        if answer_now:  # GWS's HTTP answer comes at once (else the post rule gives it later)
            self.give_post_result(req.token)

    def give_post_result(self, token: int) -> None:
        self.in_post.remove(token)
        req = self.reqs[token]
        if req.misses_left > 0:  # this attempt did not reach GWS: written again, maybe
            req.misses_left -= 1
            req.between = True
            self.retrying.append(token)
            if self.final:
                self.say(f"attempt {req.attempts} of {token} did not reach GWS")
            if not req.silent:
                if self.final:
                    self.say(f"not_received({token})")
                self.apply(self.correlator.not_received(token))
            return
        req.posted = True
        req.post_seq = next(self.seq)
        if req.planned in (PostResult.ACCEPTED, PostResult.NO_ANSWER):
            req.posted_at = self.now
        status = 4 if req.planned is PostResult.REJECTED else None
        if self.final:
            self.say(f"posted({token}, {req.planned.name})")
        self.apply(self.correlator.posted(token, req.planned, status_code=status, message="m"))

    def resend(self, token: int, answer_now: bool) -> None:
        """The transport is about to write ``token``'s POST again: it asks first."""
        self.retrying.remove(token)
        req = self.reqs[token]
        waiting = self.correlator.waiting(token)  # the engine's ``resending``: not once decided
        if self.final:
            self.say(f"resending({token}): {'written again' if waiting else 'has its outcome'}")
        assert waiting is not bool(req.outcomes), (
            f"waiting({token}) is {waiting} for a request "
            f"{'with' if req.outcomes else 'without'} an outcome"
        )
        if not waiting:  # not written again: the transport gives up, nothing sent
            req.between = False
            req.posted = True
            self.apply(self.correlator.posted(token, PostResult.NOT_SENT, message="m"))
            return
        self.apply(self.correlator.resending(token))
        assert not req.outcomes, f"request {token} resolved by resending: {req.outcomes}"
        req.between = False
        self.attempt(req, answer_now)

    def give_up(self, token: int, result: PostResult) -> None:
        """The transport stops trying: its POST ends with ``result`` (GWS got no attempt)."""
        self.retrying.remove(token)
        req = self.reqs[token]
        req.planned = result
        req.posted = True
        req.post_seq = next(self.seq)
        if self.final:
            self.say(f"the transport gives up on {token}: posted({token}, {result.name})")
        status = 503 if result is PostResult.REJECTED else None
        self.apply(self.correlator.posted(token, result, status_code=status, message="m"))
        req.between = False

    @rule(delay=st.sampled_from((0.1, 0.2, 0.3, 0.6, 1.5, 4.0, 12.0)))
    def advance(self, delay: float) -> None:
        target = self.now + delay
        while True:
            due = [
                (when, seq, timer) for timer, (when, seq) in self.timers.items() if when <= target
            ]
            if not due:
                break
            when, _, timer = min(due, key=lambda item: (item[0], item[1]))
            del self.timers[timer]
            self.now = max(self.now, when)
            if self.final:
                self.say(f"timer_expired({timer!r})")
            self.apply(self.correlator.timer_expired(timer))
        self.now = target

    # -- OCS and GWS --

    def emit(
        self,
        owner: int | str,
        role: str,
        channel: str,
        data: dict[str, Any],
        *,
        referenced: bool = False,
        part: int | None = None,
        chain: int | None = None,
    ) -> int:
        if data.get("messageType") == "DeviceUserEventMessage":
            data["metrics"] = self.metrics()
        msg = Msg(next(self.ids), owner, role, channel, data, referenced, part, chain)
        self.msgs[msg.mid] = msg
        self.by_content.setdefault(msg.content, []).append(msg)
        self.wire.append(msg.mid)
        if isinstance(owner, int):
            self.reqs[owner].batch.append(msg.mid)
        return msg.mid

    def metrics(self) -> dict[str, Any]:
        return {
            "eventProcessing": {
                "serverGenerationTimestamp": next(self.stamp),
                "nodeProcessingTimeNanos": 1_000_000,
                "serverProcessingTimeTotalMs": 1,
            }
        }

    @staticmethod
    def user_event(user_data: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageType": "DeviceUserEventMessage",
            "deviceId": DEVICE_ID,
            "userData": user_data,
        }

    def handed_out(self, name: str, rec: Rec, campaign: str = CAMPAIGN) -> dict[str, Any]:
        """A whole record as OCS hands it to an agent (a fresh call attempt each time)."""
        user_data = record_keys(name, rec, campaign)
        user_data.update(
            {
                "GSW_CHAIN_ID": rec.chain,
                "GSW_PHONE": rec.phone,
                "GSW_AGENT_ID": "agent1",
                "GSW_CALL_ATTEMPT_GUID": f"A{next(self.ids):08X}",
                "GSW_ATTEMPTS": 0,
                "InteractionType": "Outbound",
            }
        )
        return user_data

    def reference_value(self, req: Req, as_int: bool) -> str | int:
        if as_int and req.reference.isdigit():
            return int(req.reference)
        return req.reference

    def ocs_answers(
        self,
        kind: str,
        form: str,
        with_reference: bool,
        as_int: bool,
        number: int,
        reschedule_name: bool,
    ) -> None:
        """OCS (through GWS) answers the oldest request it got and has not answered yet."""
        req = self.reqs[self.ocs_queue.pop(0)]
        operation = req.operation
        if req.wrong:
            kind, number = "refuse", 103  # keyed on the stored record, not on the request
        elif kind == "empty" and operation != "preview":
            kind = "ack"
        if kind == "ack" and operation == "chained":
            kind = "chained"
        req.kind = kind
        token = req.token
        if self.final:
            self.say(f"OCS answers request {token}: {kind} ({form}, error {number})")
        ref = req.reference
        message_type, acknowledgement, names = OPERATIONS[operation]
        event_name = names[1] if operation == "reschedule" and reschedule_name else names[0]
        rec = RECORDS[req.handle] if req.handle is not None else None
        # Only user events of campaign and by-phone operations may carry GSW_REFERENCE_ID.
        referenced_events = with_reference and rec is None
        if kind == "never":
            return
        if kind == "cometd_error":
            data = {
                "messageType": "ErrorMessage",
                "referenceId": ref,
                "errorCode": 500,
                "errorMessage": "internal error",
            }
            self.emit(token, "cometd_error", OUTBOUND, data, referenced=True)
            return
        if kind == "refuse":
            req.error_number = number
            if rec is not None:
                user_data = record_keys(event_name, rec)  # the STORED record
                user_data["GSW_PHONE"] = rec.phone
            else:
                user_data = {
                    "GSW_USER_EVENT": event_name,
                    "GSW_APPLICATION_ID": APP,
                    "GSW_CAMPAIGN_NAME": CAMPAIGN,
                }
                if req.phone is not None:
                    user_data["GSW_PHONE"] = req.phone
            if referenced_events:
                user_data["GSW_REFERENCE_ID"] = self.reference_value(req, as_int)
            user_data["GSW_ERROR"] = "Simulated OCS error"
            user_data["GSW_ERROR_NUMBER"] = number
            self.emit(
                token, "error", INTERNAL, self.user_event(user_data), referenced=referenced_events
            )
            return
        if kind == "empty":
            if with_reference:
                user_data = campaign_keys("PreviewRecord")
                user_data["GSW_REFERENCE_ID"] = self.reference_value(req, as_int)
                user_data["GSW_ERROR"] = "No Records Available"
                user_data["GSW_ERROR_NUMBER"] = 108
            else:
                user_data = campaign_keys("PreviewRecordEmpty")
            self.emit(
                token, "empty", INTERNAL, self.user_event(user_data), referenced=with_reference
            )
            return
        notifications = form in ("both", "notifications")
        events = form in ("both", "events")
        if kind == "chained":
            assert rec is not None
            for other in sorted(RECORDS.values(), key=lambda r: r.handle):
                if other.chain != rec.chain or other.handle == rec.handle:
                    continue
                part = ack_record(other)
                part["chainId"] = other.chain
                part["phoneNumber"] = other.phone
                if notifications:
                    data = notification(RECORD_MESSAGE, "ChainedRecord", ref, "record", part)
                    self.emit(token, "part", OUTBOUND, data, referenced=True, part=other.handle)
                if events:
                    user_data = self.handed_out("ChainedRecord", other)
                    self.emit(
                        token,
                        "part",
                        INTERNAL,
                        self.user_event(user_data),
                        part=other.handle,
                        chain=other.chain,
                    )
            end = record_keys(acknowledgement, rec)
            end["GSW_CHAIN_ID"] = rec.chain
            if notifications or not events:
                data = notification(RECORD_MESSAGE, acknowledgement, ref, "record", ack_record(rec))
                self.emit(token, "ack", OUTBOUND, data, referenced=True)
            if events:
                self.emit(token, "ack", INTERNAL, self.user_event(end))
            return
        assert kind == "ack"
        if operation == "preview":
            number_handle = 300 + next(self.ids)
            record = Rec(number_handle, number_handle, PHONES[number_handle % len(PHONES)])
            user_data = self.handed_out("PreviewRecord", record)
            payload: dict[str, Any] = {"userData": dict(user_data)}
        elif operation in ("start", "end"):
            user_data = campaign_keys(event_name)
            payload = {"name": CAMPAIGN, "applicationId": APP, "devicePath": DEVICE_PATH}
            payload["state"] = "Running" if operation == "start" else "Stopped"
        elif operation == "dnc_phone":
            user_data = {
                "GSW_USER_EVENT": event_name,
                "GSW_APPLICATION_ID": APP,
                "GSW_CAMPAIGN_NAME": CAMPAIGN,
                "GSW_CALLING_LIST": CALLING_LIST,
                "GSW_PHONE": req.phone,
            }
            payload = {
                "devicePath": DEVICE_PATH,
                "callingList": CALLING_LIST,
                "applicationId": APP,
                "phoneNumber": req.phone,
                "campaignName": CAMPAIGN,
            }
        else:
            assert rec is not None
            user_data = record_keys(event_name, rec)
            if operation in ("cancel", "complete", "dnc_record"):
                user_data["GSW_PHONE"] = rec.phone
            if operation == "reschedule":
                user_data["GSW_CALLBACK_TYPE"] = "Campaign"
                user_data["GSW_DATE_TIME"] = "12/24/2026 09:30"
            payload = ack_record(rec)
        key = "campaign" if message_type == CAMPAIGN_MESSAGE else "record"
        if notifications or not events:
            data = notification(message_type, acknowledgement, ref, key, payload)
            self.emit(token, "ack", OUTBOUND, data, referenced=True)
        if events:
            if referenced_events:
                user_data["GSW_REFERENCE_ID"] = self.reference_value(req, as_int)
            self.emit(
                token, "ack", INTERNAL, self.user_event(user_data), referenced=referenced_events
            )

    def ocs_pushes(self, kind: str, handle: int) -> None:
        """OCS tells the agent something on its own."""
        rec = RECORDS[handle]
        if self.final:
            self.say(f"OCS pushes {kind} (record {handle})")
        if kind == "preview":
            number = 600 + next(self.ids)
            pushed = Rec(number, number, rec.phone)
            user_data = self.handed_out("PreviewRecord", pushed)
            data = notification(
                RECORD_MESSAGE, "PreviewRecord", None, "record", {"userData": dict(user_data)}
            )
            self.emit("push", "push", OUTBOUND, data)
            self.emit("push", "push", INTERNAL, self.user_event(user_data))
        elif kind == "record_cancel":
            user_data = record_keys("RecordCancel", rec)
            user_data.update({"GSW_CHAIN_ID": rec.chain, "GSW_PHONE": rec.phone})
            self.emit("push", "push", INTERNAL, self.user_event(user_data))
        elif kind == "scheduled_call":
            user_data = self.handed_out("ScheduledCall", rec)
            user_data["GSW_CALLBACK_TYPE"] = "Personal"
            self.emit("push", "push", INTERNAL, self.user_event(user_data))
        else:
            user_data = campaign_keys("CampaignStarted")
            self.emit("push", "push", INTERNAL, self.user_event(user_data))

    def another_client(self, operation: str, handle: int, on_our_keys: bool, as_int: bool) -> None:
        """Another client of the agent's device gets its acknowledgement: with its own
        referenceId on our records, or without one on records of another campaign."""
        number = next(self.ids)
        reference = str(90_000 + number) if as_int else f"theirs-{number}"
        campaign = CAMPAIGN if on_our_keys else OTHER_CAMPAIGN
        rec = RECORDS[handle] if on_our_keys else OTHER_RECORDS[handle % 2]
        message_type, acknowledgement, names = OPERATIONS[operation]
        if self.final:
            self.say(f"another client's {operation} ({'our' if on_our_keys else 'other'} keys)")
        if operation in ("start", "preview"):
            user_data = campaign_keys(names[0], campaign)
            if operation == "preview":
                user_data = self.handed_out(
                    "PreviewRecord", Rec(700 + number, 1, rec.phone), campaign
                )
                payload: dict[str, Any] = {"userData": dict(user_data)}
            else:
                payload = {"name": campaign, "applicationId": APP, "devicePath": DEVICE_PATH}
        elif operation == "dnc_phone":
            user_data = {
                "GSW_USER_EVENT": names[0],
                "GSW_APPLICATION_ID": APP,
                "GSW_CAMPAIGN_NAME": campaign,
                "GSW_PHONE": rec.phone,
            }
            payload = {"devicePath": DEVICE_PATH, "applicationId": APP, "phoneNumber": rec.phone}
            payload["campaignName"] = campaign
        else:
            user_data = record_keys(names[0], rec, campaign)
            user_data["GSW_PHONE"] = rec.phone
            payload = ack_record(rec, campaign)
        key = "campaign" if message_type == CAMPAIGN_MESSAGE else "record"
        self.emit(
            "foreign",
            "foreign",
            OUTBOUND,
            notification(message_type, acknowledgement, reference, key, payload),
        )
        if on_our_keys:
            user_data["GSW_REFERENCE_ID"] = int(reference) if as_int else reference
        self.emit("foreign", "foreign", INTERNAL, self.user_event(user_data))

    def unreached(self) -> list[Req]:
        """Our requests none of whose attempts reached GWS, written at least once, no outcome
        yet, and alone on their key: no other request of ours on it (or on its phone number)
        reached OCS and may still be answered; another desktop's unreferenced answer on that
        key is then certainly not ours."""
        found = []
        for req in self.reqs.values():
            if req.outcomes or req.reached or not req.sent or req.operation == "preview":
                continue
            if req.misses_left == 0 and not req.between:
                continue  # the attempt being written reaches GWS (or its POST ended)
            if not any(
                other is not req
                and other.reaches_ocs
                and other.answer_names & req.answer_names
                and (other.target == req.target or other.phone == req.phone)
                and (other.resolved_at is None or self.now - other.resolved_at <= LATE_WINDOW)
                for other in self.reqs.values()
            ):
                found.append(req)
        return found

    def another_desktop(self, req: Req, refusal: bool) -> None:
        """Another desktop of the agent acts on ``req``'s key while GWS has none of ``req``'s
        attempts: OCS's unreferenced answer (or refusal) to it is delivered at once. Matched
        by key, it decides nothing until GWS answers ``req``'s POST (M10), and is forgotten
        when the transport hears that the attempt did not reach GWS (``not_received``) or
        writes it again (``resending``)."""
        name = OPERATIONS[req.operation][2][0]
        if req.handle is not None:
            rec = RECORDS[req.handle]
            user_data = record_keys(name, rec)
            user_data["GSW_PHONE"] = rec.phone
            if req.operation == "chained":
                user_data["GSW_CHAIN_ID"] = rec.chain
        elif req.operation == "dnc_phone":
            user_data = {
                "GSW_USER_EVENT": name,
                "GSW_APPLICATION_ID": APP,
                "GSW_CAMPAIGN_NAME": CAMPAIGN,
                "GSW_CALLING_LIST": CALLING_LIST,
                "GSW_PHONE": req.phone,
            }
        else:
            user_data = campaign_keys(name)
        if refusal:
            user_data["GSW_ERROR"] = "Simulated OCS error"
            user_data["GSW_ERROR_NUMBER"] = 102
        if self.final:
            what = "refusal" if refusal else "answer"
            self.say(f"another desktop's {what} on the key of request {req.token}, delivered")
        mid = self.emit("foreign", "foreign", INTERNAL, self.user_event(user_data))
        self.wire.remove(mid)
        self.transmit(self.msgs[mid], regenerated=False)

    def awaiting_ocs(self) -> list[Req]:
        """Our record requests GWS got (the attempt being written last reaches GWS, which
        accepts it or leaves it unanswered) that OCS has not answered yet, alone on their key:
        no other request of ours on it (or its phone number) reached OCS and may still be
        answered. Another desktop's refusal on that key is then certainly not ours."""
        found = []
        for req in self.reqs.values():
            if (
                req.outcomes
                or not req.reaches_ocs
                or req.token not in self.ocs_queue
                or req.handle is None
                or req.foreign_refused_at is not None
            ):
                continue
            if not any(
                other is not req
                and other.reaches_ocs
                and other.answer_names & req.answer_names
                and (other.target == req.target or other.phone == req.phone)
                and (other.resolved_at is None or self.now - other.resolved_at <= LATE_WINDOW)
                for other in self.reqs.values()
            ):
                found.append(req)
        return found

    def another_desktop_refused(self, req: Req) -> None:
        """Another desktop's request on ``req``'s record reaches OCS just before ``req`` and is
        refused: OCS's refusal (no referenceId, keyed on the record) is delivered at once.
        ``req``'s own answer (OCS acts on it, or refuses it) may follow, or not (property 7)."""
        name = OPERATIONS[req.operation][2][0]
        rec = RECORDS[req.handle or 0]
        user_data = record_keys(name, rec)
        user_data["GSW_PHONE"] = rec.phone
        if req.operation == "chained":
            user_data["GSW_CHAIN_ID"] = rec.chain
        user_data["GSW_ERROR"] = "Another desktop's request refused"
        user_data["GSW_ERROR_NUMBER"] = FOREIGN_ERROR
        if self.final:
            self.say(f"another desktop's refusal on the record of request {req.token}, delivered")
        mid = self.emit("foreign", "foreign", INTERNAL, self.user_event(user_data))
        self.wire.remove(mid)
        req.foreign_refused_at = self.now
        self.transmit(self.msgs[mid], regenerated=False)

    # -- CometD --

    def expired(self, msg: Msg) -> bool:
        if not isinstance(msg.owner, int):
            return False
        resolved_at = self.reqs[msg.owner].resolved_at
        return resolved_at is not None and self.now - resolved_at > DELIVERY_HORIZON

    def transmit(self, msg: Msg, regenerated: bool) -> None:
        data = msg.data
        if regenerated and msg.is_event:
            data = {**data, "metrics": self.metrics()}
        else:
            regenerated = False
        msg.deliveries.append((next(self.seq), regenerated))
        if self.final:
            copy = " (regenerated)" if regenerated else ""
            self.say(f"delivered{copy}: {msg.role} of {msg.owner}: {canonical(data)[:160]}")
        if msg.mid not in self.archive:
            self.archive.append(msg.mid)
        self.apply(self.correlator.message({"channel": msg.channel, "data": data}))

    def deliver(self, steps: list[tuple[int, str]]) -> None:
        """The next messages (or, reordered, ones a little further) are delivered, or lost; a
        copy leaves another on the wire."""
        for offset, how in steps:
            self.wire = [mid for mid in self.wire if not self.expired(self.msgs[mid])]
            if not self.wire:
                return
            window = self.wire[:REORDER_WINDOW]
            allowed = []
            for index, mid in enumerate(window):
                owner = self.msgs[mid].owner
                ahead = [self.msgs[m].owner for m in window[:index]]
                # Never ahead of an earlier request's answer; pushes and others' may pass.
                if not isinstance(owner, int) or all(
                    o == owner or not isinstance(o, int) for o in ahead
                ):
                    allowed.append(index)
            index = allowed[offset % len(allowed)]
            msg = self.msgs[self.wire[index]]
            if how in ("once", "lost"):
                del self.wire[index]
            if how != "lost":
                self.transmit(msg, regenerated=how == "regenerated")
            elif self.final:
                self.say(f"lost: {msg.role} of {msg.owner}: {canonical(msg.data)[:160]}")

    def repeat_after_outcome(self, pick: int, regenerated: bool) -> None:
        """A message of a request that has its outcome arrives again."""
        finished = [
            mid
            for mid in self.archive
            if isinstance(self.msgs[mid].owner, int)
            and self.reqs[int(self.msgs[mid].owner)].outcomes
            and not self.expired(self.msgs[mid])
        ]
        if finished:
            self.transmit(self.msgs[finished[pick % len(finished)]], regenerated)

    # -- the rules: each draws one number and reads its choices from it (cheap to draw, so
    # thousands of examples run in seconds; 0 is the simplest choice, so shrinking goes there)

    @precondition(lambda self: not self.closed)
    @rule(choice=st.integers(0, len(REQUESTED) * 5 * 3 * 6 * 6 - 1))
    def host_requests(self, choice: int) -> None:
        choice, operation = divmod(choice, len(REQUESTED))
        choice, handle = divmod(choice, 5)
        choice, phone = divmod(choice, 3)
        wrong, pooled = divmod(choice, 6)
        self.accept(
            REQUESTED[operation],
            sorted(RECORDS)[handle],
            PHONES[phone],
            (None, None, *REFERENCE_POOL)[pooled],
            (None, None, None, None, "application", "campaign")[wrong],
        )

    @precondition(lambda self: self.to_send or self.in_post)
    @rule(choice=st.integers(0, (1 << 14) - 1))
    def engine_posts(self, choice: int) -> None:
        """The engine starts writing a request it was told to ``Send`` (and gets GWS's answer
        at once, or later), or gets the answer of one it is writing."""
        choice, post_only = divmod(choice, 2)
        if self.to_send and not (post_only and self.in_post):
            choice, planned = divmod(choice, 9)
            choice, later = divmod(choice, 2)
            choice, misses = divmod(choice, len(MISSES))
            pick, transport = divmod(choice, 4)
            self.send(
                self.to_send[pick % len(self.to_send)],
                PLANNED[planned],
                answer_now=not later,
                misses=MISSES[misses],
                silent=transport == 3,
            )
        else:
            self.give_post_result(self.in_post[choice % len(self.in_post)])

    @precondition(lambda self: self.retrying)
    @rule(choice=st.integers(0, 255))
    def transport_retries(self, choice: int) -> None:
        """The transport writes again a POST whose last attempt did not reach GWS (asking
        ``resending`` first), or gives up on it."""
        choice, what = divmod(choice, 8)
        later, pick = divmod(choice, 2)
        token = self.retrying[pick % len(self.retrying)]
        if what < 6:
            self.resend(token, answer_now=not later)
        else:
            give_up = (PostResult.NOT_SENT, PostResult.REJECTED, PostResult.AUTHENTICATION_FAILED)
            self.give_up(token, give_up[(what + later) % 3])

    @rule(choice=st.integers(0, (1 << 20) - 1))
    def ocs_acts(self, choice: int) -> None:
        """OCS answers the oldest request it has not answered (most often), pushes something,
        or another client's acknowledgement comes, or another desktop's refusal on the record
        of a request of ours OCS has yet to answer (property 7)."""
        choice, what = divmod(choice, 8)
        if what == 4 and choice % 2 and (waiting := self.awaiting_ocs()):
            choice, then = divmod(choice >> 1, 4)
            req = waiting[choice % len(waiting)]
            self.another_desktop_refused(req)
            if then and self.ocs_queue[0] == req.token:  # OCS acts on ours right after
                form = ("both", "notifications", "events")[then - 1]
                self.ocs_answers("ack", form, False, False, 101, False)
        elif what < 5 and self.ocs_queue:
            choice, kind = divmod(choice, 7)
            choice, form = divmod(choice, 4)
            choice, number = divmod(choice, 4)
            flags = choice
            self.ocs_answers(
                ("ack", "ack", "ack", "refuse", "never", "cometd_error", "empty")[kind],
                ("both", "both", "notifications", "events")[form],
                with_reference=bool(flags & 1),
                as_int=bool(flags & 2),
                number=(101, 102, 106, 110)[number],
                reschedule_name=bool(flags & 4),
            )
        elif choice % 2 == 0 and (unreached := self.unreached()):
            choice //= 2
            self.another_desktop(unreached[(choice >> 1) % len(unreached)], bool(choice & 1))
        elif what < 7:
            choice, kind = divmod(choice, 4)
            self.ocs_pushes(
                ("preview", "record_cancel", "scheduled_call", "campaign_status")[kind],
                sorted(RECORDS)[choice % 5],
            )
        else:
            choice, operation = divmod(choice, 6)
            choice, handle = divmod(choice, 5)
            self.another_client(
                ("cancel", "reject", "dnc_record", "dnc_phone", "start", "preview")[operation],
                sorted(RECORDS)[handle],
                on_our_keys=bool(choice & 1),
                as_int=bool(choice & 2),
            )

    @precondition(lambda self: self.wire or self.archive)
    @rule(choice=st.integers(0, (1 << 24) - 1))
    def cometd_delivers(self, choice: int) -> None:
        """Up to four messages are delivered (or lost, copied, regenerated, reordered), or one
        of a finished request arrives again."""
        choice, what = divmod(choice, 8)
        if what == 7 or not self.wire:
            self.repeat_after_outcome(choice >> 1, regenerated=bool(choice & 1))
            return
        steps = []
        for _ in range(1 + what % 4):
            choice, step = divmod(choice, 32)
            offset, how = divmod(step, 8)
            steps.append((offset, HOWS[how]))
        self.deliver(steps)

    def teardown(self) -> None:
        self.closed = True
        self.apply(self.correlator.shutdown())
        for req in self.reqs.values():
            assert len(req.outcomes) == 1, f"request {req.token} has {len(req.outcomes)} outcomes"


Oracle.TestCase.settings = settings(
    max_examples=2000,
    stateful_step_count=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCorrelatorOracle = Oracle.TestCase


# -- the reproductions of issue 16 that concern matching, told to the same oracle --


def _machine(limits: Limits = LIMIT_SETS[0]) -> Oracle:
    machine = Oracle()
    machine.start(limits)
    return machine


def _request(machine: Oracle, operation: str, handle: int = 11, phone: str = "5550101") -> int:
    machine.accept(operation, handle, phone, None, None)
    token = max(machine.reqs)
    machine.send(token, PostResult.ACCEPTED, answer_now=True)
    return token


def test_a_pushed_preview_record_never_answers_get_preview_record() -> None:
    """Issue 16, item 3: OCS pushes another record while the agent's GetPreviewRecord waits."""
    machine = _machine()
    _request(machine, "preview")
    machine.ocs_pushes("preview", 11)
    machine.deliver([(0, "once"), (0, "once")])
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once")])
    machine.teardown()


def test_a_late_acknowledgement_after_many_finished_requests_is_not_foreign() -> None:
    """Issue 16, item 4: more finished requests than a count bound, then the late answer."""
    machine = _machine(LIMIT_SETS[1])
    _request(machine, "cancel")
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.advance(1.5)  # no answer within ack_timeout
    for handle in (12, 13, 21, 22):
        machine.accept("reject", handle, "5550102", None, None)
        machine.send(max(machine.reqs), PostResult.REJECTED, answer_now=True)
    machine.deliver([(0, "once")])
    machine.advance(1.0)
    machine.teardown()


def test_chained_records_of_an_earlier_request_are_not_a_later_one_s() -> None:
    """Issue 16, item 5: the first request on a chain gets its records (as user events) but
    not its end marker; a second request on the chain must not report them."""
    machine = _machine()
    _request(machine, "chained", 11)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once"), (0, "lost")])
    machine.advance(1.5)
    _request(machine, "chained", 12)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once"), (0, "once")])
    machine.advance(1.5)
    machine.teardown()


def test_two_chained_requests_on_one_chain_each_get_their_own_records() -> None:
    """Issue 16, item 5: two GetChainedRecord on one chain in flight together."""
    machine = _machine()
    machine.accept("chained", 11, "5550101", None, None)
    machine.accept("chained", 12, "5550102", None, None)
    machine.send(1, PostResult.ACCEPTED, answer_now=True)
    machine.send(2, PostResult.ACCEPTED, answer_now=True)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once")] * 4)
    machine.deliver([(0, "once")] * 2)
    machine.advance(1.5)
    machine.teardown()


def test_a_phone_request_does_not_swallow_the_refusal_of_a_record_request() -> None:
    """Issue 16, item 8: a DoNotCall by phone whose user event was lost, then a DoNotCall of a
    record with that phone number, which OCS refuses."""
    machine = _machine()
    _request(machine, "dnc_phone", phone="5550101")
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "lost")])
    machine.advance(0.3)
    _request(machine, "dnc_record", 11)
    machine.ocs_answers("refuse", "both", False, False, 106, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    machine.teardown()


def test_a_regenerated_answer_after_the_outcome_is_not_a_second_acknowledgement() -> None:
    """Issue 16, item 9: the user event of an acknowledged cancel arrives again, with new
    metrics."""
    machine = _machine()
    _request(machine, "cancel")
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once")])
    machine.repeat_after_outcome(1, regenerated=True)
    machine.advance(1.0)
    machine.teardown()


def test_a_refusal_keyed_on_the_stored_record_fails_the_request_at_once() -> None:
    """Issue 16, item 10: a wrong application id; OCS refuses at once, keyed on the record it
    stores."""
    machine = _machine()
    machine.accept("cancel", 11, "5550101", None, "application")
    machine.send(1, PostResult.ACCEPTED, answer_now=True)
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    machine.teardown()


# -- what this oracle found in the first version of the matching rule ---------------------------


def test_a_regenerated_chained_record_is_one_record() -> None:
    """A chained record relayed twice (the copy with new metrics) is one part, not two."""
    machine = _machine()
    _request(machine, "chained", 11)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "regenerated"), (0, "once"), (0, "once"), (0, "once")])
    machine.advance(0.3)
    machine.teardown()


def test_a_copy_of_an_earlier_answer_never_acknowledges_the_next_request() -> None:
    """A regenerated copy of request 1's answer arrives after request 2 on the same record
    was sent, before OCS answered it: it must not be request 2's answer (M8)."""
    machine = _machine()
    _request(machine, "cancel", 11)
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(1, "regenerated"), (0, "once")])
    _request(machine, "cancel", 11)
    machine.deliver([(0, "once")])
    machine.advance(0.3)
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    machine.teardown()


def test_a_copy_of_a_late_answer_never_answers_the_request_in_flight() -> None:
    """Request 1 timed out; its answer comes late, twice (a regenerated copy first), while
    request 2 on the same record is in flight: both copies are late, neither is request 2's."""
    machine = _machine()
    _request(machine, "reject", 21)
    machine.advance(1.5)
    _request(machine, "reject", 21)
    machine.ocs_answers("ack", "events", False, False, 110, False)
    machine.deliver([(0, "regenerated"), (0, "once")])
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    machine.teardown()


def test_parts_of_a_request_whose_end_marker_was_lost_are_not_the_next_one_s() -> None:
    """GetChainedRecord on 11 and on 12 in flight together; request 1's end marker is lost:
    request 2 gets its own records only, each once."""
    machine = _machine()
    machine.accept("chained", 11, "5550101", None, None)
    machine.accept("chained", 12, "5550102", None, None)
    machine.send(1, PostResult.ACCEPTED, answer_now=True)
    machine.send(2, PostResult.ACCEPTED, answer_now=True)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once"), (0, "lost")])
    machine.deliver([(0, "once")] * 3)
    machine.advance(1.5)
    machine.teardown()


# -- the M8 rows no other test reached (a mutation check removed each and nothing failed) -------


def test_a_copy_of_a_taken_chained_record_is_not_the_next_request_s_straggler() -> None:
    """Request 1 on record 11 took chained records 12 and 13 (as user events); request 2 on
    record 12 (the same chain) gets 11 and 13 and its end marker; while its merge window is
    open, a regenerated copy of request 1's record 13 arrives: it is a repeat (M8), not a
    straggler of request 2 (M6) that would replace request 2's own record 13."""
    machine = _machine()
    first = _request(machine, "chained", 11)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once")] * 3)
    machine.advance(0.3)  # merge window: acknowledged with its two records
    assert machine.reqs[first].outcomes
    _request(machine, "chained", 12)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.deliver([(0, "once")] * 3)
    assert machine.msgs[machine.reqs[first].batch[1]].part == 13
    machine.repeat_after_outcome(1, regenerated=True)  # request 1's messages only: its 13
    machine.advance(0.3)
    machine.teardown()


def test_a_copy_of_a_late_answer_is_not_the_late_answer_of_the_next_request_owed() -> None:
    """Requests 1 and 2 (reschedules of record 21) both time out: each is owed its answer.
    Request 1's late answer comes twice (a regenerated copy first): the second is a repeat
    (M8), not request 2's late answer; so request 2's own late answer is late too, and is never
    taken by request 3, in flight on the record (OCS answers a key's requests in order)."""
    machine = _machine()
    _request(machine, "reschedule", 21)
    machine.advance(1.5)
    _request(machine, "reschedule", 21)
    machine.advance(1.5)
    third = _request(machine, "reschedule", 21)
    machine.ocs_answers("ack", "events", False, False, 101, False)
    machine.ocs_answers("ack", "events", False, False, 101, True)  # the other name: other content
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.deliver([(0, "regenerated"), (0, "once"), (0, "once"), (0, "once")])
    machine.advance(1.5)
    assert machine.reqs[third].outcomes
    machine.teardown()


def test_a_refusal_is_not_the_late_answer_of_a_request_gws_acknowledged() -> None:
    """Request 1 (a cancel of record 11) is acknowledged by GWS's notification; OCS's user
    event for it is lost, so it is acknowledged without one and still owed it. Request 2 (a
    cancel of the same record) is refused by OCS (an unreferenced error user event): that is
    request 2's answer (``ocs_error`` after ``merge_window``), not request 1's late one (M9:
    what OCS still owes a request GWS acknowledged is no refusal). Before, request 2 ended
    ``timed_out``."""
    machine = _machine()
    first = _request(machine, "cancel")
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "lost")])
    machine.advance(1.0)  # the merge window ends: acknowledged by the notification alone
    assert machine.reqs[first].outcomes
    second = _request(machine, "cancel")
    machine.ocs_answers("refuse", "both", False, False, 101, False)
    machine.deliver([(0, "once")])
    assert not machine.reqs[second].outcomes  # matched by key: it waits merge_window (M9)
    machine.advance(MERGE_WINDOW + 0.05)
    assert machine.reqs[second].outcomes  # decided then (the liveness check: ocs_error)
    machine.teardown()


def test_a_request_gws_refused_after_its_deadline_is_owed_nothing() -> None:
    """Request 1 (a cancel of record 11) is sent and GWS is slow to answer its POST: its
    deadline ends it, and it is owed its answer (GWS may have passed it on). Then GWS refuses
    the POST: it never reached OCS. Request 2 (a cancel of the same record) is refused by OCS
    (an unreferenced error user event): that is request 2's answer (``ocs_error`` after
    ``merge_window``).
    Before, it was taken as request 1's late answer and request 2 ended ``timed_out``."""
    machine = _machine()
    machine.accept("cancel", 11, "5550101", None, None)
    first = max(machine.reqs)
    machine.send(first, PostResult.REJECTED, answer_now=False)
    machine.advance(DEADLINE + 1.0)
    assert machine.reqs[first].outcomes
    machine.give_post_result(first)
    second = _request(machine, "cancel")
    machine.ocs_answers("refuse", "both", False, False, 101, False)
    machine.deliver([(0, "once")])
    assert not machine.reqs[second].outcomes  # matched by key: it waits merge_window (M9)
    machine.advance(MERGE_WINDOW + 0.05)
    assert machine.reqs[second].outcomes  # decided then (the liveness check: ocs_error)
    machine.teardown()


# -- resends: attempts GWS did not get (a 503 with GWS's statusCode, no connection, a re-login) --


def _missing(machine: Oracle, misses: int = 1, silent: bool = False) -> Req:
    """A cancel of record 11 whose first ``misses`` attempts will not reach GWS, the first
    being written."""
    machine.accept("cancel", 11, "5550101", None, None)
    token = max(machine.reqs)
    machine.send(token, PostResult.ACCEPTED, answer_now=False, misses=misses, silent=silent)
    return machine.reqs[token]


def test_a_refusal_matched_by_key_during_an_attempt_gws_did_not_get_is_another_client_s() -> None:
    """Another desktop's refusal on the record arrives while the cancel's first attempt is
    being written (matched by key, it waits for GWS's answer: M10); the attempt did not reach
    GWS (``not_received``), and the deadline comes before it is written again: the refusal was
    not ours (no ``ocs_error``), and the cancel ends not sent (``transport_failure``,
    ``may_have_acted`` false)."""
    machine = _machine()
    req = _missing(machine)
    machine.another_desktop(req, refusal=True)
    machine.give_post_result(req.token)  # did not reach GWS: not_received
    machine.advance(DEADLINE + 1.0)
    assert req.outcomes and isinstance(req.outcomes[0], Failed)
    assert req.outcomes[0].reason is FailureReason.TRANSPORT_FAILURE
    machine.resend(req.token, answer_now=True)  # has its outcome: nothing written again
    assert req.attempts == 1
    machine.teardown()


def test_a_request_written_again_gets_its_own_answer_not_the_one_matched_by_key_before() -> None:
    """Another desktop's acknowledgement on the record is matched by key to the cancel while
    its first attempt is being written; that attempt did not reach GWS; the second does and is
    accepted: the cancel is acknowledged by its own notification only, never with the other
    desktop's user event."""
    machine = _machine()
    req = _missing(machine)
    machine.another_desktop(req, refusal=False)
    machine.give_post_result(req.token)
    machine.resend(req.token, answer_now=True)
    assert not req.outcomes
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    assert req.outcomes and isinstance(req.outcomes[0], Acknowledged)
    assert req.outcomes[0].user_event is None
    machine.teardown()


def test_a_silent_transport_s_resend_forgets_what_was_matched_by_key() -> None:
    """A transport of the host's own that does not report attempts GWS did not get, only its
    resends (``announce_resend``): another desktop's refusal on the record arrives between the
    two attempts (matched by key: the request still counts as possibly being written); the
    second attempt is accepted; OCS then acknowledges the cancel: the refusal was not its."""
    machine = _machine()
    req = _missing(machine, silent=True)
    machine.give_post_result(req.token)  # did not reach GWS; nothing told
    machine.another_desktop(req, refusal=True)
    machine.resend(req.token, answer_now=True)
    assert not req.outcomes
    machine.ocs_answers("ack", "notifications", False, False, 101, False)
    machine.deliver([(0, "once")])
    machine.advance(1.5)
    assert req.outcomes and isinstance(req.outcomes[0], Acknowledged)
    machine.teardown()


def test_closed_between_attempts_gws_did_not_get_is_shut_down_and_its_id_free() -> None:
    """Two cancels (the second on another record) whose attempts did not reach GWS: the first
    reaches it on its third attempt and GWS does not answer the POST; the second waits to be
    written again when the deadline passes for both: the first may have been processed
    (``outcome_unknown``), the second was not sent; its referenceId is free again (GWS never
    got it). A third request, with that id, waits to be written again at the close:
    ``shut_down``, ``may_have_acted`` false."""
    machine = _machine()
    first = _missing(machine, misses=2)
    first.planned = PostResult.NO_ANSWER
    machine.accept("reject", 12, "5550102", "r1", None)
    second = machine.reqs[max(machine.reqs)]
    machine.send(second.token, PostResult.ACCEPTED, answer_now=True, misses=1)
    for _ in range(2):
        machine.give_post_result(first.token)
        machine.resend(first.token, answer_now=False)
    assert first.reached and not second.reached
    machine.give_post_result(first.token)  # NO_ANSWER
    machine.advance(DEADLINE + 1.0)
    assert isinstance(first.outcomes[0], Failed) and first.outcomes[0].may_have_acted
    assert isinstance(second.outcomes[0], Failed) and not second.outcomes[0].may_have_acted
    machine.accept("reject", 12, "5550102", "r1", None)
    third = machine.reqs[max(machine.reqs)]
    assert not third.outcomes  # accepted: the id is not reserved
    machine.send(third.token, PostResult.ACCEPTED, answer_now=True, misses=1)
    assert third.between
    machine.teardown()
    assert isinstance(third.outcomes[0], Failed)
    assert third.outcomes[0].reason is FailureReason.SHUT_DOWN


# -- property 7: another desktop's refusal on the record of a request GWS got --


def test_another_desktop_s_refusal_yields_to_our_acknowledgement_within_merge_window() -> None:
    """Another desktop's cancel of record 11 reaches OCS just before ours and is refused: that
    refusal (no referenceId, keyed on the record) arrives first; OCS then acts on ours and its
    acknowledgement (with our referenceId) arrives within merge_window: ours is acknowledged.
    Before, the refusal decided at once (``ocs_error``, ``may_have_acted`` false)."""
    machine = _machine()
    token = _request(machine, "cancel")
    machine.another_desktop_refused(machine.reqs[token])
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.advance(0.1)
    machine.deliver([(0, "once"), (0, "once")])
    machine.advance(1.0)
    (outcome,) = machine.reqs[token].outcomes
    assert isinstance(outcome, Acknowledged) and outcome.outbound is not None
    machine.teardown()


def test_another_desktop_s_refusal_decides_only_after_merge_window() -> None:
    """The same, our acknowledgement coming after merge_window: the refusal, which cannot be
    told from OCS's refusal of ours, decides then, not before (property 7)."""
    machine = _machine()
    token = _request(machine, "cancel")
    machine.another_desktop_refused(machine.reqs[token])
    machine.advance(0.2)
    assert not machine.reqs[token].outcomes
    machine.advance(0.1)
    (outcome,) = machine.reqs[token].outcomes
    assert isinstance(outcome, Failed) and outcome.error_number == FOREIGN_ERROR
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.deliver([(0, "once"), (0, "once")])
    machine.teardown()


def test_another_desktop_s_refusal_before_gws_answers_our_post_waits_from_that_answer() -> None:
    """The same, the refusal arriving before GWS answered our POST (held, M10): its window
    starts when GWS accepts the POST, and our acknowledgement within it wins. Before, the held
    refusal decided as soon as GWS accepted the POST."""
    machine = _machine()
    machine.accept("cancel", 11, "5550101", None, None)
    token = max(machine.reqs)
    machine.send(token, PostResult.ACCEPTED, answer_now=False)
    machine.another_desktop_refused(machine.reqs[token])
    machine.advance(0.3)  # longer than merge_window: GWS has not answered the POST
    machine.give_post_result(token)
    assert not machine.reqs[token].outcomes
    machine.ocs_answers("ack", "both", False, False, 101, False)
    machine.advance(0.1)
    machine.deliver([(0, "once"), (0, "once")])
    machine.advance(1.0)
    (outcome,) = machine.reqs[token].outcomes
    assert isinstance(outcome, Acknowledged) and outcome.outbound is not None
    machine.teardown()


# -- M11: an earlier request's late user event ahead of its own late notification --


def test_a_late_user_event_ahead_of_its_notification_is_not_the_next_request_s() -> None:
    """Our cancel 1 of record 11 ends with another desktop's refusal, matched by key (property
    7); OCS then acts on it, but its acknowledgement comes late, its user event (no
    referenceId) ahead of its notification. Our cancel 2 of the record, in flight, is refused
    by OCS (217), its refusal delivered after merge_window. Cancel 1's user event is not
    cancel 2's: cancel 2 ends with its own refusal. Before (M11), it was acknowledged with
    cancel 1's user event (property 2)."""
    machine = _machine()
    first = _request(machine, "cancel")
    machine.another_desktop_refused(machine.reqs[first])
    machine.advance(0.3)
    (ended,) = machine.reqs[first].outcomes
    assert isinstance(ended, Failed) and ended.error_number == FOREIGN_ERROR
    machine.ocs_answers("ack", "both", False, False, 101, False)  # OCS acts on cancel 1
    second = _request(machine, "cancel")
    machine.ocs_answers("refuse", "both", False, False, 217, False)  # and refuses cancel 2

    def offset(channel: str) -> int:
        """The delivery offset of cancel 1's message on ``channel`` (reordered)."""
        (index,) = [
            i
            for i, mid in enumerate(machine.wire)
            if machine.msgs[mid].owner == first and machine.msgs[mid].channel == channel
        ]
        return index

    machine.deliver([(offset(INTERNAL), "once")])  # cancel 1's user event first
    machine.deliver([(offset(OUTBOUND), "once")])  # then its notification
    machine.advance(0.3)
    assert not machine.reqs[second].outcomes
    machine.deliver([(0, "once")])  # cancel 2's refusal
    machine.advance(1.0)
    (outcome,) = machine.reqs[second].outcomes
    assert isinstance(outcome, Failed) and outcome.reason is FailureReason.OCS_ERROR
    assert outcome.error_number == 217
    machine.teardown()
