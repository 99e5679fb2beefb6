"""GWS's outbound-record operation: request validation and the CometD message shapes.

Validation order (the first failing step answers, HTTP 200, body
``{"statusCode": n, "statusMessage": "..."}``):

1. the body is a JSON object (else 10);
2. ``operationName`` is present (else 1), a non-empty string (else 10), an operation on
   this resource (else 10) and supported by the simulator (else 3);
3. the record handle in the path is a positive integer (else 10);
4. every required parameter is present (else 1, naming all the missing ones);
5. every parameter has the right type and value (else 10, naming all the bad ones);
6. ``devicePath`` names a device of the calling user (else 6).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from ._recording import DecodedBody

__all__ = [
    "CHAIN_ATTRIBUTES",
    "CancelCommand",
    "ErrorReply",
    "outbound_acknowledge",
    "user_event",
    "validate_outbound_request",
]

OUTBOUND_CHANNEL = "/v2/me/outbound"
USER_EVENT_CHANNEL = "/me/internal"
CANCEL_ACK = "RecordCancelAcknowledge"
CHAIN_ATTRIBUTES = ("AllChain", "RecordOnly")

# Status codes from the GWS return-value table.
MISSING_PARAMETER = 1
FORBIDDEN = 3
NOT_FOUND = 6
INVALID_INPUT = 10

_JAVA_INT_MAX = 2**31 - 1
_HANDLE_RE = re.compile(r"[0-9]{1,10}")
_DEVICE_PATH_RE = re.compile(r"/devices/([A-Za-z0-9._~-]+)")

# Operations GWS documents on /api/v2/me/outbound-records/{handle}.
_HANDLE_OPERATIONS = frozenset(
    {
        "CancelRecord",
        "RejectRecord",
        "CompleteRecord",
        "DoNotCallRecord",
        "RescheduleRecord",
        "UpdateRecord",
        "GetChainedRecord",
    }
)
# Operations GWS documents on /api/v2/me/outbound-records (no handle).
_LIST_OPERATIONS = frozenset({"AddRecord", "DoNotCallRecord"})

_REQUIRED = ("operationName", "applicationId", "campaignName", "callingList", "devicePath")
_TEXT_FIELDS = ("campaignName", "callingList", "devicePath", "phoneNumber", "referenceId")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A GWS error answer: HTTP 200 with ``statusCode``/``statusMessage``."""

    status_code: int
    message: str

    def body(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "statusMessage": self.message}


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """A valid ``CancelRecord`` request."""

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    device_id: str
    phone_number: str | None
    chain_attribute: str | None
    reference_id: str | None


def validate_outbound_request(
    handle_text: str | None, body: DecodedBody, device_ids: frozenset[str]
) -> CancelCommand | ErrorReply:
    """Check a POST to the outbound-records resource the way GWS does.

    :param handle_text: the path segment after ``outbound-records/`` (``None`` without one).
    :param body: the decoded request body.
    :param device_ids: bare ids of the calling user's devices.
    """
    if not body.is_json:
        return ErrorReply(INVALID_INPUT, "Invalid request body: not valid JSON")
    data = body.value
    if not isinstance(data, dict):
        return ErrorReply(INVALID_INPUT, "Invalid request body: expected a JSON object")
    if "operationName" not in data:
        return ErrorReply(MISSING_PARAMETER, "Missing required parameter: operationName")
    operation = data["operationName"]
    if not isinstance(operation, str) or not operation.strip():
        return ErrorReply(
            INVALID_INPUT, "Invalid parameter: operationName must be a non-empty string"
        )
    if handle_text is None:
        return _list_operation(operation)
    if operation not in _HANDLE_OPERATIONS:
        return ErrorReply(
            INVALID_INPUT,
            f"Invalid parameter: operationName {operation!r} is not an operation on an "
            "outbound record",
        )
    if operation != "CancelRecord":
        return _unsupported(operation)
    if not _HANDLE_RE.fullmatch(handle_text) or not 0 < int(handle_text) <= _JAVA_INT_MAX:
        return ErrorReply(
            INVALID_INPUT,
            f"Invalid parameter: recordHandle {handle_text!r} must be a positive integer",
        )
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        return ErrorReply(
            MISSING_PARAMETER, f"Missing required parameter{plural}: {', '.join(missing)}"
        )
    problems = _field_problems(data)
    if problems:
        plural = "s" if len(problems) > 1 else ""
        return ErrorReply(INVALID_INPUT, f"Invalid parameter{plural}: " + "; ".join(problems))
    device_path: str = data["devicePath"]
    match = _DEVICE_PATH_RE.fullmatch(device_path)
    if match is None or match.group(1) not in device_ids:
        return ErrorReply(NOT_FOUND, f"Device not found for this user: devicePath {device_path}")
    return CancelCommand(
        record_handle=int(handle_text),
        application_id=data["applicationId"],
        campaign_name=data["campaignName"],
        calling_list=data["callingList"],
        device_path=device_path,
        device_id=match.group(1),
        phone_number=data.get("phoneNumber"),
        chain_attribute=data.get("chainAttribute"),
        reference_id=data.get("referenceId"),
    )


def _unsupported(operation: str) -> ErrorReply:
    return ErrorReply(FORBIDDEN, f"Operation {operation} is not supported by this simulator")


def _list_operation(operation: str) -> ErrorReply:
    if operation in _LIST_OPERATIONS:
        return _unsupported(operation)
    if operation in _HANDLE_OPERATIONS:
        return ErrorReply(
            MISSING_PARAMETER,
            f"Missing required parameter: recordHandle ({operation} is "
            "POST /api/v2/me/outbound-records/<recordHandle>)",
        )
    return ErrorReply(
        INVALID_INPUT,
        f"Invalid parameter: operationName {operation!r} is not an outbound record operation",
    )


def _field_problems(data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    application_id = data["applicationId"]
    if (
        isinstance(application_id, bool)
        or not isinstance(application_id, int)
        or not 0 < application_id <= _JAVA_INT_MAX
    ):
        problems.append("applicationId must be a positive integer")
    for name in _TEXT_FIELDS:
        if name in data:
            value = data[name]
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name} must be a non-empty string")
    device_path = data.get("devicePath")
    if (
        isinstance(device_path, str)
        and device_path.strip()
        and _DEVICE_PATH_RE.fullmatch(device_path) is None
    ):
        problems.append("devicePath must look like /devices/<deviceId>")
    if "chainAttribute" in data and data["chainAttribute"] not in CHAIN_ATTRIBUTES:
        problems.append("chainAttribute must be AllChain or RecordOnly")
    return problems


def outbound_acknowledge(command: CancelCommand) -> dict[str, Any]:
    """The ``OutboundRecordMessage`` GWS publishes on ``/v2/me/outbound`` for a cancel."""
    data: dict[str, Any] = {
        "messageType": "OutboundRecordMessage",
        "notificationType": CANCEL_ACK,
    }
    if command.reference_id is not None:
        data["referenceId"] = command.reference_id
    data["record"] = {
        "devicePath": command.device_path,
        "callingList": command.calling_list,
        "applicationId": command.application_id,
        "recordHandle": command.record_handle,
        "campaignName": command.campaign_name,
    }
    return data


def user_event(
    command: CancelCommand,
    *,
    started_ns: int,
    error_number: int | None = None,
    error_message: str | None = None,
) -> dict[str, Any]:
    """The ``DeviceUserEventMessage`` GWS relays on ``/me/internal`` for OCS's answer.

    :param started_ns: ``time.perf_counter_ns()`` when the request arrived; the metrics
        report the time measured from then until this message was built.
    """
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": CANCEL_ACK,
        "GSW_APPLICATION_ID": command.application_id,
        "GSW_RECORD_HANDLE": command.record_handle,
        "GSW_CALLING_LIST": command.calling_list,
        "GSW_CAMPAIGN_NAME": command.campaign_name,
    }
    if command.chain_attribute is not None:
        user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
    if command.phone_number is not None:
        user_data["GSW_PHONE"] = command.phone_number
    if error_number is not None:
        user_data["GSW_ERROR"] = error_message or ""
        user_data["GSW_ERROR_NUMBER"] = int(error_number)
    elapsed_ns = max(time.perf_counter_ns() - started_ns, 1)
    return {
        "messageType": "DeviceUserEventMessage",
        "deviceId": command.device_id,
        "userData": user_data,
        "metrics": {
            "eventProcessing": {
                "serverGenerationTimestamp": time.time_ns() // 1_000_000,
                "nodeProcessingTimeNanos": elapsed_ns,
                "serverProcessingTimeTotalMs": math.ceil(elapsed_ns / 1_000_000),
            }
        },
    }
