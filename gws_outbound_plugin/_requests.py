"""Every GWS outbound operation as a typed, validated request: the field table and the types.

- ``REQUEST_FIELDS``: the one table of request fields. Each row names the field's GWS camelCase key
  (used on the bus and in the GWS body), how it is checked, normalised, read from the bus and
  written to GWS and to the bus. A request type's dataclass fields pick rows of it by name.
- One frozen, validated request type per operation (``CancelRequest``, ``RejectRecordRequest``
  ... ``EndPreviewSessionRequest``), all built on ``_Request``. Each implements the
  ``Operation`` protocol of ``_spec``: the engine needs nothing else of it.
- ``OPERATION_TYPES`` and ``request_from_bus()``: a bus event in GWS camelCase keys, dispatched
  on its ``operationName``.

*Validation* lives here: a request's input must be exact (a real positive ``int``, never
``"11"``). *Coercion* of what GWS or OCS sends (``"11"`` is ``11``) is another rule, in
``_coerce``. Everything here is pure (no I/O) and immutable.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeAlias
from urllib.parse import quote

from . import _spec
from ._coerce import MAX_OCS_ID
from ._exceptions import InvalidCancelRequest, InvalidOperationRequest
from ._hints import closest
from ._pickling import reduce_frozen

__all__ = [
    "BUS_KEYS",
    "EMPTY_MAPPING",
    "MAX_JSON_INT",
    "MAX_OCS_ID",
    "MAX_TEXT_LENGTH",
    "OPERATION_TYPES",
    "REQUEST_FIELDS",
    "SECONDS_PER_DAY",
    "AddRecordRequest",
    "CallbackType",
    "CancelRecordRequest",
    "CancelRequest",
    "ChainAttribute",
    "CompleteRecordRequest",
    "DoNotCallPhoneRequest",
    "DoNotCallRecordRequest",
    "EndPreviewSessionRequest",
    "GetChainedRecordRequest",
    "GetPreviewRecordRequest",
    "OperationRequest",
    "PhoneType",
    "RejectRecordRequest",
    "RequestField",
    "RescheduleRecordRequest",
    "StartPreviewSessionRequest",
    "UpdateRecordRequest",
    "ValueKind",
    "field_from_text",
    "request_from_bus",
]

#: Largest integer JSON carries exactly (kept for compatibility; ids are limited to MAX_OCS_ID).
MAX_JSON_INT: Final = 2**53 - 1
#: Longest string accepted for names, paths and reference ids.
MAX_TEXT_LENGTH: Final = 255
_DEVICE_PATH = re.compile(r"/devices/[A-Za-z0-9][A-Za-z0-9._:-]{0,200}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: Seconds in a day: ``from`` / ``until`` are 0 .. SECONDS_PER_DAY - 1.
SECONDS_PER_DAY: Final = 86_400
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_SECOND: Final = datetime.timedelta(seconds=1)
_MAX_ISO_LENGTH: Final = 64
#: A command-line word of more digits is not read as seconds since the epoch.
_MAX_EPOCH_DIGITS: Final = 20
#: The words a time of day is given in on the command line.
_TIME_OF_DAY_WORDS: Final = (
    f"seconds after midnight (0 to {SECONDS_PER_DAY - 1}) or HH:MM[:SS] before 24:00"
)
_OTHER_FIELD_INT_LIMIT: Final = 2**63
_MAX_REPORTED_PROBLEMS: Final = 3
#: The empty read-only mapping (no key hints; a payload's absent ``user_data``).
EMPTY_MAPPING: Final[Mapping[str, Any]] = MappingProxyType({})

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


class ChainAttribute(enum.StrEnum):
    """Which records a cancel applies to (GWS ``chainAttribute``)."""

    ALL_CHAIN = "AllChain"
    """Every record of the chain the record belongs to."""
    RECORD_ONLY = "RecordOnly"
    """Only the record named by the handle."""


def _unknown_key(key: object, by_bus_key: Mapping[str, str]) -> str:
    """What to say of a key of a bus event that names no field: the camelCase key of a field
    given by its Python name (``record_handle``), or the key a misspelling meant."""
    if isinstance(key, str):
        for bus_key, field_name in by_bus_key.items():
            if key == field_name and key != bus_key:
                return f"unknown key: bus events use GWS camelCase keys, write {bus_key!r}"
        close = closest(key, by_bus_key)
        if close is not None:
            return f"unknown key (did you mean {close!r}?)"
    return f"unknown key (expected one of {', '.join(by_bus_key)})"


def _show(value: object, *, as_str: bool = False) -> str:
    # Never fails: a bus value may be an int too long to print or an object whose repr raises.
    try:
        text = str(value) if as_str else repr(value)
    except Exception:  # reporting the bad value must not fail
        text = f"<unprintable {type(value).__name__}>"
    if as_str and not _sendable(text):  # a lone surrogate: escaped, so a log line can carry it
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 40 else text[:37] + "..."


def _not_awaited(value: object) -> str:
    """What to add to "got <type>" for an awaitable given as a value: a forgotten ``await``
    (``record_handle=lookup(...)`` of an ``async def lookup``), else ``""``."""
    if inspect.isawaitable(value):
        return " (an awaitable: is an `await` missing?)"
    return ""


def _check_int(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        if awaited := _not_awaited(value):  # no repr: "<coroutine object ...>" says nothing
            return f"must be a positive integer, got {type(value).__name__}{awaited}"
        return f"must be a positive integer, got {type(value).__name__} {_show(value)}"
    if not 0 < value <= MAX_OCS_ID:
        return (
            f"must be a positive 32-bit integer (1 to {MAX_OCS_ID}, the OCS limit), "
            f"got {_show(value)}"
        )
    return None


def _check_text(value: object) -> str | None:
    if (
        type(value) is str
        and value.isascii()
        and value.isprintable()  # ASCII: no control characters
        and 0 < len(value) <= MAX_TEXT_LENGTH
        and not value.isspace()
    ):
        return None  # the usual text, without the checks below
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}{_not_awaited(value)}"
    if not value or value.isspace():
        return "must not be empty"
    if len(value) > MAX_TEXT_LENGTH:
        return f"must be at most {MAX_TEXT_LENGTH} characters, got {len(value)}"
    if _CONTROL_CHARS.search(value):
        return "must not contain control characters"
    if not value.isascii() and not _sendable(value):  # no call for the usual ASCII text
        return _NOT_SENDABLE
    return None


#: Why a text with a lone surrogate is refused (its value is not echoed: it may be personal).
_NOT_SENDABLE: Final = (
    "must be valid Unicode text: it holds a lone surrogate (half of a character such as an "
    "emoji, as a JSON \\ud83d escape or a UTF-16 text cut in two gives), which cannot be sent"
)


def _sendable(text: str) -> bool:
    """Whether ``text`` can be written to GWS (as UTF-8): a lone surrogate cannot, so a
    request holding one would be accepted and then fail while it is written."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_DOT_SEGMENTS: Final = frozenset({".", ".."})


def has_dot_segment(text: str) -> bool:
    """Whether ``text``, cut at every ``/`` and ``\\``, has a ``.`` or ``..`` piece: in a URL
    path (even percent-encoded: a server may decode escapes before routing) it would be
    resolved as a dot segment. The one rule for what may go in a path segment, used by
    validation (campaign names) and by ``GWSSession``'s check of every operation path."""
    return not _DOT_SEGMENTS.isdisjoint(re.split(r"[/\\]", text))


#: The usual way to the agent's device, for a device path given as the coroutine function
#: that gives it or as its coroutine (``device_path=plugin.device_path()``, no ``await``).
_DEVICE_PATH_HINT: Final = "device_path=await plugin.device_path()"


def _check_device_path(value: object) -> str | None:
    if type(value) is not str:
        if inspect.isawaitable(value):
            return (
                f"must be a string, got {type(value).__name__}: an `await` is missing "
                f"({_DEVICE_PATH_HINT})"
            )
        if callable(value) and not isinstance(value, type):
            name = getattr(value, "__name__", type(value).__name__)
            return (
                f"must be a string, got {type(value).__name__} {name}: call it and await "
                f"its result ({_DEVICE_PATH_HINT})"
            )
    problem = _check_text(value)
    if problem is None and isinstance(value, str) and not _DEVICE_PATH.fullmatch(value):
        problem = f"must look like /devices/<id>, got {_show(value)}"
    return problem


def _check_reference(value: object) -> str | None:
    """A reference id: text, and not digits with a leading zero. OCS keeps a reference as a
    number where it can (``GSW_REFERENCE_ID``): ``"042"`` could come back as ``42``, which
    names another request (``"42"``) or none, so the request's own answers would not be
    found."""
    problem = _check_text(value)
    if (
        problem is None
        and isinstance(value, str)
        and len(value) > 1
        and value[0] == "0"
        and value.isascii()
        and value.isdigit()
    ):
        problem = (
            "must not start with 0 when it is all digits (OCS may echo it as the number "
            f"{int(value)}, which would not match it), got {_show(value)}"
        )
    return problem


def _new_reference_id() -> str:
    """``uuid.uuid4().hex``, without building the ``UUID`` object (most of its cost): 16
    random bytes with the version (4) and variant (RFC 4122) bits set as ``uuid4`` sets them.
    Drawn again in the rare case (about 1 in 10**8) of digits only with a leading zero,
    which :func:`_check_reference` refuses."""
    while True:
        raw = bytearray(os.urandom(16))
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        reference = raw.hex()
        if reference[0] != "0" or not reference.isdigit():
            return reference


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
                f"{_show(value)} has no UTC offset, so it names no instant: add one "
                "(e.g. 2030-01-02T09:30:00+01:00, or Z for UTC)"
            )
        return moment, None
    return value, f"must be {expected}, got {type(value).__name__}"


def _moment_from_text(text: str) -> tuple[object, str | None]:
    """A command-line word of a moment: what the bus takes, an ISO 8601 date-time with a UTC
    offset or (a word of digits) whole seconds since the Unix epoch."""
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_EPOCH_DIGITS:
        return _decode_moment(int(text))  # a negative one is refused as not positive
    return _decode_moment(text)


def _moment_to_bus(value: datetime.datetime) -> str:
    return value.isoformat()


def _check_other_fields(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return f"must be a mapping of field name to value, got {type(value).__name__}"
    problems: list[str] = []
    for key, item in value.items():
        if _check_text(key) is not None:
            problems.append(
                f"key {_show(key)} must be non-empty Unicode text of at most 255 characters "
                "without control characters"
            )
        elif isinstance(item, str) and not _sendable(item):
            # The value may be personal data: name the key only.
            problems.append(f"{_show(key)} {_NOT_SENDABLE}")
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


def _int_from_text(text: str) -> tuple[object, str | None]:
    digits = text.strip()
    if digits.isascii() and digits.removeprefix("-").isdigit():
        return int(digits), None
    return text, f"not an integer: {_show(text)}"


def _seconds_from_text(text: str) -> tuple[object, str | None]:
    """Seconds after midnight, or ``HH:MM[:SS]``, in the field's range (its own check); a
    word out of range is named as typed (``25:00``, not the 90000 seconds it makes)."""
    value: int | None = None
    if text.isascii() and text.isdigit():
        value = int(text)
    else:
        parts = text.split(":")
        if len(parts) in (2, 3) and all(p.isascii() and p.isdigit() and len(p) <= 2 for p in parts):
            hours, minutes, seconds = (int(part) for part in [*parts, "0"][:3])
            if minutes < 60 and seconds < 60:
                value = hours * 3600 + minutes * 60 + seconds
    if value is not None and _check_seconds_of_day(value) is None:
        return value, None
    return text, f"must be {_TIME_OF_DAY_WORDS}, got {_show(text)}"


def _pair_from_text(text: str) -> tuple[object, str | None]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        return text, f"expected NAME=VALUE, got {_show(text)}"
    return (name, value), None


@dataclass(frozen=True, slots=True)
class ValueKind:
    """What sort of value a field holds: how it is checked, read and written."""

    check: Callable[[object], str | None]
    """Why a value is not acceptable, or ``None``: the one validation of request input."""
    normalize: Callable[[Any], Any] = _same
    """The value stored once it passed ``check`` (an enum member, a read-only mapping)."""
    decode: Callable[[object], tuple[object, str | None]] = _decode_as_is
    """A value from a bus event, and why it cannot be read (``check`` follows)."""
    parse: Callable[[str], tuple[object, str | None]] = _decode_as_is
    """One command-line word, and why it cannot be read (``check`` follows)."""
    to_gws: Callable[[Any], Any] = _same
    """The value in the GWS body."""
    to_bus: Callable[[Any], Any] = _same
    """The value in a bus event (``decode`` reads it back)."""
    choices: tuple[str, ...] | None = None
    """The allowed values, when there are few."""


def _enum_kind(kind: type[enum.StrEnum]) -> ValueKind:
    return ValueKind(
        _enum_check(kind),
        kind,
        to_gws=_enum_value,
        to_bus=_enum_value,
        choices=tuple(member.value for member in kind),
    )


_ID: Final = ValueKind(_check_int, parse=_int_from_text)
_TEXT: Final = ValueKind(_check_text)
_REFERENCE: Final = ValueKind(_check_reference)
_DEVICE: Final = ValueKind(_check_device_path)
_MOMENT: Final = ValueKind(
    _check_moment,
    decode=_decode_moment,
    parse=_moment_from_text,
    to_gws=_epoch_seconds,
    to_bus=_moment_to_bus,
)
_SECONDS_OF_DAY: Final = ValueKind(_check_seconds_of_day, parse=_seconds_from_text)
_OTHER_FIELDS: Final = ValueKind(
    _check_other_fields,
    _freeze_other_fields,
    parse=_pair_from_text,
    to_gws=_other_fields_to_json,
    to_bus=_other_fields_to_json,
)


@dataclass(frozen=True, slots=True)
class RequestField:
    """One request field: its GWS key, its kind of value, and how the command line gives it.

    The GWS camelCase key names the field on the bus and in the GWS body; the command line's
    option is ``flags[0]`` (``flags[1:]`` are aliases), described by ``metavar`` and ``help``.
    """

    bus_key: str
    kind: ValueKind
    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    repeatable: bool = False
    """Given once per item on the command line (``otherFields``: one ``NAME=VALUE`` each)."""


#: Request field name -> its row: the one table of request fields. Every request type's
#: dataclass fields are rows of it; ``to_gws_body``, ``to_bus``, ``from_bus``, ``BUS_KEYS`` and
#: the command line's options are derived from it.
REQUEST_FIELDS: Final[Mapping[str, RequestField]] = MappingProxyType(
    {
        "record_handle": RequestField(
            "recordHandle",
            _ID,
            ("--record-handle",),
            "OCS record handle(s) (GSW_RECORD_HANDLE); repeat the option or give several",
            "N",
        ),
        "application_id": RequestField(
            "applicationId",
            _ID,
            ("--application-id",),
            "DBID of the OCS application (applicationId)",
            "N",
        ),
        "campaign_name": RequestField(
            "campaignName", _TEXT, ("--campaign",), "campaign name (campaignName)", "NAME"
        ),
        "calling_list": RequestField(
            "callingList", _TEXT, ("--calling-list",), "calling list (callingList)", "NAME"
        ),
        "device_path": RequestField(
            "devicePath",
            _DEVICE,
            ("--device-path",),
            "the agent's device (devicePath); default: the agent's first device in GWS",
            "/devices/ID",
        ),
        "phone_number": RequestField(
            "phoneNumber",
            _TEXT,
            ("--phone", "--phone-number"),
            "the record's phone number (optional)",
            "NUMBER",
        ),
        "chain_attribute": RequestField(
            "chainAttribute",
            _enum_kind(ChainAttribute),
            ("--chain",),
            "AllChain: the record's whole chain, RecordOnly: only this record (default: not "
            "sent, GWS decides)",
        ),
        "call_result": RequestField(
            "callResult",
            _TEXT,
            ("--call-result",),
            "the call result to store (callResult, optional); GWS's list of allowed values is "
            "UNCONFIRMED, so any text is sent as given",
            "RESULT",
        ),
        "callback_type": RequestField(
            "callbackType",
            _enum_kind(CallbackType),
            ("--callback-type",),
            "Personal: the callback comes back to this agent; Campaign: to any agent of the "
            "campaign",
        ),
        "scheduled_time": RequestField(
            "timestamp",
            _MOMENT,
            ("--at",),
            "when to call back: an ISO 8601 date-time with a UTC offset, e.g. "
            "2030-01-02T09:30:00+01:00 or 2030-01-02T08:30:00Z, or seconds since the epoch "
            "(e.g. 1893572200); sent as seconds since the epoch",
            "DATETIME",
        ),
        "time_zone": RequestField(
            "timeZone",
            _TEXT,
            ("--time-zone",),
            "the record's time zone, e.g. PST (timeZone)",
            "NAME",
        ),
        "phone_type": RequestField(
            "phoneType",
            _enum_kind(PhoneType),
            ("--phone-type",),
            # Listed here, not as argparse's {choices}: twelve of them ran past any width.
            "the phone number's type (phoneType): " + ", ".join(t.value for t in PhoneType),
            "TYPE",
        ),
        "call_from": RequestField(
            "from",
            _SECONDS_OF_DAY,
            ("--from",),
            "start of the call window: seconds after midnight (0-86399) or HH:MM[:SS], in the "
            "record's time zone (that meaning is inferred from GWS samples)",
            "TIME",
        ),
        "call_until": RequestField(
            "until",
            _SECONDS_OF_DAY,
            ("--until",),
            "end of the call window, like --from (not before it)",
            "TIME",
        ),
        "chain_id": RequestField(
            "chainId",
            _ID,
            ("--chain-id",),
            "add the record to this chain (chainId; default: a new chain)",
            "N",
        ),
        "other_fields": RequestField(
            "otherFields",
            _OTHER_FIELDS,
            ("--field",),
            "a custom field of the record (otherFields), as text; repeat it for more (typed "
            "values: give the record as a JSON line with --stdin)",
            "NAME=VALUE",
            repeatable=True,
        ),
        "reference_id": RequestField(
            "referenceId",
            _REFERENCE,
            ("--reference-id",),
            "referenceId to send, for a single request (default: a new uuid4 hex); GWS echoes "
            "it in the acknowledgement",
            "ID",
        ),
    }
)


#: Request field name -> its kind's ``check`` (read from ``REQUEST_FIELDS`` once).
_CHECKS: Final[Mapping[str, Callable[[object], str | None]]] = {
    name: row.kind.check for name, row in REQUEST_FIELDS.items()
}


def field_from_text(name: str, text: str) -> object:
    """One command-line word for the request field ``name``, as its request type takes it.

    Raises :class:`~gws_outbound_plugin.InvalidOperationRequest` (a :class:`ValueError`)
    whose ``errors`` name the field and say what is wrong, in the words the request type
    uses (its own check); a word read into another value (``25:00``, ``1893572200``) is named
    as typed when it is refused. A repeatable field's word is one item (``otherFields``: a
    ``(name, value)`` pair), checked when the request is made.
    """
    row = REQUEST_FIELDS[name]
    value, problem = row.kind.parse(text)
    if problem is None and not row.repeatable:
        problem = row.kind.check(value)
    if problem is not None:
        raise InvalidOperationRequest({name: problem})
    return value


@dataclass(frozen=True, slots=True)
class _Layout:
    """The fields of one request type, in declaration order."""

    names: tuple[str, ...]
    optional: frozenset[str]
    """Fields whose default is ``None``: ``None`` (or a ``null`` on the bus) means unset."""
    required: tuple[str, ...]
    """Fields without a default."""
    by_bus_key: Mapping[str, str]
    normalized: tuple[tuple[str, Callable[[Any], Any]], ...]
    """The fields whose kind stores another value than the one given, each with its
    ``normalize`` (the others are stored as given)."""
    in_body: tuple[tuple[str, str, Callable[[Any], Any]], ...]
    """The fields of the GWS body (all but the one in the URL): name, GWS key, ``to_gws``."""
    checks: tuple[tuple[str, Callable[[object], str | None], bool], ...]
    """Each field with its kind's ``check`` and whether ``None`` means unset."""
    alone: bool
    """Whether each field is valid on its own terms alone: no check between fields
    (``call_from`` before ``call_until``, a type's ``_type_problems``)."""


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
    missing = [name for name in names if name not in REQUEST_FIELDS]
    if missing:  # pragma: no cover - a programming error in this module
        raise TypeError(f"{cls.__name__}: no row in REQUEST_FIELDS for {missing}")
    return _Layout(
        names=names,
        optional=frozenset(f.name for f in fields if f.default is None),
        required=tuple(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ),
        by_bus_key=MappingProxyType({REQUEST_FIELDS[name].bus_key: name for name in names}),
        normalized=tuple(
            (name, REQUEST_FIELDS[name].kind.normalize)
            for name in names
            if REQUEST_FIELDS[name].kind.normalize is not _same
        ),
        in_body=tuple(
            (name, REQUEST_FIELDS[name].bus_key, REQUEST_FIELDS[name].kind.to_gws)
            for name in names
            if name != cls._URL_FIELD
        ),
        checks=tuple(
            (f.name, REQUEST_FIELDS[f.name].kind.check, f.default is None) for f in fields
        ),
        alone=(
            getattr(cls._type_problems, "__func__", None) is _BASE_TYPE_PROBLEMS
            and not {"call_from", "call_until"} <= set(names)
        ),
    )


def _bus_name(name: str) -> str:
    return REQUEST_FIELDS[name].bus_key


def _own_name(name: str) -> str:
    return name


# -- request types ---------------------------------------------------------------------------------


class _Request:
    """What every request type of this module shares; not public.

    A subclass is a frozen, slotted dataclass whose fields are all rows of ``REQUEST_FIELDS`` and
    whose ``_SPEC`` names its operation.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its read-only mappings (other_fields), which pickle refuses.
        return reduce_frozen(self)

    _SPEC: ClassVar[_spec.OperationSpec]
    #: Field that goes in the URL instead of the body.
    _URL_FIELD: ClassVar[str | None] = None
    #: Whether ``to_bus`` writes ``operationName`` (``from_bus`` accepts it either way).
    _BUS_NAMES_OPERATION: ClassVar[bool] = True
    #: Bus key -> why it is refused, for keys that belong to a sibling type.
    _KEY_HINTS: ClassVar[Mapping[str, str]] = EMPTY_MAPPING

    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
        device_path: str
        reference_id: str

    def __post_init__(self) -> None:
        layout = _layout(type(self))
        if layout.alone:
            # The usual request: every field checked on its own, in one pass, with no
            # collection made; the first problem found sends it to the full check below,
            # which reports every problem at once.
            for name, check, optional in layout.checks:
                value = getattr(self, name)
                if (value is not None or not optional) and check(value) is not None:
                    break
            else:
                for name, normalize in layout.normalized:
                    value = getattr(self, name)
                    if value is not None and (normalized := normalize(value)) is not value:
                        object.__setattr__(self, name, normalized)
                return
        values: dict[str, Any] = {}
        for name in layout.names:
            value = getattr(self, name)
            if value is None and name in layout.optional:
                continue
            values[name] = value
        errors = self._problems(values, name_of=_own_name)
        if errors:
            raise self._invalid(errors)
        for name, normalize in layout.normalized:
            value = values.get(name)
            if value is not None and (normalized := normalize(value)) is not value:
                object.__setattr__(self, name, normalized)

    @classmethod
    def _invalid(cls, errors: Mapping[str, str]) -> InvalidOperationRequest:
        """The exception a validation failure raises (overridable, without ``super()``)."""
        return InvalidOperationRequest(errors, operation=cls._SPEC.name)

    @classmethod
    def _problems(
        cls, values: Mapping[str, Any], *, name_of: Callable[[str], str]
    ) -> dict[str, str]:
        """Every problem of the given field values (absent fields are not checked)."""
        errors: dict[str, str] = {}
        for name, value in values.items():
            problem = _CHECKS[name](value)
            if problem is not None:
                errors[name_of(name)] = problem
        valid = (
            {name: value for name, value in values.items() if name_of(name) not in errors}
            if errors
            else values
        )
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
            raise cls._invalid(
                {"event": f"must be a mapping of GWS keys, got {type(event).__name__}"}
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
                errors[_show(key, as_str=True)] = hint or _unknown_key(key, layout.by_bus_key)
                continue
            seen.add(field_name)
            if value is None and field_name not in layout.required:
                continue
            decoded, problem = REQUEST_FIELDS[field_name].kind.decode(value)
            if problem is not None:
                errors[key] = problem
                continue
            values[field_name] = decoded
        for field_name in layout.required:
            if field_name not in seen:
                errors[_bus_name(field_name)] = "is required"
        errors.update(cls._problems(values, name_of=_bus_name))
        if errors:
            raise cls._invalid(errors)
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
        for name, key, to_gws in _layout(type(self)).in_body:
            value = getattr(self, name)
            if value is not None:
                body[key] = to_gws(value)
        return body

    def to_bus(self) -> dict[str, Any]:
        """The request as a bus event in GWS camelCase keys, with ``operationName``.

        ``from_bus`` (and ``request_from_bus``) read it back to an equal request.
        """
        event: dict[str, Any] = {}
        if self._BUS_NAMES_OPERATION:
            event["operationName"] = self._SPEC.name
        for name, value in self._set_fields():
            rule = REQUEST_FIELDS[name]
            event[rule.bus_key] = rule.kind.to_bus(value)
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


#: The checks between fields that a request type without its own has (none).
_BASE_TYPE_PROBLEMS: Final = getattr(_Request._type_problems, "__func__", None)


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
        name = values.get("campaign_name")
        if isinstance(name, str) and has_dot_segment(name):
            # quote() keeps dots, and a client or proxy would resolve the dot segment; a server
            # decoding escapes before routing would see one between "/" or "\\" too.
            return {
                name_of("campaign_name"): (
                    "cannot be '.' or '..', nor have one between '/' or '\\' "
                    "(it goes in the URL path)"
                )
            }
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
class CancelRequest(_RecordOperation):
    """A validated request to cancel one outbound record (GWS ``CancelRecord``).

    Construction checks every field and raises :class:`InvalidCancelRequest` naming each bad
    one; an instance is therefore always safe to send. ``reference_id`` is generated (uuid4 hex)
    when not given; GWS echoes it in the CometD acknowledgement. ``from_bus`` reads the GWS
    camelCase keys (``recordHandle``, ``applicationId``, ``campaignName``, ``callingList`` and
    ``devicePath`` required; ``phoneNumber``, ``chainAttribute`` and ``referenceId`` optional),
    and ``to_bus`` writes them back, without ``operationName``.
    """

    _SPEC = _spec.CANCEL_RECORD
    # A cancel's bus event has never carried operationName (from_bus accepts it when given).
    _BUS_NAMES_OPERATION = False

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    device_path: str
    phone_number: str | None = None
    chain_attribute: ChainAttribute | None = None
    reference_id: str = field(default_factory=_new_reference_id)

    @classmethod
    def _invalid(cls, errors: Mapping[str, str]) -> InvalidOperationRequest:
        return InvalidCancelRequest(errors)

    @property
    def record_key(self) -> tuple[int, int, str, str]:
        """The record's identity: handle, application, campaign and calling list."""
        return (self.record_handle, self.application_id, self.campaign_name, self.calling_list)


#: The GWS name of a cancel, for guessability next to the other ``<Operation>Request`` types.
CancelRecordRequest = CancelRequest

#: GWS camelCase key -> ``CancelRequest`` field name, in field order.
BUS_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {REQUEST_FIELDS[f.name].bus_key: f.name for f in dataclasses.fields(CancelRequest)}
)


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
class _PreviewOperation(_CampaignOperation):
    """The fields of the three preview-session operations (their types add only ``_SPEC``)."""

    campaign_name: str
    application_id: int
    device_path: str
    reference_id: str = field(default_factory=_new_reference_id)


@dataclass(frozen=True, slots=True)
class StartPreviewSessionRequest(_PreviewOperation):
    """GWS ``StartPreviewSession``: start preview dialing on a campaign."""

    _SPEC = _spec.START_PREVIEW_SESSION


@dataclass(frozen=True, slots=True)
class GetPreviewRecordRequest(_PreviewOperation):
    """GWS ``GetPreviewRecord``: ask OCS for the next record of a preview campaign."""

    _SPEC = _spec.GET_PREVIEW_RECORD


@dataclass(frozen=True, slots=True)
class EndPreviewSessionRequest(_PreviewOperation):
    """GWS ``EndPreviewSession``: stop preview dialing on a campaign."""

    _SPEC = _spec.END_PREVIEW_SESSION


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


def _operation_meant(name: str) -> str | None:
    """The operation a misspelt ``operationName`` most likely means (``cancelrecord``,
    ``CancelRecrod``), if one is close enough."""
    by_folded = {known.casefold(): known for known in OPERATION_TYPES}
    if name.casefold() in by_folded:
        return by_folded[name.casefold()]
    # The verb alone ("Reject", "complete"): the one operation it starts.
    starting = [known for folded, known in by_folded.items() if folded.startswith(name.casefold())]
    if len(starting) == 1 and len(name) >= 3:
        return starting[0]
    return closest(name, OPERATION_TYPES)


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
        meant = _operation_meant(name) if isinstance(name, str) else None
        hint = f"did you mean {meant!r}? " if meant is not None else ""
        raise InvalidOperationRequest(
            {"operationName": f"unknown operation {_show(name)} ({hint}expected one of {known})"}
        )
    if name == "DoNotCallRecord" and event.get("recordHandle") is None:
        return DoNotCallPhoneRequest.from_bus(event)
    return types[0].from_bus(event)
