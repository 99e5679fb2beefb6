"""The hook payloads built from what GWS and OCS sent (pure functions; never raise).

The types are in ``_payloads``; every inbound value is read with the rules of ``_coerce``.
Each field of an acknowledgement is taken from the first source that has it, in the order a
table names: the acknowledgement's ``record``, then the OCS user event, then our request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from . import _spec
from ._coerce import as_device_id, as_id, as_name, as_ocs_id, as_reference, is_object
from ._payloads import (
    EMPTY_MAPPING,
    CampaignStatus,
    CampaignStatusEvent,
    CancelFailure,
    EventMetrics,
    OperationAck,
    OperationFailure,
    PreviewRecordEvent,
    RecordCancelAck,
    RecordCancelledEvent,
    ScheduledCallEvent,
    UserEvent,
)
from ._requests import CallbackType, CancelRequest, ChainAttribute, OperationRequest

if TYPE_CHECKING:
    from ._effects import Acknowledged, Failed
    from ._spec import Operation, OperationSpec

__all__ = [
    "acknowledgement",
    "build_ack",
    "cancel_ack",
    "failure",
    "operation_ack",
    "operation_failure",
    "preview_record_from_outbound",
    "unsolicited_from_user_event",
]

_FREEZE_DEPTH: Final = 100

#: One field of a payload: its name, its key in an acknowledgement's ``record`` (``None``: it
#: is not there), its ``GSW_*`` key in OCS's ``userData``, and how the value is read.
_Source = tuple[str, str | None, str, Callable[[object], Any]]


def _enum_reader(kind: type[ChainAttribute] | type[CallbackType]) -> Callable[[object], Any]:
    values = frozenset(member.value for member in kind)

    def read(value: object) -> Any:
        return kind(value) if isinstance(value, str) and value in values else None

    return read


_chain = _enum_reader(ChainAttribute)
_callback_type = _enum_reader(CallbackType)

#: The fields of a ``RecordCancelAck`` read from the two messages, or our request.
_CANCEL_ACK_FIELDS: Final[tuple[_Source, ...]] = (
    ("record_handle", "recordHandle", "GSW_RECORD_HANDLE", as_id),
    ("application_id", "applicationId", "GSW_APPLICATION_ID", as_id),
    ("campaign_name", "campaignName", "GSW_CAMPAIGN_NAME", as_name),
    ("calling_list", "callingList", "GSW_CALLING_LIST", as_name),
    ("phone_number", None, "GSW_PHONE", as_name),
    ("chain_attribute", None, "GSW_CHAIN_ATTR", _chain),
)

#: The record fields of an unsolicited record event (``RecordCancel``, ``ScheduledCall``).
_RECORD_EVENT_FIELDS: Final[tuple[_Source, ...]] = (
    ("record_handle", None, "GSW_RECORD_HANDLE", as_ocs_id),
    ("application_id", None, "GSW_APPLICATION_ID", as_ocs_id),
    ("campaign_name", None, "GSW_CAMPAIGN_NAME", as_name),
    ("calling_list", None, "GSW_CALLING_LIST", as_name),
    ("phone_number", None, "GSW_PHONE", as_name),
    ("chain_id", None, "GSW_CHAIN_ID", as_ocs_id),
)

#: GSW_USER_EVENT -> the unsolicited record event it carries, and its extra fields.
_RECORD_EVENTS: Final[
    Mapping[str, tuple[type[RecordCancelledEvent | ScheduledCallEvent], tuple[_Source, ...]]]
] = MappingProxyType(
    {
        "RecordCancel": (RecordCancelledEvent, _RECORD_EVENT_FIELDS),
        "ScheduledCall": (
            ScheduledCallEvent,
            (*_RECORD_EVENT_FIELDS, ("callback_type", None, "GSW_CALLBACK_TYPE", _callback_type)),
        ),
    }
)

_CAMPAIGN_STATUSES: Final = frozenset(status.value for status in CampaignStatus)


def _fields(
    table: Sequence[_Source],
    record: Mapping[str, Any],
    user_data: Mapping[str, Any],
    request: object | None = None,
) -> dict[str, Any]:
    """Each field of ``table`` from the record, else the user data, else the request."""
    fields: dict[str, Any] = {}
    for name, record_key, data_key, read in table:
        value = record.get(record_key) if record_key is not None else None
        if value is None:
            value = user_data.get(data_key)
        if value is None and request is not None:
            value = getattr(request, name, None)
        fields[name] = read(value)
    return fields


def _reference(
    given: str | None, user_data: Mapping[str, Any], request: object | None
) -> str | None:
    """The acknowledgement's ``referenceId`` (``given``), else the echoed ``GSW_REFERENCE_ID``
    (a string or an int: its type is unconfirmed), else the request's."""
    return (
        given
        or as_reference(user_data.get("GSW_REFERENCE_ID"))
        or as_name(getattr(request, "reference_id", None))
    )


def _device(event: UserEvent | None, paths: Sequence[object], request: object | None) -> str | None:
    """The user event's device, else the first device path given, else the request's."""
    device_id = as_name(event.device_id) if event is not None else None
    for path in paths:
        device_id = device_id or as_device_id(path)
    return device_id or as_device_id(getattr(request, "device_path", None))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if is_object(value) else EMPTY_MAPPING


def _freeze(value: object, depth: int = 0) -> Any:
    """A read-only copy: mappings become MappingProxyType, lists tuples, all the way down."""
    if depth >= _FREEZE_DEPTH:
        return None  # deeper than any GWS message; dropped rather than left mutable
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item, depth + 1) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item, depth + 1) for item in value)
    return value


def _frozen_mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        return EMPTY_MAPPING
    try:
        frozen: Mapping[str, Any] = _freeze(value)
    except Exception:  # an odd mapping type: the payload must still be built
        return EMPTY_MAPPING
    return frozen


def _metrics(data: object) -> EventMetrics | None:
    return EventMetrics.from_message(data) if isinstance(data, Mapping) else None


# -- acknowledgements ------------------------------------------------------------------------------


def cancel_ack(
    request: CancelRequest | None,
    outbound: Mapping[str, Any] | None,
    event: UserEvent | None,
) -> RecordCancelAck:
    """One ``RecordCancelAck`` from the two messages: each field from the
    ``OutboundRecordMessage``'s record, else the user event, else our request."""
    data = outbound if type(outbound) is dict else _mapping(outbound)  # a dict, usually
    record = data.get("record")
    if type(record) is not dict:
        record = _mapping(record)
    user_data: Mapping[str, Any] = event.user_data if event is not None else {}
    return RecordCancelAck(
        reference_id=_reference(as_reference(data.get("referenceId")), user_data, request),
        **_fields(_CANCEL_ACK_FIELDS, record, user_data, request),
        device_id=_device(event, (record.get("devicePath"),), request),
        request=request,
        user_data=(
            user_data
            if isinstance(user_data, MappingProxyType)
            else MappingProxyType(dict(user_data))
        ),
        metrics=event.metrics if event is not None else None,
    )


def _part_record(part: object) -> Mapping[str, Any] | None:
    if isinstance(part, UserEvent):
        return _frozen_mapping(part.user_data)
    if not isinstance(part, Mapping):
        return None
    record = part.get("record")
    if isinstance(record, Mapping) and ("notificationType" in part or "messageType" in part):
        return _frozen_mapping(record)  # the data of a part notification
    return _frozen_mapping(part)  # a record itself


def _part_records(parts: object) -> tuple[Mapping[str, Any], ...]:
    records: list[Mapping[str, Any]] = []
    try:
        for part in parts:  # type: ignore[attr-defined]
            frozen = _part_record(part)
            if frozen is not None:
                records.append(frozen)
    except TypeError:  # parts was not iterable
        return ()
    return tuple(records)


def build_ack(
    spec: _spec.OperationSpec,
    request: OperationRequest | None,
    outbound_data: Mapping[str, Any] | None,
    user_event: UserEvent | None,
    parts: Sequence[Mapping[str, Any] | UserEvent] = (),
    empty: bool = False,
) -> OperationAck:
    """Build the :class:`OperationAck` of one acknowledged operation. Pure; never raises.

    :param spec: the operation that was acknowledged.
    :param request: our request, or ``None`` (someone else's request).
    :param outbound_data: the ``data`` of the acknowledgement on ``/v2/me/outbound``, if it came.
    :param user_event: the OCS user event that answered it, if it came.
    :param parts: the partial results in arrival order (``GetChainedRecord``): each the ``data``
        of a part notification (its ``record`` is kept), a record mapping, or a ``UserEvent``
        (its ``user_data`` is kept).
    :param empty: ``GetPreviewRecord`` was answered "no records available".

    ``record_handle`` is ``record.recordHandle``, else ``record.userData.GSW_RECORD_HANDLE``
    (a preview record), else the user event's ``GSW_RECORD_HANDLE``, else the request's.
    """
    data = _mapping(outbound_data)
    event = user_event if isinstance(user_event, UserEvent) else None
    user_data = _frozen_mapping(event.user_data) if event is not None else EMPTY_MAPPING
    record = _frozen_mapping(data.get("record"))
    campaign = _frozen_mapping(data.get("campaign"))
    record_handle = (
        as_ocs_id(record.get("recordHandle"))
        or as_ocs_id(_mapping(record.get("userData")).get("GSW_RECORD_HANDLE"))
        or as_ocs_id(user_data.get("GSW_RECORD_HANDLE"))
        or as_ocs_id(getattr(request, "record_handle", None))
    )
    metrics = event.metrics if event is not None else None
    if not isinstance(metrics, EventMetrics):
        metrics = _metrics(data)
    return OperationAck(
        operation=spec.name if isinstance(spec, _spec.OperationSpec) else str(spec),
        # An operation's acknowledgement keeps only a string referenceId (pinned by its tests).
        reference_id=_reference(as_name(data.get("referenceId")), user_data, request),
        request=request,
        record_handle=record_handle,
        record=record,
        campaign=campaign,
        records=_part_records(parts),
        empty=bool(empty),
        user_data=user_data,
        device_id=_device(event, (record.get("devicePath"), campaign.get("devicePath")), request),
        metrics=metrics,
    )


def operation_ack(
    spec: OperationSpec, request: Operation | None, outcome: Acknowledged
) -> OperationAck:
    """The :class:`OperationAck` of the correlator's ``Acknowledged`` outcome."""
    return build_ack(
        spec,
        request,  # type: ignore[arg-type]
        outcome.outbound,
        outcome.user_event,
        outcome.parts,
        outcome.empty,
    )


def acknowledgement(request: Operation, outcome: Acknowledged) -> RecordCancelAck | OperationAck:
    """What the request's ticket resolves with."""
    if isinstance(request, CancelRequest):
        return cancel_ack(request, outcome.outbound, outcome.user_event)
    return operation_ack(request.spec, request, outcome)


# -- failures --------------------------------------------------------------------------------------


#: The fields of a failure payload that are the correlator's ``Failed`` outcome's own.
_FAILURE_FIELDS: Final = (
    "reason",
    "status_code",
    "error_number",
    "message",
    "user_data",
    "may_have_acted",
)


def _failure_fields(outcome: Failed) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in _FAILURE_FIELDS}


def operation_failure(request: Operation, outcome: Failed) -> OperationFailure:
    """The :class:`OperationFailure` of the correlator's ``Failed`` outcome."""
    return OperationFailure(
        operation=request.spec.name,
        request=request,  # type: ignore[arg-type]
        **_failure_fields(outcome),
    )


def failure(request: CancelRequest, outcome: Failed) -> CancelFailure:
    """The :class:`CancelFailure` of the correlator's ``Failed`` outcome of a cancel."""
    return CancelFailure(request=request, **_failure_fields(outcome))


# -- unsolicited OCS events ------------------------------------------------------------------------


def unsolicited_from_user_event(
    event: UserEvent,
) -> RecordCancelledEvent | ScheduledCallEvent | CampaignStatusEvent | None:
    """The typed unsolicited event a ``DeviceUserEventMessage`` carries, or ``None``.

    ``GSW_USER_EVENT`` ``RecordCancel`` gives a :class:`RecordCancelledEvent`,
    ``ScheduledCall`` a :class:`ScheduledCallEvent`, a :class:`CampaignStatus` value a
    :class:`CampaignStatusEvent`; anything else (acknowledgements included) ``None``. Pure;
    never raises: a key of the wrong type gives a ``None`` field.
    """
    if not isinstance(event, UserEvent):
        return None
    data = _frozen_mapping(event.user_data)
    name = data.get("GSW_USER_EVENT", event.user_event)
    if not isinstance(name, str):
        return None
    device_id = as_name(event.device_id)
    metrics = event.metrics if isinstance(event.metrics, EventMetrics) else None
    if name in _CAMPAIGN_STATUSES:
        return CampaignStatusEvent(
            status=CampaignStatus(name),
            campaign_name=as_name(data.get("GSW_CAMPAIGN_NAME")),
            application_id=as_ocs_id(data.get("GSW_APPLICATION_ID")),
            group_name=as_name(data.get("GSW_CAMPAIGN_GROUP_NAME")),
            dialing_mode=as_name(data.get("GSW_CAMPAIGN_MODE")),
            user_data=data,
            device_id=device_id,
            metrics=metrics,
        )
    kind = _RECORD_EVENTS.get(name)
    if kind is None:
        return None
    payload_type, table = kind
    return payload_type(
        **_fields(table, EMPTY_MAPPING, data),
        user_data=data,
        device_id=device_id,
        metrics=metrics,
    )


def preview_record_from_outbound(data: Mapping[str, Any]) -> PreviewRecordEvent:
    """The :class:`PreviewRecordEvent` of an ``OutboundRecordMessage`` (``PreviewRecord``).

    Pure; never raises: on malformed input the fields are ``None`` / empty.
    """
    message = _mapping(data)
    record = _frozen_mapping(message.get("record"))
    user_data = _mapping(record.get("userData"))
    return PreviewRecordEvent(
        record_handle=(
            as_ocs_id(record.get("recordHandle")) or as_ocs_id(user_data.get("GSW_RECORD_HANDLE"))
        ),
        record=record,
        user_data=user_data if user_data else EMPTY_MAPPING,
        reference_id=as_name(message.get("referenceId")),
    )
