"""The correlator: the pure core of the engine.

Requests, HTTP answers, CometD messages, timer expiries and session events go in; effects come
out (send this, start or stop that timer, this request has this outcome, fire ``on_user_event``
with this event). It does no I/O, has no clock and logs nothing: the engine around it
(``_engine.py``) carries the effects out. Every method runs to completion without awaiting, so
nothing can interrupt it between deciding an outcome and reporting it.

What it promises, by construction:

* every accepted request gets exactly one :class:`Resolved` effect (its outcome): the entry is
  removed from every index in :meth:`Correlator._finish`, the only place a ``Resolved`` is made;
* every outcome is the request's own: which request a message answers is decided by one rule,
  written as a table in ``docs/design-notes.md`` ("Which request a message answers") and
  followed by :meth:`Correlator._owner_by_key` and the ``_on_*`` methods (M1 to M9 below refer
  to its rows);
* a request's lifecycle follows :data:`TRANSITIONS`;
* facts the matching relies on (reserved reference ids, answers still owed to finished
  requests, answers already taken) are kept for ``late_window`` seconds, never dropped early
  because a count was reached: when ``max_reserved`` is reached, new requests are refused.

``tests/unit/test_correlator_oracle.py`` checks this against a simulated OCS that knows which
request each message answers.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ._coerce import as_name, as_reference
from ._inbound import (
    ErrorNotice,
    Malformed,
    Notification,
    UserEventNotice,
    error_number,
    parse,
)
from ._models import FailureReason, UserEvent
from ._spec import (
    OPERATION_SPECS,
    SPEC_BY_ACKNOWLEDGEMENT,
    CorrelationKey,
    Operation,
    OperationSpec,
)

__all__ = [
    "TRANSITIONS",
    "Acknowledged",
    "CancelTimer",
    "Correlator",
    "Effect",
    "Failed",
    "Foreign",
    "Limits",
    "Notice",
    "Phase",
    "PostResult",
    "Resolved",
    "Send",
    "StartTimer",
    "TimerId",
    "Unsolicited",
    "UserEventSeen",
]

_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
#: Every ``GSW_USER_EVENT`` name that answers one of our operations (parts excluded).
_ANSWER_EVENTS: Final = frozenset(
    name for spec in OPERATION_SPECS.values() for name in spec.user_events | spec.empty
) - frozenset(s.part for s in OPERATION_SPECS.values() if s.part)
#: Names of partial results (``ChainedRecord``).
_PART_EVENTS: Final = frozenset(s.part for s in OPERATION_SPECS.values() if s.part)
#: Answers OCS also sends on its own (``PreviewRecord``): never matched by key (M5).
_PUSHED_EVENTS: Final = frozenset(s.acknowledgement for s in OPERATION_SPECS.values() if s.pushed)
#: A reserved fact lives between ``late_window`` and 1.25 times ``late_window``: the sweep timer
#: runs every ``late_window / _SWEEPS`` and drops what is ``_SWEEPS + 1`` sweeps old.
_SWEEPS: Final = 4
TimerId = tuple[Any, ...]


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """POST this request (the engine calls :meth:`Correlator.sending` right before writing)."""

    token: int
    request: Operation


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call :meth:`Correlator.timer_expired` with ``timer`` after ``delay`` seconds (a timer
    with the same id is replaced)."""

    timer: TimerId
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerId


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The operation succeeded: what arrived for it."""

    outbound: Mapping[str, Any] | None
    """``data`` of the acknowledgement (``OutboundRecordMessage`` / ``OutboundCampaignMessage``)."""
    user_event: UserEvent | None
    parts: tuple[Mapping[str, Any] | UserEvent, ...] = ()
    """Each partial result (``ChainedRecord``) in arrival order: the ``data`` of its
    notification, or its user event when no notification arrived."""
    empty: bool = False
    """The operation found nothing (``GetPreviewRecord`` on an exhausted list)."""


@dataclass(frozen=True, slots=True)
class Failed:
    reason: FailureReason
    message: str
    status_code: int | None = None
    error_number: int | None = None
    user_data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    may_have_acted: bool = False
    """Whether GWS may have acted on the request (so a retry may not be safe)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The one outcome of an accepted request."""

    token: int
    request: Operation
    outcome: Acknowledged | Failed


@dataclass(frozen=True, slots=True)
class Foreign:
    """An acknowledgement that matches no request of ours (another client of the agent)."""

    spec: OperationSpec
    outbound: Mapping[str, Any] | None
    user_event: UserEvent | None


@dataclass(frozen=True, slots=True)
class UserEventSeen:
    """A distinct ``DeviceUserEventMessage``: fire ``on_user_event``."""

    event: UserEvent


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """A notification that answers no request: an OCS event (user event) or a pushed preview
    record (``outbound``)."""

    event: UserEvent | None = None
    outbound: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a log line: ``kind`` is the event name, ``fields`` its details."""

    kind: str
    level: str
    fields: Mapping[str, Any]


Effect = Send | StartTimer | CancelTimer | Resolved | Foreign | UserEventSeen | Unsolicited | Notice


class PostResult(enum.Enum):
    """How a POST ended, as the sender saw it."""

    ACCEPTED = "accepted"
    """``statusCode`` 0: GWS accepted it; the outcome comes over CometD."""
    REJECTED = "rejected"
    """GWS answered a ``statusCode`` other than 0: it did nothing (except 7 and 9, below)."""
    AUTHENTICATION_FAILED = "authentication_failed"
    NOT_SENT = "not_sent"
    """It certainly did not reach GWS (connection refused, CometD down, ...)."""
    NO_ANSWER = "no_answer"
    """It may have reached GWS and been processed, but no answer came back."""


#: ``statusCode`` values after which GWS may still act: 7 partial success, 9 processing
#: incomplete (reference §5.3). The request waits for its CometD outcome as if unanswered.
UNFINISHED_STATUS_CODES: Final = frozenset({7, 9})


# -- the request lifecycle -------------------------------------------------------------------


class Phase(enum.Enum):
    HELD = "held"
    """Accepted; waits until the request before it on the same key has its outcome."""
    READY = "ready"
    """``Send`` emitted; not being written yet."""
    SENDING = "sending"
    """Being written (:meth:`Correlator.sending` said yes); GWS may act on it from now on."""
    AWAITING = "awaiting"
    """GWS accepted it (or may have): its answer comes over CometD."""
    ANSWERING = "answering"
    """Part of its answer arrived; the rest may follow within ``merge_window``."""


#: (phase, what happened) -> next phase. Anything else leaves the phase as it is; every outcome
#: leaves the table altogether through ``_finish`` (the outcomes per phase are listed in
#: ``docs/design-notes.md``, "A request's lifecycle").
TRANSITIONS: Final[Mapping[tuple[Phase, str], Phase]] = MappingProxyType(
    {
        (Phase.HELD, "released"): Phase.READY,
        (Phase.READY, "sending"): Phase.SENDING,
        (Phase.SENDING, "posted"): Phase.AWAITING,
        (Phase.SENDING, "answer"): Phase.ANSWERING,
        (Phase.AWAITING, "answer"): Phase.ANSWERING,
    }
)
_SENT: Final = frozenset({Phase.SENDING, Phase.AWAITING, Phase.ANSWERING})


@dataclass(frozen=True, slots=True)
class Limits:
    ack_timeout: float = 10.0
    merge_window: float = 0.25
    max_message_bytes: int = 256 * 1024
    max_user_data_entries: int = 512
    deadline: float | None = None
    """Longest time from acceptance to outcome (``None``: no such timer)."""
    late_window: float | None = None
    """How long after its outcome a sent request's reference id stays reserved and answers to it
    count as late (``None``: ``deadline``, else 60 s)."""
    max_reserved: int = 500_000
    """Reservations held at most; past it new requests are refused, nothing is forgotten."""
    fingerprint_limit: int = 500_000
    """Messages remembered by the duplicate filter (within ``late_window``), at most."""
    foreign_limit: int = 10_000
    """Halves of foreign acknowledgements waiting for their other half, at most."""
    parts_limit: int = 10_000
    """Partial results without a reference id waiting for their request, at most."""


class _Entry:
    __slots__ = (
        "chain",
        "empty",
        "event_parts",
        "key",
        "lost",
        "merging",
        "outbound",
        "parts",
        "phase",
        "post_status",
        "request",
        "sent_seq",
        "spec",
        "token",
        "unanswered",
        "user_event",
    )

    def __init__(self, token: int, request: Operation) -> None:
        self.token = token
        self.request = request
        self.spec: OperationSpec = request.spec
        self.key: CorrelationKey | None = request.correlation_key
        self.phase = Phase.HELD
        self.unanswered = False
        self.post_status: tuple[int, str | None] | None = None
        self.lost = False
        self.merging = False
        self.empty = False
        self.sent_seq = 0
        self.chain: tuple[int, str, int] | None = None
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None
        self.parts: list[Mapping[str, Any]] = []
        self.event_parts: list[tuple[int, UserEvent]] = []

    @property
    def sent(self) -> bool:
        return self.phase in _SENT

    @property
    def answered(self) -> bool:
        return self.outbound is not None or self.user_event is not None


class _Owed:
    """A finished request that was sent and never got its user event: the next unreferenced
    answer on its key is its late answer (OCS answers a key's requests in order)."""

    __slots__ = ("spec", "stamp")

    def __init__(self, spec: OperationSpec, stamp: int) -> None:
        self.spec = spec
        self.stamp = stamp


class _ForeignHalf:
    __slots__ = ("outbound", "spec", "user_event")

    def __init__(self, spec: OperationSpec) -> None:
        self.spec = spec
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None


def _answers(spec: OperationSpec, name: str | None) -> bool:
    return name is not None and (name in spec.user_events or name in spec.empty)


def _content(event: UserEvent) -> bytes | None:
    """What a regenerated copy of a user event shares with it: its name and ``userData``."""
    try:
        text = _CANONICAL_JSON.encode(dict(event.user_data))
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Correlator:
    """See the module docstring. One per engine; not thread-safe (the engine calls it from
    the event loop thread only)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits = limits or Limits()
        self.late_window = limits.late_window or limits.deadline or 60.0
        self._tokens = itertools.count(1)
        self._fx: list[Effect] = []
        self._entries: dict[int, _Entry] = {}
        self._by_reference: dict[str, _Entry] = {}
        # Pending requests per key, oldest first; only the head may be sent (one at a time).
        self._queues: dict[CorrelationKey, list[_Entry]] = {}
        # Our GetPreviewRecord requests holding their PreviewRecord notification, by the handle
        # it names, until the user event of that record joins them (M5).
        self._pairing: dict[int, _Entry] = {}
        # -- facts kept for late_window (stamped with the sweep generation) --
        self._generation = 0
        self._sweeping = False
        self._start_sweep = False
        self._reserved: dict[str, int] = {}  # reference id -> stamp (M2)
        self._owed: dict[CorrelationKey, list[_Owed]] = {}  # (M4)
        self._taken: dict[bytes, int] = {}  # content of answers our requests took (M8)
        self._fingerprints: dict[bytes, int] = {}  # byte-identical repeats (M8)
        self._previews: dict[int, tuple[UserEvent, int]] = {}  # (M5)
        self._parts: dict[tuple[int, str, int], list[tuple[int, int, UserEvent, int]]] = {}
        self._parts_count = 0
        self._seq = 0  # messages seen, for "arrived after it was sent" (M6)
        self._part_entries: set[_Entry] = set()  # requests with partial results in flight (M6)
        self._foreign: dict[tuple[str, CorrelationKey], _ForeignHalf] = {}
        self._lost = False
        self._settles = itertools.count(1)
        self._closed = False
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "accepted",
                "acknowledged",
                "failed",
                "foreign_acks",
                "duplicates",
                "late",
                "malformed",
                "user_events",
                "unsolicited",
                "unmatched_errors",
            ),
            0,
        )

    # -- introspection (tests, stats) ----------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._entries)

    def state_sizes(self) -> dict[str, int]:
        """How much each index holds."""
        return {
            "entries": len(self._entries),
            "by_reference": len(self._by_reference),
            "queued": sum(len(v) for v in self._queues.values()),
            "reserved": len(self._reserved),
            "owed": sum(len(v) for v in self._owed.values()),
            "taken": len(self._taken),
            "fingerprints": len(self._fingerprints),
            "foreign": len(self._foreign),
            "parts": self._parts_count,
            "previews": len(self._previews),
        }

    def is_queued(self, token: int) -> bool:
        entry = self._entries.get(token)
        return entry is not None and entry.phase is Phase.READY

    def _take(self) -> list[Effect]:
        effects, self._fx = self._fx, []
        if self._start_sweep:
            self._start_sweep = False
            effects.append(StartTimer(("sweep",), self.late_window / _SWEEPS))
        return effects

    @staticmethod
    def _move(entry: _Entry, what: str) -> bool:
        phase = TRANSITIONS.get((entry.phase, what))
        if phase is None:
            return False
        entry.phase = phase
        return True

    # -- requests --------------------------------------------------------------------------------

    def accept(self, request: Operation) -> tuple[int, list[Effect]]:
        """Register a request; returns its token and the effects (``Send``, or its outcome
        when it cannot be sent)."""
        token = next(self._tokens)
        self.stats["accepted"] += 1
        reference = request.reference_id
        refusal: str | None = None
        reason = FailureReason.REJECTED
        if self._closed:
            refusal, reason = "the plugin is closing; nothing was sent", FailureReason.SHUT_DOWN
        elif reference in self._by_reference:
            refusal = (
                f"a request with referenceId {reference} is already pending; nothing was sent "
                "(GWS could not tell the answers apart)"
            )
        elif reference in self._reserved:
            refusal = (
                f"referenceId {reference} was used by a recent request whose answer may still "
                "arrive; nothing was sent (use a new referenceId)"
            )
        elif len(self._reserved) >= self.limits.max_reserved:
            refusal = (
                f"{len(self._reserved)} recent requests may still be answered (max_reserved); "
                "nothing was sent, try again shortly"
            )
        if refusal is not None:
            self.stats["failed"] += 1
            return token, [Resolved(token, request, Failed(reason, refusal))]
        entry = _Entry(token, request)
        self._entries[token] = entry
        self._by_reference[reference] = entry
        queue = self._queues.setdefault(entry.key, []) if entry.key is not None else None
        if queue is not None:
            queue.append(entry)
        if queue is None or len(queue) == 1:
            self._release(entry)
        if self.limits.deadline is not None:
            self._fx.append(StartTimer(("deadline", token), self.limits.deadline))
        return token, self._take()

    def _release(self, entry: _Entry) -> None:
        self._move(entry, "released")
        self._fx.append(Send(entry.token, entry.request))

    def sending(self, token: int) -> bool:
        """The POST of ``token`` is about to be written. False: it has an outcome already
        (the sender must not send it)."""
        entry = self._entries.get(token)
        if entry is None or not self._move(entry, "sending"):
            return False
        entry.lost = self._lost
        entry.sent_seq = self._seq
        if entry.spec.part is not None:
            self._part_entries.add(entry)
        return True

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> list[Effect]:
        """The POST of ``token`` ended with ``result``."""
        entry = self._entries.get(token)
        if entry is None:
            return []  # decided already
        unfinished = result is PostResult.REJECTED and status_code in UNFINISHED_STATUS_CODES
        if result is PostResult.ACCEPTED or result is PostResult.NO_ANSWER or unfinished:
            if not entry.sent:
                return []  # never written: a confused sender, ignore
            self._move(entry, "posted")
            entry.unanswered = result is not PostResult.ACCEPTED
            if unfinished and status_code is not None:
                entry.post_status = (status_code, message)
            self._fx.append(StartTimer(("ack", token), self.limits.ack_timeout))
            return self._take()
        if entry.answered:
            return []  # CometD answered before the POST's answer came: that answer stands
        if result is PostResult.REJECTED:
            failed = Failed(
                FailureReason.REJECTED, message or "GWS refused the request", status_code
            )
        elif result is PostResult.AUTHENTICATION_FAILED:
            failed = Failed(
                FailureReason.AUTHENTICATION_FAILED, message or "GWS refused the credentials"
            )
        else:
            failed = Failed(FailureReason.TRANSPORT_FAILURE, message or "the request was not sent")
        # GWS did nothing with a request it refused or never got: no late answer to expect.
        self._finish(entry, failed, may_answer_late=False)
        return self._take()

    # -- timers ----------------------------------------------------------------------------------

    def timer_expired(self, timer: TimerId) -> list[Effect]:
        kind = timer[0]
        if kind == "sweep":
            self._sweep()
        elif kind == "foreign":
            half = self._foreign.pop((timer[1], timer[2]), None)
            if half is not None:
                self._fire_foreign(half)
        elif kind == "settle":
            self._settle_lost()
        else:
            entry = self._entries.get(timer[1])
            if entry is not None:
                self._entry_timer(entry, kind)
        return self._take()

    def _entry_timer(self, entry: _Entry, kind: str) -> None:
        if entry.answered:
            if kind in ("merge", "ack", "deadline"):
                self._acknowledge(entry)
        elif kind == "ack" and entry.phase is Phase.AWAITING:
            if entry.post_status is not None:
                code, text = entry.post_status
                self._finish(
                    entry,
                    Failed(
                        FailureReason.OUTCOME_UNKNOWN,
                        f"{text or 'GWS answered statusCode ' + str(code)}; no acknowledgement "
                        f"within {self._ack}, GWS may or may not have acted on the request",
                        status_code=code,
                        may_have_acted=True,
                    ),
                )
            elif entry.unanswered:
                self._finish(entry, self._unknown(f"no acknowledgement within {self._ack}"))
            else:
                self._finish(
                    entry,
                    Failed(
                        FailureReason.TIMED_OUT,
                        f"no acknowledgement within {self._ack}",
                        may_have_acted=True,
                    ),
                )
        elif kind == "deadline":
            within = f"within {self.limits.deadline or 0.0:g}s of acceptance"
            if not entry.sent:
                self._finish(
                    entry,
                    Failed(FailureReason.TRANSPORT_FAILURE, f"not sent {within}; nothing was sent"),
                )
            elif entry.phase is Phase.SENDING or entry.unanswered:
                self._finish(entry, self._unknown(f"no answer {within}"))
            else:
                self._finish(
                    entry,
                    Failed(
                        FailureReason.TIMED_OUT,
                        f"no acknowledgement {within}",
                        may_have_acted=True,
                    ),
                )

    @property
    def _ack(self) -> str:
        return f"{self.limits.ack_timeout:g}s"

    @staticmethod
    def _unknown(why: str) -> Failed:
        return Failed(
            FailureReason.OUTCOME_UNKNOWN,
            f"{why}; GWS may or may not have acted on the request",
            may_have_acted=True,
        )

    # -- session events --------------------------------------------------------------------------

    def session_lost(self) -> list[Effect]:
        """The CometD session is gone: whatever was published meanwhile may be lost."""
        self._lost = True
        for entry in self._entries.values():
            if entry.sent:
                entry.lost = True
        return []

    def session_restored(self) -> list[Effect]:
        """The CometD session is back. Messages already on their way are processed during one
        merge window; then what was sent before the loss and is still pending ends: with what
        arrived of its answer, else ``outcome_unknown``."""
        self._lost = False
        delay = max(self.limits.merge_window, 0.05)
        return [StartTimer(("settle", next(self._settles)), delay)]

    def _settle_lost(self) -> None:
        lost = [e for e in self._entries.values() if e.lost]
        unknown = sum(1 for e in lost if not e.answered)
        if unknown:
            self._fx.append(Notice("cometd_outcomes_unknown", "warning", {"count": unknown}))
        for entry in lost:
            self._conclude(entry, "the CometD session was lost while the outcome was pending")

    def shutdown(self) -> list[Effect]:
        """Resolve everything still pending on the evidence at hand; from now on ``accept``
        fails at once."""
        self._closed = True
        for entry in list(self._entries.values()):
            if entry.sent or entry.answered:
                self._conclude(entry, "the plugin was closed before the outcome arrived")
            else:
                self._finish(
                    entry,
                    Failed(
                        FailureReason.SHUT_DOWN,
                        "the plugin was closed before the request was sent; nothing was sent",
                    ),
                )
        for half in list(self._foreign.values()):
            self._fire_foreign(half)
        self._foreign.clear()
        return self._take()

    def _conclude(self, entry: _Entry, why: str) -> None:
        """End a sent request now: acknowledged if part of its answer arrived, else unknown."""
        if entry.answered:
            self._acknowledge(entry)
        else:
            self._finish(entry, self._unknown(why))

    # -- CometD messages ---------------------------------------------------------------------------

    def message(self, message: object) -> list[Effect]:
        """One CometD message (``{"channel": ..., "data": {...}}``) from the listener."""
        if not isinstance(message, Mapping):
            return self._malformed("not a JSON object", None)
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(data, Mapping):
            return self._malformed("no data object", channel)
        duplicate = self._is_duplicate(channel, data)
        if duplicate is None:
            return self._malformed(
                f"larger than {self.limits.max_message_bytes} bytes or not JSON", channel
            )
        if duplicate:
            self.stats["duplicates"] += 1
            return [Notice("cometd_duplicate_dropped", "debug", {"channel": as_name(channel)})]
        self._seq += 1
        try:
            inbound = parse(
                as_name(channel), data, max_user_data_entries=self.limits.max_user_data_entries
            )
        except Malformed as exc:
            return self._malformed(str(exc), channel)
        if isinstance(inbound, Notification):
            self._on_notification(inbound)
        elif isinstance(inbound, UserEventNotice):
            self._on_user_event(inbound)
        elif isinstance(inbound, ErrorNotice):
            self._on_error_message(inbound)
        else:
            self._fx.append(
                Notice(
                    "cometd_message_ignored",
                    "debug",
                    {"channel": as_name(channel), "message_type": as_name(data.get("messageType"))},
                )
            )
        return self._take()

    def _malformed(self, why: str, channel: object) -> list[Effect]:
        self.stats["malformed"] += 1
        return [
            Notice(
                "cometd_message_rejected", "warning", {"reason": why, "channel": as_name(channel)}
            )
        ]

    def _is_duplicate(self, channel: object, data: Mapping[str, Any]) -> bool | None:
        """True for a repeat; None when the message is too large or not JSON."""
        try:
            text = _CANONICAL_JSON.encode([channel, data])
        except (TypeError, ValueError, RecursionError):
            return None
        if len(text) > self.limits.max_message_bytes:
            return None
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if digest in self._fingerprints:
            return True
        if len(self._fingerprints) >= self.limits.fingerprint_limit:
            # A best-effort filter: the oldest is dropped (an exact repeat that old is then
            # matched by the rules like any message, never given to another request).
            del self._fingerprints[next(iter(self._fingerprints))]
        self._fingerprints[digest] = self._stamp()
        return False

    def _sent_entry(self, reference: str | None) -> _Entry | None:
        """M1: the in-flight request with this reference id."""
        entry = self._by_reference.get(reference) if reference is not None else None
        return entry if entry is not None and entry.sent else None

    def _late(self, what: str, **fields: Any) -> None:
        self.stats["late"] += 1
        self._fx.append(Notice(what, "info", fields))

    def _on_notification(self, n: Notification) -> None:
        entry = self._sent_entry(n.reference)
        if entry is None:
            if n.reference is not None and n.reference in self._reserved:  # M2
                self._late("late_notification_ignored", reference_id=n.reference)
            elif n.notification == "PreviewRecord":
                self.stats["unsolicited"] += 1
                self._fx.append(Unsolicited(outbound=n.data))
            elif n.notification is not None and n.notification in SPEC_BY_ACKNOWLEDGEMENT:  # M3
                spec = SPEC_BY_ACKNOWLEDGEMENT[n.notification][0]
                self._foreign_half(spec, n.keys, outbound=n.data)
            else:
                self._fx.append(
                    Notice(
                        "outbound_notification_ignored", "debug", {"notification": n.notification}
                    )
                )
            return
        spec = entry.spec  # M1
        if n.is_error:
            self._finish(
                entry,
                Failed(
                    FailureReason.OCS_ERROR,
                    n.error_text or "GWS reported an error for this request",
                    error_number=error_number(n.data.get("errorCode")),
                ),
            )
        elif n.notification == spec.acknowledgement:
            if entry.outbound is None:
                entry.outbound = n.data
                if spec.pushed and n.record_handle is not None:
                    self._pair_preview(entry, n.record_handle)
                self._half(entry)
        elif spec.part is not None and n.notification == spec.part:
            entry.parts.append(n.data)
            if entry.merging:
                self._half(entry)  # a straggler: the window starts again
        elif n.notification in spec.empty:
            entry.empty = True
            entry.outbound = n.data
            self._acknowledge(entry)
        else:
            self._fx.append(
                Notice(
                    "outbound_notification_ignored",
                    "debug",
                    {"notification": n.notification, "reference_id": n.reference},
                )
            )

    def _on_error_message(self, e: ErrorNotice) -> None:
        entry = self._sent_entry(e.reference)
        if entry is not None:  # M1
            self._finish(
                entry,
                Failed(
                    FailureReason.REJECTED,
                    e.text or "GWS reported an error for this request",
                    status_code=e.code,
                ),
            )
        elif e.reference is not None and e.reference in self._reserved:  # M2
            self._late("late_error_ignored", reference_id=e.reference)
        else:
            self.stats["unmatched_errors"] += 1
            self._fx.append(
                Notice(
                    "cometd_error_unmatched",
                    "warning",
                    {
                        "channel": e.channel,
                        "reference_id": e.reference,
                        "error_code": e.code,
                        "detail": (e.text or "")[:200],
                    },
                )
            )

    def _on_user_event(self, u: UserEventNotice) -> None:
        self.stats["user_events"] += 1
        self._fx.append(UserEventSeen(u.event))
        name = u.name
        if u.reference is not None:
            entry = self._sent_entry(u.reference)
            if entry is not None:  # M1
                self._give(entry, u)
            elif u.reference in self._reserved:  # M2
                self._late("late_user_event_ignored", user_event=name)
            else:  # M3
                self._not_ours(u)
            return
        if not u.is_error and name in _PART_EVENTS:  # M6
            self._keep_part(u)
            return
        if not u.is_error and name in _PUSHED_EVENTS:  # M5
            if u.record_handle is not None:
                self._pushed_answer(u.record_handle, u.event)
            return
        owner = self._owner_by_key(u)  # M4, M7, M9
        if isinstance(owner, _Owed):
            self._late("late_user_event_ignored", user_event=name)
        elif owner is not None:
            self._give(owner, u)
        elif self._is_repeat(u):  # M8
            self.stats["duplicates"] += 1
            self._fx.append(Notice("user_event_repeat_ignored", "debug", {"user_event": name}))
        else:
            self._not_ours(u)

    def _is_repeat(self, u: UserEventNotice) -> bool:
        if not self._taken or u.name not in _ANSWER_EVENTS:
            return False
        content = _content(u.event)
        return content is not None and content in self._taken

    def _owner_by_key(self, u: UserEventNotice) -> _Entry | _Owed | None:
        """M4, M7, M9: who an unreferenced answer belongs to. Keys are tried most specific
        first; the first one with a candidate decides; on it, an earlier request still owed
        its answer comes before the one in flight (OCS answers a key's requests in order).
        An answer, once placed with an owed request, is consumed."""
        name = u.name
        if name in _ANSWER_EVENTS:
            keys = u.keys
        elif u.is_error and u.record_handle is not None:
            keys = u.keys[:1]  # M7: a refusal that names no operation: its record only
        else:
            return None
        for key in keys:
            owed = self._owed.get(key)
            if owed:
                for i, slot in enumerate(owed):
                    if name not in _ANSWER_EVENTS or _answers(slot.spec, name):
                        del owed[i]
                        if not owed:
                            del self._owed[key]
                        return slot
            queue = self._queues.get(key)
            entry = queue[0] if queue else None
            if entry is not None and entry.sent and self._wants(entry, u):
                return entry
        return None

    @staticmethod
    def _wants(entry: _Entry, u: UserEventNotice) -> bool:
        if u.is_error:
            if entry.outbound is not None:
                return False  # M9: GWS acknowledged it; an unreferenced refusal is another's
            return u.name not in _ANSWER_EVENTS or _answers(entry.spec, u.name)
        return _answers(entry.spec, u.name)

    def _give(self, entry: _Entry, u: UserEventNotice) -> None:
        """A user event that belongs to ``entry``'s request."""
        spec = entry.spec
        event = u.event
        if u.is_error:
            text = u.error_text
            if text is not None and text.strip().casefold() in spec.empty_error_texts:
                entry.empty = True
                entry.user_event = event
                self._acknowledge(entry)
                return
            entry.user_event = event  # what a regenerated copy is recognised by (M8)
            self._finish(
                entry,
                Failed(
                    FailureReason.OCS_ERROR,
                    text or "OCS refused the request",
                    error_number=error_number(event.user_data.get("GSW_ERROR_NUMBER")),
                    user_data=event.user_data,
                ),
            )
        elif spec.part is not None and u.name == spec.part:
            entry.event_parts.append((self._seq, event))
            if entry.merging:
                self._half(entry)
        elif u.name in spec.empty:
            entry.empty = True
            entry.user_event = event
            self._acknowledge(entry)
        elif _answers(spec, u.name) and entry.user_event is None:
            entry.user_event = event
            if spec.part is not None:
                entry.chain = u.chain
                self._collect_parts(entry, until=self._seq)
            self._half(entry)
        else:
            self.stats["duplicates"] += 1
            self._fx.append(Notice("user_event_repeat_ignored", "debug", {"user_event": u.name}))

    def _not_ours(self, u: UserEventNotice) -> None:
        name = u.name
        if u.is_error:
            if name in _ANSWER_EVENTS:
                self.stats["unmatched_errors"] += 1
                self._fx.append(Notice("ocs_error_unmatched", "info", {"user_event": name}))
            else:
                self.stats["unsolicited"] += 1
                self._fx.append(Unsolicited(event=u.event))
        elif name is not None and name in SPEC_BY_ACKNOWLEDGEMENT and name not in _PUSHED_EVENTS:
            self._foreign_half(SPEC_BY_ACKNOWLEDGEMENT[name][0], u.keys, user_event=u.event)
        elif name not in _ANSWER_EVENTS and name not in _PART_EVENTS:
            self.stats["unsolicited"] += 1
            self._fx.append(Unsolicited(event=u.event))

    # -- M5: pushed answers, M6: partial results ---------------------------------------------

    def _pushed_answer(self, handle: int, event: UserEvent) -> None:
        entry = self._pairing.pop(handle, None)
        if entry is not None and entry.user_event is None:
            entry.user_event = event
            self._half(entry)
        else:
            self._previews[handle] = (event, self._stamp())

    def _pair_preview(self, entry: _Entry, handle: int) -> None:
        held = self._previews.pop(handle, None)
        if held is not None:
            entry.user_event = held[0]
        elif entry.user_event is None:
            self._pairing[handle] = entry

    def _keep_part(self, u: UserEventNotice) -> None:
        if u.chain is None or self._parts_count >= self.limits.parts_limit:
            return
        if not self._part_entries:
            return  # no request of ours can own it: only on_user_event
        self._parts.setdefault(u.chain, []).append(
            (self._seq, u.record_handle or 0, u.event, self._stamp())
        )
        self._parts_count += 1
        if len(self._part_entries) == 1:
            # After its end marker (reordered), a part is the one request's only while no other
            # request that could own it is in flight.
            (entry,) = self._part_entries
            if entry.chain == u.chain and entry.merging:
                self._collect_parts(entry, until=self._seq + 1)
                self._half(entry)

    def _collect_parts(self, entry: _Entry, until: int) -> None:
        """M6: the unreferenced parts of its chain that arrived after it was sent and before
        ``until`` (its end marker), other than its own record, are its own; they leave the
        buffer."""
        chain = entry.chain
        buffered = self._parts.get(chain) if chain is not None else None
        if chain is None or not buffered:
            return
        own = getattr(entry.request, "record_handle", None)
        mine: list[tuple[int, int, UserEvent, int]] = []
        rest: list[tuple[int, int, UserEvent, int]] = []
        for part in buffered:
            is_mine = entry.sent_seq < part[0] < until and part[1] != own
            (mine if is_mine else rest).append(part)
        if not mine:
            return
        if rest:
            self._parts[chain] = rest
        else:
            del self._parts[chain]
        self._parts_count -= len(mine)
        entry.event_parts.extend((seq, event) for seq, _, event, _ in mine)

    # -- halves ------------------------------------------------------------------------------

    def _half(self, entry: _Entry) -> None:
        """Part of ``entry``'s answer arrived: acknowledge when it is complete, else (re)open
        the merge window. A request with partial results always waits the window after its
        last message: parts may arrive after the end marker."""
        self._move(entry, "answer")
        whole = entry.outbound is not None and entry.user_event is not None
        if self.limits.merge_window == 0 or (whole and entry.spec.part is None):
            self._acknowledge(entry)
        elif entry.spec.part is not None or not entry.merging:
            entry.merging = True
            self._fx.append(StartTimer(("merge", entry.token), self.limits.merge_window))

    def _foreign_half(
        self,
        spec: OperationSpec,
        keys: tuple[CorrelationKey, ...],
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> None:
        for key in keys:
            slot = (spec.acknowledgement, key)
            half = self._foreign.get(slot)
            if half is not None and (
                (outbound is not None and half.outbound is None)
                or (user_event is not None and half.user_event is None)
            ):
                del self._foreign[slot]
                half.outbound = half.outbound or outbound
                half.user_event = half.user_event or user_event
                self._fire_foreign(half)
                return
        half = _ForeignHalf(spec)
        half.outbound, half.user_event = outbound, user_event
        if not keys or self.limits.merge_window == 0:
            self._fire_foreign(half)
            return
        slot = (spec.acknowledgement, keys[0])
        if slot in self._foreign or len(self._foreign) >= self.limits.foreign_limit:
            self._fire_foreign(half)
            return
        self._foreign[slot] = half
        self._fx.append(StartTimer(("foreign", *slot), self.limits.merge_window))

    def _fire_foreign(self, half: _ForeignHalf) -> None:
        self.stats["foreign_acks"] += 1
        self._fx.append(Foreign(half.spec, half.outbound, half.user_event))

    # -- outcomes ----------------------------------------------------------------------------------

    def _acknowledge(self, entry: _Entry) -> None:
        parts: tuple[Mapping[str, Any] | UserEvent, ...] = tuple(entry.parts)
        if not parts and entry.event_parts:
            parts = tuple(event for _, event in sorted(entry.event_parts, key=lambda p: p[0]))
        self._finish(entry, Acknowledged(entry.outbound, entry.user_event, parts, entry.empty))

    def _finish(
        self, entry: _Entry, outcome: Acknowledged | Failed, *, may_answer_late: bool = True
    ) -> None:
        """The one place an entry leaves the indexes and gets its outcome."""
        if self._entries.pop(entry.token, None) is None:
            return
        self._part_entries.discard(entry)
        reference = entry.request.reference_id
        if self._by_reference.get(reference) is entry:
            del self._by_reference[reference]
        follower: _Entry | None = None
        if entry.key is not None:
            queue = self._queues.get(entry.key)
            if queue is not None:
                if entry in queue:
                    queue.remove(entry)
                if not queue:
                    del self._queues[entry.key]
                elif queue[0].phase is Phase.HELD:
                    follower = queue[0]
        if self._pairing:
            for handle, paired in list(self._pairing.items()):
                if paired is entry:
                    del self._pairing[handle]
        if isinstance(outcome, Acknowledged):
            self.stats["acknowledged"] += 1
        else:
            self.stats["failed"] += 1
        self._fx.append(Resolved(entry.token, entry.request, outcome))
        if entry.sent and may_answer_late:
            # Its messages may still arrive (M2, M4); they must never answer another request.
            stamp = self._stamp()
            self._reserved[reference] = stamp
            event = entry.user_event
            if event is None and entry.key is not None:
                self._owed.setdefault(entry.key, []).append(_Owed(entry.spec, stamp))
            elif event is not None and as_reference(event.user_data.get("GSW_REFERENCE_ID")) is None:
                content = _content(event)
                if content is not None:
                    self._taken.pop(content, None)
                    self._taken[content] = stamp
        if entry.phase in (Phase.AWAITING, Phase.ANSWERING):
            self._fx.append(CancelTimer(("ack", entry.token)))
        if entry.merging:
            self._fx.append(CancelTimer(("merge", entry.token)))
        if self.limits.deadline is not None:
            self._fx.append(CancelTimer(("deadline", entry.token)))
        if follower is not None and not self._closed:
            self._release(follower)

    # -- facts kept for late_window ---------------------------------------------------------------

    def _stamp(self) -> int:
        if not self._sweeping:
            self._sweeping = self._start_sweep = True
        return self._generation

    def _sweep(self) -> None:
        self._generation += 1
        cutoff = self._generation - _SWEEPS - 1
        _expire(self._reserved, cutoff)
        _expire(self._taken, cutoff)
        _expire(self._fingerprints, cutoff)
        for key in list(self._owed):
            kept = [slot for slot in self._owed[key] if slot.stamp > cutoff]
            if kept:
                self._owed[key] = kept
            else:
                del self._owed[key]
        for handle in [h for h, (_, stamp) in self._previews.items() if stamp <= cutoff]:
            del self._previews[handle]
        for chain in list(self._parts):
            parts = [p for p in self._parts[chain] if p[3] > cutoff]
            self._parts_count -= len(self._parts[chain]) - len(parts)
            if parts:
                self._parts[chain] = parts
            else:
                del self._parts[chain]
        alive = (
            self._reserved
            or self._taken
            or self._fingerprints
            or self._owed
            or self._previews
            or self._parts
        )
        self._sweeping = self._start_sweep = bool(alive)


def _expire(store: dict[Any, int], cutoff: int) -> None:
    """Drop the entries stamped at ``cutoff`` or before (a store is in stamp order)."""
    while store:
        first = next(iter(store))
        if store[first] > cutoff:
            return
        del store[first]
