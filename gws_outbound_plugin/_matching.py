"""Which request a message answers: the matching rule, as one function.

``docs/design-notes.md`` ("Which request a message answers") has the rule as a table, rows M1
to M10; :func:`place` follows it row by row and says which row decided. The correlator
(:class:`~._answers.Answers`) then does what the verdict says (gives the message to the
request, drops it as late or as a repeat, reports it as foreign or unsolicited; M11: it may
hold an answer this function gave by key back ``merge_window`` first); it never matches a
message any other way.

Pure: no I/O, no clock. It reads the pending requests through :class:`Pending` and the facts
kept about finished ones through :class:`~._recent.Recent`; the one change it makes is to
consume an owed answer it places (M4: an answer is owed once).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Protocol

from ._coerce import as_reference
from ._inbound import Inbound, UserEventNotice
from ._payloads import UserEvent
from ._recent import Recent
from ._spec import OPERATION_SPECS, CorrelationKey, OperationSpec, Target

__all__ = [
    "ANSWER_EVENTS",
    "PART_EVENTS",
    "PUSHED_EVENTS",
    "RECORD_ANSWERS",
    "Candidate",
    "Pending",
    "Placement",
    "Verdict",
    "answers",
    "by_key_only",
    "by_reference",
    "decides_now",
    "place",
]

#: Every ``GSW_USER_EVENT`` name that answers one of our operations (partial results aside).
PART_EVENTS: Final = frozenset(s.part for s in OPERATION_SPECS.values() if s.part)
ANSWER_EVENTS: Final = (
    frozenset(name for spec in OPERATION_SPECS.values() for name in spec.user_events | spec.empty)
    - PART_EVENTS
)
#: Answers to an operation on a record (matched by their record alone when they name one, M4:
#: ``DoNotCallAcknowledge`` answers a DoNotCall by record and one by phone number).
RECORD_ANSWERS: Final = frozenset(
    name
    for spec in OPERATION_SPECS.values()
    if spec.target is Target.RECORD
    for name in spec.user_events | spec.empty
)
#: Answers OCS also sends on its own (``PreviewRecord``).
PUSHED_EVENTS: Final = frozenset(s.acknowledgement for s in OPERATION_SPECS.values() if s.pushed)


class Verdict(enum.Enum):
    OWN = "own"
    """It answers ``Placement.entry``'s request (or is part of the answer)."""
    LATE = "late"
    """It answers a request that has ended: dropped."""
    REPEAT = "repeat"
    """A copy of an answer one of our requests already took: dropped."""
    TENTATIVE = "tentative"
    """It may answer ``Placement.entry``'s request, or be a copy of an answer an earlier
    request took (the same ``userData``): it joins the request but cannot decide its outcome
    alone (M8)."""
    PART = "part"
    """A partial result without our reference id: kept for the request it belongs to."""
    PUSHED = "pushed"
    """A preview record without our reference id: joins a request only through its own
    notification, else it is OCS's push."""
    NOT_OURS = "not_ours"
    """No request of ours: a foreign acknowledgement or an unsolicited event."""


class Candidate(Protocol):
    """What the rule reads of a pending request."""

    @property
    def spec(self) -> OperationSpec: ...

    @property
    def outbound(self) -> Mapping[str, Any] | None: ...

    @property
    def user_event(self) -> UserEvent | None: ...

    @property
    def sent(self) -> bool: ...

    @property
    def confirmed(self) -> bool:
        """A message with its reference id arrived (M1)."""
        ...

    @property
    def post_answered(self) -> bool:
        """GWS answered its POST without refusing it (accepted, or may have processed it)."""
        ...


class Pending(Protocol):
    """The correlator's pending requests, as the rule sees them."""

    def sent_entry(self, reference: str | None) -> Candidate | None:
        """The request with this reference id, if it was sent and has no outcome yet."""
        ...

    def head(self, key: CorrelationKey) -> Candidate | None:
        """The one request on ``key`` that may have been sent (one at a time per key)."""
        ...


class Placement(NamedTuple):
    """Where a message goes (a named tuple: one is made for every message, and a frozen
    dataclass is several times slower to make)."""

    verdict: Verdict
    rule: str
    """The row of the table that decided (``"M1"`` ... ``"M9"``)."""
    entry: Any = None
    """The request, for ``Verdict.OWN``."""


def answers(spec: OperationSpec, name: str | None) -> bool:
    """Whether a user event named ``name`` answers an operation of ``spec``."""
    return name is not None and (name in spec.user_events or name in spec.empty)


def decides_now(entry: Candidate) -> bool:
    """M10: whether what was given to ``entry`` may decide its outcome now. Messages matched
    by key alone (M4, M6, M7; nothing with its reference id arrived) decide nothing while GWS
    has not answered its POST: if GWS refuses the POST, it never passed the request on, and
    they were another client's answer."""
    return entry.confirmed or entry.post_answered


def by_key_only(entry: Candidate) -> bool:
    """M10: nothing with ``entry``'s reference id arrived: what it has was matched by key,
    and is not its own if GWS refuses its POST."""
    return not entry.confirmed


def _wants(entry: Candidate, u: UserEventNotice) -> bool:
    if (u.is_error or u.name in entry.spec.empty) and (
        entry.outbound is not None or by_reference(entry.user_event)
    ):
        # M9: GWS acknowledged it (for GetPreviewRecord, with a record); an unreferenced
        # refusal or "no record" is another client's answer.
        return False
    if u.is_error:
        return u.name not in ANSWER_EVENTS or answers(entry.spec, u.name)
    return answers(entry.spec, u.name)


def by_reference(event: UserEvent | None) -> bool:
    """Whether ``event`` (a request's acknowledgement) carries a reference id (M1)."""
    return event is not None and as_reference(event.user_data.get("GSW_REFERENCE_ID")) is not None


def place(message: Inbound, pending: Pending, recent: Recent) -> Placement:
    """The row of the matching rule that applies to ``message``, and its verdict.

    M10 qualifies what M4, M6 and M7 give (a placement whose rule is not ``"M1"``): see
    :func:`decides_now` and :func:`by_key_only`."""
    reference = message.reference
    if reference is not None:
        entry = pending.sent_entry(reference)
        if entry is not None:
            return Placement(Verdict.OWN, "M1", entry)
        if reference in recent.reserved:
            return Placement(Verdict.LATE, "M2")
        return Placement(Verdict.NOT_OURS, "M3")
    if not isinstance(message, UserEventNotice):
        return Placement(Verdict.NOT_OURS, "M3")  # notifications are matched by reference only
    name = message.name
    if not message.is_error and name in PART_EVENTS:
        if recent.was_taken(message.content):
            return Placement(Verdict.REPEAT, "M8")  # a copy of a part a request took
        return Placement(Verdict.PART, "M6")
    if not message.is_error and name in PUSHED_EVENTS:
        return Placement(Verdict.PUSHED, "M5")
    if name in ANSWER_EVENTS:
        rule, keys = "M4", message.keys
        if message.record_handle is not None and name in RECORD_ANSWERS:
            keys = keys[:1]  # an answer about that record: never a by-phone request's
    elif message.is_error and message.record_handle is not None:
        rule, keys = "M7", message.keys[:1]  # a refusal naming no operation: its record only
    else:
        return Placement(Verdict.NOT_OURS, "M3")  # not an answer: an event of OCS's own
    refusal = (message.error_text or "").strip().casefold() if message.is_error else None
    for key in keys:  # most specific first; the first key with a candidate decides
        if recent.is_owed(key, name, rule == "M4", refusal):
            if recent.was_taken(message.content):
                return Placement(Verdict.REPEAT, "M8")  # a copy of an answer placed before
            recent.claim_owed(key, name, rule == "M4", refusal)
            return Placement(Verdict.LATE, rule)  # an earlier request's, sent before
        entry = pending.head(key)
        if entry is not None and entry.sent and _wants(entry, message):
            if recent.was_taken(message.content):
                return Placement(Verdict.TENTATIVE, "M8", entry)
            return Placement(Verdict.OWN, rule, entry)
    if rule == "M4" and recent.was_taken(message.content):
        return Placement(Verdict.REPEAT, "M8")
    return Placement(Verdict.NOT_OURS, rule)
