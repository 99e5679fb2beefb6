"""Validated requests and the typed hook payloads.

Everything here is immutable: a payload handed to one plugin cannot be changed under another.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from . import _spec
from ._exceptions import InvalidCancelRequest

__all__ = [
    "MAX_OCS_ID",
    "CancelFailure",
    "CancelRecordRequest",
    "CancelRequest",
    "ChainAttribute",
    "EventMetrics",
    "FailureReason",
    "RecordCancelAck",
    "UserEvent",
    "to_jsonable",
]

#: Largest integer JSON carries exactly (kept for compatibility; ids are limited to MAX_OCS_ID).
MAX_JSON_INT: Final = 2**53 - 1
#: Largest OCS id (record handle, application DBID, chain id): OCS keeps them as 32-bit signed
#: integers, so a larger value cannot exist on a real OCS (reference §10.5).
MAX_OCS_ID: Final = 2**31 - 1
#: Longest string accepted for names, paths and reference ids.
MAX_TEXT_LENGTH: Final = 255
_DEVICE_PATH = re.compile(r"/devices/[A-Za-z0-9][A-Za-z0-9._:-]{0,200}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

#: GWS body key -> CancelRequest field name.
BUS_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "recordHandle": "record_handle",
        "applicationId": "application_id",
        "campaignName": "campaign_name",
        "callingList": "calling_list",
        "devicePath": "device_path",
        "phoneNumber": "phone_number",
        "chainAttribute": "chain_attribute",
        "referenceId": "reference_id",
    }
)
_FIELD_TO_BUS: Final = {v: k for k, v in BUS_KEYS.items()}
_REQUIRED: Final = (
    "record_handle",
    "application_id",
    "campaign_name",
    "calling_list",
    "device_path",
)

EMPTY_MAPPING: Final[Mapping[str, Any]] = MappingProxyType({})


class ChainAttribute(enum.StrEnum):
    """Which records a cancel applies to (GWS ``chainAttribute``)."""

    ALL_CHAIN = "AllChain"
    """Every record of the chain the record belongs to."""
    RECORD_ONLY = "RecordOnly"
    """Only the record named by the handle."""


def _show(value: object, *, as_str: bool = False) -> str:
    # Never fails: a bus value may be an int too long to print or an object whose repr raises.
    try:
        text = str(value) if as_str else repr(value)
    except Exception:  # reporting the bad value must not fail
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_int(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a positive integer, got {type(value).__name__} {_show(value)}"
    if not 0 < value <= MAX_OCS_ID:
        return (
            f"must be a positive 32-bit integer (1 to {MAX_OCS_ID}, the OCS limit), "
            f"got {_show(value)}"
        )
    return None


def _check_text(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_TEXT_LENGTH:
        return f"must be at most {MAX_TEXT_LENGTH} characters, got {len(value)}"
    if _CONTROL_CHARS.search(value):
        return "must not contain control characters"
    return None


def _check_device_path(value: object) -> str | None:
    problem = _check_text(value)
    if problem is None and isinstance(value, str) and not _DEVICE_PATH.fullmatch(value):
        problem = f"must look like /devices/<id>, got {_show(value)}"
    return problem


def _new_reference_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A validated request to cancel one outbound record (GWS ``CancelRecord``).

    Construction checks every field and raises :class:`InvalidCancelRequest` naming each bad
    one; an instance is therefore always safe to send. ``reference_id`` is generated (uuid4 hex)
    when not given; GWS echoes it in the CometD acknowledgement.
    """

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    phone_number: str | None = None
    chain_attribute: ChainAttribute | None = None
    reference_id: str = field(default_factory=_new_reference_id)

    def __post_init__(self) -> None:
        errors = _validate(self, name_of=lambda name: name)
        if errors:
            raise InvalidCancelRequest(errors)
        if self.chain_attribute is not None and not isinstance(
            self.chain_attribute, ChainAttribute
        ):
            object.__setattr__(self, "chain_attribute", ChainAttribute(self.chain_attribute))

    @classmethod
    def from_bus(cls, event: object) -> CancelRequest:
        """Build a request from a bus event in GWS camelCase keys.

        ``recordHandle``, ``applicationId``, ``campaignName``, ``callingList`` and ``devicePath``
        are required; ``phoneNumber``, ``chainAttribute`` and ``referenceId`` are optional (a
        ``null`` counts as absent). ``operationName`` may be present and must then be
        ``"CancelRecord"``. Unknown keys are refused, so a misspelt key cannot silently drop a
        field. Every problem is reported at once in one :class:`InvalidCancelRequest`, with
        the fields named by their camelCase keys.
        """
        if not isinstance(event, Mapping):
            raise InvalidCancelRequest(
                {"event": f"must be a mapping of GWS keys, got {type(event).__name__}"}
            )
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for key, value in event.items():
            if key == "operationName":
                if value != "CancelRecord":
                    errors[key] = f"must be 'CancelRecord' when given, got {_show(value)}"
                continue
            name = BUS_KEYS.get(key) if isinstance(key, str) else None
            if name is None:
                expected = ", ".join(BUS_KEYS)
                errors[_show(key, as_str=True)] = f"unknown key (expected one of {expected})"
                continue
            if value is None and name not in _REQUIRED:
                continue
            values[name] = value
        for name in _REQUIRED:
            if name not in values:
                errors[_FIELD_TO_BUS[name]] = "is required"
        field_errors = _validate_values(values, name_of=lambda name: _FIELD_TO_BUS[name])
        errors.update(field_errors)
        if errors:
            raise InvalidCancelRequest(errors)
        return cls(**values)

    def to_gws_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /api/v2/me/outbound-records/<record_handle>``.

        Unset optional fields are omitted, never sent as ``null``; ``referenceId`` is always there.
        """
        body: dict[str, Any] = {
            "operationName": "CancelRecord",
            "applicationId": self.application_id,
            "campaignName": self.campaign_name,
            "callingList": self.calling_list,
            "devicePath": self.device_path,
            "referenceId": self.reference_id,
        }
        if self.phone_number is not None:
            body["phoneNumber"] = self.phone_number
        if self.chain_attribute is not None:
            body["chainAttribute"] = self.chain_attribute.value
        return body

    def to_bus(self) -> dict[str, Any]:
        """The request as a bus event in GWS camelCase keys (``from_bus`` reads it back)."""
        event = self.to_gws_body()
        del event["operationName"]
        event["recordHandle"] = self.record_handle
        return event

    @property
    def spec(self) -> _spec.OperationSpec:
        """How the outcome of a ``CancelRecord`` arrives (the engine's view)."""
        return _spec.CANCEL_RECORD

    @property
    def operation_name(self) -> str:
        """The GWS ``operationName``: ``"CancelRecord"``."""
        return "CancelRecord"

    @property
    def correlation_key(self) -> _spec.CorrelationKey | None:
        """What its user event is matched on when that carries no ``GSW_REFERENCE_ID``."""
        return _spec.record_key(self.record_handle)

    def gws_path(self) -> str:
        """The URL path under ``/api/v2``: ``/me/outbound-records/<record_handle>``."""
        return f"/me/outbound-records/{self.record_handle}"

    @property
    def device_id(self) -> str:
        """The bare device id of ``device_path`` (``/devices/<id>``)."""
        return self.device_path.rsplit("/", 1)[1]

    @property
    def record_key(self) -> tuple[int, int, str, str]:
        """What a ``DeviceUserEventMessage`` is matched on: handle, application, campaign, list."""
        return (self.record_handle, self.application_id, self.campaign_name, self.calling_list)


def _validate(request: CancelRequest, *, name_of: Any) -> dict[str, str]:
    values = {name: getattr(request, name) for name in BUS_KEYS.values()}
    if values["phone_number"] is None:
        del values["phone_number"]
    if values["chain_attribute"] is None:
        del values["chain_attribute"]
    return _validate_values(values, name_of=name_of)


def _validate_values(values: Mapping[str, Any], *, name_of: Any) -> dict[str, str]:
    errors: dict[str, str] = {}

    def check(name: str, problem: str | None) -> None:
        if problem is not None:
            errors[name_of(name)] = problem

    for name in ("record_handle", "application_id"):
        if name in values:
            check(name, _check_int(values[name]))
    for name in ("campaign_name", "calling_list", "reference_id"):
        if name in values:
            check(name, _check_text(values[name]))
    if "device_path" in values:
        check("device_path", _check_device_path(values["device_path"]))
    if "phone_number" in values:
        # The value itself is personal data: say what is wrong without echoing it.
        check("phone_number", _check_text(values["phone_number"]))
    if "chain_attribute" in values:
        chain = values["chain_attribute"]
        allowed = [member.value for member in ChainAttribute]
        if not isinstance(chain, str) or chain not in allowed:
            check("chain_attribute", f"must be one of {allowed}, got {_show(chain)}")
    return errors


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
        if not isinstance(metrics, Mapping):
            return None
        processing = metrics.get("eventProcessing")
        if not isinstance(processing, Mapping):
            return None

        def number(key: str) -> int | None:
            value = processing.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if isinstance(value, float) and not math.isfinite(value):
                return None  # Python's JSON decoder accepts NaN and Infinity
            return int(value)

        return cls(
            number("serverGenerationTimestamp"),
            number("nodeProcessingTimeNanos"),
            number("serverProcessingTimeTotalMs"),
        )


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


#: The GWS name of a cancel, for guessability next to the other ``<Operation>Request`` types.
CancelRecordRequest = CancelRequest


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
