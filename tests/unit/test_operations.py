"""Every outbound operation's request type (validation, from_bus, the exact GWS body and path),
the dispatch from a bus event, the result payloads and the unsolicited-event parsers. Pure."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gws_outbound_plugin import (
    OPERATION_TYPES,
    AddRecordRequest,
    CallbackType,
    CampaignStatus,
    CampaignStatusEvent,
    CancelRequest,
    ChainAttribute,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    EventMetrics,
    FailureReason,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    InvalidCancelRequest,
    InvalidOperationRequest,
    OperationAck,
    OperationFailed,
    OperationFailure,
    OperationRequest,
    PhoneType,
    PreviewRecordEvent,
    RecordCancelledEvent,
    RejectRecordRequest,
    RescheduleRecordRequest,
    ScheduledCallEvent,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    UserEvent,
    _spec,
    build_ack,
    preview_record_from_outbound,
    request_from_bus,
    unsolicited_from_user_event,
)
from gws_outbound_plugin._requests import has_dot_segment

DEVICE = "/devices/57fc644b-c3b8-4ce8-ad82-d7e15c5f0b33"
DEVICE_ID = DEVICE.rsplit("/", 1)[1]
MAX_ID = 2**31 - 1
# 2015-06-10T06:25:52Z: the reference's sample timestamp.
SAMPLE_MOMENT = datetime.datetime(2015, 6, 10, 6, 25, 52, tzinfo=datetime.UTC)
SAMPLE_SECONDS = 1433917552
RECORD = {"record_handle": 11, "application_id": 134, "campaign_name": "Campaign1"}
CAMPAIGN = {"campaign_name": "Campaign1", "application_id": 134, "device_path": DEVICE}

#: A minimal valid constructor call of each new type.
MINIMAL: dict[type[Any], dict[str, Any]] = {
    RejectRecordRequest: {**RECORD, "calling_list": "CallingList1", "device_path": DEVICE},
    CompleteRecordRequest: {**RECORD, "calling_list": "CallingList1", "device_path": DEVICE},
    DoNotCallRecordRequest: {**RECORD, "calling_list": "CallingList1", "device_path": DEVICE},
    RescheduleRecordRequest: {
        **RECORD,
        "device_path": DEVICE,
        "callback_type": CallbackType.PERSONAL,
        "scheduled_time": SAMPLE_MOMENT,
    },
    UpdateRecordRequest: {**RECORD, "device_path": DEVICE, "time_zone": "ECT"},
    GetChainedRecordRequest: {**RECORD, "device_path": DEVICE},
    AddRecordRequest: {
        "application_id": 134,
        "campaign_name": "Campaign1",
        "calling_list": "CallingList1",
        "phone_number": "3001",
        "time_zone": "ECT",
        "phone_type": PhoneType.HOME_PHONE,
        "call_from": 0,
        "call_until": 86339,
        "device_path": DEVICE,
    },
    DoNotCallPhoneRequest: {
        "application_id": 134,
        "campaign_name": "Campaign1",
        "phone_number": "3001",
        "device_path": DEVICE,
    },
    StartPreviewSessionRequest: CAMPAIGN,
    GetPreviewRecordRequest: CAMPAIGN,
    EndPreviewSessionRequest: CAMPAIGN,
}
NEW_TYPES = tuple(MINIMAL)
ALL_TYPES = (CancelRequest, *NEW_TYPES)


def make(cls: type[Any], **changes: Any) -> Any:
    return cls(**{**MINIMAL[cls], **changes})


def field_names(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# -- the exact GWS bodies and paths ----------------------------------------------------------------

#: (request, URL path, body) with every optional field set.
FULL_CASES: list[tuple[Any, str, dict[str, Any]]] = [
    (
        RejectRecordRequest(11, 134, "Campaign1", "CallingList1", DEVICE, reference_id="r1"),
        "/me/outbound-records/11",
        {
            "operationName": "RejectRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "callingList": "CallingList1",
            "devicePath": DEVICE,
            "referenceId": "r1",
        },
    ),
    (
        CompleteRecordRequest(
            11, 134, "Campaign1", "CallingList1", DEVICE, "Answer", "3001", reference_id="r2"
        ),
        "/me/outbound-records/11",
        {
            "operationName": "CompleteRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "callingList": "CallingList1",
            "devicePath": DEVICE,
            "callResult": "Answer",
            "phoneNumber": "3001",
            "referenceId": "r2",
        },
    ),
    (
        DoNotCallRecordRequest(
            11, 134, "Campaign1", "CallingList1", DEVICE, "3001", "AllChain", reference_id="r3"
        ),
        "/me/outbound-records/11",
        {
            "operationName": "DoNotCallRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "callingList": "CallingList1",
            "devicePath": DEVICE,
            "phoneNumber": "3001",
            "chainAttribute": "AllChain",
            "referenceId": "r3",
        },
    ),
    (
        RescheduleRecordRequest(
            11, 134, "Campaign1", DEVICE, "Campaign", SAMPLE_MOMENT, reference_id="r4"
        ),
        "/me/outbound-records/11",
        {
            "operationName": "RescheduleRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "devicePath": DEVICE,
            "callbackType": "Campaign",
            "timestamp": SAMPLE_SECONDS,
            "referenceId": "r4",
        },
    ),
    (
        UpdateRecordRequest(
            11,
            134,
            "Campaign1",
            DEVICE,
            calling_list="CallingList1",
            phone_number="3001",
            time_zone="ECT",
            phone_type="Mobile",
            call_from=0,
            call_until=86339,
            reference_id="r5",
        ),
        "/me/outbound-records/11",
        {
            "operationName": "UpdateRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "devicePath": DEVICE,
            "callingList": "CallingList1",
            "phoneNumber": "3001",
            "timeZone": "ECT",
            "phoneType": "Mobile",
            "from": 0,
            "until": 86339,
            "referenceId": "r5",
        },
    ),
    (
        GetChainedRecordRequest(11, 134, "Campaign1", DEVICE, reference_id="r6"),
        "/me/outbound-records/11",
        {
            "operationName": "GetChainedRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "devicePath": DEVICE,
            "referenceId": "r6",
        },
    ),
    (
        AddRecordRequest(
            134,
            "Campaign1",
            "CallingList1",
            "3001",
            "ECT",
            "BusinessWithExt",
            3600,
            72000,
            DEVICE,
            chain_id=17,
            other_fields={"customer_id": "C-1", "score": 2.5, "vip": True, "visits": 3},
            reference_id="r7",
        ),
        "/me/outbound-records",
        {
            "operationName": "AddRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "callingList": "CallingList1",
            "phoneNumber": "3001",
            "timeZone": "ECT",
            "phoneType": "BusinessWithExt",
            "from": 3600,
            "until": 72000,
            "devicePath": DEVICE,
            "chainId": 17,
            "otherFields": {"customer_id": "C-1", "score": 2.5, "vip": True, "visits": 3},
            "referenceId": "r7",
        },
    ),
    (
        DoNotCallPhoneRequest(
            134, "Campaign1", "3001", DEVICE, "CallingList1", "RecordOnly", reference_id="r8"
        ),
        "/me/outbound-records",
        {
            "operationName": "DoNotCallRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "phoneNumber": "3001",
            "devicePath": DEVICE,
            "callingList": "CallingList1",
            "chainAttribute": "RecordOnly",
            "referenceId": "r8",
        },
    ),
    (
        StartPreviewSessionRequest("Campaign1", 134, DEVICE, reference_id="r9"),
        "/me/outbound-campaigns/Campaign1",
        {
            "operationName": "StartPreviewSession",
            "applicationId": 134,
            "devicePath": DEVICE,
            "referenceId": "r9",
        },
    ),
    (
        GetPreviewRecordRequest("Campaign 1/B", 134, DEVICE, reference_id="r10"),
        "/me/outbound-campaigns/Campaign%201%2FB",
        {
            "operationName": "GetPreviewRecord",
            "applicationId": 134,
            "devicePath": DEVICE,
            "referenceId": "r10",
        },
    ),
    (
        EndPreviewSessionRequest("Été?#%", 134, DEVICE, reference_id="r11"),
        "/me/outbound-campaigns/%C3%89t%C3%A9%3F%23%25",
        {
            "operationName": "EndPreviewSession",
            "applicationId": 134,
            "devicePath": DEVICE,
            "referenceId": "r11",
        },
    ),
]


@pytest.mark.parametrize(("request_", "path", "body"), FULL_CASES, ids=lambda v: type(v).__name__)
def test_the_exact_gws_body_and_path(request_: Any, path: str, body: dict[str, Any]) -> None:
    assert request_.to_gws_body() == body
    assert json.loads(json.dumps(request_.to_gws_body())) == body  # plain JSON, no enums
    assert all(type(v) in (str, int, dict) for v in request_.to_gws_body().values())
    assert request_.gws_path() == path
    assert request_.operation_name == body["operationName"] == request_.spec.name


def test_every_type_is_covered_by_the_body_cases() -> None:
    assert {type(case[0]) for case in FULL_CASES} == set(NEW_TYPES)


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
def test_unset_optional_fields_are_omitted_and_a_reference_is_generated(cls: type[Any]) -> None:
    first, second = make(cls), make(cls)
    body = first.to_gws_body()
    assert None not in body.values()
    expected = {"operationName", "referenceId"}
    for name in MINIMAL[cls]:
        if name not in ("record_handle",) and not (
            name == "campaign_name" and first.spec.target is _spec.Target.CAMPAIGN
        ):
            expected.add(_RULE_KEYS[name])
    assert set(body) == expected
    assert len(first.reference_id) == 32
    assert first.reference_id != second.reference_id


def _other_valid(name: str) -> Any:
    return {
        "record_handle": 12,
        "application_id": 135,
        "campaign_name": "Campaign2",
        "calling_list": "CallingList2",
        "device_path": "/devices/other",
        "phone_number": "3002",
        "time_zone": "PST",
        "phone_type": PhoneType.MOBILE,
        "call_from": 1,
        "call_until": 86000,
        "callback_type": CallbackType.CAMPAIGN,
        "scheduled_time": SAMPLE_MOMENT + datetime.timedelta(days=1),
    }[name]


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
def test_the_operation_protocol(cls: type[Any]) -> None:
    request = make(cls)
    spec = request.spec
    assert spec in _spec.OPERATION_SPECS.values()
    assert request.operation_name == spec.name
    if spec.target is _spec.Target.RECORD:
        assert request.correlation_key == ("record", 11)
        assert request.gws_path() == "/me/outbound-records/11"
    elif spec.target is _spec.Target.RECORDS:
        assert request.correlation_key == ("phone", 134, "Campaign1", "3001")
        assert request.gws_path() == "/me/outbound-records"
    else:
        assert request.correlation_key == ("campaign", 134, "Campaign1")
        assert "campaignName" not in request.to_gws_body()
    assert request.device_id == DEVICE_ID
    # Protocol members are not dataclass fields.
    assert not {"spec", "correlation_key", "operation_name"} & set(field_names(cls))


def test_specs() -> None:
    specs = {cls: make(cls).spec for cls in NEW_TYPES}
    assert specs[DoNotCallRecordRequest] is _spec.DO_NOT_CALL_RECORD
    assert specs[DoNotCallPhoneRequest] is _spec.DO_NOT_CALL_PHONE
    assert specs[AddRecordRequest] is _spec.ADD_RECORD
    assert specs[GetPreviewRecordRequest] is _spec.GET_PREVIEW_RECORD
    # One request type per spec, CancelRequest included.
    assert sorted(s.key for s in [*specs.values(), _spec.CANCEL_RECORD]) == sorted(
        _spec.OPERATION_SPECS
    )


# -- validation -----------------------------------------------------------------------------------

NAIVE = datetime.datetime(2015, 6, 10, 6, 25, 52)
BAD: dict[str, list[Any]] = {
    "record_handle": [0, -1, True, "11", "11/../x", 11.0, 2**31, None],
    "application_id": [0, True, "134", 2**31, None],
    "chain_id": [0, -2, False, "17", 2**31],
    "campaign_name": ["", "   ", 5, "x" * 256, "bad\nname", None],
    "calling_list": ["", 5, "a\x00b"],
    "device_path": ["devices/x", "/devices/", "/devices/a/b", "/devices/../me", 3],
    "phone_number": ["", 3001, "x" * 256, "1\t2"],
    "call_result": ["", 28, "\x7f"],
    "time_zone": ["", 1],
    "chain_attribute": ["allchain", "Everything", 1],
    "phone_type": ["mobile", "Cell", 3],
    "callback_type": ["personal", "Agent", 1],
    "call_from": [-1, 86400, True, "0", 1.5],
    "call_until": [-1, 86400, False, "86399", 86399.0],
    "scheduled_time": [
        NAIVE,
        SAMPLE_SECONDS,
        "2015-06-10T06:25:52Z",
        datetime.date(2015, 6, 10),
        datetime.datetime(1969, 12, 31, 23, 0, tzinfo=datetime.UTC),
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
    ],
    "other_fields": [
        [("a", 1)],
        {"": 1},
        {1: "x"},
        {"a": [1]},
        {"a": None},
        {"a": math.nan},
        {"a": math.inf},
        {"a": 2**63},
        {"a\n": 1},
    ],
    "reference_id": ["", 123, "x" * 256, None],
}
BAD_CASES = [
    pytest.param(cls, name, value, id=f"{cls.__name__}-{name}-{index}")
    for cls in NEW_TYPES
    for name in field_names(cls)
    for index, value in enumerate(BAD[name])
    if not (value is None and dataclasses.fields(cls)[field_names(cls).index(name)].default is None)
]


@pytest.mark.parametrize(("cls", "name", "value"), BAD_CASES)
def test_each_bad_field_is_named_by_the_constructor(cls: type[Any], name: str, value: Any) -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        make(cls, **{name: value})
    error = info.value
    assert error.fields == (name,)
    assert isinstance(error, ValueError)
    assert error.operation == cls(**MINIMAL[cls]).operation_name
    assert str(error).startswith(f"invalid {error.operation} request: {name}: ")


BAD_ON_THE_BUS = [
    case
    for case in BAD_CASES
    # On the bus, timestamp is seconds or an ISO string: its own test below.
    if case.values[1] != "scheduled_time" and case.values[2] is not None
]


@pytest.mark.parametrize(("cls", "name", "value"), BAD_ON_THE_BUS)
def test_each_bad_field_is_named_by_from_bus(cls: type[Any], name: str, value: Any) -> None:
    event = make(cls).to_bus()
    key = _RULE_KEYS[name]
    event[key] = value
    with pytest.raises(InvalidOperationRequest) as info:
        cls.from_bus(event)
    assert info.value.fields == (key,)


_RULE_KEYS = {
    "record_handle": "recordHandle",
    "application_id": "applicationId",
    "chain_id": "chainId",
    "campaign_name": "campaignName",
    "calling_list": "callingList",
    "device_path": "devicePath",
    "phone_number": "phoneNumber",
    "call_result": "callResult",
    "time_zone": "timeZone",
    "chain_attribute": "chainAttribute",
    "phone_type": "phoneType",
    "callback_type": "callbackType",
    "call_from": "from",
    "call_until": "until",
    "scheduled_time": "timestamp",
    "other_fields": "otherFields",
    "reference_id": "referenceId",
}


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (cls, name)
        for cls in (*NEW_TYPES, CancelRequest)
        for name in ("record_handle", "application_id", "chain_id")
        if name in field_names(cls)
    ],
)
def test_ids_are_32_bit(cls: type[Any], name: str) -> None:
    base = MINIMAL.get(cls) or {
        **RECORD,
        "calling_list": "CallingList1",
        "device_path": DEVICE,
    }
    assert getattr(cls(**{**base, name: MAX_ID}), name) == MAX_ID
    with pytest.raises(InvalidOperationRequest) as info:
        cls(**{**base, name: MAX_ID + 1})
    assert info.value.fields == (name,)
    assert "32-bit" in info.value.errors[name]
    event = cls(**base).to_bus()
    event[_RULE_KEYS[name]] = MAX_ID + 1
    with pytest.raises(InvalidOperationRequest) as info:
        cls.from_bus(event)
    assert info.value.fields == (_RULE_KEYS[name],)
    assert "32-bit" in str(info.value)


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
def test_every_problem_is_reported_at_once_in_bus_names(cls: type[Any]) -> None:
    event = make(cls).to_bus()
    event["applicationId"] = True
    event["devicePath"] = "/elsewhere"
    event["operationName"] = "SomethingElse"
    event["applicationID"] = 134
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = next(n for n in required if n not in ("application_id", "device_path"))
    del event[_RULE_KEYS[missing]]
    with pytest.raises(InvalidOperationRequest) as info:
        cls.from_bus(event)
    errors = info.value.errors
    assert set(errors) == {
        "applicationId",
        "devicePath",
        "operationName",
        "applicationID",
        _RULE_KEYS[missing],
    }
    assert errors[_RULE_KEYS[missing]] == "is required"
    assert "unknown key" in errors["applicationID"]
    assert repr(cls(**MINIMAL[cls]).operation_name) in errors["operationName"]


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("event", [None, [], "x=1", 11])
def test_bus_event_must_be_a_mapping(cls: type[Any], event: object) -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        cls.from_bus(event)
    assert info.value.fields == ("event",)


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
def test_null_optional_keys_count_as_absent_and_operation_name_is_optional(cls: type[Any]) -> None:
    request = make(cls, reference_id="ref")
    event = request.to_bus()
    del event["operationName"]
    for f in dataclasses.fields(cls):
        if f.default is None and getattr(request, f.name) is None:
            event[_RULE_KEYS[f.name]] = None
    assert cls.from_bus(event) == request


def test_the_phone_number_is_never_echoed() -> None:
    phone = "+33 6 12 34 56 78\n"
    for cls in (CompleteRecordRequest, DoNotCallRecordRequest, DoNotCallPhoneRequest):
        with pytest.raises(InvalidOperationRequest) as info:
            make(cls, phone_number=phone)
        assert "12 34" not in str(info.value)
        with pytest.raises(InvalidOperationRequest) as info:
            cls.from_bus({**make(cls).to_bus(), "phoneNumber": phone})
        assert "12 34" not in str(info.value)


def test_requests_are_frozen_slotted_and_hashable() -> None:
    for cls in NEW_TYPES:
        request = make(cls)
        with pytest.raises(dataclasses.FrozenInstanceError):
            request.application_id = 1
        assert not hasattr(request, "__dict__")
        assert hash(request) == hash(dataclasses.replace(request))
        assert isinstance(request, OperationRequest)
    assert isinstance(CancelRequest(11, 134, "C", "L", DEVICE), OperationRequest)


def test_enums_accept_their_string_values_and_keep_the_enum() -> None:
    update = make(UpdateRecordRequest, phone_type="VoiceMail")
    assert update.phone_type is PhoneType.VOICE_MAIL
    reschedule = make(RescheduleRecordRequest, callback_type="Campaign")
    assert reschedule.callback_type is CallbackType.CAMPAIGN
    dnc = make(DoNotCallPhoneRequest, chain_attribute="AllChain", reference_id="r")
    assert dnc.chain_attribute is ChainAttribute.ALL_CHAIN
    same = make(DoNotCallPhoneRequest, chain_attribute=ChainAttribute.ALL_CHAIN, reference_id="r")
    assert same == dnc
    assert [member.value for member in PhoneType] == [
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
    ]
    assert [member.value for member in CallbackType] == ["Personal", "Campaign"]


# -- RescheduleRecord: the timestamp ---------------------------------------------------------------


def test_a_naive_datetime_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        make(RescheduleRecordRequest, scheduled_time=NAIVE)
    assert "timezone-aware" in info.value.errors["scheduled_time"]
    assert "naive" in info.value.errors["scheduled_time"]


def test_the_timestamp_is_whole_seconds_since_the_epoch_whatever_the_time_zone() -> None:
    paris = datetime.timezone(datetime.timedelta(hours=2))
    local = SAMPLE_MOMENT.astimezone(paris) + datetime.timedelta(microseconds=999_999)
    request = make(RescheduleRecordRequest, scheduled_time=local)
    assert request.to_gws_body()["timestamp"] == SAMPLE_SECONDS
    assert request.scheduled_time == local  # kept as given
    assert request.to_bus()["timestamp"] == local.isoformat()
    assert RescheduleRecordRequest.from_bus(request.to_bus()) == request


@pytest.mark.parametrize(
    "timestamp",
    [SAMPLE_SECONDS, "2015-06-10T06:25:52Z", "2015-06-10T08:25:52+02:00", SAMPLE_MOMENT],
)
def test_from_bus_accepts_seconds_or_iso_8601_with_an_offset(timestamp: object) -> None:
    event = {**make(RescheduleRecordRequest).to_bus(), "timestamp": timestamp}
    request = RescheduleRecordRequest.from_bus(event)
    assert request.scheduled_time == SAMPLE_MOMENT
    assert request.scheduled_time.utcoffset() is not None
    assert request.to_gws_body()["timestamp"] == SAMPLE_SECONDS


@pytest.mark.parametrize(
    ("timestamp", "words"),
    [
        (True, "integer seconds"),
        (0, "positive"),
        (-5, "positive"),
        (1.5, "got float"),
        (10**15, "out of range"),
        ("2015-06-10T06:25:52", "UTC offset"),
        ("2015-06-10", "UTC offset"),
        ("yesterday", "ISO 8601"),
        ("2" * 65, "65 characters"),
        ([SAMPLE_SECONDS], "got list"),
        (None, "got NoneType"),
    ],
)
def test_from_bus_refuses_other_timestamps(timestamp: object, words: str) -> None:
    event = {**make(RescheduleRecordRequest).to_bus(), "timestamp": timestamp}
    with pytest.raises(InvalidOperationRequest) as info:
        RescheduleRecordRequest.from_bus(event)
    assert info.value.fields == ("timestamp",)
    assert words in info.value.errors["timestamp"]


def test_reschedule_has_no_calling_list() -> None:
    event = {**make(RescheduleRecordRequest).to_bus(), "callingList": "CallingList1"}
    with pytest.raises(InvalidOperationRequest) as info:
        RescheduleRecordRequest.from_bus(event)
    assert info.value.fields == ("callingList",)


# -- UpdateRecord / AddRecord ----------------------------------------------------------------------


def test_update_needs_something_to_update() -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        UpdateRecordRequest(11, 134, "Campaign1", DEVICE, calling_list="CallingList1")
    assert info.value.fields == ("phone_number/time_zone/phone_type/call_from/call_until",)
    bus = {"recordHandle": 11, "applicationId": 134, "campaignName": "C", "devicePath": DEVICE}
    with pytest.raises(InvalidOperationRequest) as info:
        UpdateRecordRequest.from_bus(bus)
    assert info.value.fields == ("phoneNumber/timeZone/phoneType/from/until",)
    assert "nothing to update" in str(info.value)
    # An update field given but invalid is reported on its own.
    with pytest.raises(InvalidOperationRequest) as info:
        UpdateRecordRequest.from_bus({**bus, "phoneType": "Cell"})
    assert info.value.fields == ("phoneType",)
    for name in ("phone_number", "time_zone", "phone_type", "call_from", "call_until"):
        request = UpdateRecordRequest(11, 134, "C", DEVICE, **{name: _other_valid(name)})
        assert getattr(request, name) == _other_valid(name)


@pytest.mark.parametrize("cls", [UpdateRecordRequest, AddRecordRequest])
def test_from_must_not_be_after_until(cls: type[Any]) -> None:
    assert make(cls, call_from=3600, call_until=3600).to_gws_body()["from"] == 3600
    with pytest.raises(InvalidOperationRequest) as info:
        make(cls, call_from=3601, call_until=3600)
    assert info.value.errors == {"call_until": "must not be before call_from (3601), got 3600"}
    event = {**make(cls).to_bus(), "from": 7200, "until": 60}
    with pytest.raises(InvalidOperationRequest) as info:
        cls.from_bus(event)
    assert info.value.errors == {"until": "must not be before from (7200), got 60"}
    if cls is UpdateRecordRequest:  # one bound alone is fine
        assert make(cls, call_from=86399).call_until is None


def test_other_fields_are_read_only_copies() -> None:
    source: dict[str, str | int | float | bool] = {"customer": "C-1"}
    request = make(AddRecordRequest, other_fields=source, reference_id="r")
    source["customer"] = "changed"
    assert request.other_fields == {"customer": "C-1"}
    assert isinstance(request.other_fields, MappingProxyType)
    with pytest.raises(TypeError):
        request.other_fields["customer"] = "x"  # type: ignore[index]
    body = request.to_gws_body()
    assert type(body["otherFields"]) is dict
    body["otherFields"]["customer"] = "y"
    assert request.other_fields["customer"] == "C-1"
    other = make(AddRecordRequest, other_fields={"customer": "C-2"}, reference_id="r")
    assert hash(request) == hash(other)  # other_fields is left out of the hash
    assert request != other
    assert request == make(AddRecordRequest, other_fields={"customer": "C-1"}, reference_id="r")
    assert make(AddRecordRequest, other_fields={}).to_gws_body()["otherFields"] == {}


def test_other_fields_errors_name_keys_but_not_values() -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        make(AddRecordRequest, other_fields={"phone2": ["+33 6 12 34 56 78"]})
    message = info.value.errors["other_fields"]
    assert "'phone2'" in message and "got list" in message
    assert "12 34" not in message


# -- campaign operations and the URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [StartPreviewSessionRequest, GetPreviewRecordRequest, EndPreviewSessionRequest]
)
def test_campaign_names_are_percent_encoded_and_dot_segments_refused(cls: type[Any]) -> None:
    """A name that is, or holds between ``/`` or ``\\``, a dot segment is refused at validation
    (nothing sent): ``GWSSession`` refuses such a path, so it was accepted, then ended
    ``transport_failure`` after the request was queued."""
    assert make(cls, campaign_name="a/b").gws_path() == "/me/outbound-campaigns/a%2Fb"
    assert make(cls, campaign_name="x?y#z").gws_path() == "/me/outbound-campaigns/x%3Fy%23z"
    assert make(cls, campaign_name="...").gws_path() == "/me/outbound-campaigns/..."
    assert make(cls, campaign_name="Q4 .. Q1").gws_path() == "/me/outbound-campaigns/Q4%20..%20Q1"
    for name in (".", "..", "a/../b", "Q4/..", "./x", "a\\.", "x/./y"):
        with pytest.raises(InvalidOperationRequest) as info:
            make(cls, campaign_name=name)
        assert info.value.fields == ("campaign_name",)
        with pytest.raises(InvalidOperationRequest) as info:
            cls.from_bus({**make(cls).to_bus(), "campaignName": name})
        assert info.value.fields == ("campaignName",)


def test_record_operations_accept_dot_campaign_names() -> None:
    # In the body, not in the URL: nothing to refuse.
    assert make(RejectRecordRequest, campaign_name="..").to_gws_body()["campaignName"] == ".."


# -- dispatch --------------------------------------------------------------------------------------


def test_operation_types_cover_every_operation_name() -> None:
    assert set(OPERATION_TYPES) == {spec.name for spec in _spec.OPERATION_SPECS.values()}
    assert OPERATION_TYPES["CancelRecord"] == (CancelRequest,)
    assert OPERATION_TYPES["DoNotCallRecord"] == (DoNotCallRecordRequest, DoNotCallPhoneRequest)
    for name, types in OPERATION_TYPES.items():
        for cls in types:
            if cls is not CancelRequest:
                assert make(cls).operation_name == name
    with pytest.raises(TypeError):
        OPERATION_TYPES["X"] = ()  # type: ignore[index]


@pytest.mark.parametrize("case", FULL_CASES, ids=lambda c: type(c[0]).__name__)
def test_request_from_bus_round_trips_every_type(case: tuple[Any, str, dict[str, Any]]) -> None:
    request = case[0]
    rebuilt = request_from_bus(request.to_bus())
    assert type(rebuilt) is type(request)
    assert rebuilt == request


def test_request_from_bus_on_cancel_and_do_not_call() -> None:
    cancel = CancelRequest(11, 134, "Campaign1", "CallingList1", DEVICE, reference_id="c")
    assert request_from_bus({**cancel.to_bus(), "operationName": "CancelRecord"}) == cancel
    with pytest.raises(InvalidCancelRequest) as info:
        request_from_bus({"operationName": "CancelRecord", "recordHandle": 2**31})
    assert "recordHandle" in info.value.fields
    dnc = make(DoNotCallPhoneRequest).to_bus()
    assert request_from_bus({**dnc, "recordHandle": None}) == DoNotCallPhoneRequest.from_bus(dnc)
    with_handle = {**dnc, "recordHandle": 11, "callingList": "CallingList1"}
    assert type(request_from_bus(with_handle)) is DoNotCallRecordRequest
    with pytest.raises(InvalidOperationRequest) as refused:
        DoNotCallPhoneRequest.from_bus(with_handle)
    assert "DoNotCallRecordRequest" in refused.value.errors["recordHandle"]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"recordHandle": 11}, "is required (one of CancelRecord, RejectRecord"),
        ({"operationName": None}, "is required"),
        ({"operationName": "cancelrecord"}, "unknown operation 'cancelrecord'"),
        ({"operationName": "cancelrecord"}, "(did you mean 'CancelRecord'? expected one of "),
        ({"operationName": "CancelRecrod"}, "(did you mean 'CancelRecord'? expected one of "),
        ({"operationName": "Frobnicate"}, "unknown operation 'Frobnicate' (expected one of "),
        ({"operationName": 3}, "unknown operation 3"),
        ({"operationName": ["CancelRecord"]}, "unknown operation"),
    ],
)
def test_request_from_bus_needs_a_known_operation_name(event: object, words: str) -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        request_from_bus(event)
    assert info.value.fields == ("operationName",)
    assert words in info.value.errors["operationName"]
    assert "EndPreviewSession" in info.value.errors["operationName"]
    assert info.value.operation is None
    assert str(info.value).startswith("invalid operation request: operationName: ")


def test_request_from_bus_needs_a_mapping() -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        request_from_bus(["operationName", "CancelRecord"])
    assert info.value.fields == ("event",)


# -- round trips (hypothesis) ----------------------------------------------------------------------

texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(str.strip)
ids = st.integers(min_value=1, max_value=MAX_ID)
devices = st.from_regex(r"/devices/[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
windows = st.tuples(st.integers(0, 86399), st.integers(0, 86399)).map(sorted)
zones = st.integers(-23 * 60, 23 * 60).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(9998, 12, 31),
    timezones=zones,
)
other_values = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "record_handle": ids,
    "application_id": ids,
    "chain_id": st.none() | ids,
    "campaign_name": texts.filter(lambda t: not has_dot_segment(t)),
    "calling_list": texts,
    "device_path": devices,
    "phone_number": texts,
    "call_result": texts,
    "time_zone": texts,
    "chain_attribute": st.sampled_from([*ChainAttribute, *[c.value for c in ChainAttribute]]),
    "phone_type": st.sampled_from([*PhoneType, *[p.value for p in PhoneType]]),
    "callback_type": st.sampled_from([*CallbackType, "Personal", "Campaign"]),
    "scheduled_time": moments,
    "other_fields": st.dictionaries(texts, other_values, max_size=4),
    "reference_id": texts,
}


def request_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    fields = dataclasses.fields(cls)
    draws: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        if f.name in ("call_from", "call_until"):
            continue
        strategy = FIELD_STRATEGIES[f.name]
        draws[f.name] = st.none() | strategy if f.default is None else strategy

    def build(values: dict[str, Any], window: list[int], bounds: tuple[bool, bool]) -> Any:
        if "call_from" in field_names(cls):
            required = cls is AddRecordRequest
            values["call_from"] = window[0] if bounds[0] or required else None
            values["call_until"] = window[1] if bounds[1] or required else None
        if cls is UpdateRecordRequest and all(
            values.get(n) is None
            for n in ("phone_number", "time_zone", "phone_type", "call_from", "call_until")
        ):
            values["time_zone"] = "ECT"
        return cls(**values)

    return st.builds(
        build, st.fixed_dictionaries(draws), windows, st.tuples(st.booleans(), st.booleans())
    )


@pytest.mark.parametrize("cls", NEW_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_through_the_bus(cls: type[Any], data: st.DataObject) -> None:
    request = data.draw(request_strategy(cls))
    event = request.to_bus()
    assert json.loads(json.dumps(event, allow_nan=False)) == event
    assert cls.from_bus(event) == request
    assert request_from_bus(event) == request
    body = request.to_gws_body()
    assert None not in body.values()
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["operationName"] == request.operation_name


# -- build_ack -------------------------------------------------------------------------------------

METRICS_DATA = {
    "metrics": {
        "eventProcessing": {
            "serverGenerationTimestamp": 1433915407652,
            "nodeProcessingTimeNanos": 3679212,
            "serverProcessingTimeTotalMs": 4,
        }
    }
}


def user_event(user_data: Mapping[str, Any], device_id: str | None = DEVICE_ID) -> UserEvent:
    return UserEvent(
        user_event=user_data.get("GSW_USER_EVENT"),
        user_data=MappingProxyType(dict(user_data)),
        device_id=device_id,
        metrics=EventMetrics(1, 2, 3),
        channel="/me/internal",
    )


def test_an_acknowledgement_merged_from_both_messages() -> None:
    request = make(RescheduleRecordRequest, reference_id="ref-1")
    outbound = {
        "messageType": "OutboundRecordMessage",
        "notificationType": "ScheduledRecordRescheduleAcknowledge",
        "referenceId": "ref-1",
        "record": {
            "devicePath": DEVICE,
            "callingList": "CallingList1",  # not in the request: GWS fills record from OCS
            "applicationId": 134,
            "recordHandle": 11,
            "campaignName": "Campaign1",
        },
        **METRICS_DATA,
    }
    event = user_event(
        {"GSW_USER_EVENT": "ScheduledRecordRescheduleAcknowledge", "GSW_RECORD_HANDLE": 11}
    )
    ack = build_ack(_spec.RESCHEDULE_RECORD, request, outbound, event, (), False)
    assert ack == OperationAck(
        operation="RescheduleRecord",
        reference_id="ref-1",
        request=request,
        record_handle=11,
        record=outbound["record"],  # type: ignore[arg-type]
        campaign={},
        records=(),
        empty=False,
        user_data=event.user_data,
        device_id=DEVICE_ID,
        metrics=EventMetrics(1, 2, 3),
    )
    assert ack.record["callingList"] == "CallingList1"
    with pytest.raises(TypeError):
        ack.record["recordHandle"] = 12  # type: ignore[index]


def test_the_record_handle_comes_from_the_record_then_user_data_then_request() -> None:
    request = make(RejectRecordRequest)  # handle 11
    spec = _spec.REJECT_RECORD
    event = user_event({"GSW_RECORD_HANDLE": 13})
    assert build_ack(spec, request, {"record": {"recordHandle": 12}}, event).record_handle == 12
    preview = {"record": {"userData": {"GSW_RECORD_HANDLE": "14"}}}
    assert build_ack(spec, request, preview, event).record_handle == 14
    assert build_ack(spec, request, {"record": {"recordHandle": True}}, event).record_handle == 13
    assert build_ack(spec, request, {"record": {"recordHandle": 2**31}}, None).record_handle == 11
    assert build_ack(spec, None, None, None).record_handle is None
    campaign = make(GetPreviewRecordRequest)
    assert build_ack(_spec.GET_PREVIEW_RECORD, campaign, None, None).record_handle is None


def test_a_preview_record_and_an_empty_answer() -> None:
    request = make(GetPreviewRecordRequest, reference_id="p-1")
    outbound = {
        "messageType": "OutboundRecordMessage",
        "notificationType": "PreviewRecord",
        "referenceId": "p-1",
        "record": {
            "userData": {
                "GSW_RECORD_HANDLE": 21,
                "GSW_PHONE": "3001",
                "contact_info": ["3001", {"nested": [1, 2]}],
            }
        },
    }
    ack = build_ack(_spec.GET_PREVIEW_RECORD, request, outbound, None)
    assert ack.record_handle == 21
    assert ack.device_id == DEVICE_ID  # from the request, nothing else said
    assert ack.metrics is None
    user_data = ack.record["userData"]
    assert isinstance(user_data, MappingProxyType)
    assert user_data["contact_info"] == ("3001", {"nested": (1, 2)})
    assert isinstance(user_data["contact_info"][1], MappingProxyType)
    outbound["record"]["userData"]["GSW_PHONE"] = "changed"  # type: ignore[index]
    assert ack.record["userData"]["GSW_PHONE"] == "3001"  # a copy
    empty = build_ack(_spec.GET_PREVIEW_RECORD, request, None, None, (), True)
    assert empty.empty is True and empty.record == {} and empty.reference_id == "p-1"


def test_chained_records_in_arrival_order() -> None:
    request = make(GetChainedRecordRequest)
    parts = [
        {"messageType": "OutboundRecordMessage", "record": {"recordHandle": 31}},
        {"recordHandle": 32, "phones": ["1", "2"]},
        user_event({"GSW_USER_EVENT": "ChainedRecord", "GSW_RECORD_HANDLE": 33}),
        None,
        "junk",
    ]
    end = {"notificationType": "ChainedRecordsDataEnd", "record": {"recordHandle": 11}}
    ack = build_ack(_spec.GET_CHAINED_RECORD, request, end, None, parts)  # type: ignore[arg-type]
    assert [dict(r).get("recordHandle", r.get("GSW_RECORD_HANDLE")) for r in ack.records] == [
        31,
        32,
        33,
    ]
    assert ack.records[1]["phones"] == ("1", "2")
    assert ack.record_handle == 11


def test_a_campaign_acknowledgement() -> None:
    outbound = {
        "messageType": "OutboundCampaignMessage",
        "notificationType": "PreviewSessionStarted",
        "campaign": {
            "name": "Campaign1",
            "dialingMode": "Preview",
            "devicePath": "/devices/from-campaign",
            "applicationId": 134,
        },
    }
    ack = build_ack(_spec.START_PREVIEW_SESSION, None, outbound, None)
    assert ack.campaign["dialingMode"] == "Preview"
    assert ack.device_id == "from-campaign"
    assert ack.request is None and ack.reference_id is None and ack.record == {}


def test_the_reference_id_comes_from_the_ack_then_the_user_event_then_the_request() -> None:
    request = make(RejectRecordRequest, reference_id="mine")
    spec = _spec.REJECT_RECORD
    from_event = user_event({"GSW_REFERENCE_ID": 77})
    assert build_ack(spec, request, {"referenceId": "echo"}, from_event).reference_id == "echo"
    assert build_ack(spec, request, {"referenceId": 5}, from_event).reference_id == "77"
    assert build_ack(spec, request, None, user_event({})).reference_id == "mine"
    assert build_ack(spec, None, None, user_event({"GSW_REFERENCE_ID": True})).reference_id is None


@pytest.mark.parametrize(
    "outbound",
    [None, [], "x", 5, {"record": "x", "campaign": [1], "referenceId": ["r"]}, {"record": None}],
)
@pytest.mark.parametrize("event", [None, "not an event", {"GSW_RECORD_HANDLE": 1}])
@pytest.mark.parametrize("parts", [(), None, 5, [None, 1, "x"]])
def test_build_ack_never_raises_on_odd_input(outbound: Any, event: Any, parts: Any) -> None:
    ack = build_ack(_spec.CANCEL_RECORD, None, outbound, event, parts, False)
    assert ack.record == {} and ack.records == () and ack.user_data == {}
    assert ack.record_handle is None and ack.device_id is None and ack.metrics is None


def test_build_ack_survives_absurdly_deep_data() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(500):
        node["x"] = {}
        node = node["x"]
    ack = build_ack(_spec.REJECT_RECORD, None, {"record": deep}, None)
    assert isinstance(ack.record["x"], MappingProxyType)


# -- OperationFailure ------------------------------------------------------------------------------


def test_operation_failure_describes_itself_without_the_phone_number() -> None:
    record = OperationFailure(
        operation="CompleteRecord",
        request=make(CompleteRecordRequest, reference_id="r-1", phone_number="3001"),
        reason=FailureReason.OCS_ERROR,
        error_number=101,
        message="Record not found",
    )
    assert record.describe() == (
        "CompleteRecord of record 11 failed: ocs_error error_number=101 Record not found "
        "(referenceId r-1)"
    )
    campaign = OperationFailure(
        "StartPreviewSession",
        make(StartPreviewSessionRequest, reference_id="r-2"),
        FailureReason.REJECTED,
        status_code=2,
    )
    assert campaign.describe() == (
        "StartPreviewSession on campaign 'Campaign1' failed: rejected statusCode=2 "
        "(referenceId r-2)"
    )
    phone = OperationFailure(
        "DoNotCallRecord",
        make(DoNotCallPhoneRequest, phone_number="5550123"),
        FailureReason.SHUT_DOWN,
    )
    assert phone.describe().startswith("DoNotCallRecord in campaign 'Campaign1' failed: shut_down")
    assert "5550123" not in phone.describe()
    error = OperationFailed(record)
    assert error.failure is record and str(error) == record.describe()
    assert record.user_data == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.message = "x"  # type: ignore[misc]


# -- unsolicited events ----------------------------------------------------------------------------

RECORD_KEYS = {
    "GSW_RECORD_HANDLE": 41,
    "GSW_APPLICATION_ID": 134,
    "GSW_CAMPAIGN_NAME": "Campaign1",
    "GSW_CALLING_LIST": "CallingList1",
    "GSW_PHONE": "3001",
    "GSW_CHAIN_ID": 7,
}


def test_record_cancelled_by_someone_else() -> None:
    event = user_event({"GSW_USER_EVENT": "RecordCancel", **RECORD_KEYS})
    parsed = unsolicited_from_user_event(event)
    assert parsed == RecordCancelledEvent(
        record_handle=41,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        phone_number="3001",
        chain_id=7,
        user_data=event.user_data,
        device_id=DEVICE_ID,
        metrics=EventMetrics(1, 2, 3),
    )


def test_a_scheduled_call_carries_the_whole_record() -> None:
    data = {
        "GSW_USER_EVENT": "ScheduledCall",
        **RECORD_KEYS,
        "GSW_CALLBACK_TYPE": "Personal",
        "customer": {"tags": ["a"]},
    }
    parsed = unsolicited_from_user_event(user_event(data))
    assert isinstance(parsed, ScheduledCallEvent)
    assert parsed.callback_type is CallbackType.PERSONAL
    assert parsed.record_handle == 41 and parsed.chain_id == 7
    assert parsed.user_data["customer"]["tags"] == ("a",)
    with pytest.raises(TypeError):
        parsed.user_data["customer"]["x"] = 1
    odd = unsolicited_from_user_event(user_event({**data, "GSW_CALLBACK_TYPE": "personal"}))
    assert isinstance(odd, ScheduledCallEvent) and odd.callback_type is None


@pytest.mark.parametrize("status", list(CampaignStatus))
def test_campaign_status_events(status: CampaignStatus) -> None:
    data = {
        "GSW_USER_EVENT": status.value,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_GROUP_NAME": "Group1",
        "GSW_CAMPAIGN_MODE": "Preview",
    }
    parsed = unsolicited_from_user_event(user_event(data))
    assert parsed == CampaignStatusEvent(
        status=status,
        campaign_name="Campaign1",
        application_id=134,
        group_name="Group1",
        dialing_mode="Preview",
        user_data=data,
        device_id=DEVICE_ID,
        metrics=EventMetrics(1, 2, 3),
    )


def test_campaign_status_values() -> None:
    assert [s.value for s in CampaignStatus] == [
        "CampaignLoaded",
        "CampaignStarted",
        "CampaignStopped",
        "CampaignUnloaded",
        "CampaignModeChanged",
    ]


@pytest.mark.parametrize(
    "name", ["RecordCancelAcknowledge", "PreviewRecord", "recordcancel", "", None, 5, ["x"]]
)
def test_other_user_events_are_not_unsolicited(name: object) -> None:
    assert unsolicited_from_user_event(user_event({"GSW_USER_EVENT": name, **RECORD_KEYS})) is None


def test_wrong_types_give_none_fields() -> None:
    data = {
        "GSW_USER_EVENT": "RecordCancel",
        "GSW_RECORD_HANDLE": "41",  # digits in a string are read
        "GSW_APPLICATION_ID": True,
        "GSW_CAMPAIGN_NAME": 5,
        "GSW_CALLING_LIST": "",
        "GSW_PHONE": ["3001"],
        "GSW_CHAIN_ID": 2**31,
    }
    parsed = unsolicited_from_user_event(user_event(data, device_id=None))
    assert isinstance(parsed, RecordCancelledEvent)
    assert parsed.record_handle == 41
    assert (parsed.application_id, parsed.campaign_name, parsed.calling_list) == (None,) * 3
    assert (parsed.phone_number, parsed.chain_id, parsed.device_id) == (None,) * 3
    for handle in (" 41 ", "4 1", "-41", "²", "0", "1" * 11, 4.0):
        event = user_event({**data, "GSW_RECORD_HANDLE": handle})
        parsed = unsolicited_from_user_event(event)
        assert parsed is not None
        assert parsed.record_handle == (41 if handle == " 41 " else None)  # type: ignore[union-attr]
    assert unsolicited_from_user_event("RecordCancel") is None  # type: ignore[arg-type]
    broken = UserEvent("RecordCancel", "not a mapping", None, None, "/me/internal")  # type: ignore[arg-type]
    parsed = unsolicited_from_user_event(broken)
    assert isinstance(parsed, RecordCancelledEvent) and parsed.user_data == {}


def test_a_pushed_preview_record() -> None:
    data = {
        "messageType": "OutboundRecordMessage",
        "notificationType": "PreviewRecord",
        "record": {"userData": {**RECORD_KEYS, "GSW_USER_EVENT": "PreviewRecord"}},
    }
    parsed = preview_record_from_outbound(data)
    assert parsed.record_handle == 41
    assert parsed.user_data["GSW_PHONE"] == "3001"
    assert parsed.user_data is parsed.record["userData"]
    assert parsed.reference_id is None
    assert preview_record_from_outbound({**data, "referenceId": "p"}).reference_id == "p"
    with_handle = {"record": {"recordHandle": 42, "userData": {"GSW_RECORD_HANDLE": 41}}}
    assert preview_record_from_outbound(with_handle).record_handle == 42


@pytest.mark.parametrize(
    "data",
    [None, [], "PreviewRecord", {}, {"record": None}, {"record": 5}, {"referenceId": 5}],
)
def test_a_malformed_preview_record_gives_empty_fields(data: Any) -> None:
    assert preview_record_from_outbound(data) == PreviewRecordEvent(None, {}, {}, None)


def test_a_preview_record_whose_user_data_is_not_a_mapping() -> None:
    parsed = preview_record_from_outbound({"record": {"userData": [1], "recordHandle": "x"}})
    assert parsed == PreviewRecordEvent(None, {"userData": (1,), "recordHandle": "x"}, {}, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
gsw_keys = st.sampled_from(
    [*RECORD_KEYS, "GSW_USER_EVENT", "GSW_CALLBACK_TYPE", "GSW_CAMPAIGN_MODE", "GSW_REFERENCE_ID"]
)
user_data_strategy = st.dictionaries(gsw_keys | st.text(max_size=8), json_values, max_size=8).map(
    lambda d: {**d, "GSW_USER_EVENT": d.get("GSW_USER_EVENT")}
) | st.fixed_dictionaries(
    {"GSW_USER_EVENT": st.sampled_from(["RecordCancel", "ScheduledCall", *CampaignStatus])},
    optional=dict.fromkeys([*RECORD_KEYS, "GSW_CALLBACK_TYPE", "GSW_CAMPAIGN_MODE"], json_values),
)


@settings(max_examples=100, deadline=None)
@given(user_data=user_data_strategy, outbound=json_values, parts=st.lists(json_values, max_size=3))
def test_the_parsers_never_raise(
    user_data: dict[str, Any], outbound: Any, parts: list[Any]
) -> None:
    event = user_event(user_data)
    parsed = unsolicited_from_user_event(event)
    if parsed is not None:
        for name in ("record_handle", "application_id", "chain_id"):
            value = getattr(parsed, name, None)
            assert value is None or (type(value) is int and 0 < value <= MAX_ID)
    preview = preview_record_from_outbound({"record": outbound})
    assert preview.record_handle is None or type(preview.record_handle) is int
    build_ack(_spec.GET_CHAINED_RECORD, None, {"record": outbound}, event, parts, False)
    build_ack(_spec.GET_CHAINED_RECORD, None, outbound, None, parts, False)
