"""CancelRequest validation, from_bus and the GWS body."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    CancelRecordRequest,
    CancelRequest,
    ChainAttribute,
    EventMetrics,
    FailureReason,
    GWSOutboundError,
    InvalidCancelRequest,
    InvalidOperationRequest,
    OperationFailed,
    _spec,
    to_jsonable,
)

DEVICE = "/devices/57fc644b-c3b8-4ce8-ad82-d7e15c5f0b33"
FULL_BUS = {
    "recordHandle": 11,
    "applicationId": 134,
    "campaignName": "Campaign1",
    "callingList": "CallingList1",
    "devicePath": DEVICE,
    "phoneNumber": "3001",
    "chainAttribute": "AllChain",
    "referenceId": "123456789",
}


def minimal(**changes: object) -> CancelRequest:
    values: dict[str, object] = {
        "record_handle": 11,
        "application_id": 134,
        "campaign_name": "Campaign1",
        "calling_list": "CallingList1",
        "device_path": DEVICE,
    }
    values.update(changes)
    return CancelRequest(**values)  # type: ignore[arg-type]


def test_full_bus_event_becomes_the_documented_body() -> None:
    request = CancelRequest.from_bus(FULL_BUS)
    assert request.record_handle == 11
    assert request.chain_attribute is ChainAttribute.ALL_CHAIN
    assert request.to_gws_body() == {
        "operationName": "CancelRecord",
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": DEVICE,
        "phoneNumber": "3001",
        "chainAttribute": "AllChain",
        "referenceId": "123456789",
    }
    assert CancelRequest.from_bus(request.to_bus()) == request


def test_minimal_request_omits_optional_fields_and_generates_a_reference() -> None:
    first, second = minimal(), minimal()
    body = first.to_gws_body()
    assert set(body) == {
        "operationName",
        "applicationId",
        "campaignName",
        "callingList",
        "devicePath",
        "referenceId",
    }
    assert None not in body.values()
    assert len(first.reference_id) == 32
    assert first.reference_id != second.reference_id


def test_generated_reference_ids_are_uuid4_hex() -> None:
    for _ in range(2000):
        reference = minimal().reference_id
        parsed = uuid.UUID(hex=reference)
        assert parsed.hex == reference  # 32 lowercase hex digits, nothing else
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("reference", ["0", "42", "0x42", "a042", "042a", "123456789"])
def test_a_reference_id_is_refused_only_when_digits_with_a_leading_zero(reference: str) -> None:
    assert minimal(reference_id=reference).reference_id == reference


def test_a_digit_reference_with_a_leading_zero_says_why() -> None:
    """OCS may echo "042" as the number 42: the request would miss its own answers (one went
    to hooks as another client's acknowledgement), so it is refused before anything is sent."""
    with pytest.raises(InvalidCancelRequest) as info:
        minimal(reference_id="042")
    assert "must not start with 0 when it is all digits (OCS may echo it as the number 42" in (
        str(info.value)
    )


def test_null_optional_keys_on_the_bus_count_as_absent() -> None:
    event = dict(FULL_BUS, phoneNumber=None, chainAttribute=None, referenceId=None)
    request = CancelRequest.from_bus(event)
    assert request.phone_number is None
    assert "phoneNumber" not in request.to_gws_body()


def test_chain_attribute_accepts_the_plain_string() -> None:
    assert minimal(chain_attribute="RecordOnly").chain_attribute is ChainAttribute.RECORD_ONLY


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_handle", "11/../x"),
        ("record_handle", True),
        ("record_handle", 0),
        ("record_handle", -3),
        ("record_handle", 11.0),
        ("record_handle", 2**60),
        ("record_handle", 2**31),
        ("application_id", 2**31),
        ("application_id", "134"),
        ("application_id", None),
        ("campaign_name", ""),
        ("campaign_name", "   "),
        ("campaign_name", 5),
        ("campaign_name", "x" * 256),
        ("calling_list", "bad\nname"),
        ("device_path", "devices/abc"),
        ("device_path", "/devices/"),
        ("device_path", "/devices/../../me"),
        ("device_path", "/devices/a/b"),
        ("phone_number", ""),
        ("phone_number", 3001),
        ("chain_attribute", "allchain"),
        ("chain_attribute", 1),
        ("reference_id", ""),
        ("reference_id", 123456789),
        ("reference_id", "042"),
        ("reference_id", "00"),
    ],
)
def test_each_bad_field_is_named(field: str, value: object) -> None:
    with pytest.raises(InvalidCancelRequest) as info:
        minimal(**{field: value})
    assert info.value.fields == (field,)
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_every_bad_field_is_reported_at_once_in_bus_names() -> None:
    event = {
        "recordHandle": "11/../x",
        "applicationId": True,
        "campaignName": "",
        "devicePath": "/elsewhere",
        "chainAttribute": "Everything",
        "callinglist": "typo",
        "operationName": "RejectRecord",
    }
    with pytest.raises(InvalidCancelRequest) as info:
        CancelRequest.from_bus(event)
    assert set(info.value.fields) == {
        "recordHandle",
        "applicationId",
        "campaignName",
        "devicePath",
        "chainAttribute",
        "callinglist",
        "callingList",
        "operationName",
    }
    assert info.value.errors["callingList"] == "is required"
    assert "unknown key" in info.value.errors["callinglist"]


@pytest.mark.parametrize("event", [None, [], "recordHandle=11", 11])
def test_bus_event_must_be_a_mapping(event: object) -> None:
    with pytest.raises(InvalidCancelRequest) as info:
        CancelRequest.from_bus(event)
    assert info.value.fields == ("event",)


def test_phone_number_is_not_echoed_in_errors() -> None:
    secret_phone = "+33 6 12 34 56 78" + "9" * 300
    with pytest.raises(InvalidCancelRequest) as info:
        minimal(phone_number=secret_phone)
    assert "12 34" not in str(info.value)


def test_requests_are_frozen_and_hashable() -> None:
    request = minimal()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.record_handle = 12  # type: ignore[misc]
    assert hash(request) == hash(dataclasses.replace(request))
    assert request.device_id == DEVICE.rsplit("/", 1)[1]
    assert request.record_key == (11, 134, "Campaign1", "CallingList1")


def test_event_metrics_read_from_a_notification() -> None:
    data = {
        "metrics": {
            "eventProcessing": {
                "serverGenerationTimestamp": 1433915407652,
                "nodeProcessingTimeNanos": 3679212,
                "serverProcessingTimeTotalMs": 4,
            }
        }
    }
    assert EventMetrics.from_message(data) == EventMetrics(1433915407652, 3679212, 4)
    assert EventMetrics.from_message({}) is None
    assert EventMetrics.from_message({"metrics": {"eventProcessing": {"x": "y"}}}) == (
        EventMetrics(None, None, None)
    )


def test_cancel_failed_carries_the_failure() -> None:
    failure = CancelFailure(
        request=minimal(reference_id="r-1"),
        reason=FailureReason.OCS_ERROR,
        error_number=101,
        message="Record not found",
    )
    error = CancelFailed(failure)
    assert error.failure is failure
    assert "ocs_error" in str(error)
    assert "Record not found" in str(error)
    assert "r-1" in str(error)


@pytest.mark.parametrize("field", ["record_handle", "application_id"])
def test_ids_are_32_bit_in_the_constructor(field: str) -> None:
    assert getattr(minimal(**{field: 2**31 - 1}), field) == 2**31 - 1
    with pytest.raises(InvalidCancelRequest) as info:
        minimal(**{field: 2**31})
    assert info.value.fields == (field,)
    assert "32-bit" in info.value.errors[field]
    assert "2147483647" in info.value.errors[field]


@pytest.mark.parametrize("key", ["recordHandle", "applicationId"])
def test_ids_are_32_bit_on_the_bus(key: str) -> None:
    assert CancelRequest.from_bus(dict(FULL_BUS, **{key: 2**31 - 1})).to_bus()[key] == 2**31 - 1
    with pytest.raises(InvalidCancelRequest) as info:
        CancelRequest.from_bus(dict(FULL_BUS, **{key: 2**31}))
    assert info.value.fields == (key,)
    assert "32-bit" in str(info.value)


def test_cancel_request_implements_the_operation_protocol() -> None:
    request = minimal(reference_id="r-7")
    assert request.spec is _spec.CANCEL_RECORD
    assert request.operation_name == "CancelRecord" == request.spec.name
    assert request.correlation_key == ("record", 11)
    assert request.correlation_key == _spec.record_key(11) == ("record", 11)
    assert request.gws_path() == "/me/outbound-records/11"
    # The protocol members are not fields: the dataclass is what it was.
    assert [f.name for f in dataclasses.fields(CancelRequest)] == [
        "record_handle",
        "application_id",
        "campaign_name",
        "calling_list",
        "device_path",
        "phone_number",
        "chain_attribute",
        "reference_id",
    ]
    assert CancelRecordRequest is CancelRequest


def test_invalid_cancel_request_is_an_invalid_operation_request_with_its_old_message() -> None:
    with pytest.raises(InvalidOperationRequest) as info:
        minimal(record_handle=0, campaign_name="")
    error = info.value
    assert type(error) is InvalidCancelRequest
    assert isinstance(error, ValueError) and isinstance(error, GWSOutboundError)
    assert error.operation == "CancelRecord"
    assert str(error).startswith("invalid cancel request: record_handle: must be a positive")
    assert error.fields == ("record_handle", "campaign_name")


def test_cancel_failed_is_an_operation_failed() -> None:
    failure = CancelFailure(request=minimal(), reason=FailureReason.TIMED_OUT)
    error = CancelFailed(failure)
    assert isinstance(error, OperationFailed)
    assert error.failure is failure
    assert failure.operation == "CancelRecord"
    assert str(error) == failure.describe()
    assert str(error).startswith("cancel of record 11 failed: timed_out")


def test_to_jsonable_writes_datetimes_as_iso_8601() -> None:
    moment = datetime.datetime(2015, 6, 10, 6, 25, 52, tzinfo=datetime.UTC)
    assert to_jsonable({"at": moment, "chain": ChainAttribute.ALL_CHAIN}) == {
        "at": "2015-06-10T06:25:52+00:00",
        "chain": "AllChain",
    }
