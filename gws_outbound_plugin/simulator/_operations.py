"""What the simulated OCS does with each accepted operation, and the CometD messages that say so.

Every builder here reads the record store (``OCSModel``), never the request, for what a
record holds: GWS fills an acknowledgement's ``record`` from OCS's answer. The exact shapes
are listed in ``docs/simulator.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ._clock import SimulatorClock
from ._outbound import (
    OUTBOUND_CHANNEL,
    USER_EVENT_CHANNEL,
    Command,
    error_message,
    outbound_message,
    user_event,
)
from ._records import (
    CampaignState,
    Change,
    OCSModel,
    OCSRefusal,
    RecordState,
    SeedRecord,
)

__all__ = ["Engine", "Message"]

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


def _ack_record(record: SeedRecord, device_path: str) -> dict[str, Any]:
    return {
        "devicePath": device_path,
        "callingList": record.calling_list,
        "applicationId": record.application_id,
        "recordHandle": record.record_handle,
        "campaignName": record.campaign_name,
    }


def _record_keys(event: str, record: SeedRecord) -> dict[str, Any]:
    return {
        "GSW_USER_EVENT": event,
        "GSW_APPLICATION_ID": record.application_id,
        "GSW_RECORD_HANDLE": record.record_handle,
        "GSW_CALLING_LIST": record.calling_list,
        "GSW_CAMPAIGN_NAME": record.campaign_name,
    }


class Engine:
    """Applies commands to the model and builds the messages of their outcomes.

    :param device_id: the bare device id of a user (the ``deviceId`` of their user events).
    """

    def __init__(
        self, model: OCSModel, clock: SimulatorClock, device_id: Callable[[str], str]
    ) -> None:
        self._model = model
        self._clock = clock
        self._device_id = device_id
        self._handlers: Mapping[tuple[str, str], Callable[..., list[Message]]] = {
            ("record", "CancelRecord"): self._cancel,
            ("record", "RejectRecord"): self._reject,
            ("record", "CompleteRecord"): self._complete,
            ("record", "DoNotCallRecord"): self._do_not_call,
            ("record", "RescheduleRecord"): self._reschedule,
            ("record", "UpdateRecord"): self._update,
            ("record", "GetChainedRecord"): self._chained,
            ("records", "AddRecord"): self._add,
            ("records", "DoNotCallRecord"): self._do_not_call_number,
            ("campaign", "StartPreviewSession"): self._start_preview,
            ("campaign", "GetPreviewRecord"): self._preview_record,
            ("campaign", "EndPreviewSession"): self._end_preview,
        }

    # ------------------------------------------------------------------ requests
    def perform(self, command: Command, username: str, started_ns: int) -> list[Message]:
        """Apply ``command`` for ``username``: its messages, or OCS's error event."""
        change = Change(username, command.reference_id, self._clock.now())
        handler = self._handlers[(command.resource, command.operation)]
        try:
            return handler(command, username, change, started_ns)
        except OCSRefusal as refusal:
            state = refusal.state
            if state is None and command.record_handle is not None:
                state = self._model.view.get(command.record_handle)
            return [
                self._error_event(
                    command, int(refusal.error), refusal.error.text, state, started_ns
                )
            ]

    def refuse(self, command: Command, number: int, text: str, started_ns: int) -> list[Message]:
        """OCS's error event for ``command`` (the ``ocs_error`` fault); nothing changes."""
        state = None
        if command.record_handle is not None:
            state = self._model.view.get(command.record_handle)
        return [self._error_event(command, number, text, state, started_ns)]

    @staticmethod
    def cometd_error(command: Command, code: int, text: str, channel: str) -> list[Message]:
        """The ``cometd_error`` fault's ``ErrorMessage``; nothing changes."""
        return [(channel, error_message(command.reference_id, code, text))]

    def _event(self, device_id: str, user_data: dict[str, Any], started_ns: int) -> Message:
        return (USER_EVENT_CHANNEL, user_event(device_id, user_data, started_ns=started_ns))

    def _error_event(
        self,
        command: Command,
        number: int,
        text: str,
        state: RecordState | None,
        started_ns: int,
    ) -> Message:
        event = command.acknowledgement
        user_data: dict[str, Any]
        if command.record_handle is not None:
            if state is not None:
                user_data = _record_keys(event, state.record)
            else:
                user_data = {
                    "GSW_USER_EVENT": event,
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
            user_data = {
                "GSW_USER_EVENT": event,
                "GSW_APPLICATION_ID": command.application_id,
                "GSW_CAMPAIGN_NAME": command.campaign_name,
            }
            if command.calling_list is not None:
                user_data["GSW_CALLING_LIST"] = command.calling_list
            if command.phone_number is not None:
                user_data["GSW_PHONE"] = command.phone_number
            if command.reference_id is not None:
                user_data["GSW_REFERENCE_ID"] = command.reference_id
        user_data["GSW_ERROR"] = text
        user_data["GSW_ERROR_NUMBER"] = number
        return self._event(command.device_id, user_data, started_ns)

    def _state(self, command: Command, *, with_list: bool = True) -> RecordState:
        assert command.record_handle is not None
        return self._model.record(
            command.record_handle,
            application_id=command.application_id,
            campaign_name=command.campaign_name,
            calling_list=command.calling_list if with_list else None,
        )

    def _ack(
        self,
        command: Command,
        record: SeedRecord,
        user_data: dict[str, Any],
        started_ns: int,
        notification: str | None = None,
    ) -> list[Message]:
        outbound = outbound_message(
            RECORD_MESSAGE,
            notification or command.acknowledgement,
            command.reference_id,
            "record",
            _ack_record(record, command.device_path),
        )
        return [
            (OUTBOUND_CHANNEL, outbound),
            self._event(command.device_id, user_data, started_ns),
        ]

    def _current(self, state: RecordState) -> SeedRecord:
        return self._model.view[state.record.record_handle].record

    def _cancel(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.cancel(state, all_chain=command.chain_attribute == "AllChain", change=change)
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        if command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        user_data["GSW_PHONE"] = record.phone_number
        return self._ack(command, record, user_data, started_ns)

    def _reject(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.reject(state, change)
        record = self._current(state)
        return self._ack(command, record, _record_keys(command.acknowledgement, record), started_ns)

    def _complete(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.complete(state, command.call_result, change)
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        user_data["GSW_PHONE"] = record.phone_number
        return self._ack(command, record, user_data, started_ns)

    def _do_not_call(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.do_not_call(
            state,
            phone_number=command.phone_number,
            all_chain=command.chain_attribute == "AllChain",
            change=change,
        )
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        if command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        user_data["GSW_PHONE"] = record.phone_number
        return self._ack(command, record, user_data, started_ns)

    def _reschedule(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        assert command.callback_type is not None and command.timestamp is not None
        state = self._state(command, with_list=False)
        self._model.reschedule(
            state,
            callback_type=command.callback_type,
            timestamp=command.timestamp,
            username=username,
            change=change,
        )
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        user_data["GSW_CALLBACK_TYPE"] = command.callback_type
        user_data["GSW_DATE_TIME"] = date_time(command.timestamp)
        return self._ack(command, record, user_data, started_ns)

    def _update(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("phone_number", command.phone_number),
                ("time_zone", command.time_zone),
                ("phone_type", command.phone_type),
                ("dial_from", command.dial_from),
                ("dial_until", command.dial_until),
            )
            if value is not None
        }
        self._model.update(state, changes, change)
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        user_data["GSW_PHONE"] = record.phone_number
        return self._ack(command, record, user_data, started_ns)

    def _chained(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command, with_list=False)
        messages: list[Message] = []
        for chained in self._model.chained(state, username, change):
            record = chained.record
            payload = _ack_record(record, command.device_path)
            payload["chainId"] = record.chain_id
            payload["phoneNumber"] = record.phone_number
            messages.append(
                (
                    OUTBOUND_CHANNEL,
                    outbound_message(
                        RECORD_MESSAGE, "ChainedRecord", command.reference_id, "record", payload
                    ),
                )
            )
            user_data = self.record_user_data("ChainedRecord", chained, username)
            messages.append(self._event(command.device_id, user_data, started_ns))
        record = self._current(state)
        user_data = _record_keys(command.acknowledgement, record)
        user_data["GSW_CHAIN_ID"] = record.chain_id
        messages.extend(self._ack(command, record, user_data, started_ns))
        return messages

    def _add(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        assert command.calling_list is not None and command.phone_number is not None
        assert command.time_zone is not None and command.phone_type is not None
        assert command.dial_from is not None and command.dial_until is not None
        state = self._model.add(
            application_id=command.application_id,
            campaign_name=command.campaign_name,
            calling_list=command.calling_list,
            phone_number=command.phone_number,
            time_zone=command.time_zone,
            phone_type=command.phone_type,
            dial_from=command.dial_from,
            dial_until=command.dial_until,
            chain_id=command.chain_id,
            other_fields=command.other_fields,
            change=change,
        )
        record = state.record
        payload = {
            "recordHandle": record.record_handle,
            "phoneNumber": record.phone_number,
            "callingList": record.calling_list,
            "campaignName": record.campaign_name,
            "applicationId": record.application_id,
            "devicePath": command.device_path,
            "chainId": record.chain_id,
        }
        user_data = _record_keys(command.acknowledgement, record)
        user_data["GSW_CHAIN_ID"] = record.chain_id
        user_data["GSW_PHONE"] = record.phone_number
        return [
            (
                OUTBOUND_CHANNEL,
                outbound_message(
                    RECORD_MESSAGE, command.acknowledgement, command.reference_id, "record", payload
                ),
            ),
            self._event(command.device_id, user_data, started_ns),
        ]

    def _do_not_call_number(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        assert command.phone_number is not None
        self._model.do_not_call_number(
            phone_number=command.phone_number,
            application_id=command.application_id,
            campaign_name=command.campaign_name,
            calling_list=command.calling_list,
            change=change,
        )
        payload: dict[str, Any] = {"devicePath": command.device_path}
        if command.calling_list is not None:
            payload["callingList"] = command.calling_list
        payload["applicationId"] = command.application_id
        payload["phoneNumber"] = command.phone_number
        payload["campaignName"] = command.campaign_name
        user_data: dict[str, Any] = {
            "GSW_USER_EVENT": command.acknowledgement,
            "GSW_APPLICATION_ID": command.application_id,
            "GSW_CAMPAIGN_NAME": command.campaign_name,
        }
        if command.calling_list is not None:
            user_data["GSW_CALLING_LIST"] = command.calling_list
        if command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        user_data["GSW_PHONE"] = command.phone_number
        return [
            (
                OUTBOUND_CHANNEL,
                outbound_message(
                    RECORD_MESSAGE, command.acknowledgement, command.reference_id, "record", payload
                ),
            ),
            self._event(command.device_id, user_data, started_ns),
        ]

    def _campaign(self, command: Command) -> CampaignState:
        campaign = self._model.campaign(command.campaign_name, command.application_id)
        assert campaign is not None, "validated before"
        return campaign

    def _campaign_keys(self, event: str, campaign: CampaignState) -> dict[str, Any]:
        return {
            "GSW_USER_EVENT": event,
            "GSW_APPLICATION_ID": campaign.application_id,
            "GSW_CAMPAIGN_NAME": campaign.name,
            "GSW_CAMPAIGN_GROUP_NAME": campaign.group_name,
        }

    def _start_preview(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        campaign = self._campaign(command)
        self._model.start_preview(username, campaign)
        payload = {
            "name": campaign.name,
            "dialingMode": campaign.dialing_mode,
            "groupName": campaign.group_name,
            "state": campaign.state,
            "devicePath": command.device_path,
            "applicationId": campaign.application_id,
            "groupDescription": campaign.group_description,
            "description": campaign.description,
        }
        return self._campaign_messages(
            command, campaign, "PreviewSessionStarted", payload, started_ns
        )

    def _end_preview(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        campaign = self._campaign(command)
        self._model.end_preview(username, campaign)
        payload = {
            "devicePath": command.device_path,
            "state": campaign.state,
            "applicationId": campaign.application_id,
            "name": campaign.name,
        }
        return self._campaign_messages(
            command, campaign, "PreviewSessionEnded", payload, started_ns
        )

    def _campaign_messages(
        self,
        command: Command,
        campaign: CampaignState,
        notification: str,
        payload: dict[str, Any],
        started_ns: int,
    ) -> list[Message]:
        """A campaign operation's ``OutboundCampaignMessage`` and its OCS user event."""
        return [
            (
                OUTBOUND_CHANNEL,
                outbound_message(
                    CAMPAIGN_MESSAGE, notification, command.reference_id, "campaign", payload
                ),
            ),
            self._event(
                command.device_id,
                self._campaign_keys(command.acknowledgement, campaign),
                started_ns,
            ),
        ]

    def _preview_record(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        campaign = self._campaign(command)
        state = self._model.next_preview_record(username, campaign, change)
        return self.preview_messages(
            state, username, command.device_id, command.reference_id, started_ns
        )

    # --------------------------------------------------------------- unsolicited
    def preview_messages(
        self,
        state: RecordState,
        username: str,
        device_id: str,
        reference_id: str | None,
        started_ns: int,
    ) -> list[Message]:
        """The ``PreviewRecord`` outbound message and user event for a record handed out."""
        user_data = self.record_user_data("PreviewRecord", state, username)
        return [
            (
                OUTBOUND_CHANNEL,
                outbound_message(
                    RECORD_MESSAGE,
                    "PreviewRecord",
                    reference_id,
                    "record",
                    {"userData": dict(user_data)},
                ),
            ),
            self._event(device_id, user_data, started_ns),
        ]

    def record_user_data(self, event: str, state: RecordState, username: str) -> dict[str, Any]:
        """The whole record as OCS hands it to an agent (preview, chained, scheduled call)."""
        record = state.record
        campaign = self._model.campaign(record.campaign_name, record.application_id)
        user_data: dict[str, Any] = {
            "GSW_USER_EVENT": event,
            "GSW_AGENT_ID": username,
            "GSW_RECORD_HANDLE": record.record_handle,
            "GSW_CHAIN_ID": record.chain_id,
            "GSW_PHONE": record.phone_number,
            "GSW_CALLING_LIST": record.calling_list,
            "GSW_CALLING_LIST_DBID": self._model.list_dbid(record),
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

    def scheduled_call(self, state: RecordState, started_ns: int) -> tuple[str, list[Message]]:
        """The ``ScheduledCall`` user event of a delivered callback, and its user."""
        username = state.held_by
        assert username is not None
        user_data = self.record_user_data("ScheduledCall", state, username)
        user_data["GSW_CALLBACK_TYPE"] = state.callback_type
        if state.scheduled_for is not None:  # pragma: no branch - always set when due
            user_data["GSW_DATE_TIME"] = date_time(state.scheduled_for)
        return username, [self._event(self._device_id(username), user_data, started_ns)]

    def record_cancel(self, state: RecordState, holder: str, started_ns: int) -> list[Message]:
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
        return [self._event(self._device_id(holder), user_data, started_ns)]

    def campaign_status(
        self, campaign: CampaignState, event: str, username: str, started_ns: int
    ) -> list[Message]:
        """An unsolicited campaign status user event (``CampaignStarted``, ...)."""
        user_data = {
            "GSW_USER_EVENT": event,
            "GSW_CAMPAIGN_NAME": campaign.name,
            "GSW_APPLICATION_ID": campaign.application_id,
            "GSW_CAMPAIGN_GROUP_NAME": campaign.group_name,
            "GSW_CAMPAIGN_MODE": campaign.dialing_mode,
        }
        return [self._event(self._device_id(username), user_data, started_ns)]
