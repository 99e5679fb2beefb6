"""The simulator's outbound records and its small model of OCS (Outbound Contact Server).

A record is what OCS knows about one dialable entry of a calling list: its handle (the
number GWS puts in the URL and in ``GSW_RECORD_HANDLE``), the OCS application, campaign,
calling list, phone number and chain, plus the dialing data an agent sees (time zone, phone
type, dialing window, custom fields). Campaigns are the (campaign, application) pairs of the
records. The model applies each desktop request the way ``docs/simulator.md`` documents:
a request OCS accepts changes the records and the caller builds the acknowledgement from
the stored record; a request OCS refuses raises :class:`OCSRefusal` with one of the
simulator's own error numbers and changes nothing.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CALLBACK_TYPES",
    "CAMPAIGN_EVENTS",
    "CHAIN_ATTRIBUTES",
    "DEFAULT_RECORDS",
    "PHONE_TYPES",
    "CampaignState",
    "OCSError",
    "OCSRefusal",
    "RecordState",
    "RecordStatus",
    "SeedRecord",
    "load_records",
    "parse_records",
]

JAVA_INT_MAX = 2**31 - 1
_PACKAGE = "gws_outbound_plugin.simulator"

#: ``phoneType`` values GWS documents for AddRecord / UpdateRecord.
PHONE_TYPES: tuple[str, ...] = (
    "NoContactType",
    "HomePhone",
    "DirectBusinessPhone",
    "BusinessWithExt",
    "Mobile",
    "VacationPhone",
    "Pager",
    "Modem",
    "VoiceMail",
    "PinPager",
    "EmailAddress",
    "InstantMessaging",
)
CHAIN_ATTRIBUTES: tuple[str, ...] = ("AllChain", "RecordOnly")
CALLBACK_TYPES: tuple[str, ...] = ("Personal", "Campaign")
#: Unsolicited campaign status events and the campaign ``state`` each one leaves.
CAMPAIGN_EVENTS: Mapping[str, str | None] = MappingProxyType(
    {
        "CampaignLoaded": "Loaded",
        "CampaignStarted": "Started",
        "CampaignStopped": "Stopped",
        "CampaignUnloaded": "Unloaded",
        "CampaignModeChanged": None,
    }
)
_SECONDS_PER_DAY = 86_400
OtherValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class SeedRecord:
    """One outbound record the simulated OCS knows about.

    :param record_handle: OCS record handle (positive 32-bit integer, unique).
    :param application_id: DBID of the OCS application that owns the record.
    :param campaign_name: Campaign the calling list is loaded in.
    :param calling_list: Calling list holding the record.
    :param phone_number: The record's phone number.
    :param chain_id: Chain the record belongs to (records of one customer share it).
    :param time_zone: The record's time zone name (``GSW_TZ_NAME``).
    :param phone_type: One of :data:`PHONE_TYPES`.
    :param dial_from: Start of the dialing window, seconds after midnight (JSON ``from``).
    :param dial_until: End of the dialing window, seconds after midnight (JSON ``until``).
    :param other_fields: Custom fields of the record (shown in the record's user data).
    """

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    phone_number: str
    chain_id: int
    time_zone: str = "PST"
    phone_type: str = "HomePhone"
    dial_from: int = 28_800
    dial_until: int = 72_000
    other_fields: Mapping[str, OtherValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        problems = [
            *_positive_int_problem("record_handle", self.record_handle),
            *_positive_int_problem("application_id", self.application_id),
            *_positive_int_problem("chain_id", self.chain_id),
            *_text_problem("campaign_name", self.campaign_name),
            *_text_problem("calling_list", self.calling_list),
            *_text_problem("phone_number", self.phone_number),
            *_text_problem("time_zone", self.time_zone),
            *_second_of_day_problem("dial_from", self.dial_from),
            *_second_of_day_problem("dial_until", self.dial_until),
        ]
        if self.phone_type not in PHONE_TYPES:
            problems.append(f"phone_type must be one of {', '.join(PHONE_TYPES)}")
        fields = self.other_fields
        if not isinstance(fields, Mapping) or not all(
            isinstance(key, str) and key and isinstance(value, OtherValue)
            for key, value in fields.items()
        ):
            problems.append("other_fields must map names to strings, numbers or booleans")
        if problems:
            raise ValueError("invalid SeedRecord: " + "; ".join(problems))
        object.__setattr__(self, "other_fields", MappingProxyType(dict(fields)))

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object with GWS's camelCase keys (readable by ``parse_records``)."""
        data: dict[str, Any] = {
            "recordHandle": self.record_handle,
            "applicationId": self.application_id,
            "campaignName": self.campaign_name,
            "callingList": self.calling_list,
            "phoneNumber": self.phone_number,
            "chainId": self.chain_id,
            "timeZone": self.time_zone,
            "phoneType": self.phone_type,
            "from": self.dial_from,
            "until": self.dial_until,
        }
        if self.other_fields:
            data["otherFields"] = dict(self.other_fields)
        return data


class RecordStatus(enum.StrEnum):
    """Where a record is in its life in the simulated OCS."""

    READY = "ready"
    """Dialable: GetPreviewRecord may hand it out."""
    HELD = "held"
    """Handed out to an agent (preview record, chained record, scheduled call)."""
    SCHEDULED = "scheduled"
    """Rescheduled: comes back as a ``ScheduledCall`` at ``scheduled_for``."""
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    DO_NOT_CALL = "do_not_call"

    @property
    def final(self) -> bool:
        """Completed, rejected, cancelled or do-not-call: OCS will not dial it again."""
        return self in _FINAL


_FINAL = frozenset(
    {
        RecordStatus.COMPLETED,
        RecordStatus.REJECTED,
        RecordStatus.CANCELLED,
        RecordStatus.DO_NOT_CALL,
    }
)


@dataclass(frozen=True, slots=True)
class RecordState:
    """What the simulated OCS currently holds for one record.

    :param record: The record's data (UpdateRecord changes it).
    :param status: See :class:`RecordStatus`.
    :param held_by: The user the record is handed out to (``HELD`` only).
    :param changed_by: GWS user whose request last changed the status (``None`` for a change
        made by OCS itself, e.g. a ``RecordCancel`` or a delivered ``ScheduledCall``).
    :param reference_id: ``referenceId`` of that request (``None`` when none was sent).
    :param changed_at: Simulator-clock time of that change (seconds since the epoch).
    :param call_result: ``callResult`` of the CompleteRecord, if any.
    :param callback_type: ``Personal`` or ``Campaign`` once rescheduled.
    :param scheduled_for: When the rescheduled record is due (epoch seconds).
    :param scheduled_user: The user its ``ScheduledCall`` goes to.
    :param attempts: Call attempts recorded (CompleteRecord counts one).
    """

    record: SeedRecord
    status: RecordStatus = RecordStatus.READY
    held_by: str | None = None
    changed_by: str | None = None
    reference_id: str | None = None
    changed_at: float | None = None
    call_result: str | None = None
    callback_type: str | None = None
    scheduled_for: float | None = None
    scheduled_user: str | None = None
    attempts: int = 0

    @property
    def cancelled(self) -> bool:
        """Whether the record was cancelled (alone, with its chain, or by ``RecordCancel``)."""
        return self.status is RecordStatus.CANCELLED

    @property
    def cancelled_by(self) -> str | None:
        """The user whose cancel cancelled it (``None`` unless cancelled by a request)."""
        return self.changed_by if self.cancelled else None

    @property
    def cancelled_at(self) -> float | None:
        """When it was cancelled (simulator clock), else ``None``."""
        return self.changed_at if self.cancelled else None


@dataclass(slots=True)
class CampaignState:
    """A campaign as the simulated OCS knows it (built from the records' campaign names).

    ``state`` and ``dialing_mode`` change with the unsolicited campaign status events.
    """

    name: str
    application_id: int
    calling_lists: tuple[str, ...]
    group_dbid: int
    group_name: str
    group_description: str = ""
    description: str = ""
    dialing_mode: str = "Preview"
    state: str = "Started"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "applicationId": self.application_id,
            "callingLists": list(self.calling_lists),
            "groupName": self.group_name,
            "dialingMode": self.dialing_mode,
            "state": self.state,
        }


class OCSError(enum.IntEnum):
    """The simulator's own ``GSW_ERROR_NUMBER`` values.

    Real OCS error numbers are not publicly documented; these are the simulator's choice,
    not OCS's. Only the text ``No Records Available`` was seen in real code.
    """

    SIMULATED = 100
    RECORD_NOT_FOUND = 101
    RECORD_ALREADY_CANCELLED = 102
    RECORD_NOT_IN_LIST = 103
    RECORD_ALREADY_COMPLETED = 104
    RECORD_ALREADY_REJECTED = 105
    RECORD_DO_NOT_CALL = 106
    NO_PREVIEW_SESSION = 107
    NO_RECORDS_AVAILABLE = 108
    CHAIN_NOT_FOUND = 109
    LIST_NOT_FOUND = 110

    @property
    def text(self) -> str:
        """The ``GSW_ERROR`` text that goes with the number."""
        return _ERROR_TEXTS[self]


_ERROR_TEXTS: Mapping[OCSError, str] = {
    OCSError.SIMULATED: "Simulated OCS error",
    OCSError.RECORD_NOT_FOUND: "Record not found",
    OCSError.RECORD_ALREADY_CANCELLED: "Record already cancelled",
    OCSError.RECORD_NOT_IN_LIST: "Record not found in the given application, campaign or list",
    OCSError.RECORD_ALREADY_COMPLETED: "Record already completed",
    OCSError.RECORD_ALREADY_REJECTED: "Record already rejected",
    OCSError.RECORD_DO_NOT_CALL: "Record is marked do not call",
    OCSError.NO_PREVIEW_SESSION: "No preview session started for this campaign",
    OCSError.NO_RECORDS_AVAILABLE: "No Records Available",
    OCSError.CHAIN_NOT_FOUND: "Chain not found in the given calling list",
    OCSError.LIST_NOT_FOUND: "Calling list not found in the given application and campaign",
}

_CLOSED_ERRORS: Mapping[RecordStatus, OCSError] = {
    RecordStatus.CANCELLED: OCSError.RECORD_ALREADY_CANCELLED,
    RecordStatus.COMPLETED: OCSError.RECORD_ALREADY_COMPLETED,
    RecordStatus.REJECTED: OCSError.RECORD_ALREADY_REJECTED,
    RecordStatus.DO_NOT_CALL: OCSError.RECORD_DO_NOT_CALL,
}


class OCSRefusal(Exception):
    """OCS refused a request: the error event carries ``error``; nothing changed.

    :param state: the record the request named, when OCS knows it.
    """

    def __init__(self, error: OCSError, state: RecordState | None = None) -> None:
        super().__init__(error.text)
        self.error = error
        self.state = state


@dataclass(frozen=True, slots=True)
class Change:
    """Who makes a change, for the records' bookkeeping."""

    username: str | None
    reference_id: str | None
    now: float


class _States(dict[int, "RecordState"]):
    """The record store, keeping the handles of scheduled records apart (the clock asks for
    them after every operation; a scan of every record made the simulator slow)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: set[int] = set()

    def __setitem__(self, handle: int, state: RecordState) -> None:
        super().__setitem__(handle, state)
        if state.status is RecordStatus.SCHEDULED:
            self.scheduled.add(handle)
        else:
            self.scheduled.discard(handle)


class OCSModel:
    """Record states keyed by handle, campaigns, preview sessions and the do-not-call list."""

    def __init__(self, records: Iterable[SeedRecord]) -> None:
        self._states: _States = _States()
        for record in records:
            if not isinstance(record, SeedRecord):
                raise TypeError(f"records must be SeedRecord objects, got {type(record)!r}")
            if record.record_handle in self._states:
                raise ValueError(f"duplicate record handle {record.record_handle}")
            self._states[record.record_handle] = RecordState(record)
        self.view: Mapping[int, RecordState] = MappingProxyType(self._states)
        self._campaigns: dict[tuple[str, int], CampaignState] = {}
        self._list_dbids: dict[tuple[int, str], int] = {}
        for state in self._states.values():
            self._register(state.record)
        self.campaign_view: Mapping[tuple[str, int], CampaignState] = MappingProxyType(
            self._campaigns
        )
        self._sessions: set[tuple[str, str, int]] = set()
        self._chain_index: dict[tuple[int, str, int], list[int]] | None = None
        self.do_not_call_numbers: set[str] = set()

    def _register(self, record: SeedRecord) -> None:
        key = (record.campaign_name, record.application_id)
        campaign = self._campaigns.get(key)
        if campaign is None:
            campaign = CampaignState(
                name=record.campaign_name,
                application_id=record.application_id,
                calling_lists=(),
                group_dbid=201 + len(self._campaigns),
                group_name=f"{record.campaign_name}@AgentGroup1",
            )
            self._campaigns[key] = campaign
        if record.calling_list not in campaign.calling_lists:
            campaign.calling_lists = (*campaign.calling_lists, record.calling_list)
        list_key = (record.application_id, record.calling_list)
        if list_key not in self._list_dbids:
            self._list_dbids[list_key] = 101 + len(self._list_dbids)

    # ----------------------------------------------------------------- lookups
    def campaign(self, name: str, application_id: int) -> CampaignState | None:
        return self._campaigns.get((name, application_id))

    def campaign_names(self) -> set[str]:
        return {name for name, _ in self._campaigns}

    def list_dbid(self, record: SeedRecord) -> int:
        return self._list_dbids.get((record.application_id, record.calling_list), 0)

    def has_session(self, username: str, campaign: CampaignState) -> bool:
        return (username, campaign.name, campaign.application_id) in self._sessions

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def record(
        self,
        handle: int,
        *,
        application_id: int,
        campaign_name: str,
        calling_list: str | None,
    ) -> RecordState:
        """The record a request names, or the refusal OCS answers."""
        state = self._states.get(handle)
        if state is None:
            raise OCSRefusal(OCSError.RECORD_NOT_FOUND)
        record = state.record
        if (
            record.application_id != application_id
            or record.campaign_name != campaign_name
            or (calling_list is not None and record.calling_list != calling_list)
        ):
            raise OCSRefusal(OCSError.RECORD_NOT_IN_LIST, state)
        return state

    def _chain(self, record: SeedRecord) -> list[RecordState]:
        # An index (chain, list, application) -> handles, built on first use and dropped when
        # a record is added or its list changes: a scan of every record per cancel made the
        # simulator, not the client, the bottleneck of the benchmarks.
        if self._chain_index is None:
            index: dict[tuple[int, str, int], list[int]] = {}
            for handle, state in self._states.items():
                key = (
                    state.record.chain_id,
                    state.record.calling_list,
                    state.record.application_id,
                )
                index.setdefault(key, []).append(handle)
            self._chain_index = index
        key = (record.chain_id, record.calling_list, record.application_id)
        return [self._states[handle] for handle in self._chain_index.get(key, ())]

    def _set(self, handle: int, change: Change, **fields: Any) -> None:
        self._states[handle] = replace(
            self._states[handle],
            changed_by=change.username,
            reference_id=change.reference_id,
            changed_at=change.now,
            **fields,
        )

    @staticmethod
    def _require_open(state: RecordState) -> None:
        error = _CLOSED_ERRORS.get(state.status)
        if error is not None:
            raise OCSRefusal(error, state)

    # --------------------------------------------------------- record requests
    def cancel(self, state: RecordState, *, all_chain: bool, change: Change) -> list[int]:
        """``RequestRecordCancel``: the record (and its open chain with ``AllChain``)."""
        self._require_open(state)
        targets = [state]
        if all_chain:
            targets = [other for other in self._chain(state.record) if not other.status.final]
        for target in targets:
            self._close(target.record.record_handle, RecordStatus.CANCELLED, change)
        return [target.record.record_handle for target in targets]

    def _close(self, handle: int, status: RecordStatus, change: Change, **fields: Any) -> None:
        self._set(
            handle,
            change,
            status=status,
            held_by=None,
            scheduled_for=None,
            scheduled_user=None,
            **fields,
        )

    def reject(self, state: RecordState, change: Change) -> None:
        self._require_open(state)
        self._close(state.record.record_handle, RecordStatus.REJECTED, change)

    def complete(self, state: RecordState, call_result: str | None, change: Change) -> None:
        self._require_open(state)
        self._close(
            state.record.record_handle,
            RecordStatus.COMPLETED,
            change,
            call_result=call_result,
            attempts=state.attempts + 1,
        )

    def do_not_call(
        self, state: RecordState, *, phone_number: str | None, all_chain: bool, change: Change
    ) -> list[int]:
        """``DoNotCall`` on a record: it (its chain with ``AllChain``) and the number."""
        if state.status is RecordStatus.DO_NOT_CALL:
            raise OCSRefusal(OCSError.RECORD_DO_NOT_CALL, state)
        targets = [state]
        if all_chain:
            targets = [
                other
                for other in self._chain(state.record)
                if other.status is not RecordStatus.DO_NOT_CALL
            ]
        for target in targets:
            self._close(target.record.record_handle, RecordStatus.DO_NOT_CALL, change)
            self.do_not_call_numbers.add(target.record.phone_number)
        if phone_number is not None:
            self.do_not_call_numbers.add(phone_number)
        return [target.record.record_handle for target in targets]

    def do_not_call_number(
        self,
        *,
        phone_number: str,
        application_id: int,
        campaign_name: str,
        calling_list: str | None,
        change: Change,
    ) -> list[int]:
        """``DoNotCall`` by phone number: every matching record of the campaign (or list)."""
        campaign = self.campaign(campaign_name, application_id)
        if campaign is None or (
            calling_list is not None and calling_list not in campaign.calling_lists
        ):
            raise OCSRefusal(OCSError.LIST_NOT_FOUND)
        targets = [
            state
            for state in self._states.values()
            if state.record.phone_number == phone_number
            and state.record.application_id == application_id
            and state.record.campaign_name == campaign_name
            and (calling_list is None or state.record.calling_list == calling_list)
            and state.status is not RecordStatus.DO_NOT_CALL
        ]
        for target in targets:
            self._close(target.record.record_handle, RecordStatus.DO_NOT_CALL, change)
        self.do_not_call_numbers.add(phone_number)
        return [target.record.record_handle for target in targets]

    def reschedule(
        self,
        state: RecordState,
        *,
        callback_type: str,
        timestamp: float,
        username: str,
        change: Change,
    ) -> None:
        self._require_open(state)
        self._set(
            state.record.record_handle,
            change,
            status=RecordStatus.SCHEDULED,
            held_by=None,
            callback_type=callback_type,
            scheduled_for=float(timestamp),
            scheduled_user=username,
        )

    def update(self, state: RecordState, changes: Mapping[str, Any], change: Change) -> None:
        """``UpdateCallCompletionStats``: new dialing data for the record."""
        self._require_open(state)
        handle = state.record.record_handle
        record = replace(state.record, **changes)
        self._chain_index = None
        self._states[handle] = replace(
            state, record=record, reference_id=change.reference_id, changed_at=change.now
        )

    def chained(self, state: RecordState, username: str, change: Change) -> list[RecordState]:
        """``ChainedRecordRequest``: the other open records of the chain, now held by the agent.

        Ready ones (and those already held by this agent) in handle order.
        """
        handle = state.record.record_handle
        chained: list[RecordState] = []
        for other in sorted(self._chain(state.record), key=lambda s: s.record.record_handle):
            other_handle = other.record.record_handle
            if other_handle == handle:
                continue
            if other.status is RecordStatus.READY or (
                other.status is RecordStatus.HELD and other.held_by == username
            ):
                self._set(other_handle, change, status=RecordStatus.HELD, held_by=username)
                chained.append(self._states[other_handle])
        return chained

    def add(
        self,
        *,
        application_id: int,
        campaign_name: str,
        calling_list: str,
        phone_number: str,
        time_zone: str,
        phone_type: str,
        dial_from: int,
        dial_until: int,
        chain_id: int | None,
        other_fields: Mapping[str, OtherValue],
        change: Change,
    ) -> RecordState:
        """``AddRecord``: a new ready record with a new handle (in ``chain_id`` or a new chain)."""
        campaign = self.campaign(campaign_name, application_id)
        if campaign is None or calling_list not in campaign.calling_lists:
            raise OCSRefusal(OCSError.LIST_NOT_FOUND)
        if chain_id is None:
            chain_id = max((s.record.chain_id for s in self._states.values()), default=0) + 1
        elif not any(
            s.record.chain_id == chain_id
            and s.record.calling_list == calling_list
            and s.record.application_id == application_id
            for s in self._states.values()
        ):
            raise OCSRefusal(OCSError.CHAIN_NOT_FOUND)
        handle = max(self._states, default=0) + 1
        if handle > JAVA_INT_MAX:  # pragma: no cover - needs 2^31 records
            raise OCSRefusal(OCSError.SIMULATED)
        self._chain_index = None
        record = SeedRecord(
            record_handle=handle,
            application_id=application_id,
            campaign_name=campaign_name,
            calling_list=calling_list,
            phone_number=phone_number,
            chain_id=chain_id,
            time_zone=time_zone,
            phone_type=phone_type,
            dial_from=dial_from,
            dial_until=dial_until,
            other_fields=other_fields,
        )
        self._states[handle] = RecordState(
            record,
            changed_by=change.username,
            reference_id=change.reference_id,
            changed_at=change.now,
        )
        return self._states[handle]

    # ------------------------------------------------------- campaign requests
    def start_preview(self, username: str, campaign: CampaignState) -> None:
        self._sessions.add((username, campaign.name, campaign.application_id))

    def end_preview(self, username: str, campaign: CampaignState) -> None:
        key = (username, campaign.name, campaign.application_id)
        if key not in self._sessions:
            raise OCSRefusal(OCSError.NO_PREVIEW_SESSION)
        self._sessions.discard(key)

    def next_preview_record(
        self, username: str, campaign: CampaignState, change: Change, *, session: bool = True
    ) -> RecordState:
        """``PreviewRecordRequest``: the next ready record of the campaign, now held.

        :param session: require a started preview session (a pushed record does not).
        """
        if session and not self.has_session(username, campaign):
            raise OCSRefusal(OCSError.NO_PREVIEW_SESSION)
        if campaign.state == "Started":
            ready = [
                state
                for state in self._states.values()
                if state.status is RecordStatus.READY
                and state.record.campaign_name == campaign.name
                and state.record.application_id == campaign.application_id
                and state.record.phone_number not in self.do_not_call_numbers
            ]
            if ready:
                order = {name: index for index, name in enumerate(campaign.calling_lists)}
                first = min(
                    ready,
                    key=lambda s: (order.get(s.record.calling_list, 0), s.record.record_handle),
                )
                handle = first.record.record_handle
                self._set(handle, change, status=RecordStatus.HELD, held_by=username)
                return self._states[handle]
        raise OCSRefusal(OCSError.NO_RECORDS_AVAILABLE)

    # ----------------------------------------------------- unsolicited changes
    def due(self, now: float) -> list[RecordState]:
        """Scheduled records whose time has come, earliest first."""
        due = [
            state
            for state in map(self._states.__getitem__, self._states.scheduled)
            if state.status is RecordStatus.SCHEDULED
            and state.scheduled_for is not None
            and state.scheduled_for <= now
        ]
        return sorted(due, key=lambda s: (s.scheduled_for or 0.0, s.record.record_handle))

    def next_due_time(self) -> float | None:
        times = [
            state.scheduled_for
            for state in map(self._states.__getitem__, self._states.scheduled)
            if state.status is RecordStatus.SCHEDULED and state.scheduled_for is not None
        ]
        return min(times) if times else None

    def deliver_scheduled(self, state: RecordState, now: float) -> RecordState:
        """A due callback goes to its agent: the record becomes held by them."""
        handle = state.record.record_handle
        self._states[handle] = replace(
            state,
            status=RecordStatus.HELD,
            held_by=state.scheduled_user,
            changed_by=None,
            reference_id=None,
            changed_at=now,
        )
        return self._states[handle]

    def cancel_held(self, handle: int, now: float) -> tuple[RecordState, str]:
        """Someone else cancels a record an agent holds: (its new state, that agent).

        :raises KeyError: for an unknown handle.
        :raises ValueError: when no agent holds the record.
        """
        state = self._states.get(handle)
        if state is None:
            raise KeyError(f"the simulator has no record {handle}")
        if state.status is not RecordStatus.HELD or state.held_by is None:
            raise ValueError(
                f"record {handle} is not held by an agent (status {state.status.value}); "
                "hand it out first (GetPreviewRecord, GetChainedRecord or a ScheduledCall)"
            )
        holder = state.held_by
        self._states[handle] = replace(
            state,
            status=RecordStatus.CANCELLED,
            held_by=None,
            changed_by=None,
            reference_id=None,
            changed_at=now,
        )
        return self._states[handle], holder

    def campaign_event(self, campaign: CampaignState, event: str, mode: str | None) -> None:
        state = CAMPAIGN_EVENTS[event]
        if state is not None:
            campaign.state = state
        if mode is not None:
            campaign.dialing_mode = mode


def _positive_int_problem(name: str, value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name} must be an integer"]
    if not 0 < value <= JAVA_INT_MAX:
        return [f"{name} must be between 1 and {JAVA_INT_MAX}"]
    return []


def _second_of_day_problem(name: str, value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name} must be an integer"]
    if not 0 <= value <= _SECONDS_PER_DAY:
        return [f"{name} must be between 0 and {_SECONDS_PER_DAY} (seconds after midnight)"]
    return []


def _text_problem(name: str, value: object) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{name} must be a non-empty string"]
    return []


_JSON_KEYS = {
    "recordHandle": "record_handle",
    "applicationId": "application_id",
    "campaignName": "campaign_name",
    "callingList": "calling_list",
    "phoneNumber": "phone_number",
    "chainId": "chain_id",
}
_OPTIONAL_JSON_KEYS = {
    "timeZone": "time_zone",
    "phoneType": "phone_type",
    "from": "dial_from",
    "until": "dial_until",
    "otherFields": "other_fields",
}


def parse_records(data: object, *, source: str = "records") -> tuple[SeedRecord, ...]:
    """Build records from decoded JSON: a list of objects with GWS's camelCase keys.

    Required keys: ``recordHandle``, ``applicationId``, ``campaignName``, ``callingList``,
    ``phoneNumber``, ``chainId``; optional: ``timeZone``, ``phoneType``, ``from``,
    ``until``, ``otherFields``.

    :raises ValueError: naming the entry and key when the data is not such a list, a key
        is missing or unknown, a value has the wrong type, or a handle repeats.
    """
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a JSON list of record objects")
    records: list[SeedRecord] = []
    seen: set[int] = set()
    keys = _JSON_KEYS | _OPTIONAL_JSON_KEYS
    for index, entry in enumerate(data):
        where = f"{source}[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a JSON object")
        missing = sorted(set(_JSON_KEYS) - set(entry))
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(entry) - set(keys))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        try:
            record = SeedRecord(**{keys[key]: value for key, value in entry.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if record.record_handle in seen:
            raise ValueError(f"{where}: duplicate recordHandle {record.record_handle}")
        seen.add(record.record_handle)
        records.append(record)
    return tuple(records)


def load_records(path: str | Path) -> tuple[SeedRecord, ...]:
    """Read records from a JSON file (see :func:`parse_records` for the format).

    :raises OSError: when the file cannot be read.
    :raises ValueError: when it is not valid JSON or not a valid record list.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from None
    return parse_records(data, source=str(file))


def _load_default_records() -> tuple[SeedRecord, ...]:
    text = resources.files(_PACKAGE).joinpath("default_records.json").read_text("utf-8")
    return parse_records(json.loads(text), source="default_records.json")


DEFAULT_RECORDS: tuple[SeedRecord, ...] = _load_default_records()
"""The records seeded when ``GWSSimulator(records=None)``; listed in ``--help``."""
