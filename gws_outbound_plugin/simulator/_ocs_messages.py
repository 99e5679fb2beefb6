"""The CometD messages in which the simulated OCS speaks: an outcome's pair (the
``Outbound...Message`` and its user event), OCS's error event, the whole record as it hands it
to an agent, and the unsolicited events (``ScheduledCall``, ``RecordCancel``, campaign status).

Every builder reads the record store (``OCSModel``), never the request, for what a record
holds: GWS fills an acknowledgement's ``record`` from OCS's answer. The exact shapes are listed
in ``docs/simulator.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ._outbound import (
    OUTBOUND_CHANNEL,
    USER_EVENT_CHANNEL,
    Command,
    outbound_message,
    user_event,
)
from ._records import CampaignState, OCSModel, RecordState, SeedRecord

__all__ = [
    "CAMPAIGN_MESSAGE",
    "RECORD_MESSAGE",
    "Message",
    "campaign_keys",
    "campaign_status",
    "command_keys",
    "date_time",
    "error_event",
    "event",
    "outcome",
    "preview_messages",
    "record_cancel",
    "record_keys",
    "record_user_data",
    "scheduled_call",
]

#: (channel, data) of one CometD message.
Message = tuple[str, dict[str, Any]]

RECORD_MESSAGE: Final = "OutboundRecordMessage"
CAMPAIGN_MESSAGE: Final = "OutboundCampaignMessage"
#: ``GSW_CALL_RESULT`` of a record handed out (the value of the GWS preview sample).
CALL_RESULT_SAMPLE: Final = 28
SWITCH_DBID: Final = 101
#: ``GSW_TZ_OFFSET`` (seconds east of UTC) for the time zone names the simulator knows;
#: any other name gets 0.
TZ_OFFSETS: Final[Mapping[str, int]] = {
    "UTC": 0,
    "GMT": 0,
    "CET": 3_600,
    "EET": 7_200,
    "EST": -18_000,
    "EDT": -14_400,
    "CST": -21_600,
    "CDT": -18_000,
    "MST": -25_200,
    "MDT": -21_600,
    "PST": -28_800,
    "PDT": -25_200,
}


def date_time(epoch: float) -> str:
    """``GSW_DATE_TIME`` as OCS desktops format it (``MM/dd/yyyy HH:mm``), in UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%m/%d/%Y %H:%M")


def record_keys(event_name: str, record: SeedRecord) -> dict[str, Any]:
    """The ``userData`` keys naming a record, for the user event ``event_name``."""
    return {
        "GSW_USER_EVENT": event_name,
        "GSW_APPLICATION_ID": record.application_id,
        "GSW_RECORD_HANDLE": record.record_handle,
        "GSW_CALLING_LIST": record.calling_list,
        "GSW_CAMPAIGN_NAME": record.campaign_name,
    }


def campaign_keys(event_name: str, campaign: CampaignState) -> dict[str, Any]:
    """The ``userData`` keys naming a campaign, for the user event ``event_name``."""
    return {
        "GSW_USER_EVENT": event_name,
        "GSW_APPLICATION_ID": campaign.application_id,
        "GSW_CAMPAIGN_NAME": campaign.name,
        "GSW_CAMPAIGN_GROUP_NAME": campaign.group_name,
    }


def event(device_id: str, user_data: dict[str, Any], started_ns: int) -> Message:
    """An OCS user event (``DeviceUserEventMessage``) on the device's channel."""
    return (USER_EVENT_CHANNEL, user_event(device_id, user_data, started_ns=started_ns))


def outcome(
    message_type: str,
    notification: str,
    reference_id: str | None,
    payload: dict[str, Any],
    device_id: str,
    user_data: dict[str, Any],
    started_ns: int,
) -> list[Message]:
    """An outcome's two messages: the ``Outbound...Message`` and the OCS user event."""
    resource = "campaign" if message_type == CAMPAIGN_MESSAGE else "record"
    outbound = outbound_message(message_type, notification, reference_id, resource, payload)
    return [(OUTBOUND_CHANNEL, outbound), event(device_id, user_data, started_ns)]


def error_event(
    command: Command, number: int, text: str, state: RecordState | None, started_ns: int
) -> Message:
    """OCS's error user event for ``command`` (``state``: its record, when known)."""
    user_data: dict[str, Any]
    if command.record_handle is not None:
        if state is not None:
            user_data = record_keys(command.acknowledgement, state.record)
        else:
            user_data = {
                "GSW_USER_EVENT": command.acknowledgement,
                "GSW_APPLICATION_ID": command.application_id,
                "GSW_RECORD_HANDLE": command.record_handle,
            }
            if command.calling_list is not None:
                user_data["GSW_CALLING_LIST"] = command.calling_list
            user_data["GSW_CAMPAIGN_NAME"] = command.campaign_name
        if command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        phone = state.record.phone_number if state is not None else command.phone_number
        if phone is not None:
            user_data["GSW_PHONE"] = phone
    else:
        user_data = command_keys(command)
        if command.phone_number is not None:
            user_data["GSW_PHONE"] = command.phone_number
        if command.reference_id is not None:
            user_data["GSW_REFERENCE_ID"] = command.reference_id
    user_data["GSW_ERROR"] = text
    user_data["GSW_ERROR_NUMBER"] = number
    return event(command.device_id, user_data, started_ns)


def command_keys(command: Command) -> dict[str, Any]:
    """The ``userData`` keys naming what ``command`` names (no record known)."""
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": command.acknowledgement,
        "GSW_APPLICATION_ID": command.application_id,
        "GSW_CAMPAIGN_NAME": command.campaign_name,
    }
    if command.calling_list is not None:
        user_data["GSW_CALLING_LIST"] = command.calling_list
    return user_data


def record_user_data(
    model: OCSModel, event_name: str, state: RecordState, username: str
) -> dict[str, Any]:
    """The whole record as OCS hands it to an agent (preview, chained, scheduled call)."""
    record = state.record
    campaign = model.campaign(record.campaign_name, record.application_id)
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": event_name,
        "GSW_AGENT_ID": username,
        "GSW_RECORD_HANDLE": record.record_handle,
        "GSW_CHAIN_ID": record.chain_id,
        "GSW_PHONE": record.phone_number,
        "GSW_CALLING_LIST": record.calling_list,
        "GSW_CALLING_LIST_DBID": model.list_dbid(record),
        "GSW_CAMPAIGN_NAME": record.campaign_name,
        "GSW_CAMPAIGN_GROUP_NAME": campaign.group_name if campaign else "",
        "GSW_CAMPAIGN_GROUP_DBID": campaign.group_dbid if campaign else 0,
        "GSW_CAMPAIGN_GROUP_DESCRIPTION": campaign.group_description if campaign else "",
        "GSW_APPLICATION_ID": record.application_id,
        "GSW_SWITCH_DBID": SWITCH_DBID,
        "GSW_ATTEMPTS": state.attempts,
        "GSW_CALL_RESULT": CALL_RESULT_SAMPLE,
        "GSW_CALL_ATTEMPT_GUID": uuid.uuid4().hex.upper(),
        "GSW_TZ_NAME": record.time_zone,
        "GSW_TZ_OFFSET": TZ_OFFSETS.get(record.time_zone, 0),
        "InteractionType": "Outbound",
        "InteractionSubtype": "OutboundNew",
    }
    for name, value in record.other_fields.items():
        user_data.setdefault(name, value)
    return user_data


def preview_messages(
    model: OCSModel,
    state: RecordState,
    username: str,
    device_id: str,
    reference_id: str | None,
    started_ns: int,
) -> list[Message]:
    """The ``PreviewRecord`` outbound message and user event for a record handed out."""
    user_data = record_user_data(model, "PreviewRecord", state, username)
    payload = {"userData": dict(user_data)}
    return outcome(
        RECORD_MESSAGE, "PreviewRecord", reference_id, payload, device_id, user_data, started_ns
    )


def scheduled_call(
    model: OCSModel, state: RecordState, device_id: str, started_ns: int
) -> list[Message]:
    """The ``ScheduledCall`` user event of a delivered callback (to its holder's device)."""
    username = state.held_by
    assert username is not None
    user_data = record_user_data(model, "ScheduledCall", state, username)
    user_data["GSW_CALLBACK_TYPE"] = state.callback_type
    if state.scheduled_for is not None:  # pragma: no branch - always set when due
        user_data["GSW_DATE_TIME"] = date_time(state.scheduled_for)
    return [event(device_id, user_data, started_ns)]


def record_cancel(state: RecordState, device_id: str, started_ns: int) -> list[Message]:
    """The unsolicited ``RecordCancel`` user event for a record someone else cancelled."""
    record = state.record
    user_data = {
        "GSW_USER_EVENT": "RecordCancel",
        "GSW_APPLICATION_ID": record.application_id,
        "GSW_CAMPAIGN_NAME": record.campaign_name,
        "GSW_CALLING_LIST": record.calling_list,
        "GSW_RECORD_HANDLE": record.record_handle,
        "GSW_CHAIN_ID": record.chain_id,
        "GSW_PHONE": record.phone_number,
    }
    return [event(device_id, user_data, started_ns)]


def campaign_status(
    campaign: CampaignState, event_name: str, device_id: str, started_ns: int
) -> list[Message]:
    """An unsolicited campaign status user event (``CampaignStarted``, ...)."""
    user_data = {
        "GSW_USER_EVENT": event_name,
        "GSW_CAMPAIGN_NAME": campaign.name,
        "GSW_APPLICATION_ID": campaign.application_id,
        "GSW_CAMPAIGN_GROUP_NAME": campaign.group_name,
        "GSW_CAMPAIGN_MODE": campaign.dialing_mode,
    }
    return [event(device_id, user_data, started_ns)]
