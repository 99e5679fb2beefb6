"""Pure formatters: one line of text (or JSON) per outcome, event and connection change."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._models import CancelFailure, FailureReason, RecordCancelAck, UserEvent, to_jsonable
from .._operations import (
    AddRecordRequest,
    CampaignStatusEvent,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    OperationAck,
    OperationFailure,
    PreviewRecordEvent,
    RecordCancelledEvent,
    RescheduleRecordRequest,
    ScheduledCallEvent,
)


def hook_line(hook: str, payload: Any, **extra: Any) -> str:
    """One JSON line: ``{"hook": ..., <payload fields>}`` (the example host's format)."""
    return json.dumps(
        {"hook": hook, **to_jsonable(payload), **extra}, ensure_ascii=False, default=str
    )


def _clock() -> str:
    return dt.datetime.now().astimezone().strftime("%H:%M:%S.%f")[:-3]


def _record_text(handle: Any, application: Any, campaign: Any, calling_list: Any) -> str:
    return (
        f"record={handle if handle is not None else '?'} "
        f"app={application if application is not None else '?'} "
        f"campaign={campaign or '?'} list={calling_list or '?'}"
    )


def describe_ack(ack: RecordCancelAck) -> str:
    text = "acknowledged   " + _record_text(
        ack.record_handle, ack.application_id, ack.campaign_name, ack.calling_list
    )
    if ack.chain_attribute is not None:
        text += f" chain={ack.chain_attribute.value}"
    text += f" referenceId={ack.reference_id or '?'}"
    if ack.request is None:
        text += " (requested by another client)"
    return text


def _failure_word(failure: CancelFailure | OperationFailure) -> str:
    """The first word of a failure's line, following its reason: ``outcome unknown`` when
    the request was sent and nobody can say whether GWS acted on it (reason
    ``outcome_unknown``: e.g. interrupted after GWS accepted it), ``failed`` otherwise
    (``shut_down``: it was never sent)."""
    return "outcome unknown" if failure.reason is FailureReason.OUTCOME_UNKNOWN else "failed"


def _failure_head(failure: CancelFailure | OperationFailure) -> str:
    return f"{_failure_word(failure):<14} "


def _failure_text(failure: CancelFailure | OperationFailure) -> str:
    text = f"reason={failure.reason.value}"
    if failure.status_code is not None:
        text += f" statusCode={failure.status_code}"
    if failure.error_number is not None:
        text += f" error={failure.error_number}"
    if failure.message:
        text += f" message={json.dumps(failure.message, ensure_ascii=False)}"
    if getattr(failure, "may_have_acted", False):
        text += " may_have_acted=yes"
    return text


def _failure_line(failure: CancelFailure) -> str:
    request = failure.request
    text = _failure_head(failure) + _failure_text(failure)
    text += " " + _record_text(
        request.record_handle, request.application_id, request.campaign_name, request.calling_list
    )
    return text + f" referenceId={request.reference_id}"


def _request_text(request: Any, record: Mapping[str, Any] | None = None) -> str:
    """What a request is about: its record, phone number or campaign, as ``key=value``."""
    record = record or {}
    application = getattr(request, "application_id", None) or record.get("applicationId")
    campaign = getattr(request, "campaign_name", None) or record.get("campaignName")
    calling_list = getattr(request, "calling_list", None) or record.get("callingList")
    handle = getattr(request, "record_handle", None)
    if handle is not None:
        return _record_text(handle, application, campaign, calling_list)
    if isinstance(request, DoNotCallPhoneRequest):
        text = f"phone={request.phone_number} app={application} campaign={campaign}"
        return text + (f" list={calling_list}" if calling_list else "")
    if isinstance(request, AddRecordRequest):
        return (
            f"phone={request.phone_number} app={application} campaign={campaign} "
            f"list={calling_list}"
        )
    return f"campaign={campaign or '?'} app={application if application is not None else '?'}"


def _chained_text(record: Mapping[str, Any]) -> str:
    """One chained record (an ``OutboundRecordMessage`` record, or a user event's userData)."""

    def get(key: str, user_data_key: str) -> Any:
        value = record.get(key)
        return value if value is not None else record.get(user_data_key)

    return (
        "chained        "
        + _record_text(
            get("recordHandle", "GSW_RECORD_HANDLE"),
            get("applicationId", "GSW_APPLICATION_ID"),
            get("campaignName", "GSW_CAMPAIGN_NAME"),
            get("callingList", "GSW_CALLING_LIST"),
        )
        + f" chain={get('chainId', 'GSW_CHAIN_ID') or '?'}"
        + f" phone={get('phoneNumber', 'GSW_PHONE') or '?'}"
    )


def describe_operation_ack(ack: OperationAck) -> str:
    """The acknowledgement of any operation but a cancel; ``GetChainedRecord`` adds one line
    per chained record."""
    request = ack.request
    lines: list[str] = []
    text = f"acknowledged   {ack.operation} "
    if ack.operation == "GetPreviewRecord":
        data: Mapping[str, Any] = ack.record.get("userData") or {}
        if ack.empty:
            text += _request_text(request) + " empty (no record available)"
        else:
            text += _record_text(
                ack.record_handle,
                data.get("GSW_APPLICATION_ID"),
                data.get("GSW_CAMPAIGN_NAME"),
                data.get("GSW_CALLING_LIST"),
            )
            text += f" chain={data.get('GSW_CHAIN_ID', '?')} phone={data.get('GSW_PHONE', '?')}"
    elif ack.operation == "AddRecord":
        text += (
            _record_text(
                ack.record_handle,
                getattr(request, "application_id", None) or ack.record.get("applicationId"),
                getattr(request, "campaign_name", None) or ack.record.get("campaignName"),
                getattr(request, "calling_list", None) or ack.record.get("callingList"),
            )
            + f" chain={ack.record.get('chainId', '?')}"
        )
    elif request is None:
        text += _record_text(
            ack.record_handle,
            ack.record.get("applicationId"),
            ack.record.get("campaignName"),
            ack.record.get("callingList"),
        )
    else:
        text += _request_text(request, ack.record)
    if isinstance(request, CompleteRecordRequest) and request.call_result is not None:
        text += f" callResult={request.call_result}"
    if isinstance(request, RescheduleRecordRequest):
        text += f" callback={request.callback_type.value} at={request.scheduled_time.isoformat()}"
    if ack.operation == "GetChainedRecord":
        text += f" chained={len(ack.records)}"
    text += f" referenceId={ack.reference_id or '?'}"
    if request is None:
        text += " (requested by another client)"
    lines.append(text)
    if ack.operation == "GetChainedRecord":
        lines += [_chained_text(record) for record in ack.records]
    return "\n".join(lines)


def describe_operation_failure(failure: OperationFailure) -> str:
    request = failure.request
    return (
        f"{_failure_head(failure)}{failure.operation} {_failure_text(failure)} "
        f"{_request_text(request)}"
        f" referenceId={request.reference_id}"
    )


def describe_user_event(event: UserEvent) -> str:
    data = event.user_data

    def get(key: str) -> Any:
        return data.get(key)

    text = f"user_event     {event.user_event or '?'} "
    if get("GSW_RECORD_HANDLE") is None and get("GSW_CALLING_LIST") is None:
        # A campaign's event (CampaignStarted, a preview session...): no record to show.
        application = get("GSW_APPLICATION_ID")
        text += f"campaign={get('GSW_CAMPAIGN_NAME') or '?'} "
        text += f"app={application if application is not None else '?'}"
    else:
        text += _record_text(
            get("GSW_RECORD_HANDLE"),
            get("GSW_APPLICATION_ID"),
            get("GSW_CAMPAIGN_NAME"),
            get("GSW_CALLING_LIST"),
        )
    if event.is_error:
        text += f" error={get('GSW_ERROR_NUMBER')} message={json.dumps(get('GSW_ERROR'))}"
    if event.device_id:
        text += f" device={event.device_id}"
    return text + f" channel={event.channel}"


def describe_unsolicited(
    event: RecordCancelledEvent | ScheduledCallEvent | PreviewRecordEvent | CampaignStatusEvent,
) -> str:
    """An event OCS sent unprompted, on one line."""
    if isinstance(event, CampaignStatusEvent):
        text = f"campaign       {event.status.value} campaign={event.campaign_name or '?'} "
        text += f"app={event.application_id if event.application_id is not None else '?'}"
        if event.dialing_mode:
            text += f" mode={event.dialing_mode}"
        return text
    if isinstance(event, PreviewRecordEvent):
        data = event.user_data
        return (
            "preview_record "
            + _record_text(
                event.record_handle,
                data.get("GSW_APPLICATION_ID"),
                data.get("GSW_CAMPAIGN_NAME"),
                data.get("GSW_CALLING_LIST"),
            )
            + f" phone={data.get('GSW_PHONE', '?')} (pushed by OCS)"
        )
    label = "scheduled_call " if isinstance(event, ScheduledCallEvent) else "record_cancel  "
    text = label + _record_text(
        event.record_handle, event.application_id, event.campaign_name, event.calling_list
    )
    if isinstance(event, ScheduledCallEvent):
        kind = event.callback_type.value if event.callback_type else "?"
        return text + f" callback={kind} phone={event.phone_number or '?'} (callback due)"
    return text + " (cancelled by someone else)"


def describe_connection(state: str) -> str:
    """A loss of the CometD session, or its return, on one line."""
    if state == "reconnecting":
        return "connection     lost: reconnecting (no event can be heard until it is back)"
    return "connection     back: connected and subscribed again (events meanwhile may be missed)"


def _connection_text(change: Mapping[str, Any]) -> str:
    return describe_connection(change["state"])


#: How a hook call reads as a line of text, by hook, from its payload (several arguments as
#: a dict): what ``tail`` prints, and the operation commands for outcomes.
HOOK_TEXT: Final[Mapping[str, Callable[[Any], str]]] = {
    "on_user_event": describe_user_event,
    "on_record_cancel_acknowledged": describe_ack,
    "on_cancel_failed": _failure_line,
    "on_operation_acknowledged": describe_operation_ack,
    "on_operation_failed": describe_operation_failure,
    "on_record_cancelled": describe_unsolicited,
    "on_scheduled_call": describe_unsolicited,
    "on_preview_record": describe_unsolicited,
    "on_campaign_status": describe_unsolicited,
    "on_connection_state_changed": _connection_text,
}


def hook_text(hook: str, payload: Any) -> str:
    """``payload`` of ``hook`` as a line of text (a hook :data:`HOOK_TEXT` lacks: its name
    and the payload's repr)."""
    describe = HOOK_TEXT.get(hook)
    return describe(payload) if describe is not None else f"{hook} {payload!r}"
