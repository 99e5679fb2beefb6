"""The one table of request fields (``_requests.REQUEST_FIELDS``): every request type, the bus
keys, the GWS body and the command line's values come from it; and the inbound coercion rules
the payload builders share (``_coerce``). Pure."""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any

import pytest

from gws_outbound_plugin import (
    OPERATION_TYPES,
    CancelRequest,
    InvalidCancelRequest,
    InvalidOperationRequest,
    RejectRecordRequest,
    RescheduleRecordRequest,
    UpdateRecordRequest,
    _builders,
    _payloads,
)
from gws_outbound_plugin._coerce import as_device_id, as_ocs_id
from gws_outbound_plugin._requests import (
    BUS_KEYS,
    REQUEST_FIELDS,
    SECONDS_PER_DAY,
    PhoneType,
    _check_text,
    _RecordOperation,
    field_from_text,
)

DEVICE = "/devices/d1"
ALL_TYPES = [cls for types in OPERATION_TYPES.values() for cls in types]


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_every_request_field_is_a_row_of_the_table(cls: type[Any]) -> None:
    assert {f.name for f in dataclasses.fields(cls)} <= set(REQUEST_FIELDS)


def test_bus_keys_and_options_are_unique() -> None:
    bus_keys = [row.bus_key for row in REQUEST_FIELDS.values()]
    flags = [flag for row in REQUEST_FIELDS.values() for flag in row.flags]
    assert len(set(bus_keys)) == len(bus_keys)
    assert len(set(flags)) == len(flags)
    assert all(flag.startswith("--") for flag in flags)


def test_cancel_is_a_record_operation_with_its_keys_from_the_table() -> None:
    assert issubclass(CancelRequest, _RecordOperation)
    assert dict(BUS_KEYS) == {
        REQUEST_FIELDS[f.name].bus_key: f.name for f in dataclasses.fields(CancelRequest)
    }
    request = CancelRequest(11, 134, "C", "L", DEVICE, reference_id="r")
    assert request.correlation_key == ("record", 11)
    assert request.record_key == (11, 134, "C", "L")
    assert "operationName" not in request.to_bus()
    assert CancelRequest.from_bus({**request.to_bus(), "operationName": "CancelRecord"}) == request


def test_a_cancel_and_a_reject_report_a_bad_field_in_the_same_words() -> None:
    with pytest.raises(InvalidCancelRequest) as cancel:
        CancelRequest(0, 134, "C", "L", "nope")
    with pytest.raises(InvalidOperationRequest) as reject:
        RejectRecordRequest(0, 134, "C", "L", "nope")
    assert cancel.value.errors == reject.value.errors
    assert str(cancel.value).startswith("invalid cancel request: record_handle: ")


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("record_handle", " 11 ", 11),
        ("call_from", "0", 0),
        ("call_from", "09:30", 9 * 3600 + 30 * 60),
        ("call_until", "23:59:59", SECONDS_PER_DAY - 1),
        (
            "scheduled_time",
            "2030-01-02T08:30:00Z",
            datetime.datetime(2030, 1, 2, 8, 30, tzinfo=datetime.UTC),
        ),
        ("chain_attribute", "RecordOnly", "RecordOnly"),
        ("other_fields", "tier=gold=1", ("tier", "gold=1")),
        ("campaign_name", "Campaign1", "Campaign1"),
    ],
)
def test_a_command_line_word_becomes_the_value_the_request_takes(
    name: str, text: str, value: object
) -> None:
    assert field_from_text(name, text) == value


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("record_handle", "0", 0),
        ("application_id", str(2**31), 2**31),
        ("phone_type", "Fax", "Fax"),
        ("device_path", "d1", "d1"),
    ],
)
def test_a_bad_command_line_word_is_refused_in_the_request_types_words(
    name: str, text: str, value: object
) -> None:
    """The command line's check is the request type's check, not a second rule."""
    with pytest.raises(InvalidOperationRequest, match="must") as from_text:
        field_from_text(name, text)
    fields: dict[str, Any] = {
        "record_handle": 11,
        "application_id": 134,
        "campaign_name": "C",
        "device_path": DEVICE,
        "time_zone": "PST",
        name: value,
    }
    with pytest.raises(InvalidOperationRequest) as made:
        UpdateRecordRequest(**fields)
    assert made.value.errors == from_text.value.errors


def test_a_negative_epoch_word_is_refused_as_not_positive() -> None:
    """``--at -5`` is an integer: the error says it must be positive, not that it is no
    integer."""
    with pytest.raises(InvalidOperationRequest) as refused:
        field_from_text("scheduled_time", "-5")
    assert "must be positive integer seconds since the Unix epoch" in str(refused.value)
    assert "got -5" in str(refused.value)


def test_a_naive_time_is_refused_as_on_the_bus() -> None:
    with pytest.raises(ValueError, match="names no instant") as from_text:
        field_from_text("scheduled_time", "2030-01-02T08:30:00")
    event = {
        "recordHandle": 11,
        "applicationId": 134,
        "campaignName": "C",
        "devicePath": DEVICE,
        "callbackType": "Personal",
        "timestamp": "2030-01-02T08:30:00",
    }
    with pytest.raises(InvalidOperationRequest) as from_bus:
        RescheduleRecordRequest.from_bus(event)
    assert from_bus.value.errors == {"timestamp": from_text.value.errors["scheduled_time"]}


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("1893572200", datetime.datetime(2030, 1, 2, 8, 16, 40, tzinfo=datetime.UTC)),
        (
            "2030-01-02T09:16:40+01:00",
            datetime.datetime(2030, 1, 2, 8, 16, 40, tzinfo=datetime.UTC),
        ),
    ],
)
def test_a_moment_is_a_date_time_with_an_offset_or_seconds_since_the_epoch(
    text: str, moment: datetime.datetime
) -> None:
    """The command line's ``--at`` words are the request type's: what the bus takes."""
    assert field_from_text("scheduled_time", text) == moment
    request = RescheduleRecordRequest(
        11, 134, "C", DEVICE, "Personal", field_from_text("scheduled_time", text)
    )
    assert request.to_gws_body()["timestamp"] == 1893572200


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("scheduled_time", "1" + "0" * 15, "is out of range, got 1000000000000000"),
        ("scheduled_time", "0", "must be positive integer seconds since the Unix epoch"),
        ("call_from", "24:00", "or HH:MM[:SS] before 24:00, got '24:00'"),
        ("call_until", "25:00", "or HH:MM[:SS] before 24:00, got '25:00'"),
        ("call_from", "86400", "must be seconds after midnight (0 to 86399)"),
    ],
)
def test_a_word_out_of_range_is_named_as_typed_in_a_typed_error(
    name: str, text: str, problem: str
) -> None:
    with pytest.raises(InvalidOperationRequest) as refused:
        field_from_text(name, text)
    assert refused.value.fields == (name,)
    assert problem in refused.value.errors[name]


@pytest.mark.parametrize("text", ["x", "1.5", "", "9:75", "1:2:3:4"])
def test_a_word_that_is_no_value_of_its_kind_says_so(text: str) -> None:
    with pytest.raises(ValueError, match=r"got|not an integer"):
        field_from_text("call_from" if ":" in text else "record_handle", text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (11, 11),
        ("11", 11),
        (" 7 ", 7),
        (0, None),
        (-1, None),
        (2**31, None),
        (True, None),
        ("1e3", None),
        (None, None),
    ],
)
def test_an_ocs_id_in_a_payload_is_within_the_ocs_range(
    value: object, expected: int | None
) -> None:
    assert as_ocs_id(value) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/devices/d1", "d1"),
        ("/devices/", None),
        ("/devices/a/", None),
        ("devices/d1", None),
        (7, None),
    ],
)
def test_a_device_id_is_the_last_segment_of_a_device_path(
    path: object, expected: str | None
) -> None:
    assert as_device_id(path) == expected


@pytest.mark.parametrize("name", sorted(_payloads._BUILDERS))
def test_the_engine_reaches_the_builders_through_the_payload_module(name: str) -> None:
    assert getattr(_payloads, name) is getattr(_builders, name)
    with pytest.raises(AttributeError):
        _payloads.no_such_builder  # noqa: B018


def _text_problem_by_the_rules(value: str) -> str | None:
    """What ``_check_text`` says of a ``str``, read from its rules one by one (its fast path
    for the usual ASCII text must agree)."""
    if not value or value.isspace():
        return "must not be empty"
    if len(value) > 255:
        return f"must be at most 255 characters, got {len(value)}"
    if re.search(r"[\x00-\x1f\x7f]", value):
        return "must not contain control characters"
    return None


@pytest.mark.parametrize(
    "value",
    [
        *(chr(code) for code in range(128)),
        *(f"Q4{chr(code)}list" for code in range(128)),
        " ",
        "   ",
        " Q4 ",
        "x" * 255,
        "x" * 256,
        " " * 256,
        "\x7f" * 3,
    ],
    ids=repr,
)
def test_ascii_text_is_checked_by_the_same_rules_on_the_fast_path(value: str) -> None:
    assert _check_text(value) == _text_problem_by_the_rules(value)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_one_bad_field_is_reported_as_the_full_check_reports_it(cls: type[Any]) -> None:
    """A request type checked field by field in one pass (no check between fields) reports a
    bad field exactly as the full check does (every problem, in the type's own words)."""
    good = {
        "record_handle": 11,
        "application_id": 101,
        "campaign_name": "Q4",
        "calling_list": "CL",
        "device_path": DEVICE,
        "phone_number": "5551234",
        "scheduled_time": datetime.datetime(2030, 1, 2, 9, 30, tzinfo=datetime.UTC),
        "callback_type": "Personal",
        "phone_type": next(iter(PhoneType)).value,
        "time_zone": "PST",
        "call_from": 3600,
        "call_until": 7200,
    }
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {name: value for name, value in good.items() if name in fields}
    cls(**values)  # valid as given
    for name in values:
        for bad in (0, "", " ", "a\tb", None):
            given = {**values, name: bad}
            present = {
                key: value
                for key, value in given.items()
                if value is not None or fields[key].default is not None
            }
            expected = cls._problems(present, name_of=lambda n: n)
            if not expected:
                cls(**given)  # an optional field left out
                continue
            with pytest.raises(InvalidOperationRequest) as caught:
                cls(**given)
            assert caught.value.errors == expected
