"""What the simulated OCS does with each accepted operation: the command applied to the record
model, and the CometD messages of its outcome (built by ``_ocs_messages``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._ocs_messages import (
    CAMPAIGN_MESSAGE,
    RECORD_MESSAGE,
    Message,
    campaign_keys,
    command_keys,
    date_time,
    error_event,
    outcome,
    preview_messages,
    record_keys,
    record_user_data,
)
from ._outbound import Command, error_message
from ._records import CampaignState, Change, OCSModel, OCSRefusal, RecordState, SeedRecord

__all__ = ["Message", "OCSActions"]

_Action = Callable[[Command, str, Change, int], list[Message]]


def _ack_record(record: SeedRecord, device_path: str) -> dict[str, Any]:
    return {
        "devicePath": device_path,
        "callingList": record.calling_list,
        "applicationId": record.application_id,
        "recordHandle": record.record_handle,
        "campaignName": record.campaign_name,
    }


class OCSActions:
    """Applies accepted commands to the OCS record model and builds the messages of their
    outcomes (or of OCS's refusal).

    :param clock: what a change is stamped with (``clock()``: epoch seconds).
    """

    def __init__(self, model: OCSModel, clock: Callable[[], float]) -> None:
        self._model = model
        self._clock = clock
        self._actions: Mapping[tuple[str, str], _Action] = {
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

    def perform(self, command: Command, username: str, started_ns: int) -> list[Message]:
        """Apply ``command`` for ``username``: its messages, or OCS's error event."""
        return self.perform_judged(command, username, started_ns)[0]

    def perform_judged(
        self, command: Command, username: str, started_ns: int
    ) -> tuple[list[Message], int | None]:
        """As :meth:`perform`, with OCS's error number when it refused (else ``None``)."""
        change = Change(username, command.reference_id, self._clock())
        action = self._actions[(command.resource, command.operation)]
        try:
            return action(command, username, change, started_ns), None
        except OCSRefusal as refusal:
            state = refusal.state
            if state is None and command.record_handle is not None:
                state = self._model.view.get(command.record_handle)
            text = refusal.error.text
            number = int(refusal.error)
            return [error_event(command, number, text, state, started_ns)], number

    def refuse(self, command: Command, number: int, text: str, started_ns: int) -> list[Message]:
        """OCS's error event for ``command`` (the ``ocs_error`` fault); nothing changes."""
        state = None
        if command.record_handle is not None:
            state = self._model.view.get(command.record_handle)
        return [error_event(command, number, text, state, started_ns)]

    @staticmethod
    def cometd_error(command: Command, code: int, text: str, channel: str) -> list[Message]:
        """The ``cometd_error`` fault's ``ErrorMessage``; nothing changes."""
        return [(channel, error_message(command.reference_id, code, text))]

    # ------------------------------------------------------------------- records
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
        state: RecordState,
        started_ns: int,
        *,
        chain_attribute: bool = False,
        phone: bool = False,
        chain_id: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> list[Message]:
        """A record operation's acknowledgement, from the record as it is now: its keys, then
        (as asked) ``GSW_CHAIN_ATTR`` (when sent), ``GSW_PHONE``, ``GSW_CHAIN_ID``, ``extra``."""
        record = self._model.view[state.record.record_handle].record
        user_data = record_keys(command.acknowledgement, record)
        if chain_attribute and command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        if phone:
            user_data["GSW_PHONE"] = record.phone_number
        if chain_id:
            user_data["GSW_CHAIN_ID"] = record.chain_id
        user_data.update(extra or {})
        return self._outcome(
            command, _ack_record(record, command.device_path), user_data, started_ns
        )

    def _cancel(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.cancel(state, all_chain=command.chain_attribute == "AllChain", change=change)
        return self._ack(command, state, started_ns, chain_attribute=True, phone=True)

    def _reject(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.reject(state, change)
        return self._ack(command, state, started_ns)

    def _complete(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        state = self._state(command)
        self._model.complete(state, command.call_result, change)
        return self._ack(command, state, started_ns, phone=True)

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
        return self._ack(command, state, started_ns, chain_attribute=True, phone=True)

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
        extra = {
            "GSW_CALLBACK_TYPE": command.callback_type,
            "GSW_DATE_TIME": date_time(command.timestamp),
        }
        return self._ack(command, state, started_ns, extra=extra)

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
        return self._ack(command, state, started_ns, phone=True)

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
            user_data = record_user_data(self._model, "ChainedRecord", chained, username)
            messages += outcome(
                RECORD_MESSAGE,
                "ChainedRecord",
                command.reference_id,
                payload,
                command.device_id,
                user_data,
                started_ns,
            )
        messages += self._ack(command, state, started_ns, chain_id=True)
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
        user_data = record_keys(command.acknowledgement, record)
        user_data["GSW_CHAIN_ID"] = record.chain_id
        user_data["GSW_PHONE"] = record.phone_number
        return self._outcome(command, payload, user_data, started_ns)

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
        user_data = command_keys(command)
        if command.chain_attribute is not None:
            user_data["GSW_CHAIN_ATTR"] = command.chain_attribute
        user_data["GSW_PHONE"] = command.phone_number
        return self._outcome(command, payload, user_data, started_ns)

    def _outcome(
        self,
        command: Command,
        payload: dict[str, Any],
        user_data: dict[str, Any],
        started_ns: int,
        message_type: str = RECORD_MESSAGE,
        notification: str | None = None,
    ) -> list[Message]:
        """``command``'s outcome pair, on its device, acknowledging it (or ``notification``)."""
        return outcome(
            message_type,
            notification or command.acknowledgement,
            command.reference_id,
            payload,
            command.device_id,
            user_data,
            started_ns,
        )

    # ----------------------------------------------------------------- campaigns
    def _campaign(self, command: Command) -> CampaignState:
        campaign = self._model.campaign(command.campaign_name, command.application_id)
        assert campaign is not None, "validated before"
        return campaign

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
        user_data = campaign_keys(command.acknowledgement, campaign)
        return self._outcome(
            command, payload, user_data, started_ns, CAMPAIGN_MESSAGE, "PreviewSessionStarted"
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
        user_data = campaign_keys(command.acknowledgement, campaign)
        return self._outcome(
            command, payload, user_data, started_ns, CAMPAIGN_MESSAGE, "PreviewSessionEnded"
        )

    def _preview_record(
        self, command: Command, username: str, change: Change, started_ns: int
    ) -> list[Message]:
        campaign = self._campaign(command)
        state = self._model.next_preview_record(username, campaign, change)
        return preview_messages(
            self._model, state, username, command.device_id, command.reference_id, started_ns
        )
