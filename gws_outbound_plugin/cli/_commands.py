"""The operation commands: which request fields each offers as options, how an option's word is
read (by the request field table), and how each command's requests are built.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._exceptions import InvalidOperationRequest
from .._models import CancelRequest
from .._operations import (
    AddRecordRequest,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    OperationRequest,
    RejectRecordRequest,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    request_from_bus,
)
from .._requests import REQUEST_FIELDS, ValueKind, field_from_text
from ._common import PROG


def _read_word(field: str, text: str) -> object:
    """One command-line word of ``field``, read and checked by the request field table."""
    try:
        return field_from_text(field, text)
    except InvalidOperationRequest as error:
        raise argparse.ArgumentTypeError(error.errors[field]) from None


#: A kind's ``parse`` where the word is the value as typed (text, a choice).
_AS_TYPED: Final = next(f.default for f in dataclasses.fields(ValueKind) if f.name == "parse")


def _reader(field: str) -> Callable[[str], object] | None:
    """The argparse ``type`` of ``field``'s option: ``None`` where the word is the value
    (text, checked with the whole request so that every problem is reported at once; a
    choice, which argparse checks against ``choices``)."""
    kind = REQUEST_FIELDS[field].kind
    if kind.choices is not None or kind.parse is _AS_TYPED:
        return None
    return functools.partial(_read_word, field)


#: Request field's GWS camelCase key -> its option (what error messages name).
_OPTION_OF_BUS_KEY: Final = {row.bus_key: row.flags[0] for row in REQUEST_FIELDS.values()}


def _build_do_not_call(event: Mapping[str, Any]) -> OperationRequest:
    if event.get("recordHandle") is None:
        return DoNotCallPhoneRequest.from_bus(event)
    return DoNotCallRecordRequest.from_bus(event)


def _build_request(event: Mapping[str, Any]) -> OperationRequest:
    return request_from_bus(event)


@dataclasses.dataclass(frozen=True)
class _Command:
    """An operation command: which options it offers and how its requests are built."""

    name: str
    summary: str
    description: str
    fields: tuple[str, ...]
    """The request fields its options give (``record_handle`` when it takes handles)."""
    required: tuple[str, ...]
    """The fields needed when the requests come from the options (not ``--stdin``)."""
    build: Callable[[Mapping[str, Any]], OperationRequest]
    """A request from a bus event in GWS camelCase keys (raises InvalidOperationRequest)."""
    what: str = "records"
    help: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Option help that differs from the field's in ``REQUEST_FIELDS``."""
    stdin_help: str = "one request per line"
    examples: tuple[str, ...] = ()
    """Command lines shown under "examples:" in ``--help``; each runs as shown against the
    embedded simulator's seeded records (a test runs them all)."""


_RECORD = ("record_handle", "application_id", "campaign_name")
_COMMON_TAIL = ("device_path", "reference_id")

_C1 = '"applicationId": 134, "campaignName": "Campaign1"'
_L1 = _C1 + ', "callingList": "CallingList1"'
_OPTS1 = "--application-id 134 --campaign Campaign1"
_LIST1 = _OPTS1 + " --calling-list CallingList1"


def _piped(line: str, command: str) -> str:
    """An example that pipes one JSON line into ``command``."""
    return f"echo '{line}' | {PROG} {command}"


def _record_description(action: str, operation: str, extra: str = "") -> str:
    return (
        f"{action} through the GWS configured in the environment (GWS_BASE_URL, "
        f"GWS_USERNAME, GWS_PASSWORD) with GWS {operation}, wait for each acknowledgement "
        "from OCS and print one line per request, all on one GWS session. The records are "
        "the --record-handle values (several allowed: they share the other options), or "
        "JSON lines on stdin with --stdin (GWS camelCase keys, one request per line, as in "
        "the examples below; the options give defaults for the keys a line leaves out; "
        "on a terminal, type the lines and end with Ctrl-D). "
        f"{extra}While outcomes are awaited on a terminal, progress is shown on stderr. "
        "Exit status: 0 all acknowledged, 1 a request failed or a line was invalid (the "
        "reason is printed), 2 usage or configuration error, 130 interrupted (each "
        "unfinished request is printed as interrupted). Installed plugins are loaded and "
        "see the requests too, unless --no-plugins."
    )


_COMMANDS: Final[tuple[_Command, ...]] = (
    _Command(
        "cancel",
        "cancel outbound records and print each outcome",
        _record_description("Cancel outbound records", "CancelRecord"),
        (
            *_RECORD,
            "calling_list",
            "phone_number",
            "chain_attribute",
            *_COMMON_TAIL,
        ),
        (*_RECORD, "calling_list"),
        CancelRequest.from_bus,
        help={
            "chain_attribute": "AllChain cancels the record's whole chain, RecordOnly only "
            "this record (default: not sent, GWS decides)",
            "reference_id": "referenceId to send, for a single record (default: a new uuid4 "
            "hex); GWS echoes it in the ack",
        },
        stdin_help="one cancel per line",
        examples=(
            f"{PROG} cancel --record-handle 11 {_LIST1} --chain RecordOnly",
            _piped('{"recordHandle": 14, ' + _L1 + "}", "cancel --stdin"),
            _piped('{"recordHandle": 16}', f"cancel --stdin {_LIST1}"),
        ),
    ),
    _Command(
        "reject",
        "reject outbound records (hand them back to OCS without calling)",
        _record_description("Reject outbound records (hand them back uncalled)", "RejectRecord"),
        (*_RECORD, "calling_list", *_COMMON_TAIL),
        (*_RECORD, "calling_list"),
        RejectRecordRequest.from_bus,
        examples=(
            f"{PROG} reject --record-handle 13 {_LIST1}",
            _piped('{"recordHandle": 17, ' + _L1 + "}", "reject --stdin"),
        ),
    ),
    _Command(
        "complete",
        "complete outbound records, optionally with a call result",
        _record_description(
            "Mark outbound records as processed",
            "CompleteRecord",
            "--call-result is sent as given: the values GWS accepts are UNCONFIRMED. ",
        ),
        (*_RECORD, "calling_list", "call_result", "phone_number", *_COMMON_TAIL),
        (*_RECORD, "calling_list"),
        CompleteRecordRequest.from_bus,
        help={"phone_number": "the number that was dialled (phoneNumber, optional)"},
        examples=(
            f"{PROG} complete --record-handle 13 {_LIST1} --call-result Answer",
            _piped('{"recordHandle": 17, ' + _L1 + ', "callResult": "Answer"}', "complete --stdin"),
        ),
    ),
    _Command(
        "do-not-call",
        "mark outbound records, or a phone number, do-not-call",
        (
            "Mark outbound records do-not-call with GWS DoNotCallRecord: by record "
            "(--record-handle, with --calling-list; --chain AllChain marks the whole chain) "
            "or, without --record-handle, by phone number (--phone: every record of the "
            "campaign with that number, POST /api/v2/me/outbound-records). Requests come "
            "from the options or as JSON lines with --stdin (a line without recordHandle is "
            "by phone number). Output, progress, exit status and plugins as for 'cancel'."
        ),
        (*_RECORD, "calling_list", "phone_number", "chain_attribute", *_COMMON_TAIL),
        ("application_id", "campaign_name"),
        _build_do_not_call,
        help={
            "record_handle": "OCS record handle(s) to mark (leave it out to mark --phone "
            "instead); repeat the option or give several",
            "calling_list": "calling list (callingList): required with --record-handle, "
            "optional by phone number (limits it to that list)",
            "phone_number": "the phone number: without --record-handle every record of the "
            "campaign with it is marked and the number joins the do-not-call list",
        },
        examples=(
            f"{PROG} do-not-call --record-handle 16 {_LIST1} --chain AllChain",
            f"{PROG} do-not-call --phone 4005 --application-id 134 --campaign Campaign2",
            _piped('{"recordHandle": 19, ' + _L1 + "}", "do-not-call --stdin"),
        ),
    ),
    _Command(
        "reschedule",
        "reschedule outbound records as callbacks at a given time",
        _record_description(
            "Reschedule outbound records as callbacks",
            "RescheduleRecord",
            'The time is --at, or "timestamp" in a JSON line: an ISO 8601 date-time with a '
            "UTC offset (a time without one is refused) or seconds since the epoch; no "
            "callingList is sent (as on the GWS page). When the time "
            "comes OCS delivers the record again (a ScheduledCall event: see "
            "'gws-outbound tail'). ",
        ),
        (*_RECORD, "callback_type", "scheduled_time", *_COMMON_TAIL),
        (*_RECORD, "callback_type", "scheduled_time"),
        RescheduleRecordRequest.from_bus,
        examples=(
            f"{PROG} reschedule --record-handle 12 {_OPTS1} --callback-type Personal "
            "--at 2030-01-02T09:30:00+01:00",
            _piped(
                '{"recordHandle": 13, '
                + _C1
                + ', "callbackType": "Campaign", "timestamp": 1893572200}',
                "reschedule --stdin",
            ),
        ),
    ),
    _Command(
        "update",
        "update outbound records: phone number, phone type, time zone, call window",
        _record_description(
            "Update outbound records",
            "UpdateRecord",
            "At least one of --phone, --phone-type, --time-zone, --from, --until must be "
            "given; --calling-list only names the record's list. ",
        ),
        (
            *_RECORD,
            "calling_list",
            "phone_number",
            "phone_type",
            "time_zone",
            "call_from",
            "call_until",
            *_COMMON_TAIL,
        ),
        _RECORD,
        UpdateRecordRequest.from_bus,
        help={
            "phone_number": "the record's new phone number (phoneNumber)",
            "calling_list": "the record's calling list (callingList, optional: it identifies "
            "the record, it does not move it)",
        },
        examples=(
            f"{PROG} update --record-handle 17 {_OPTS1} --phone-type Mobile --from 08:00 "
            "--until 17:30",
            _piped('{"recordHandle": 18, ' + _C1 + ', "timeZone": "EST"}', "update --stdin"),
        ),
    ),
    _Command(
        "chained",
        "print the records chained to outbound records",
        _record_description(
            "Get the records chained to outbound records (same customer)",
            "GetChainedRecord",
            "Each acknowledgement line is followed by one 'chained' line per chained record "
            '(--json: the records are in "records"). ',
        ),
        (*_RECORD, *_COMMON_TAIL),
        _RECORD,
        GetChainedRecordRequest.from_bus,
        examples=(
            f"{PROG} chained --record-handle 11 {_OPTS1}",
            _piped('{"recordHandle": 14, ' + _C1 + "}", "chained --stdin"),
        ),
    ),
    _Command(
        "add-record",
        "add a record to a calling list",
        (
            "Add a record to a calling list with GWS AddRecord (POST "
            "/api/v2/me/outbound-records), wait for the acknowledgement and print the new "
            "record's handle. One record from the options, or many as JSON lines with "
            "--stdin (GWS camelCase keys, as in the examples below; the options give "
            "defaults for the keys a line leaves out). Output, progress, exit status and "
            "plugins as for 'cancel'."
        ),
        (
            "application_id",
            "campaign_name",
            "calling_list",
            "phone_number",
            "time_zone",
            "phone_type",
            "call_from",
            "call_until",
            "chain_id",
            "other_fields",
            *_COMMON_TAIL,
        ),
        (
            "application_id",
            "campaign_name",
            "calling_list",
            "phone_number",
            "time_zone",
            "phone_type",
            "call_from",
            "call_until",
        ),
        AddRecordRequest.from_bus,
        what="records",
        help={"phone_number": "the new record's phone number (phoneNumber)"},
        stdin_help="one record per line",
        examples=(
            f"{PROG} add-record {_LIST1} --phone 5550001 --time-zone PST --phone-type "
            "HomePhone --from 0 --until 86399 --field tier=gold",
            _piped(
                '{"phoneNumber": "5550002", "timeZone": "PST", "phoneType": "HomePhone", '
                '"from": 0, "until": 86399, "otherFields": {"tier": 2}}',
                f"add-record --stdin {_LIST1}",
            ),
        ),
    ),
)

_PREVIEW_ACTIONS: Final[Mapping[str, Callable[[Mapping[str, Any]], OperationRequest]]] = {
    "start": StartPreviewSessionRequest.from_bus,
    "get": GetPreviewRecordRequest.from_bus,
    "end": EndPreviewSessionRequest.from_bus,
}

_PREVIEW = _Command(
    "preview",
    "preview dialing: start a session, get records, end it",
    (
        "Preview dialing on a campaign: each ACTION in turn, one at a time, on one GWS "
        "session: 'start' (StartPreviewSession), 'get' (GetPreviewRecord: OCS hands out the "
        "next record, printed with its handle, list, chain and phone number, or 'empty' when "
        "none is left, which is not a failure) and 'end' (EndPreviewSession). Work on the "
        "records with 'complete', 'reschedule', ... between 'start get' and 'end' (see "
        "the examples). Whether OCS keeps a preview session between runs "
        "(between GWS HTTP sessions) is UNCONFIRMED (the simulator keeps it per agent and "
        "campaign); 'start get ... end' in one run does not depend on it. Exit status as for "
        "'cancel': 0 every action acknowledged."
    ),
    ("application_id", "campaign_name", "device_path"),
    ("application_id", "campaign_name"),
    GetPreviewRecordRequest.from_bus,
    what="actions",
    examples=(
        f"{PROG} preview start get get {_OPTS1}",
        f"{PROG} complete --record-handle 11 {_LIST1} --call-result Answer",
        f"{PROG} preview end {_OPTS1}",
    ),
)

_REQUEST = _Command(
    "request",
    "send any outbound operation given as raw JSON with its operationName",
    (
        "Send any GWS outbound operation: each request is a JSON object in GWS camelCase "
        "keys with its operationName (CancelRecord, RejectRecord, CompleteRecord, "
        "DoNotCallRecord, RescheduleRecord, UpdateRecord, GetChainedRecord, AddRecord, "
        "StartPreviewSession, GetPreviewRecord, EndPreviewSession), given as arguments or "
        "as JSON lines on stdin with --stdin (see the examples). devicePath defaults to "
        "the agent's own device (the first one GWS lists for the agent). "
        "Requests are sent concurrently unless --sequential. Output, progress, exit status "
        "and plugins as for 'cancel'."
    ),
    ("device_path",),
    (),
    _build_request,
    what="requests",
    examples=(
        f"{PROG} request "
        + '\'{"operationName": "RejectRecord", "recordHandle": 12, '
        + _L1
        + "}'",
        _piped(
            '{"operationName": "GetChainedRecord", "recordHandle": 11, ' + _C1 + "}",
            "request --stdin",
        ),
    ),
)

_OPERATION_COMMANDS: Final = {command.name: command for command in (*_COMMANDS, _PREVIEW, _REQUEST)}
