"""GWS's outbound operations: request validation and the CometD message shapes.

Three resources take operations (``POST`` with a JSON body whose ``operationName`` picks
one): ``/api/v2/me/outbound-records/<handle>`` (record operations),
``/api/v2/me/outbound-records`` (AddRecord, DoNotCallRecord by phone number) and
``/api/v2/me/outbound-campaigns/<name>`` (preview sessions).

Validation order (the first failing step answers, HTTP 200, body
``{"statusCode": n, "statusMessage": "..."}``):

1. the body is a JSON object (else 10);
2. ``operationName`` is present (else 1), a non-empty string (else 10) and a GWS outbound
   operation (else 10); an operation of another resource is 3 (a record operation without
   a handle is 1, naming ``recordHandle``);
3. the record handle in the path is a positive integer (else 10; 2^31 and above: 1);
4. every required parameter is present (else 1, naming all the missing ones);
5. 32-bit integers (``applicationId``, ``chainId``) below 2^31 (else 1, naming them);
6. every parameter has the right type and value (else 10, naming all the bad ones);
7. ``devicePath`` names a device of the calling user (else 6);
8. campaign operations: the campaign exists in that application (else 6).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeGuard

from ._recording import DecodedBody
from ._records import CALLBACK_TYPES, CHAIN_ATTRIBUTES, JAVA_INT_MAX, PHONE_TYPES, OtherValue

__all__ = [
    "ACKNOWLEDGEMENTS",
    "OPERATIONS",
    "Command",
    "ErrorReply",
    "Resource",
    "error_message",
    "outbound_message",
    "user_event",
    "validate",
]

OUTBOUND_CHANNEL: Final = "/v2/me/outbound"
USER_EVENT_CHANNEL: Final = "/me/internal"

# Status codes from the GWS return-value table.
MISSING_PARAMETER = 1
FORBIDDEN = 3
NOT_FOUND = 6
INVALID_INPUT = 10

Resource = Literal["record", "records", "campaign"]

#: Each operation's acknowledgement: the ``notificationType`` on ``/v2/me/outbound`` (for
#: GetChainedRecord the end marker) and the ``GSW_USER_EVENT`` of its user event.
ACKNOWLEDGEMENTS: Mapping[str, str] = MappingProxyType(
    {
        "CancelRecord": "RecordCancelAcknowledge",
        "RejectRecord": "RecordRejectAcknowledge",
        "CompleteRecord": "RecordProcessedAcknowledge",
        "DoNotCallRecord": "DoNotCallAcknowledge",
        "RescheduleRecord": "ScheduledRecordRescheduleAcknowledge",
        "UpdateRecord": "UpdateCallCompletionStatsAcknowledge",
        "GetChainedRecord": "ChainedRecordsDataEnd",
        "AddRecord": "AddRecordAcknowledge",
        "StartPreviewSession": "PreviewDialingModeStartAcknowledge",
        "GetPreviewRecord": "PreviewRecord",
        "EndPreviewSession": "PreviewDialingModeOverAcknowledge",
    }
)
#: Every GWS outbound operation name (DoNotCallRecord has two forms).
OPERATIONS: tuple[str, ...] = tuple(ACKNOWLEDGEMENTS)

_RESOURCE_OPERATIONS: Mapping[Resource, frozenset[str]] = {
    "record": frozenset(
        {
            "CancelRecord",
            "RejectRecord",
            "CompleteRecord",
            "DoNotCallRecord",
            "RescheduleRecord",
            "UpdateRecord",
            "GetChainedRecord",
        }
    ),
    "records": frozenset({"AddRecord", "DoNotCallRecord"}),
    "campaign": frozenset({"StartPreviewSession", "GetPreviewRecord", "EndPreviewSession"}),
}
_RESOURCE_PATHS: Mapping[Resource, str] = {
    "record": "POST /api/v2/me/outbound-records/<recordHandle>",
    "records": "POST /api/v2/me/outbound-records",
    "campaign": "POST /api/v2/me/outbound-campaigns/<campaignName>",
}


@dataclass(frozen=True, slots=True)
class _Spec:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


_COMMON = ("operationName", "applicationId", "devicePath")
_SPECS: Mapping[tuple[Resource, str], _Spec] = {
    ("record", "CancelRecord"): _Spec(
        (*_COMMON, "campaignName", "callingList"), ("phoneNumber", "chainAttribute")
    ),
    ("record", "RejectRecord"): _Spec((*_COMMON, "campaignName", "callingList")),
    ("record", "CompleteRecord"): _Spec(
        (*_COMMON, "campaignName", "callingList"), ("callResult", "phoneNumber")
    ),
    ("record", "DoNotCallRecord"): _Spec(
        (*_COMMON, "campaignName", "callingList"), ("phoneNumber", "chainAttribute")
    ),
    ("record", "RescheduleRecord"): _Spec((*_COMMON, "campaignName", "callbackType", "timestamp")),
    ("record", "UpdateRecord"): _Spec(
        (*_COMMON, "campaignName"),
        ("callingList", "phoneNumber", "timeZone", "phoneType", "from", "until"),
    ),
    ("record", "GetChainedRecord"): _Spec((*_COMMON, "campaignName")),
    ("records", "AddRecord"): _Spec(
        (
            *_COMMON,
            "campaignName",
            "callingList",
            "phoneNumber",
            "timeZone",
            "phoneType",
            "from",
            "until",
        ),
        ("chainId", "otherFields"),
    ),
    ("records", "DoNotCallRecord"): _Spec(
        (*_COMMON, "campaignName", "phoneNumber"), ("callingList", "chainAttribute")
    ),
    ("campaign", "StartPreviewSession"): _Spec(_COMMON),
    ("campaign", "GetPreviewRecord"): _Spec(_COMMON),
    ("campaign", "EndPreviewSession"): _Spec(_COMMON),
}

_INT32_FIELDS = ("applicationId", "chainId")
_TEXT_FIELDS = (
    "campaignName",
    "callingList",
    "devicePath",
    "phoneNumber",
    "referenceId",
    "timeZone",
    "callResult",
)
_ENUM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "chainAttribute": CHAIN_ATTRIBUTES,
    "callbackType": CALLBACK_TYPES,
    "phoneType": PHONE_TYPES,
}
_SECONDS_PER_DAY = 86_400
#: The last second a ``datetime`` can show (9999-12-31T23:59:59Z): later timestamps are refused.
LAST_TIMESTAMP = 253_402_300_799
_HANDLE_RE = re.compile(r"[0-9]+")
_DEVICE_PATH_RE = re.compile(r"/devices/([A-Za-z0-9._~-]+)")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A GWS error answer: HTTP 200 with ``statusCode``/``statusMessage``."""

    status_code: int
    message: str

    def body(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "statusMessage": self.message}


@dataclass(frozen=True, slots=True)
class Command:
    """A valid outbound request, as the simulator hands it to OCS.

    ``campaign_name`` comes from the body, or from the path for campaign operations.
    Optional parameters that were not sent are ``None``.
    """

    operation: str
    resource: Resource
    application_id: int
    campaign_name: str
    device_path: str
    device_id: str
    reference_id: str | None = None
    record_handle: int | None = None
    calling_list: str | None = None
    phone_number: str | None = None
    chain_attribute: str | None = None
    call_result: str | None = None
    callback_type: str | None = None
    timestamp: int | None = None
    time_zone: str | None = None
    phone_type: str | None = None
    dial_from: int | None = None
    dial_until: int | None = None
    chain_id: int | None = None
    other_fields: Mapping[str, OtherValue] = field(default_factory=dict)

    @property
    def acknowledgement(self) -> str:
        """The operation's acknowledgement name (``notificationType`` / ``GSW_USER_EVENT``)."""
        return ACKNOWLEDGEMENTS[self.operation]


def operation_summary() -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(resource path, operation, its own required parameters, its optional ones) in order.

    The parameters every operation takes (``operationName``, ``applicationId``,
    ``devicePath``, optional ``referenceId``) are left out.
    """
    return [
        (_RESOURCE_PATHS[resource], operation, spec.required[len(_COMMON) :], spec.optional)
        for (resource, operation), spec in _SPECS.items()
    ]


def operation_of(body: DecodedBody) -> str | None:
    """The ``operationName`` of a body, if it is a JSON object naming one as a string."""
    if body.is_json and isinstance(body.value, dict):
        name = body.value.get("operationName")
        if isinstance(name, str):
            return name
    return None


def _plural(items: list[str]) -> str:
    return "s" if len(items) > 1 else ""


def validate(
    resource: Resource,
    path_value: str | None,
    body: DecodedBody,
    device_ids: frozenset[str],
    campaign_exists: Callable[[str, int], bool | str],
) -> Command | ErrorReply:
    """Check a POST to an outbound resource the way GWS does (see the module docstring).

    :param resource: ``"record"`` (with a handle), ``"records"`` (without) or ``"campaign"``.
    :param path_value: the handle text or the (percent-decoded) campaign name.
    :param body: the decoded request body.
    :param device_ids: bare ids of the calling user's devices.
    :param campaign_exists: for campaign operations: ``True`` when the campaign exists in
        that application, else the name of the field to blame (``campaignName`` or
        ``applicationId``).
    """
    if not body.is_json:
        return ErrorReply(INVALID_INPUT, "Invalid request body: not valid JSON")
    data = body.value
    if not isinstance(data, dict):
        return ErrorReply(INVALID_INPUT, "Invalid request body: expected a JSON object")
    operation = _operation(resource, data)
    if isinstance(operation, ErrorReply):
        return operation
    handle: int | None = None
    if resource == "record":
        checked = _record_handle(path_value or "")
        if isinstance(checked, ErrorReply):
            return checked
        handle = checked
    refused = _parameters_refusal(_SPECS[(resource, operation)], data)
    if refused is not None:
        return refused
    target = _target(resource, path_value, data, device_ids, campaign_exists)
    if isinstance(target, ErrorReply):
        return target
    device_path, device_id, campaign_name = target
    return Command(
        operation=operation,
        resource=resource,
        application_id=data["applicationId"],
        campaign_name=campaign_name,
        device_path=device_path,
        device_id=device_id,
        reference_id=data.get("referenceId"),
        record_handle=handle,
        calling_list=data.get("callingList"),
        phone_number=data.get("phoneNumber"),
        chain_attribute=data.get("chainAttribute"),
        call_result=data.get("callResult"),
        callback_type=data.get("callbackType"),
        timestamp=data.get("timestamp"),
        time_zone=data.get("timeZone"),
        phone_type=data.get("phoneType"),
        dial_from=data.get("from"),
        dial_until=data.get("until"),
        chain_id=data.get("chainId"),
        other_fields=dict(data.get("otherFields") or {}),
    )


def _target(
    resource: Resource,
    path_value: str | None,
    data: dict[str, Any],
    device_ids: frozenset[str],
    campaign_exists: Callable[[str, int], bool | str],
) -> tuple[str, str, str] | ErrorReply:
    """(devicePath, its device id, campaign name) when the device is the user's and, for
    campaign operations, the campaign of the path exists in that application."""
    device_path: str = data["devicePath"]
    match = _DEVICE_PATH_RE.fullmatch(device_path)
    if match is None or match.group(1) not in device_ids:
        return ErrorReply(NOT_FOUND, f"Device not found for this user: devicePath {device_path}")
    if resource != "campaign":
        return device_path, match.group(1), data["campaignName"]
    campaign_name = path_value or ""
    found = campaign_exists(campaign_name, data["applicationId"])
    if found is not True:
        blamed = "applicationId" if found == "applicationId" else "campaignName"
        return ErrorReply(
            NOT_FOUND,
            f"Campaign not found: campaignName {campaign_name!r} "
            f"with applicationId {data['applicationId']} ({blamed})",
        )
    return device_path, match.group(1), campaign_name


def _operation(resource: Resource, data: dict[str, Any]) -> str | ErrorReply:
    """The body's ``operationName`` when it is an operation on ``resource``."""
    if "operationName" not in data:
        return ErrorReply(MISSING_PARAMETER, "Missing required parameter: operationName")
    operation = data["operationName"]
    if not isinstance(operation, str) or not operation.strip():
        return ErrorReply(
            INVALID_INPUT, "Invalid parameter: operationName must be a non-empty string"
        )
    if operation not in ACKNOWLEDGEMENTS:
        return ErrorReply(
            INVALID_INPUT,
            f"Invalid parameter: operationName {operation!r} is not a GWS outbound operation",
        )
    if operation not in _RESOURCE_OPERATIONS[resource]:
        if resource == "records" and operation in _RESOURCE_OPERATIONS["record"]:
            return ErrorReply(
                MISSING_PARAMETER,
                f"Missing required parameter: recordHandle ({operation} is "
                f"{_RESOURCE_PATHS['record']})",
            )
        home = next(r for r, names in _RESOURCE_OPERATIONS.items() if operation in names)
        return ErrorReply(
            FORBIDDEN,
            f"Operation forbidden: {operation} is not an operation on this resource "
            f"(it is {_RESOURCE_PATHS[home]})",
        )
    return operation


def _record_handle(text: str) -> int | ErrorReply:
    """The record handle of the path, a positive 32-bit integer."""
    if not _HANDLE_RE.fullmatch(text) or not text.strip("0"):
        return ErrorReply(
            INVALID_INPUT,
            f"Invalid parameter: recordHandle {text!r} must be a positive integer",
        )
    stripped = text.lstrip("0")
    if len(stripped) > 10 or int(stripped) > JAVA_INT_MAX:
        return ErrorReply(
            MISSING_PARAMETER,
            f"Invalid parameter: recordHandle {text} is not a 32-bit integer (must be below 2^31)",
        )
    return int(stripped)


def _parameters_refusal(spec: _Spec, data: dict[str, Any]) -> ErrorReply | None:
    """GWS's answer to missing, too large or invalid parameters, if any."""
    missing = [name for name in spec.required if name not in data]
    if missing:
        return ErrorReply(
            MISSING_PARAMETER,
            f"Missing required parameter{_plural(missing)}: {', '.join(missing)}",
        )
    known = (*spec.required, *spec.optional, "referenceId")
    too_big = [
        name
        for name in _INT32_FIELDS
        if name in known and _is_int(data.get(name)) and data[name] > JAVA_INT_MAX
    ]
    if too_big:
        return ErrorReply(
            MISSING_PARAMETER,
            f"Invalid parameter{_plural(too_big)}: {', '.join(too_big)} "
            "must be a 32-bit integer (below 2^31)",
        )
    problems = [
        problem
        for name in known
        if name in data and name != "operationName"
        for problem in _problems(name, data[name])
    ]
    if problems:
        return ErrorReply(
            INVALID_INPUT, f"Invalid parameter{_plural(problems)}: " + "; ".join(problems)
        )
    return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(name: str, value: object) -> list[str]:
    if name in _INT32_FIELDS:
        if not _is_int(value) or not 0 < value <= JAVA_INT_MAX:
            return [f"{name} must be a positive integer"]
        return []
    if name in _TEXT_FIELDS:
        if not isinstance(value, str) or not value.strip():
            return [f"{name} must be a non-empty string"]
        if name == "devicePath" and _DEVICE_PATH_RE.fullmatch(value) is None:
            return ["devicePath must look like /devices/<deviceId>"]
        return []
    if name in _ENUM_FIELDS:
        choices = _ENUM_FIELDS[name]
        if value not in choices:
            return [f"{name} must be one of {', '.join(choices)}"]
        return []
    if name == "timestamp":
        if not _is_int(value) or not 0 < value <= LAST_TIMESTAMP:
            return ["timestamp must be a positive integer (seconds since the epoch, before 10000)"]
        return []
    if name in ("from", "until"):
        if not _is_int(value) or not 0 <= value <= _SECONDS_PER_DAY:
            return [f"{name} must be an integer from 0 to {_SECONDS_PER_DAY} (seconds of day)"]
        return []
    if name == "otherFields":
        if not isinstance(value, dict) or not all(
            key
            and isinstance(item, str | int | float)
            and (not isinstance(item, float) or math.isfinite(item))
            for key, item in value.items()
        ):
            return ["otherFields must be an object of strings, numbers or booleans"]
        return []
    return []  # pragma: no cover - every known parameter is handled above


# --------------------------------------------------------------------------- messages
def outbound_message(
    message_type: str,
    notification_type: str,
    reference_id: str | None,
    key: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """An ``OutboundRecordMessage`` / ``OutboundCampaignMessage`` (the CometD ``data``)."""
    data: dict[str, Any] = {"messageType": message_type, "notificationType": notification_type}
    if reference_id is not None:
        data["referenceId"] = reference_id
    data[key] = payload
    return data


def error_message(reference_id: str | None, code: int, text: str) -> dict[str, Any]:
    """A CometD ``ErrorMessage`` (the Voice API's shape; for outbound UNCONFIRMED)."""
    data: dict[str, Any] = {"messageType": "ErrorMessage"}
    if reference_id is not None:
        data["referenceId"] = reference_id
    data["errorCode"] = code
    data["errorMessage"] = text
    return data


def user_event(device_id: str, user_data: dict[str, Any], *, started_ns: int) -> dict[str, Any]:
    """The ``DeviceUserEventMessage`` GWS relays on ``/me/internal`` for an OCS user event.

    :param started_ns: ``time.perf_counter_ns()`` when the work started; the metrics
        report the time measured from then until this message was built.
    """
    elapsed_ns = max(time.perf_counter_ns() - started_ns, 1)
    return {
        "messageType": "DeviceUserEventMessage",
        "deviceId": device_id,
        "userData": user_data,
        "metrics": {
            "eventProcessing": {
                "serverGenerationTimestamp": time.time_ns() // 1_000_000,
                "nodeProcessingTimeNanos": elapsed_ns,
                "serverProcessingTimeTotalMs": math.ceil(elapsed_ns / 1_000_000),
            }
        },
    }
