"""Every GWS outbound record and campaign operation as a typed request, and what comes back.

- One frozen, validated request type per operation (``RejectRecordRequest`` ...
  ``EndPreviewSessionRequest``; ``CancelRequest`` lives in ``_models``). Each implements the
  ``Operation`` protocol of ``_spec``: the engine needs nothing else of it.
- ``OPERATION_TYPES`` and ``request_from_bus()``: a bus event in GWS camelCase keys, dispatched
  on its ``operationName``.
- Result payloads: ``OperationAck`` (built by ``build_ack()``) and ``OperationFailure``.
- The unsolicited OCS events (``RecordCancelledEvent``, ``ScheduledCallEvent``,
  ``CampaignStatusEvent``, ``PreviewRecordEvent``) and their parsers.

Everything here is pure (no I/O) and immutable: a payload handed to one plugin cannot be
changed under another.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeAlias
from urllib.parse import quote

from . import _spec
from ._exceptions import InvalidOperationRequest
from ._models import (
    EMPTY_MAPPING,
    MAX_OCS_ID,
    CancelRequest,
    ChainAttribute,
    EventMetrics,
    FailureReason,
    UserEvent,
    _check_device_path,
    _check_int,
    _check_text,
    _new_reference_id,
    _show,
    describe_failure,
    may_have_acted,
)

__all__ = [
    "OPERATION_TYPES",
    "AddRecordRequest",
    "CallbackType",
    "CampaignStatus",
    "CampaignStatusEvent",
    "CompleteRecordRequest",
    "DoNotCallPhoneRequest",
    "DoNotCallRecordRequest",
    "EndPreviewSessionRequest",
    "GetChainedRecordRequest",
    "GetPreviewRecordRequest",
    "OperationAck",
    "OperationFailure",
    "OperationRequest",
    "PhoneType",
    "PreviewRecordEvent",
    "RecordCancelledEvent",
    "RejectRecordRequest",
    "RescheduleRecordRequest",
    "ScheduledCallEvent",
    "StartPreviewSessionRequest",
    "UpdateRecordRequest",
    "build_ack",
    "preview_record_from_outbound",
    "request_from_bus",
    "unsolicited_from_user_event",
]

#: Seconds in a day: ``from`` / ``until`` are 0 .. SECONDS_PER_DAY - 1.
SECONDS_PER_DAY: Final = 86_400
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_SECOND: Final = datetime.timedelta(seconds=1)
_MAX_ISO_LENGTH: Final = 64
_OTHER_FIELD_INT_LIMIT: Final = 2**63
_MAX_REPORTED_PROBLEMS: Final = 3
_FREEZE_DEPTH: Final = 100


# -- enums -----------------------------------------------------------------------------------------


class PhoneType(enum.StrEnum):
    """Type of a record's phone number (GWS ``phoneType``, OCS contact info type)."""

    NO_CONTACT_TYPE = "NoContactType"
    HOME_PHONE = "HomePhone"
    DIRECT_BUSINESS_PHONE = "DirectBusinessPhone"
    BUSINESS_WITH_EXT = "BusinessWithExt"
    MOBILE = "Mobile"
    VACATION_PHONE = "VacationPhone"
    PAGER = "Pager"
    MODEM = "Modem"
    VOICE_MAIL = "VoiceMail"
    PIN_PAGER = "PinPager"
    EMAIL_ADDRESS = "EmailAddress"
    INSTANT_MESSAGING = "InstantMessaging"


class CallbackType(enum.StrEnum):
    """Who gets a rescheduled record (GWS ``callbackType``)."""

    PERSONAL = "Personal"
    """The agent who rescheduled it (a personal callback)."""
    CAMPAIGN = "Campaign"
    """Any agent of the campaign (a campaign callback)."""


class CampaignStatus(enum.StrEnum):
    """An OCS campaign status event (``GSW_USER_EVENT``)."""

    LOADED = "CampaignLoaded"
    STARTED = "CampaignStarted"
    STOPPED = "CampaignStopped"
    UNLOADED = "CampaignUnloaded"
    MODE_CHANGED = "CampaignModeChanged"


# -- field rules -----------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _decode_as_is(value: object) -> tuple[object, str | None]:
    return value, None


def _enum_check(kind: type[enum.StrEnum]) -> Callable[[object], str | None]:
    allowed = [member.value for member in kind]

    def check(value: object) -> str | None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"must be one of {allowed}, got {_show(value)}"

    return check


def _enum_value(value: enum.StrEnum) -> str:
    return str(value.value)


def _check_seconds_of_day(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return (
            "must be an integer number of seconds after midnight, "
            f"got {type(value).__name__} {_show(value)}"
        )
    if not 0 <= value < SECONDS_PER_DAY:
        return f"must be 0 to {SECONDS_PER_DAY - 1} seconds after midnight, got {_show(value)}"
    return None


def _epoch_seconds(moment: datetime.datetime) -> int:
    """Whole seconds since the Unix epoch (floored), exactly: no float rounding."""
    return (moment - _EPOCH) // _ONE_SECOND


def _check_moment(value: object) -> str | None:
    if not isinstance(value, datetime.datetime):
        return f"must be a timezone-aware datetime, got {type(value).__name__}"
    try:
        offset = value.utcoffset()
    except Exception:  # a broken tzinfo must not escape as anything but a validation error
        offset = None
    if offset is None:
        return (
            "must be timezone-aware: a naive datetime names no instant "
            "(give it a tzinfo, e.g. tzinfo=datetime.timezone.utc)"
        )
    try:
        seconds = _epoch_seconds(value)
    except (OverflowError, ValueError):
        return "is out of range"
    if seconds <= 0:
        return "must be after the Unix epoch (1970-01-01T00:00:00Z)"
    return None


def _decode_moment(value: object) -> tuple[object, str | None]:
    """``timestamp`` from the bus: integer seconds since the epoch or ISO 8601 with an offset."""
    expected = "integer seconds since the Unix epoch or an ISO 8601 date-time with a UTC offset"
    if isinstance(value, datetime.datetime):
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            return value, f"must be positive {expected}, got {_show(value)}"
        try:
            return datetime.datetime.fromtimestamp(value, tz=datetime.UTC), None
        except (OverflowError, ValueError, OSError):
            return value, f"is out of range, got {_show(value)}"
    if isinstance(value, str):
        if len(value) > _MAX_ISO_LENGTH:
            return value, f"must be {expected}, got a string of {len(value)} characters"
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value, f"must be {expected}, got {_show(value)}"
        if moment.tzinfo is None:
            return value, (
                f"must carry a UTC offset (e.g. +02:00 or Z): {_show(value)} names no instant"
            )
        return moment, None
    return value, f"must be {expected}, got {type(value).__name__}"


def _moment_to_bus(value: datetime.datetime) -> str:
    return value.isoformat()


def _check_other_fields(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return f"must be a mapping of field name to value, got {type(value).__name__}"
    problems: list[str] = []
    for key, item in value.items():
        if _check_text(key) is not None:
            problems.append(
                f"key {_show(key)} must be non-empty text of at most 255 characters "
                "without control characters"
            )
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{_show(key)} must be a finite number")
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and not -_OTHER_FIELD_INT_LIMIT <= item < _OTHER_FIELD_INT_LIMIT
        ):
            problems.append(f"{_show(key)} must be an integer that fits in 64 bits")
        elif not isinstance(item, str | int | float | bool):
            # The value may be personal data: name its type only.
            problems.append(
                f"{_show(key)} must be a string, number or boolean, got {type(item).__name__}"
            )
        if len(problems) == _MAX_REPORTED_PROBLEMS:
            break
    return ", ".join(problems) or None


def _freeze_other_fields(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _other_fields_to_json(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


@dataclass(frozen=True, slots=True)
class _Rule:
    """How one request field is checked, normalised and written, and its GWS key."""

    bus_key: str
    check: Callable[[object], str | None]
    normalize: Callable[[Any], Any] = _same
    decode: Callable[[object], tuple[object, str | None]] = _decode_as_is
    to_gws: Callable[[Any], Any] = _same
    to_bus: Callable[[Any], Any] = _same


def _enum_rule(bus_key: str, kind: type[enum.StrEnum]) -> _Rule:
    return _Rule(bus_key, _enum_check(kind), kind, to_gws=_enum_value, to_bus=_enum_value)


#: Request field name -> its rule. Shared by every request type of this module.
_RULES: Final[Mapping[str, _Rule]] = MappingProxyType(
    {
        "record_handle": _Rule("recordHandle", _check_int),
        "application_id": _Rule("applicationId", _check_int),
        "campaign_name": _Rule("campaignName", _check_text),
        "calling_list": _Rule("callingList", _check_text),
        "device_path": _Rule("devicePath", _check_device_path),
        "phone_number": _Rule("phoneNumber", _check_text),
        "chain_attribute": _enum_rule("chainAttribute", ChainAttribute),
        "call_result": _Rule("callResult", _check_text),
        "callback_type": _enum_rule("callbackType", CallbackType),
        "scheduled_time": _Rule(
            "timestamp",
            _check_moment,
            decode=_decode_moment,
            to_gws=_epoch_seconds,
            to_bus=_moment_to_bus,
        ),
        "time_zone": _Rule("timeZone", _check_text),
        "phone_type": _enum_rule("phoneType", PhoneType),
        "call_from": _Rule("from", _check_seconds_of_day),
        "call_until": _Rule("until", _check_seconds_of_day),
        "chain_id": _Rule("chainId", _check_int),
        "other_fields": _Rule(
            "otherFields",
            _check_other_fields,
            _freeze_other_fields,
            to_gws=_other_fields_to_json,
            to_bus=_other_fields_to_json,
        ),
        "reference_id": _Rule("referenceId", _check_text),
    }
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The fields of one request type, in declaration order."""

    names: tuple[str, ...]
    optional: frozenset[str]
    """Fields whose default is ``None``: ``None`` (or a ``null`` on the bus) means unset."""
    required: tuple[str, ...]
    """Fields without a default."""
    by_bus_key: Mapping[str, str]


_LAYOUTS: Final[dict[type[_Request], _Layout]] = {}


def _layout(cls: type[_Request]) -> _Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        # Computed once per type; two threads racing here compute the same value.
        layout = _LAYOUTS[cls] = _compute_layout(cls)
    return layout


def _compute_layout(cls: type[_Request]) -> _Layout:
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    missing = [name for name in names if name not in _RULES]
    if missing:  # pragma: no cover - a programming error in this module
        raise TypeError(f"{cls.__name__}: no rule for {missing}")
    return _Layout(
        names=names,
        optional=frozenset(f.name for f in fields if f.default is None),
        required=tuple(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ),
        by_bus_key=MappingProxyType({_RULES[name].bus_key: name for name in names}),
    )


def _bus_name(name: str) -> str:
    return _RULES[name].bus_key


def _own_name(name: str) -> str:
    return name


# -- request types ---------------------------------------------------------------------------------


class _Request:
    """What every request type of this module shares; not public.

    A subclass is a frozen, slotted dataclass whose fields all have a rule in ``_RULES`` and
    whose ``_SPEC`` names its operation.
    """

    __slots__ = ()

    _SPEC: ClassVar[_spec.OperationSpec]
    #: Field that goes in the URL instead of the body.
    _URL_FIELD: ClassVar[str | None] = None
    #: Bus key -> why it is refused, for keys that belong to a sibling type.
    _KEY_HINTS: ClassVar[Mapping[str, str]] = EMPTY_MAPPING

    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
        device_path: str
        reference_id: str

    def __post_init__(self) -> None:
        layout = _layout(type(self))
        values: dict[str, Any] = {}
        for name in layout.names:
            value = getattr(self, name)
            if value is None and name in layout.optional:
                continue
            values[name] = value
        errors = self._problems(values, name_of=_own_name)
        if errors:
            raise InvalidOperationRequest(errors, operation=self._SPEC.name)
        for name, value in values.items():
            normalized = _RULES[name].normalize(value)
            if normalized is not value:
                object.__setattr__(self, name, normalized)

    @classmethod
    def _problems(
        cls, values: Mapping[str, Any], *, name_of: Callable[[str], str]
    ) -> dict[str, str]:
        """Every problem of the given field values (absent fields are not checked)."""
        errors: dict[str, str] = {}
        for name, value in values.items():
            problem = _RULES[name].check(value)
            if problem is not None:
                errors[name_of(name)] = problem
        valid = {name: value for name, value in values.items() if name_of(name) not in errors}
        start, end = valid.get("call_from"), valid.get("call_until")
        if start is not None and end is not None and start > end:
            errors[name_of("call_until")] = (
                f"must not be before {name_of('call_from')} ({start}), got {end}"
            )
        errors.update(cls._type_problems(valid, given=frozenset(values), name_of=name_of))
        return errors

    @classmethod
    def _type_problems(
        cls,
        values: Mapping[str, Any],
        *,
        given: frozenset[str],
        name_of: Callable[[str], str],
    ) -> dict[str, str]:
        """Problems between fields that only some types have: ``values`` holds the fields that
        are valid on their own, ``given`` names every field that was given (valid or not).

        Overrides must not call ``super()``: a slotted dataclass is a copy of its class, and
        zero-argument ``super()`` fails in it (CPython < 3.14).
        """
        return {}

    @classmethod
    def from_bus(cls, event: object) -> Self:
        """Build the request from a bus event in GWS camelCase keys.

        ``operationName`` may be present and must then name this operation. A ``null`` counts
        as absent for optional keys. Unknown keys are refused, so a misspelt key cannot
        silently drop a field. Every problem is reported at once in one
        :class:`InvalidOperationRequest`, the fields named by their camelCase keys.
        """
        name = cls._SPEC.name
        if not isinstance(event, Mapping):
            raise InvalidOperationRequest(
                {"event": f"must be a mapping of GWS keys, got {type(event).__name__}"},
                operation=name,
            )
        layout = _layout(cls)
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for key, value in event.items():
            if key == "operationName":
                if value != name:
                    errors[key] = f"must be {name!r} when given, got {_show(value)}"
                continue
            field_name = layout.by_bus_key.get(key) if isinstance(key, str) else None
            if field_name is None:
                hint = cls._KEY_HINTS.get(key) if isinstance(key, str) else None
                if hint is not None and value is None:
                    continue  # a sibling type's key, null: absent, as it selects this type
                expected = ", ".join(layout.by_bus_key)
                errors[_show(key, as_str=True)] = (
                    hint or f"unknown key (expected one of {expected})"
                )
                continue
            seen.add(field_name)
            if value is None and field_name not in layout.required:
                continue
            decoded, problem = _RULES[field_name].decode(value)
            if problem is not None:
                errors[key] = problem
                continue
            values[field_name] = decoded
        for field_name in layout.required:
            if field_name not in seen:
                errors[_bus_name(field_name)] = "is required"
        errors.update(cls._problems(values, name_of=_bus_name))
        if errors:
            raise InvalidOperationRequest(errors, operation=name)
        factory: Callable[..., Self] = cls
        return factory(**values)

    def _set_fields(self) -> list[tuple[str, Any]]:
        return [
            (name, value)
            for name in _layout(type(self)).names
            if (value := getattr(self, name)) is not None
        ]

    def to_gws_body(self) -> dict[str, Any]:
        """The exact JSON body GWS expects: ``operationName`` plus every set field in camelCase.

        Unset optional fields are omitted, never sent as ``null``; ``referenceId`` is always
        there; the field that goes in the URL (record handle, campaign name) is not repeated.
        """
        body: dict[str, Any] = {"operationName": self._SPEC.name}
        for name, value in self._set_fields():
            if name != self._URL_FIELD:
                rule = _RULES[name]
                body[rule.bus_key] = rule.to_gws(value)
        return body

    def to_bus(self) -> dict[str, Any]:
        """The request as a bus event in GWS camelCase keys, with ``operationName``.

        ``from_bus`` (and ``request_from_bus``) read it back to an equal request.
        """
        event: dict[str, Any] = {"operationName": self._SPEC.name}
        for name, value in self._set_fields():
            rule = _RULES[name]
            event[rule.bus_key] = rule.to_bus(value)
        return event

    @property
    def spec(self) -> _spec.OperationSpec:
        """How the outcome of this operation arrives (the engine's view)."""
        return self._SPEC

    @property
    def operation_name(self) -> str:
        """The GWS ``operationName``."""
        return self._SPEC.name

    @property
    def device_id(self) -> str:
        """The bare device id of ``device_path`` (``/devices/<id>``)."""
        return self.device_path.rsplit("/", 1)[1]


class _RecordOperation(_Request):
    """``POST /api/v2/me/outbound-records/<record_handle>``."""

    __slots__ = ()
    _URL_FIELD: ClassVar[str | None] = "record_handle"

    if TYPE_CHECKING:
        record_handle: int
        application_id: int
        campaign_name: str

    def gws_path(self) -> str:
        """The URL path under ``/api/v2``: ``/me/outbound-records/<record_handle>``."""
        return f"/me/outbound-records/{self.record_handle}"

    @property
    def correlation_key(self) -> _spec.CorrelationKey | None:
        """What its user event is matched on when that carries no ``GSW_REFERENCE_ID``."""
        return _spec.record_key(self.record_handle)


class _RecordsOperation(_Request):
    """``POST /api/v2/me/outbound-records`` (no handle)."""

    __slots__ = ()

    if TYPE_CHECKING:
        application_id: int
        campaign_name: str
        phone_number: str

    def gws_path(self) -> str:
        """The URL path under ``/api/v2``: ``/me/outbound-records``."""
        return "/me/outbound-records"

    @property
    def correlation_key(self) -> _spec.CorrelationKey | None:
        """What its user event is matched on: application, campaign and phone number."""
        return _spec.phone_key(self.application_id, self.campaign_name, self.phone_number)


class _CampaignOperation(_Request):
    """``POST /api/v2/me/outbound-campaigns/<campaign_name>`` (percent-encoded)."""

    __slots__ = ()
    _URL_FIELD: ClassVar[str | None] = "campaign_name"

    if TYPE_CHECKING:
        application_id: int
        campaign_name: str

    @classmethod
    def _type_problems(
        cls,
        values: Mapping[str, Any],
        *,
        given: frozenset[str],
        name_of: Callable[[str], str],
    ) -> dict[str, str]:
        if values.get("campaign_name") in {".", ".."}:
            # quote() keeps dots, and a client or proxy would resolve the dot segment.
            return {name_of("campaign_name"): "cannot be '.' or '..' (it goes in the URL path)"}
        return {}

    def gws_path(self) -> str:
        """The URL path under ``/api/v2``: ``/me/outbound-campaigns/<campaign_name>``,
        the name percent-encoded (``quote(name, safe="")``)."""
        return f"/me/outbound-campaigns/{quote(self.campaign_name, safe='')}"

    @property
    def correlation_key(self) -> _spec.CorrelationKey | None:
        """What its user event is matched on: application and campaign."""
        return _spec.campaign_key(self.application_id, self.campaign_name)


@dataclass(frozen=True, slots=True)
class RejectRecordRequest(_RecordOperation):
    """GWS ``RejectRecord``: hand a record back to OCS without calling it."""

    _SPEC = _spec.REJECT_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class CompleteRecordRequest(_RecordOperation):
    """GWS ``CompleteRecord``: the record was processed, optionally with a call result."""

    _SPEC = _spec.COMPLETE_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    call_result: str | None = None
    """GWS ``callResult``; its allowed values are UNCONFIRMED, so any valid text is sent."""
    phone_number: str | None = None
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class DoNotCallRecordRequest(_RecordOperation):
    """GWS ``DoNotCallRecord`` on a record handle: never call this record (or its chain)."""

    _SPEC = _spec.DO_NOT_CALL_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    phone_number: str | None = None
    chain_attribute: ChainAttribute | None = None
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class RescheduleRecordRequest(_RecordOperation):
    """GWS ``RescheduleRecord``: call the record back at ``scheduled_time``."""

    _SPEC = _spec.RESCHEDULE_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    device_path: str
    callback_type: CallbackType
    scheduled_time: datetime.datetime
    """Timezone-aware; sent as ``timestamp``, whole seconds since the Unix epoch (floored)."""
    reference_id: str = field(default_factory=_new_reference_id)


#: UpdateRecord fields of which at least one must be given.
_UPDATE_FIELDS: Final = ("phone_number", "time_zone", "phone_type", "call_from", "call_until")


@dataclass(frozen=True, slots=True)
class UpdateRecordRequest(_RecordOperation):
    """GWS ``UpdateRecord``: change a record's phone, phone type, time zone or call window."""

    _SPEC = _spec.UPDATE_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    device_path: str
    calling_list: str | None = None
    phone_number: str | None = None
    time_zone: str | None = None
    phone_type: PhoneType | None = None
    call_from: int | None = None
    """GWS ``from``: start of the call window, seconds after midnight (0..86399)."""
    call_until: int | None = None
    """GWS ``until``: end of the call window, seconds after midnight, not before ``call_from``."""
    reference_id: str = field(default_factory=_new_reference_id)

    @classmethod
    def _type_problems(
        cls,
        values: Mapping[str, Any],
        *,
        given: frozenset[str],
        name_of: Callable[[str], str],
    ) -> dict[str, str]:
        # A field given but invalid is reported on its own.
        if given.isdisjoint(_UPDATE_FIELDS):
            key = "/".join(name_of(name) for name in _UPDATE_FIELDS)
            return {key: "at least one must be given (nothing to update)"}
        return {}


@dataclass(frozen=True, slots=True)
class GetChainedRecordRequest(_RecordOperation):
    """GWS ``GetChainedRecord``: the records chained to this one (same customer)."""

    _SPEC = _spec.GET_CHAINED_RECORD

    record_handle: int
    application_id: int
    campaign_name: str
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class AddRecordRequest(_RecordsOperation):
    """GWS ``AddRecord`` ("Create Record"): add a record to a calling list."""

    _SPEC = _spec.ADD_RECORD

    application_id: int
    campaign_name: str
    calling_list: str
    phone_number: str
    time_zone: str
    phone_type: PhoneType
    call_from: int
    call_until: int
    device_path: str
    chain_id: int | None = None
    """Add the record to this chain; a new chain when ``None``."""
    other_fields: Mapping[str, str | int | float | bool] | None = field(default=None, hash=False)
    """Extra fields of the record (GWS ``otherFields``), stored read-only."""
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class DoNotCallPhoneRequest(_RecordsOperation):
    """GWS ``DoNotCallRecord`` by phone number (no record handle)."""

    _SPEC = _spec.DO_NOT_CALL_PHONE
    _KEY_HINTS = MappingProxyType(
        {
            "recordHandle": (
                "not accepted here: a DoNotCallRecord with a record handle is a "
                "DoNotCallRecordRequest"
            )
        }
    )

    application_id: int
    campaign_name: str
    phone_number: str
    device_path: str
    calling_list: str | None = None
    chain_attribute: ChainAttribute | None = None
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class StartPreviewSessionRequest(_CampaignOperation):
    """GWS ``StartPreviewSession``: start preview dialing on a campaign."""

    _SPEC = _spec.START_PREVIEW_SESSION

    campaign_name: str
    application_id: int
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class GetPreviewRecordRequest(_CampaignOperation):
    """GWS ``GetPreviewRecord``: ask OCS for the next record of a preview campaign."""

    _SPEC = _spec.GET_PREVIEW_RECORD

    campaign_name: str
    application_id: int
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class EndPreviewSessionRequest(_CampaignOperation):
    """GWS ``EndPreviewSession``: stop preview dialing on a campaign."""

    _SPEC = _spec.END_PREVIEW_SESSION

    campaign_name: str
    application_id: int
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


#: Any request the plugin can send: ``isinstance(x, OperationRequest)`` works too.
OperationRequest: TypeAlias = (
    CancelRequest
    | RejectRecordRequest
    | CompleteRecordRequest
    | DoNotCallRecordRequest
    | RescheduleRecordRequest
    | UpdateRecordRequest
    | GetChainedRecordRequest
    | AddRecordRequest
    | DoNotCallPhoneRequest
    | StartPreviewSessionRequest
    | GetPreviewRecordRequest
    | EndPreviewSessionRequest
)

#: operationName -> the request types of that name (``DoNotCallRecord`` has two: with a record
#: handle and by phone number).
OPERATION_TYPES: Final[Mapping[str, tuple[type[OperationRequest], ...]]] = MappingProxyType(
    {
        "CancelRecord": (CancelRequest,),
        "RejectRecord": (RejectRecordRequest,),
        "CompleteRecord": (CompleteRecordRequest,),
        "DoNotCallRecord": (DoNotCallRecordRequest, DoNotCallPhoneRequest),
        "RescheduleRecord": (RescheduleRecordRequest,),
        "UpdateRecord": (UpdateRecordRequest,),
        "GetChainedRecord": (GetChainedRecordRequest,),
        "AddRecord": (AddRecordRequest,),
        "StartPreviewSession": (StartPreviewSessionRequest,),
        "GetPreviewRecord": (GetPreviewRecordRequest,),
        "EndPreviewSession": (EndPreviewSessionRequest,),
    }
)

if TYPE_CHECKING:

    def _implements_operation(request: OperationRequest) -> _spec.Operation:
        return request  # mypy checks every request type against the protocol


def request_from_bus(event: object) -> OperationRequest:
    """Build the request a bus event asks for, from its required ``operationName``.

    ``DoNotCallRecord`` with a ``recordHandle`` gives a :class:`DoNotCallRecordRequest`,
    without one a :class:`DoNotCallPhoneRequest`; ``CancelRecord`` gives a ``CancelRequest``
    (its errors are an ``InvalidCancelRequest``). Raises :class:`InvalidOperationRequest`
    naming every problem.
    """
    if not isinstance(event, Mapping):
        raise InvalidOperationRequest(
            {"event": f"must be a mapping of GWS keys, got {type(event).__name__}"}
        )
    known = ", ".join(OPERATION_TYPES)
    name = event.get("operationName")
    if name is None:
        raise InvalidOperationRequest({"operationName": f"is required (one of {known})"})
    types = OPERATION_TYPES.get(name) if isinstance(name, str) else None
    if types is None:
        raise InvalidOperationRequest(
            {"operationName": f"unknown operation {_show(name)} (expected one of {known})"}
        )
    if name == "DoNotCallRecord" and event.get("recordHandle") is None:
        return DoNotCallPhoneRequest.from_bus(event)
    return types[0].from_bus(event)


# -- reading what GWS sent (never raises) ----------------------------------------------------------


def _id(value: object) -> int | None:
    """An OCS id (positive, 32-bit) from a JSON int or a string of ASCII digits, else None."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_OCS_ID))):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_OCS_ID else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY_MAPPING


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


def _device_id_of(path: object) -> str | None:
    if isinstance(path, str) and path.startswith("/devices/") and len(path) > len("/devices/"):
        return path.rsplit("/", 1)[1] or None
    return None


def _metrics(data: object) -> EventMetrics | None:
    return EventMetrics.from_message(data) if isinstance(data, Mapping) else None


# -- result payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationAck:
    """Payload of an acknowledged operation: one per acknowledged request.

    Merged from the ``OutboundRecordMessage`` / ``OutboundCampaignMessage`` acknowledgement,
    the OCS user event and, for ``GetChainedRecord``, the chained records that came first.
    ``record`` is what GWS sent (filled from OCS's answer): never assume it mirrors the request.
    """

    operation: str
    """The GWS ``operationName``, e.g. ``"CompleteRecord"``."""
    reference_id: str | None
    request: OperationRequest | None
    """Our request, or ``None`` for an acknowledgement of a request that is not ours."""
    record_handle: int | None
    record: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    campaign: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    records: tuple[Mapping[str, Any], ...] = ()
    empty: bool = False
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None


def _part_record(part: object) -> Mapping[str, Any] | None:
    if isinstance(part, UserEvent):
        return _frozen_mapping(part.user_data)
    if not isinstance(part, Mapping):
        return None
    record = part.get("record")
    if isinstance(record, Mapping) and ("notificationType" in part or "messageType" in part):
        return _frozen_mapping(record)  # the data of a part notification
    return _frozen_mapping(part)  # a record itself


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
    records: list[Mapping[str, Any]] = []
    try:
        for part in parts:
            frozen = _part_record(part)
            if frozen is not None:
                records.append(frozen)
    except TypeError:  # parts was not iterable
        records = []

    record_handle = (
        _id(record.get("recordHandle"))
        or _id(_mapping(record.get("userData")).get("GSW_RECORD_HANDLE"))
        or _id(user_data.get("GSW_RECORD_HANDLE"))
        or _id(getattr(request, "record_handle", None))
    )
    reference_id = _text(data.get("referenceId"))
    if reference_id is None:
        echoed = user_data.get("GSW_REFERENCE_ID")  # its type is unconfirmed: str or int
        if isinstance(echoed, int) and not isinstance(echoed, bool):
            echoed = str(echoed)
        reference_id = _text(echoed)
    if reference_id is None and request is not None:
        reference_id = _text(getattr(request, "reference_id", None))

    device_id = _text(event.device_id) if event is not None else None
    for candidate in (record.get("devicePath"), campaign.get("devicePath")):
        device_id = device_id or _device_id_of(candidate)
    if device_id is None and request is not None:
        device_id = _device_id_of(getattr(request, "device_path", None))

    metrics = event.metrics if event is not None else None
    if not isinstance(metrics, EventMetrics):
        metrics = _metrics(data)
    operation = spec.name if isinstance(spec, _spec.OperationSpec) else str(spec)
    return OperationAck(
        operation=operation,
        reference_id=reference_id,
        request=request,
        record_handle=record_handle,
        record=record,
        campaign=campaign,
        records=tuple(records),
        empty=bool(empty),
        user_data=user_data,
        device_id=device_id,
        metrics=metrics,
    )


@dataclass(frozen=True, slots=True)
class OperationFailure:
    """Payload of a failed operation: one per accepted request that failed."""

    operation: str
    """The GWS ``operationName``."""
    request: OperationRequest
    """The request that failed (always ours)."""
    reason: FailureReason
    status_code: int | None = None
    """GWS ``statusCode`` when GWS answered one."""
    error_number: int | None = None
    """OCS ``GSW_ERROR_NUMBER`` for an OCS error."""
    message: str | None = None
    """OCS ``GSW_ERROR``, GWS ``statusMessage`` or a description of what went wrong."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The OCS user event's ``userData`` for an OCS error (read-only), else empty."""
    may_have_acted: bool | None = None
    """Whether GWS may have acted on the request (as ``CancelFailure.may_have_acted``)."""

    def __post_init__(self) -> None:
        if self.may_have_acted is None:
            object.__setattr__(self, "may_have_acted", may_have_acted(self.reason))

    def describe(self) -> str:
        """One line for logs and exception messages (never the phone number)."""
        request = self.request
        handle = getattr(request, "record_handle", None)
        campaign = getattr(request, "campaign_name", None)
        if handle is not None:
            subject = f"{self.operation} of record {handle}"
        elif isinstance(request, _CampaignOperation):
            subject = f"{self.operation} on campaign {_show(campaign)}"
        else:
            subject = f"{self.operation} in campaign {_show(campaign)}"
        return describe_failure(
            subject,
            self.reason,
            self.status_code,
            self.error_number,
            self.message,
            getattr(request, "reference_id", None),
        )


# -- unsolicited OCS events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordCancelledEvent:
    """OCS cancelled a record the agent holds, on someone else's request (``RecordCancel``).

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    record_handle: int | None
    application_id: int | None
    campaign_name: str | None
    calling_list: str | None
    phone_number: str | None
    chain_id: int | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None


@dataclass(frozen=True, slots=True)
class ScheduledCallEvent:
    """A callback is due: OCS delivers a rescheduled record (``ScheduledCall``).

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    record_handle: int | None
    application_id: int | None
    campaign_name: str | None
    calling_list: str | None
    phone_number: str | None
    chain_id: int | None
    callback_type: CallbackType | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The whole record as OCS sent it (read-only)."""
    device_id: str | None = None
    metrics: EventMetrics | None = None


@dataclass(frozen=True, slots=True)
class CampaignStatusEvent:
    """A campaign was loaded, started, stopped, unloaded or changed dialing mode.

    Read from a ``DeviceUserEventMessage``; the GWS shape of this event is UNCONFIRMED.
    """

    status: CampaignStatus
    campaign_name: str | None
    application_id: int | None
    group_name: str | None
    dialing_mode: str | None
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    device_id: str | None = None
    metrics: EventMetrics | None = None


@dataclass(frozen=True, slots=True)
class PreviewRecordEvent:
    """A preview record OCS pushed (``PreviewRecord`` not answering a ``GetPreviewRecord``).

    Read from an ``OutboundRecordMessage``; that OCS pushes it unprompted is UNCONFIRMED.
    """

    record_handle: int | None
    record: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """The ``record`` object (read-only); ``record["userData"]`` holds the record's keys."""
    user_data: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAPPING)
    """``record.userData``: ``GSW_RECORD_HANDLE``, ``GSW_PHONE``, custom fields... (read-only)."""
    reference_id: str | None = None


_CAMPAIGN_STATUSES: Final = frozenset(status.value for status in CampaignStatus)


def _callback_type(value: object) -> CallbackType | None:
    if isinstance(value, str) and value in {member.value for member in CallbackType}:
        return CallbackType(value)
    return None


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
    device_id = _text(event.device_id)
    metrics = event.metrics if isinstance(event.metrics, EventMetrics) else None
    if name in _CAMPAIGN_STATUSES:
        return CampaignStatusEvent(
            status=CampaignStatus(name),
            campaign_name=_text(data.get("GSW_CAMPAIGN_NAME")),
            application_id=_id(data.get("GSW_APPLICATION_ID")),
            group_name=_text(data.get("GSW_CAMPAIGN_GROUP_NAME")),
            dialing_mode=_text(data.get("GSW_CAMPAIGN_MODE")),
            user_data=data,
            device_id=device_id,
            metrics=metrics,
        )
    if name == "RecordCancel":
        return RecordCancelledEvent(
            record_handle=_id(data.get("GSW_RECORD_HANDLE")),
            application_id=_id(data.get("GSW_APPLICATION_ID")),
            campaign_name=_text(data.get("GSW_CAMPAIGN_NAME")),
            calling_list=_text(data.get("GSW_CALLING_LIST")),
            phone_number=_text(data.get("GSW_PHONE")),
            chain_id=_id(data.get("GSW_CHAIN_ID")),
            user_data=data,
            device_id=device_id,
            metrics=metrics,
        )
    if name == "ScheduledCall":
        return ScheduledCallEvent(
            record_handle=_id(data.get("GSW_RECORD_HANDLE")),
            application_id=_id(data.get("GSW_APPLICATION_ID")),
            campaign_name=_text(data.get("GSW_CAMPAIGN_NAME")),
            calling_list=_text(data.get("GSW_CALLING_LIST")),
            phone_number=_text(data.get("GSW_PHONE")),
            chain_id=_id(data.get("GSW_CHAIN_ID")),
            callback_type=_callback_type(data.get("GSW_CALLBACK_TYPE")),
            user_data=data,
            device_id=device_id,
            metrics=metrics,
        )
    return None


def preview_record_from_outbound(data: Mapping[str, Any]) -> PreviewRecordEvent:
    """The :class:`PreviewRecordEvent` of an ``OutboundRecordMessage`` (``PreviewRecord``).

    Pure; never raises: on malformed input the fields are ``None`` / empty.
    """
    message = _mapping(data)
    record = _frozen_mapping(message.get("record"))
    user_data = _mapping(record.get("userData"))
    return PreviewRecordEvent(
        record_handle=_id(record.get("recordHandle")) or _id(user_data.get("GSW_RECORD_HANDLE")),
        record=record,
        user_data=user_data if user_data else EMPTY_MAPPING,
        reference_id=_text(message.get("referenceId")),
    )
