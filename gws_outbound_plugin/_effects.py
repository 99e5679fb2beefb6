"""What the correlator emits and what it is told: effects, POST results, limits.

Pure data; the correlator (``_correlator.py``) makes the effects and the engine
(``_engine.py``) carries them out. The ones every request makes several of (``Send``,
``StartTimer``, ``CancelTimer``, ``Resolved``, ``UserEventSeen``, ``Acknowledged``) are named
tuples: immutable like the frozen dataclasses the others are, and made several times faster
(a frozen dataclass sets each field through ``object.__setattr__``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from ._models import FailureReason, UserEvent
from ._spec import Operation, OperationSpec

__all__ = [
    "UNFINISHED_STATUS_CODES",
    "Acknowledged",
    "CancelTimer",
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

TimerId = tuple[Any, ...]
"""``("ack" | "merge" | "deadline", token)``, ``("foreign", acknowledgement, key)``,
``("settle", loss)`` or ``("sweep",)``."""


# -- effects ---------------------------------------------------------------------------------


class Send(NamedTuple):
    """POST this request (the engine calls :meth:`Correlator.sending` right before writing)."""

    token: int
    request: Operation


class StartTimer(NamedTuple):
    """Call :meth:`Correlator.timer_expired` with ``timer`` after ``delay`` seconds (a timer
    with the same id is replaced)."""

    timer: TimerId
    delay: float


class CancelTimer(NamedTuple):
    timer: TimerId


class Acknowledged(NamedTuple):
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


class Resolved(NamedTuple):
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


class UserEventSeen(NamedTuple):
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
