"""The simulator's outbound records and its small model of OCS (Outbound Contact Server).

A record is what OCS knows about one dialable entry of a calling list: its handle (the
number GWS puts in the URL and in ``GSW_RECORD_HANDLE``), the OCS application, campaign,
calling list, phone number and chain. The model answers ``RequestRecordCancel`` the way
the simulator documents (``docs/simulator.md``): a known, matching, not yet cancelled
record is cancelled (with its whole chain for ``AllChain``); anything else is an OCS
error with one of the simulator's own error numbers.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "DEFAULT_RECORDS",
    "OCSError",
    "RecordState",
    "SeedRecord",
    "load_records",
    "parse_records",
]

_JAVA_INT_MAX = 2**31 - 1
_PACKAGE = "gws_outbound_plugin.simulator"


@dataclass(frozen=True, slots=True)
class SeedRecord:
    """One outbound record the simulated OCS knows about.

    :param record_handle: OCS record handle (positive integer, unique in the simulator).
    :param application_id: DBID of the OCS application that owns the record.
    :param campaign_name: Campaign the calling list is loaded in.
    :param calling_list: Calling list holding the record.
    :param phone_number: The record's phone number.
    :param chain_id: Chain the record belongs to (records of one customer share it).
    """

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    phone_number: str
    chain_id: int

    def __post_init__(self) -> None:
        problems = [
            *_positive_int_problem("record_handle", self.record_handle),
            *_positive_int_problem("application_id", self.application_id),
            *_positive_int_problem("chain_id", self.chain_id),
            *_text_problem("campaign_name", self.campaign_name),
            *_text_problem("calling_list", self.calling_list),
            *_text_problem("phone_number", self.phone_number),
        ]
        if problems:
            raise ValueError("invalid SeedRecord: " + "; ".join(problems))

    def to_json(self) -> dict[str, int | str]:
        """The record as a JSON object with GWS's camelCase keys."""
        return {
            "recordHandle": self.record_handle,
            "applicationId": self.application_id,
            "campaignName": self.campaign_name,
            "callingList": self.calling_list,
            "phoneNumber": self.phone_number,
            "chainId": self.chain_id,
        }


@dataclass(frozen=True, slots=True)
class RecordState:
    """What the simulated OCS currently holds for one record.

    :param record: The seeded record.
    :param cancelled: Whether a cancel was applied to it.
    :param cancelled_by: GWS user whose request cancelled it.
    :param reference_id: ``referenceId`` of that request (``None`` when none was sent).
    :param cancelled_at: Wall-clock time of the cancel (seconds since the epoch).
    """

    record: SeedRecord
    cancelled: bool = False
    cancelled_by: str | None = None
    reference_id: str | None = None
    cancelled_at: float | None = None


class OCSError(enum.IntEnum):
    """The simulator's own ``GSW_ERROR_NUMBER`` values.

    Real OCS error numbers for a failed cancel are not publicly documented; these are
    the simulator's choice, not OCS's.
    """

    SIMULATED = 100
    RECORD_NOT_FOUND = 101
    RECORD_ALREADY_CANCELLED = 102
    RECORD_NOT_IN_LIST = 103

    @property
    def text(self) -> str:
        """The ``GSW_ERROR`` text that goes with the number."""
        return _ERROR_TEXTS[self]


_ERROR_TEXTS: Mapping[OCSError, str] = {
    OCSError.SIMULATED: "Simulated OCS error",
    OCSError.RECORD_NOT_FOUND: "Record not found",
    OCSError.RECORD_ALREADY_CANCELLED: "Record already cancelled",
    OCSError.RECORD_NOT_IN_LIST: "Record not found in the given application, campaign or list",
}


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """Result of one ``RequestRecordCancel`` in the model."""

    error_number: int | None = None
    error_message: str | None = None
    cancelled_handles: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error_number is None


class OCSModel:
    """Record states keyed by handle, and the cancel rule."""

    def __init__(self, records: Iterable[SeedRecord]) -> None:
        self._states: dict[int, RecordState] = {}
        for record in records:
            if not isinstance(record, SeedRecord):
                raise TypeError(f"records must be SeedRecord objects, got {type(record)!r}")
            if record.record_handle in self._states:
                raise ValueError(f"duplicate record handle {record.record_handle}")
            self._states[record.record_handle] = RecordState(record)
        self.view: Mapping[int, RecordState] = MappingProxyType(self._states)

    def cancel(
        self,
        *,
        record_handle: int,
        application_id: int,
        campaign_name: str,
        calling_list: str,
        all_chain: bool,
        username: str,
        reference_id: str | None,
    ) -> CancelOutcome:
        """Apply a cancel request and say what OCS answers."""
        state = self._states.get(record_handle)
        if state is None:
            return _error(OCSError.RECORD_NOT_FOUND)
        record = state.record
        if (
            record.application_id != application_id
            or record.campaign_name != campaign_name
            or record.calling_list != calling_list
        ):
            return _error(OCSError.RECORD_NOT_IN_LIST)
        if state.cancelled:
            return _error(OCSError.RECORD_ALREADY_CANCELLED)
        if all_chain:
            targets = [
                handle
                for handle, other in self._states.items()
                if other.record.chain_id == record.chain_id
                and other.record.calling_list == record.calling_list
                and other.record.application_id == record.application_id
                and not other.cancelled
            ]
        else:
            targets = [record_handle]
        now = time.time()
        for handle in targets:
            self._states[handle] = replace(
                self._states[handle],
                cancelled=True,
                cancelled_by=username,
                reference_id=reference_id,
                cancelled_at=now,
            )
        return CancelOutcome(cancelled_handles=tuple(targets))


def _error(code: OCSError) -> CancelOutcome:
    return CancelOutcome(error_number=int(code), error_message=code.text)


def _positive_int_problem(name: str, value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name} must be an integer"]
    if not 0 < value <= _JAVA_INT_MAX:
        return [f"{name} must be between 1 and {_JAVA_INT_MAX}"]
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


def parse_records(data: object, *, source: str = "records") -> tuple[SeedRecord, ...]:
    """Build records from decoded JSON: a list of objects with GWS's camelCase keys.

    :raises ValueError: naming the entry and key when the data is not such a list, a key
        is missing or unknown, a value has the wrong type, or a handle repeats.
    """
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a JSON list of record objects")
    records: list[SeedRecord] = []
    seen: set[int] = set()
    for index, entry in enumerate(data):
        where = f"{source}[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a JSON object")
        missing = sorted(set(_JSON_KEYS) - set(entry))
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(entry) - set(_JSON_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        try:
            record = SeedRecord(**{_JSON_KEYS[key]: value for key, value in entry.items()})
        except ValueError as exc:
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
