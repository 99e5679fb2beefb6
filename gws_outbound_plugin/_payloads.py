"""The typed hook payloads: what a request's outcome and GWS's unsolicited events look like.

Only the types live here; ``_builders`` makes them from GWS and OCS messages. Everything here is
immutable: a payload handed to one plugin cannot be changed under another.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._coerce import is_object
from ._pickling import reduce_frozen
from ._requests import EMPTY_MAPPING, CallbackType, ChainAttribute, _CampaignOperation, _show

if TYPE_CHECKING:
    from ._requests import CancelRequest, OperationRequest

__all__ = [
    "EMPTY_MAPPING",
    "CampaignStatus",
    "CampaignStatusEvent",
    "CancelFailure",
    "EventMetrics",
    "FailureReason",
    "OperationAck",
    "OperationFailure",
    "PreviewRecordEvent",
    "RecordCancelAck",
    "RecordCancelledEvent",
    "ScheduledCallEvent",
    "UserEvent",
    "describe_failure",
    "may_have_acted",
    "to_jsonable",
]


class CampaignStatus(enum.StrEnum):
    """An OCS campaign status event (``GSW_USER_EVENT``)."""

    LOADED = "CampaignLoaded"
    STARTED = "CampaignStarted"
    STOPPED = "CampaignStopped"
    UNLOADED = "CampaignUnloaded"
    MODE_CHANGED = "CampaignModeChanged"


@dataclass(frozen=True, slots=True)
class EventMetrics:
    """``metrics.eventProcessing`` of a GWS notification."""

    server_generation_timestamp: int | None
    """When GWS generated the event, milliseconds since the Unix epoch."""
    node_processing_time_nanos: int | None
    server_processing_time_total_ms: int | None

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> EventMetrics | None:
        """Read the metrics of a notification's ``data``; ``None`` when it has none."""
        metrics = data.get("metrics")
        if not is_object(metrics):
            return None
        processing = metrics.get("eventProcessing")
        if not is_object(processing):
            return None
        generated = processing.get("serverGenerationTimestamp")
        node = processing.get("nodeProcessingTimeNanos")
        total = processing.get("serverProcessingTimeTotalMs")
        return cls(  # an int is the usual value, taken as it is (what _metric returns)
            generated if type(generated) is int else _metric(generated),
            node if type(node) is int else _metric(node),
            total if type(total) is int else _metric(total),
        )


def _metric(value: object) -> int | None:
    """One number of ``metrics.eventProcessing``: an int, or a finite float (truncated)."""
    if isinstance(value, int):
        return None if isinstance(value, bool) else int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)  # Python's JSON decoder accepts NaN and Infinity: those are not
    return None


class FailureReason(enum.StrEnum):
    """Why an accepted cancel failed."""

    REJECTED = "rejected"
    """GWS answered a ``statusCode`` other than 0 (see ``status_code`` and ``message``)."""
    OCS_ERROR = "ocs_error"
    """OCS answered with ``GSW_ERROR`` / ``GSW_ERROR_NUMBER``."""
    TIMED_OUT = "timed_out"
    """GWS accepted, but no acknowledgement arrived within ``ack_timeout``."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The outcome cannot be known: the CometD session was lost while it was pending, or the
    request may have reached GWS (no answer after it was written) and no acknowledgement came."""
    TRANSPORT_FAILURE = "transport_failure"
    """GWS certainly did not process the request (no connection, or never sent)."""
    AUTHENTICATION_FAILED = "authentication_failed"
    """GWS refused the credentials, also after logging in again."""
    SHUT_DOWN = "shut_down"
    """The plugin was closed before the outcome arrived (after the drain timeout)."""


#: The reasons after which GWS may have acted on the request.
_MAY_HAVE_ACTED: frozenset[FailureReason] = frozenset(
    {FailureReason.TIMED_OUT, FailureReason.OUTCOME_UNKNOWN}
)


def may_have_acted(reason: FailureReason) -> bool:
    """Whether a failure for ``reason`` leaves open that GWS acted on the request."""
    return reason in _MAY_HAVE_ACTED


def describe_failure(
    subject: str,
    reason: FailureReason,
    status_code: int | None,
    error_number: int | None,
    message: str | None,
    reference_id: object,
) -> str:
    """One line for logs and exception messages about a failed request."""
    parts = [f"{subject} failed: {reason.value}"]
    if status_code is not None:
        parts.append(f"statusCode={status_code}")
    if error_number is not None:
        parts.append(f"error_number={error_number}")
    if message:
        parts.append(message)
    parts.append(f"(referenceId {reference_id})")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class CancelFailure:
    """Payload of ``on_cancel_failed``."""

    request: CancelRequest
    reason: FailureReason
    status_code: int | None = None
    """GWS ``statusCode`` when GWS answered one."""
    error_number: int | None = None
    """OCS ``GSW_ERROR_NUMBER`` for an OCS error."""
    message: str | None = None
    """OCS ``GSW_ERROR``, GWS ``statusMessage`` or a description of what went wrong."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The OCS user event's ``userData`` for an OCS error (read-only), else empty."""
    may_have_acted: bool | None = None
    """Whether GWS may have acted on the request, so that sending it again may not be safe:
    ``False`` when it certainly did not (never sent, refused in GWS's answer, refused by OCS),
    ``True`` when it may have (``timed_out``, ``outcome_unknown``, statusCode 7 or 9). Always
    a bool on the payloads the plugin makes; left out, it follows from ``reason``."""

    def __post_init__(self) -> None:
        if self.may_have_acted is None:
            object.__setattr__(self, "may_have_acted", may_have_acted(self.reason))

    @property
    def operation(self) -> str:
        """The GWS ``operationName``: ``"CancelRecord"`` (as in ``OperationFailure``)."""
        return "CancelRecord"

    def describe(self) -> str:
        """One line for logs and exception messages."""
        return describe_failure(
            f"cancel of record {self.request.record_handle}",
            self.reason,
            self.status_code,
            self.error_number,
            self.message,
            self.request.reference_id,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class RecordCancelAck:
    """Payload of ``on_record_cancel_acknowledged``: one per acknowledged cancel.

    Merged from the ``OutboundRecordMessage`` (``RecordCancelAcknowledge``) and the
    ``DeviceUserEventMessage``; a field that neither message carried is ``None``.
    """

    reference_id: str | None
    record_handle: int | None
    application_id: int | None
    campaign_name: str | None
    calling_list: str | None
    phone_number: str | None
    chain_attribute: ChainAttribute | None
    device_id: str | None
    request: CancelRequest | None
    """Our request, or ``None`` when the acknowledgement matches no request of this plugin."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The raw ``GSW_*`` userData of the user event (read-only; empty if it never arrived)."""
    metrics: EventMetrics | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class UserEvent:
    """Payload of ``on_user_event``: one per ``DeviceUserEventMessage``."""

    user_event: str | None
    """The ``GSW_USER_EVENT`` value, e.g. ``"RecordCancelAcknowledge"``."""
    user_data: Mapping[str, Any]
    """The whole ``userData`` (read-only)."""
    device_id: str | None
    metrics: EventMetrics | None
    channel: str
    """The CometD channel it arrived on, normally ``/me/internal``."""

    @property
    def is_error(self) -> bool:
        """True when OCS reported an error (``GSW_ERROR`` or ``GSW_ERROR_NUMBER`` present)."""
        return "GSW_ERROR" in self.user_data or "GSW_ERROR_NUMBER" in self.user_data

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class OperationAck:
    """Payload of an acknowledged operation: one per acknowledged request.

    Merged from the ``OutboundRecordMessage`` / ``OutboundCampaignMessage`` acknowledgement,
    the OCS user event and, for ``GetChainedRecord``, the chained records that came first.
    ``record`` is what GWS sent (filled from OCS's answer): never assume it mirrors the request.
    """

    operation: str
    """The GWS ``operationName``, e.g. ``"CompleteRecord"``."""
    reference_id: str | None
    request: OperationRequest | None
    """Our request, or ``None`` for an acknowledgement of a request that is not ours."""
    record_handle: int | None
    record: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    campaign: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    records: tuple[Mapping[str, Any], ...] = ()
    empty: bool = False
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class OperationFailure:
    """Payload of a failed operation: one per accepted request that failed."""

    operation: str
    """The GWS ``operationName``."""
    request: OperationRequest
    """The request that failed (always ours)."""
    reason: FailureReason
    status_code: int | None = None
    """GWS ``statusCode`` when GWS answered one."""
    error_number: int | None = None
    """OCS ``GSW_ERROR_NUMBER`` for an OCS error."""
    message: str | None = None
    """OCS ``GSW_ERROR``, GWS ``statusMessage`` or a description of what went wrong."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The OCS user event's ``userData`` for an OCS error (read-only), else empty."""
    may_have_acted: bool | None = None
    """Whether GWS may have acted on the request (as ``CancelFailure.may_have_acted``)."""

    def __post_init__(self) -> None:
        if self.may_have_acted is None:
            object.__setattr__(self, "may_have_acted", may_have_acted(self.reason))

    def describe(self) -> str:
        """One line for logs and exception messages (never the phone number)."""
        request = self.request
        handle = getattr(request, "record_handle", None)
        campaign = getattr(request, "campaign_name", None)
        if handle is not None:
            subject = f"{self.operation} of record {handle}"
        elif isinstance(request, _CampaignOperation):
            subject = f"{self.operation} on campaign {_show(campaign)}"
        else:
            subject = f"{self.operation} in campaign {_show(campaign)}"
        return describe_failure(
            subject,
            self.reason,
            self.status_code,
            self.error_number,
            self.message,
            getattr(request, "reference_id", None),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


# -- unsolicited OCS events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordCancelledEvent:
    """OCS cancelled a record the agent holds, on someone else's request (``RecordCancel``).

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    record_handle: int | None
    application_id: int | None
    campaign_name: str | None
    calling_list: str | None
    phone_number: str | None
    chain_id: int | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class ScheduledCallEvent:
    """A callback is due: OCS delivers a rescheduled record (``ScheduledCall``).

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    record_handle: int | None
    application_id: int | None
    campaign_name: str | None
    calling_list: str | None
    phone_number: str | None
    chain_id: int | None
    callback_type: CallbackType | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The whole record as OCS sent it (read-only)."""
    device_id: str | None = None
    metrics: EventMetrics | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class CampaignStatusEvent:
    """A campaign was loaded, started, stopped, unloaded or changed dialing mode.

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    status: CampaignStatus
    campaign_name: str | None
    application_id: int | None
    group_name: str | None
    dialing_mode: str | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


@dataclass(frozen=True, slots=True)
class PreviewRecordEvent:
    """A preview record OCS pushed (``PreviewRecord`` not answering a ``GetPreviewRecord``).

    Read from an ``OutboundRecordMessage``; that OCS pushes it unprompted is UNCONFIRMED.
    """

    record_handle: int | None
    record: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The ``record`` object (read-only); ``record["userData"]`` holds the record's keys."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """``record.userData``: ``GSW_RECORD_HANDLE``, ``GSW_PHONE``, custom fields... (read-only)."""
    reference_id: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (user_data, ...), which pickle refuses.
        return reduce_frozen(self)


def to_jsonable(value: Any) -> Any:
    """A hook payload (or anything inside one) as plain JSON data, keys in snake_case.

    Dataclasses become dicts of their fields, enums their values, mappings dicts, tuples lists,
    datetimes ISO 8601 strings.
    Used by the example host's ``--stdin`` output and the CLI's ``--json`` modes.
    """
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


#: The payload builders, reachable as ``_payloads.<name>`` for code written when they lived
#: here; they live in ``_builders`` (the engine imports them from there).
_BUILDERS: Final = frozenset(
    {"acknowledgement", "cancel_ack", "failure", "operation_ack", "operation_failure"}
)


def __getattr__(name: str) -> Any:
    # Imported on first use: ``_builders`` imports this module.
    if name in _BUILDERS:
        from . import _builders

        return getattr(_builders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
