"""From the correlator's outcomes to the typed hook payloads (pure functions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from ._coerce import as_id, as_name, as_reference
from ._correlator import Acknowledged, Failed
from ._models import (
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    RecordCancelAck,
    UserEvent,
)
from ._operations import OperationAck, OperationFailure, build_ack
from ._spec import Operation, OperationSpec

__all__ = ["acknowledgement", "cancel_ack", "failure", "operation_ack", "operation_failure"]


def _chain(value: object) -> ChainAttribute | None:
    try:
        return ChainAttribute(value) if isinstance(value, str) else None
    except ValueError:
        return None


#: RecordCancelAck field, OutboundRecordMessage ``record`` key, ``userData`` key, converter.
_ACK_FIELDS: Final[tuple[tuple[str, str | None, str, Callable[[object], Any]], ...]] = (
    ("record_handle", "recordHandle", "GSW_RECORD_HANDLE", as_id),
    ("application_id", "applicationId", "GSW_APPLICATION_ID", as_id),
    ("campaign_name", "campaignName", "GSW_CAMPAIGN_NAME", as_name),
    ("calling_list", "callingList", "GSW_CALLING_LIST", as_name),
    ("phone_number", None, "GSW_PHONE", as_name),
    ("chain_attribute", None, "GSW_CHAIN_ATTR", _chain),
)


def cancel_ack(
    request: CancelRequest | None,
    outbound: Mapping[str, Any] | None,
    event: UserEvent | None,
) -> RecordCancelAck:
    """One ``RecordCancelAck`` from the two messages: each field from the
    ``OutboundRecordMessage``'s record, else the user event, else our request."""
    record_obj = outbound.get("record") if outbound is not None else None
    record: Mapping[str, Any] = record_obj if isinstance(record_obj, Mapping) else {}
    data: Mapping[str, Any] = event.user_data if event is not None else {}
    device_path = as_name(record.get("devicePath"))
    device_id = event.device_id if event is not None else None
    if device_id is None and device_path is not None and device_path.startswith("/devices/"):
        device_id = device_path.rsplit("/", 1)[1]
    if device_id is None and request is not None:
        device_id = request.device_id

    reference = as_reference(outbound.get("referenceId")) if outbound is not None else None
    if reference is None:
        reference = as_reference(data.get("GSW_REFERENCE_ID"))
    if reference is None and request is not None:
        reference = request.reference_id
    fields: dict[str, Any] = {}
    for name, record_key, data_key, convert in _ACK_FIELDS:
        value = record.get(record_key) if record_key is not None else None
        if value is None:
            value = data.get(data_key)
        if value is None and request is not None:
            value = getattr(request, name)
        fields[name] = convert(value)
    return RecordCancelAck(
        reference_id=reference,
        **fields,
        device_id=device_id,
        request=request,
        user_data=data if isinstance(data, MappingProxyType) else MappingProxyType(dict(data)),
        metrics=event.metrics if event is not None else None,
    )


def operation_ack(
    spec: OperationSpec, request: Operation | None, outcome: Acknowledged
) -> OperationAck:
    return build_ack(
        spec,
        request,  # type: ignore[arg-type]
        outcome.outbound,
        outcome.user_event,
        outcome.parts,
        outcome.empty,
    )


def operation_failure(request: Operation, outcome: Failed) -> OperationFailure:
    return OperationFailure(
        operation=request.spec.name,
        request=request,  # type: ignore[arg-type]
        reason=outcome.reason,
        status_code=outcome.status_code,
        error_number=outcome.error_number,
        message=outcome.message,
        user_data=outcome.user_data,
        may_have_acted=outcome.may_have_acted,
    )


def failure(request: CancelRequest, outcome: Failed) -> CancelFailure:
    return CancelFailure(
        request=request,
        reason=outcome.reason,
        status_code=outcome.status_code,
        error_number=outcome.error_number,
        message=outcome.message,
        user_data=outcome.user_data,
        may_have_acted=outcome.may_have_acted,
    )


def acknowledgement(request: Operation, outcome: Acknowledged) -> RecordCancelAck | OperationAck:
    """What the request's ticket resolves with."""
    if isinstance(request, CancelRequest):
        return cancel_ack(request, outcome.outbound, outcome.user_event)
    return operation_ack(request.spec, request, outcome)
