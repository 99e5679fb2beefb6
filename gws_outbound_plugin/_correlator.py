"""The correlator: the pure core of the engine.

Requests, HTTP answers, CometD messages, timer expiries and session events go in; effects come
out (send this, start or stop that timer, this request has this outcome, fire ``on_user_event``
with this event). It does no I/O, has no clock and logs nothing: the engine around it
(``_engine.py``) carries the effects out. Every method runs to completion without awaiting, so
nothing can interrupt it between deciding an outcome and reporting it.

The promise it keeps, by construction:

* every accepted request gets exactly one :class:`Resolved` effect (its outcome): the entry is
  removed from every index in :meth:`Correlator._finish`, the only place a ``Resolved`` is made;
* only a request that was sent (:meth:`Correlator.sending` was called for it) can be
  acknowledged by a CometD message, and a message resolves at most the one request it matched;
* every request still pending when :meth:`Correlator.shutdown` is called is resolved by it;
* all the bookkeeping (recent reference ids, late keys, fingerprints, unmatched halves) is
  bounded by the :class:`Limits`.

``tests/unit/test_correlator_stateful.py`` checks these against a simple model with
hypothesis's stateful testing.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ._models import EventMetrics, FailureReason, UserEvent
from ._spec import (
    OPERATION_SPECS,
    SPEC_BY_ACKNOWLEDGEMENT,
    CorrelationKey,
    Operation,
    OperationSpec,
    _int,
    campaign_key,
    phone_key,
    record_key,
    user_event_keys,
)

__all__ = [
    "Acknowledged",
    "CancelTimer",
    "Correlator",
    "Effect",
    "Failed",
    "Foreign",
    "Limits",
    "Notice",
    "PostResult",
    "Resolved",
    "Send",
    "StartTimer",
    "TimerId",
    "Unsolicited",
    "UserEventSeen",
]

# What json.dumps(..., sort_keys=True, separators=(",", ":")) builds on every call.
_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_OUTBOUND_TYPES: Final = frozenset({"OutboundRecordMessage", "OutboundCampaignMessage"})
#: Every GSW_USER_EVENT name that answers one of our operations.
_ANSWER_EVENTS: Final = frozenset(
    name for spec in OPERATION_SPECS.values() for name in spec.user_events | spec.empty
)
#: Names of partial results (``ChainedRecord``).
_PART_EVENTS: Final = frozenset(s.part for s in OPERATION_SPECS.values() if s.part)
#: Partial results kept at most per chain, and in all, while their request is unknown.
_ORPHAN_PARTS_PER_CHAIN: Final = 1_000
_ORPHAN_PARTS_TOTAL: Final = 10_000
#: A pushed preview record arrives as an ``OutboundRecordMessage`` (reported as unsolicited);
#: its user event is not a foreign acknowledgement.
_NOT_FOREIGN: Final = frozenset({"PreviewRecord"})
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


# -- POST results ----------------------------------------------------------------------------


class PostResult(enum.Enum):
    """How a POST ended, as the sender saw it."""

    ACCEPTED = "accepted"
    """``statusCode`` 0: GWS accepted it; the outcome comes over CometD."""
    REJECTED = "rejected"
    """GWS answered a ``statusCode`` other than 0: it did nothing."""
    AUTHENTICATION_FAILED = "authentication_failed"
    NOT_SENT = "not_sent"
    """It certainly did not reach GWS (connection refused, CometD down, ...)."""
    NO_ANSWER = "no_answer"
    """It may have reached GWS and been processed, but no answer came back."""


# -- the correlator --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    ack_timeout: float = 10.0
    merge_window: float = 0.25
    max_message_bytes: int = 256 * 1024
    max_user_data_entries: int = 512
    recent_limit: int = 10_000
    fingerprint_limit: int = 4_096
    foreign_limit: int = 10_000
    deadline: float | None = None
    """Longest time from acceptance to outcome (``None``: no such timer)."""


class _Phase(enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    AWAITING = "awaiting"


class _Entry:
    __slots__ = (
        "empty",
        "event_parts",
        "key",
        "lost",
        "merging",
        "outbound",
        "parts",
        "phase",
        "released",
        "request",
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
        self.phase = _Phase.QUEUED
        self.released = False
        self.unanswered = False
        self.lost = False
        self.merging = False
        self.empty = False
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None
        self.parts: list[Mapping[str, Any]] = []
        self.event_parts: list[UserEvent] = []

    @property
    def sent(self) -> bool:
        return self.phase is not _Phase.QUEUED


class _ForeignHalf:
    __slots__ = ("outbound", "spec", "user_event")

    def __init__(self, spec: OperationSpec) -> None:
        self.spec = spec
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_number(value: object) -> int | None:
    """``GSW_ERROR_NUMBER`` as an int: ASCII digits only, and not too many."""
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return int(text)
        return None
    return _int(value)


def _outbound_keys(data: Mapping[str, Any]) -> tuple[CorrelationKey, ...]:
    """The keys an unmatched acknowledgement can pair with its user event on."""
    record = data.get("record")
    campaign = data.get("campaign")
    keys: list[CorrelationKey | None] = []
    if isinstance(record, Mapping):
        app, name = record.get("applicationId"), record.get("campaignName")
        keys.append(record_key(record.get("recordHandle"), app, name))
        keys.append(phone_key(app, name, record.get("phoneNumber")))
    if isinstance(campaign, Mapping):
        keys.append(campaign_key(campaign.get("applicationId"), campaign.get("name")))
    return tuple(key for key in keys if key is not None)


class Correlator:
    """See the module docstring. One per engine; not thread-safe (the engine calls it from
    the event loop thread only)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._tokens = itertools.count(1)
        self._entries: dict[int, _Entry] = {}
        self._by_reference: dict[str, _Entry] = {}
        # Pending entries per correlation key, oldest first (one entry is the usual case).
        self._by_key: dict[CorrelationKey, list[_Entry]] = {}
        # referenceId -> whether its messages may still arrive, of finished requests.
        self._recent: OrderedDict[str, bool] = OrderedDict()
        # (key, acknowledgement) of finished requests whose user event may still arrive.
        self._late_keys: OrderedDict[tuple[CorrelationKey, str], int] = OrderedDict()
        self._fingerprints: OrderedDict[bytes, None] = OrderedDict()
        self._foreign: dict[tuple[str, CorrelationKey], _ForeignHalf] = {}
        # Partial results (ChainedRecord user events) without GSW_REFERENCE_ID carry the chained
        # record's own handle, so they match no request; kept per (application, campaign,
        # chain) until the end marker of a request on that chain collects them.
        self._orphan_parts: OrderedDict[tuple[Any, ...], list[UserEvent]] = OrderedDict()
        self._orphan_count = 0
        self._lost = False
        self._settles = itertools.count(1)
        self._closed = False
        self.stats: dict[str, int] = {
            "accepted": 0,
            "acknowledged": 0,
            "failed": 0,
            "foreign_acks": 0,
            "duplicates": 0,
            "late": 0,
            "malformed": 0,
            "user_events": 0,
            "unsolicited": 0,
            "unmatched_errors": 0,
        }

    # -- introspection (tests, stats) ----------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._entries)

    def state_sizes(self) -> dict[str, int]:
        """How much each index holds (the stateful test checks they stay bounded)."""
        return {
            "entries": len(self._entries),
            "by_reference": len(self._by_reference),
            "by_key": sum(len(v) for v in self._by_key.values()),
            "recent": len(self._recent),
            "late_keys": len(self._late_keys),
            "fingerprints": len(self._fingerprints),
            "foreign": len(self._foreign),
            "orphan_chains": len(self._orphan_parts),
            "orphan_parts": self._orphan_count,
        }

    def is_queued(self, token: int) -> bool:
        entry = self._entries.get(token)
        return entry is not None and entry.phase is _Phase.QUEUED and entry.released

    # -- requests --------------------------------------------------------------------------------

    def accept(self, request: Operation) -> tuple[int, list[Effect]]:
        """Register a request; returns its token and the effects (``Send``, or its outcome
        when it cannot be sent)."""
        token = next(self._tokens)
        self.stats["accepted"] += 1
        entry = _Entry(token, request)
        reference = request.reference_id
        if self._closed:
            return token, self._settle_unregistered(
                entry, Failed(FailureReason.SHUT_DOWN, "the plugin is closing; nothing was sent")
            )
        if reference in self._by_reference:
            return token, self._settle_unregistered(
                entry,
                Failed(
                    FailureReason.REJECTED,
                    f"a request with referenceId {reference} is already pending; nothing was "
                    "sent (GWS could not tell the answers apart)",
                ),
            )
        if self._recent.get(reference):
            return token, self._settle_unregistered(
                entry,
                Failed(
                    FailureReason.REJECTED,
                    f"referenceId {reference} was used by a recent request whose answer may "
                    "still arrive; nothing was sent (use a new referenceId)",
                ),
            )
        self._entries[token] = entry
        self._by_reference[reference] = entry
        effects: list[Effect] = []
        queue = self._by_key.setdefault(entry.key, []) if entry.key is not None else None
        if queue is not None:
            queue.append(entry)
        # One request at a time per record (campaign, phone number): a user event that does
        # not carry our referenceId can then only answer the one that was sent. The others
        # wait for it (and for their deadline).
        if queue is None or len(queue) == 1:
            entry.released = True
            effects.append(Send(token, request))
        if self.limits.deadline is not None:
            effects.append(StartTimer(("deadline", token), self.limits.deadline))
        return token, effects

    def _settle_unregistered(self, entry: _Entry, failed: Failed) -> list[Effect]:
        self.stats["failed"] += 1
        return [Resolved(entry.token, entry.request, failed)]

    def sending(self, token: int) -> bool:
        """The POST of ``token`` is about to be written. False: it has an outcome already
        (the sender must not send it)."""
        entry = self._entries.get(token)
        if entry is None or entry.phase is not _Phase.QUEUED or not entry.released:
            return False
        entry.phase = _Phase.SENDING
        entry.lost = self._lost
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
            return []
        if result is PostResult.ACCEPTED or result is PostResult.NO_ANSWER:
            if entry.phase is _Phase.QUEUED:
                return []  # never sent: a confused sender, ignore
            entry.phase = _Phase.AWAITING
            entry.unanswered = result is PostResult.NO_ANSWER
            return [StartTimer(("ack", token), self.limits.ack_timeout)]
        if result is PostResult.REJECTED:
            failed = Failed(
                FailureReason.REJECTED,
                message or "GWS refused the request",
                status_code=status_code,
            )
        elif result is PostResult.AUTHENTICATION_FAILED:
            failed = Failed(
                FailureReason.AUTHENTICATION_FAILED, message or "GWS refused the credentials"
            )
        else:
            failed = Failed(FailureReason.TRANSPORT_FAILURE, message or "the request was not sent")
        # GWS did nothing with a request it refused or never got: no late answer to expect.
        return self._finish(entry, failed, may_answer_late=False)

    # -- timers ----------------------------------------------------------------------------------

    def timer_expired(self, timer: TimerId) -> list[Effect]:
        kind = timer[0]
        if kind == "foreign":
            half = self._foreign.pop((timer[1], timer[2]), None)
            return self._fire_foreign(half) if half is not None else []
        if kind == "settle":
            return self._settle_lost()
        entry = self._entries.get(timer[1])
        if entry is None:
            return []
        if entry.outbound is not None or entry.user_event is not None:
            if kind in ("merge", "ack", "deadline"):
                return self._acknowledge(entry)
            return []
        if kind == "ack":
            if entry.unanswered:
                return self._finish(
                    entry,
                    Failed(
                        FailureReason.OUTCOME_UNKNOWN,
                        "GWS did not answer the request and no acknowledgement arrived within "
                        f"{self.limits.ack_timeout:g}s; it may or may not have been processed",
                    ),
                )
            return self._finish(
                entry,
                Failed(
                    FailureReason.TIMED_OUT,
                    f"no acknowledgement within {self.limits.ack_timeout:g}s",
                ),
            )
        if kind == "deadline":
            deadline = self.limits.deadline or 0.0
            if entry.phase is _Phase.QUEUED:
                failed = Failed(
                    FailureReason.TRANSPORT_FAILURE,
                    f"not sent within {deadline:g}s of acceptance; nothing was sent",
                )
            elif entry.phase is _Phase.SENDING or entry.unanswered:
                failed = Failed(
                    FailureReason.OUTCOME_UNKNOWN,
                    f"no answer within {deadline:g}s of acceptance; the request may or may "
                    "not have been processed",
                )
            else:
                failed = Failed(FailureReason.TIMED_OUT, f"no acknowledgement within {deadline:g}s")
            return self._finish(entry, failed)
        return []

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
        merge window; then what was sent before the loss and is still pending fails as
        ``outcome_unknown``."""
        self._lost = False
        delay = max(self.limits.merge_window, 0.05)
        return [StartTimer(("settle", next(self._settles)), delay)]

    def _settle_lost(self) -> list[Effect]:
        effects: list[Effect] = []
        unknown = [e for e in self._entries.values() if e.lost]
        if unknown:
            effects.append(Notice("cometd_outcomes_unknown", "warning", {"count": len(unknown)}))
        for entry in unknown:
            effects += self._finish(
                entry,
                Failed(
                    FailureReason.OUTCOME_UNKNOWN,
                    "the CometD session was lost while the outcome was pending",
                ),
            )
        return effects

    def shutdown(self) -> list[Effect]:
        """Resolve everything still pending; from now on ``accept`` fails at once."""
        self._closed = True
        effects: list[Effect] = []
        for entry in list(self._entries.values()):
            if entry.lost or (self._lost and entry.sent):
                failed = Failed(
                    FailureReason.OUTCOME_UNKNOWN,
                    "the CometD session was lost and the plugin was closed",
                )
            elif entry.phase is _Phase.SENDING:
                failed = Failed(
                    FailureReason.SHUT_DOWN,
                    "the plugin was closed while the request was being sent; it may or may not "
                    "have been processed",
                )
            else:
                failed = Failed(
                    FailureReason.SHUT_DOWN, "the plugin was closed before the outcome arrived"
                )
            effects += self._finish(entry, failed)
        for half in list(self._foreign.values()):
            effects += self._fire_foreign(half)
        self._foreign.clear()
        return effects

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
            return [Notice("cometd_duplicate_dropped", "debug", {"channel": _str(channel)})]
        message_type = data.get("messageType")
        if message_type in _OUTBOUND_TYPES:
            return self._on_outbound(data)
        if message_type == "DeviceUserEventMessage":
            return self._on_user_event(_str(channel) or "", data)
        if message_type == "ErrorMessage":
            return self._on_error_message(_str(channel), data)
        return [
            Notice(
                "cometd_message_ignored",
                "debug",
                {"channel": _str(channel), "message_type": _str(message_type)},
            )
        ]

    def _malformed(self, why: str, channel: object) -> list[Effect]:
        self.stats["malformed"] += 1
        return [
            Notice("cometd_message_rejected", "warning", {"reason": why, "channel": _str(channel)})
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
        self._fingerprints[digest] = None
        if len(self._fingerprints) > self.limits.fingerprint_limit:
            self._fingerprints.popitem(last=False)
        return False

    def _sent_entry(self, reference: object) -> _Entry | None:
        """The pending request with this referenceId, if it was sent."""
        if isinstance(reference, int) and not isinstance(reference, bool):
            reference = str(reference)
        if not isinstance(reference, str):
            return None
        entry = self._by_reference.get(reference)
        return entry if entry is not None and entry.sent else None

    def _is_late(self, reference: object) -> bool:
        if isinstance(reference, int) and not isinstance(reference, bool):
            reference = str(reference)
        return isinstance(reference, str) and reference in self._recent

    def _late(self, what: str, **fields: Any) -> list[Effect]:
        self.stats["late"] += 1
        return [Notice(what, "info", fields)]

    def _on_outbound(self, data: Mapping[str, Any]) -> list[Effect]:
        notification = _str(data.get("notificationType"))
        reference = data.get("referenceId")
        entry = self._sent_entry(reference)
        if entry is not None:
            spec = entry.spec
            if notification == spec.acknowledgement:
                if entry.outbound is None:
                    entry.outbound = data
                    return self._half_arrived(entry)
                return []
            if spec.part is not None and notification == spec.part:
                entry.parts.append(data)
                return []
            if notification in spec.empty:
                entry.empty = True
                entry.outbound = data
                return self._acknowledge(entry)
            if notification == "Error":
                text = _str(data.get("errorMessage")) or _str(data.get("statusMessage"))
                return self._finish(
                    entry,
                    Failed(
                        FailureReason.OCS_ERROR,
                        text or "GWS reported an error for this request",
                        error_number=error_number(data.get("errorCode")),
                    ),
                )
            return [
                Notice(
                    "outbound_notification_ignored",
                    "debug",
                    {"notification": notification, "reference_id": entry.request.reference_id},
                )
            ]
        if self._is_late(reference):
            return self._late("late_notification_ignored", reference_id=str(reference))
        if notification == "PreviewRecord":
            self.stats["unsolicited"] += 1
            return [Unsolicited(outbound=data)]
        specs = SPEC_BY_ACKNOWLEDGEMENT.get(notification or "")
        if specs:
            return self._foreign_half(specs[0], _outbound_keys(data), outbound=data)
        return [Notice("outbound_notification_ignored", "debug", {"notification": notification})]

    def _on_error_message(self, channel: str | None, data: Mapping[str, Any]) -> list[Effect]:
        reference = data.get("referenceId")
        entry = self._sent_entry(reference)
        code = data.get("errorCode")
        if code is None:
            code = data.get("statusCode")
        text = _str(data.get("errorMessage")) or _str(data.get("statusMessage"))
        if entry is not None:
            return self._finish(
                entry,
                Failed(
                    FailureReason.REJECTED,
                    text or "GWS reported an error for this request",
                    status_code=_int(code),
                ),
            )
        if self._is_late(reference):
            return self._late("late_error_ignored", reference_id=str(reference))
        self.stats["unmatched_errors"] += 1
        return [
            Notice(
                "cometd_error_unmatched",
                "warning",
                {
                    "channel": channel,
                    "reference_id": _str(reference),
                    "error_code": _int(code),
                    "detail": (text or "")[:200],
                },
            )
        ]

    def _parse_user_event(self, channel: str, data: Mapping[str, Any]) -> UserEvent | None:
        raw = data.get("userData")
        if not isinstance(raw, Mapping) or len(raw) > self.limits.max_user_data_entries:
            return None
        user_data = MappingProxyType({str(k): v for k, v in raw.items()})
        return UserEvent(
            user_event=_str(user_data.get("GSW_USER_EVENT")),
            user_data=user_data,
            device_id=_str(data.get("deviceId")),
            metrics=EventMetrics.from_message(data),
            channel=channel,
        )

    def _on_user_event(self, channel: str, data: Mapping[str, Any]) -> list[Effect]:
        event = self._parse_user_event(channel, data)
        if event is None:
            raw = data.get("userData")
            why = (
                "userData is not an object"
                if not isinstance(raw, Mapping)
                else f"more than {self.limits.max_user_data_entries} userData entries"
            )
            return self._malformed(why, channel)
        self.stats["user_events"] += 1
        effects: list[Effect] = [UserEventSeen(event)]
        name = event.user_event
        user_data = event.user_data
        keys = user_event_keys(user_data)
        if user_data.get("GSW_REFERENCE_ID") is None and self._late_key(event, keys):
            # The answer of an earlier request that ended without it (timed out, unknown):
            # it was sent before any pending request on that record, so it is its answer,
            # not theirs.
            effects += self._late("late_user_event_ignored", user_event=name)
            return effects
        entry, claimed = self._match_user_event(event, keys)
        if entry is None and claimed:
            # Another copy of a half that one of our pending requests already has.
            self.stats["duplicates"] += 1
            effects.append(Notice("user_event_repeat_ignored", "debug", {"user_event": name}))
            return effects
        if entry is None:
            if self._is_late(user_data.get("GSW_REFERENCE_ID")):
                effects += self._late("late_user_event_ignored", user_event=name)
                return effects
            if event.is_error:
                if name in _ANSWER_EVENTS:
                    self.stats["unmatched_errors"] += 1
                    effects.append(Notice("ocs_error_unmatched", "info", {"user_event": name}))
                else:
                    self.stats["unsolicited"] += 1
                    effects.append(Unsolicited(event=event))
                return effects
            if name in _PART_EVENTS:
                self._keep_orphan_part(event)
                return effects
            specs = SPEC_BY_ACKNOWLEDGEMENT.get(name or "")
            if specs and name not in _NOT_FOREIGN:
                effects += self._foreign_half(specs[0], keys, user_event=event)
            elif name not in _ANSWER_EVENTS:
                self.stats["unsolicited"] += 1
                effects.append(Unsolicited(event=event))
            return effects
        spec = entry.spec
        if event.is_error:
            text = _str(user_data.get("GSW_ERROR"))
            if text is not None and text.strip().casefold() in spec.empty_error_texts:
                entry.empty = True
                entry.user_event = event
                effects += self._acknowledge(entry)
                return effects
            effects += self._finish(
                entry,
                Failed(
                    FailureReason.OCS_ERROR,
                    text or "OCS refused the request",
                    error_number=error_number(user_data.get("GSW_ERROR_NUMBER")),
                    user_data=user_data,
                ),
            )
            return effects
        if spec.part is not None and name == spec.part:
            # The record arrives in the outbound part too: these count only if none did.
            entry.event_parts.append(event)
            return effects
        if name in spec.empty:
            entry.empty = True
            entry.user_event = event
            effects += self._acknowledge(entry)
            return effects
        entry.user_event = event
        effects += self._half_arrived(entry)
        return effects

    def _wants(self, entry: _Entry, event: UserEvent) -> bool:
        name = event.user_event
        if event.is_error:
            if entry.outbound is not None and event.user_data.get("GSW_REFERENCE_ID") is None:
                return False  # GWS acknowledged it: an unreferenced refusal is someone else's
            return name in entry.spec.user_events or name not in _ANSWER_EVENTS
        if name is None or (name not in entry.spec.user_events and name not in entry.spec.empty):
            return False
        return entry.user_event is None or name == entry.spec.part

    def _match_user_event(
        self, event: UserEvent, keys: tuple[CorrelationKey, ...]
    ) -> tuple[_Entry | None, bool]:
        """The sent request this user event answers, and whether one of our pending requests
        already holds a copy of it (then it is a repeat, not someone else's)."""
        user_data = event.user_data
        reference = user_data.get("GSW_REFERENCE_ID")
        by_reference = self._sent_entry(reference)
        if by_reference is not None:
            if self._wants(by_reference, event):
                return by_reference, True
            return None, True
        if reference is not None and reference != "":
            # It names a request, and not one of ours that was sent: never another one's.
            return None, False
        claimed = False
        for key in keys:
            for entry in self._by_key.get(key, ()):
                if not entry.sent:
                    continue
                if self._wants(entry, event):
                    return entry, True
                held = entry.user_event
                claimed = claimed or (held is not None and held.user_event == event.user_event)
        return None, claimed

    @staticmethod
    def _chain_of(event: UserEvent) -> tuple[Any, ...] | None:
        data = event.user_data
        app, campaign, chain = (
            _int(data.get("GSW_APPLICATION_ID")),
            _str(data.get("GSW_CAMPAIGN_NAME")),
            _int(data.get("GSW_CHAIN_ID")),
        )
        return None if app is None or campaign is None or chain is None else (app, campaign, chain)

    def _keep_orphan_part(self, event: UserEvent) -> None:
        chain = self._chain_of(event)
        if chain is None:
            return
        parts = self._orphan_parts.get(chain)
        if parts is None:
            parts = self._orphan_parts[chain] = []
        if len(parts) >= _ORPHAN_PARTS_PER_CHAIN:
            return
        parts.append(event)
        self._orphan_count += 1
        while self._orphan_count > _ORPHAN_PARTS_TOTAL or (
            len(self._orphan_parts) > self.limits.foreign_limit
        ):
            _, dropped = self._orphan_parts.popitem(last=False)
            self._orphan_count -= len(dropped)

    def _late_key(self, event: UserEvent, keys: tuple[CorrelationKey, ...]) -> bool:
        if not self._late_keys:
            return False
        name = event.user_event or ""
        for key in keys:
            slot = (key, name)
            count = self._late_keys.get(slot)
            if count:
                if count == 1:
                    del self._late_keys[slot]
                else:
                    self._late_keys[slot] = count - 1
                return True
        return False

    def _half_arrived(self, entry: _Entry) -> list[Effect]:
        if entry.outbound is not None and entry.user_event is not None:
            return self._acknowledge(entry)
        if self.limits.merge_window == 0:
            return self._acknowledge(entry)
        if entry.merging:
            return []
        entry.merging = True
        return [StartTimer(("merge", entry.token), self.limits.merge_window)]

    def _foreign_half(
        self,
        spec: OperationSpec,
        keys: tuple[CorrelationKey, ...],
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> list[Effect]:
        slot: tuple[str, CorrelationKey] | None = None
        half: _ForeignHalf | None = None
        for key in keys:
            candidate = self._foreign.get((spec.acknowledgement, key))
            if candidate is not None and (
                (outbound is not None and candidate.outbound is None)
                or (user_event is not None and candidate.user_event is None)
            ):
                slot, half = (spec.acknowledgement, key), candidate
                break
        if half is None:
            half = _ForeignHalf(spec)
        half.outbound = half.outbound or outbound
        half.user_event = half.user_event or user_event
        complete = half.outbound is not None and half.user_event is not None
        if complete or not keys or self.limits.merge_window == 0:
            if slot is not None:
                del self._foreign[slot]
            return self._fire_foreign(half)
        if slot is not None:
            return []  # waiting already (cannot happen: a second half of the same kind)
        slot = (spec.acknowledgement, keys[0])
        if slot in self._foreign or len(self._foreign) >= self.limits.foreign_limit:
            return self._fire_foreign(half)
        self._foreign[slot] = half
        return [StartTimer(("foreign", *slot), self.limits.merge_window)]

    def _fire_foreign(self, half: _ForeignHalf) -> list[Effect]:
        self.stats["foreign_acks"] += 1
        return [Foreign(half.spec, half.outbound, half.user_event)]

    # -- outcomes ----------------------------------------------------------------------------------

    def _acknowledge(self, entry: _Entry) -> list[Effect]:
        if entry.spec.part is not None and not entry.parts and entry.user_event is not None:
            chain = self._chain_of(entry.user_event)
            orphans = self._orphan_parts.pop(chain, None) if chain is not None else None
            if orphans:
                self._orphan_count -= len(orphans)
            if orphans and not entry.event_parts:
                entry.event_parts = orphans
        return self._finish(
            entry,
            Acknowledged(
                entry.outbound,
                entry.user_event,
                tuple(entry.parts) if entry.parts else tuple(entry.event_parts),
                entry.empty,
            ),
        )

    def _finish(
        self, entry: _Entry, outcome: Acknowledged | Failed, *, may_answer_late: bool = True
    ) -> list[Effect]:
        """The one place an entry leaves the indexes and gets its outcome."""
        if self._entries.pop(entry.token, None) is None:
            return []
        reference = entry.request.reference_id
        if self._by_reference.get(reference) is entry:
            del self._by_reference[reference]
        follower: _Entry | None = None
        if entry.key is not None:
            queue = self._by_key.get(entry.key)
            if queue is not None:
                if entry in queue:
                    queue.remove(entry)
                if not queue:
                    del self._by_key[entry.key]
                elif not queue[0].released:
                    follower = queue[0]
        # Messages may still arrive for a request that was sent, unless GWS refused it in
        # the POST's answer (or it never reached GWS): then GWS did nothing with it.
        late = entry.sent and may_answer_late
        self._recent[reference] = late
        self._recent.move_to_end(reference)
        if len(self._recent) > self.limits.recent_limit:
            self._recent.popitem(last=False)
        if late and entry.user_event is None and entry.key is not None:
            slot = (entry.key, entry.spec.acknowledgement)
            self._late_keys[slot] = self._late_keys.get(slot, 0) + 1
            self._late_keys.move_to_end(slot)
            if len(self._late_keys) > self.limits.recent_limit:
                self._late_keys.popitem(last=False)
        if isinstance(outcome, Acknowledged):
            self.stats["acknowledged"] += 1
        else:
            self.stats["failed"] += 1
        effects: list[Effect] = [Resolved(entry.token, entry.request, outcome)]
        if entry.phase is _Phase.AWAITING:
            effects.append(CancelTimer(("ack", entry.token)))
        if entry.merging:
            effects.append(CancelTimer(("merge", entry.token)))
        if self.limits.deadline is not None:
            effects.append(CancelTimer(("deadline", entry.token)))
        if follower is not None and not self._closed:
            follower.released = True
            effects.append(Send(follower.token, follower.request))
        return effects
