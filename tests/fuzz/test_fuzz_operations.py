"""Fuzzing ``request_from_bus`` for every operation: a valid request, safe to send, or
``InvalidOperationRequest`` naming the bad fields; nothing else."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gws_outbound_plugin import (
    InvalidOperationRequest,
    request_from_bus,
)
from tests.fuzz.strategies import python_values

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEVICE = "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f"
KEYS = [
    "recordHandle",
    "applicationId",
    "campaignName",
    "callingList",
    "devicePath",
    "phoneNumber",
    "chainAttribute",
    "referenceId",
    "callResult",
    "callbackType",
    "timestamp",
    "timeZone",
    "phoneType",
    "from",
    "until",
    "chainId",
    "otherFields",
    "nonsense",
]
#: Plausible values per key, so that many events are valid and the rest are near misses.
PLAUSIBLE: dict[str, Any] = {
    "recordHandle": st.integers(-2, 2**31 + 2),
    "applicationId": st.integers(-2, 2**31 + 2),
    "chainId": st.integers(-2, 2**31 + 2),
    "campaignName": st.sampled_from(["Campaign1", "Campaign 2/..", "", " ", "a\x00b", "."]),
    "callingList": st.sampled_from(["CallingList1", "", "L" * 300]),
    "devicePath": st.sampled_from([DEVICE, "/devices/", "devices/x", "/devices/../x"]),
    "phoneNumber": st.sampled_from(["3001", "+15550001", "", "\n"]),
    "chainAttribute": st.sampled_from(["AllChain", "RecordOnly", "allchain", None]),
    "referenceId": st.sampled_from(["r-1", "", None, 7]),
    "callResult": st.sampled_from(["Answer", "", None]),
    "callbackType": st.sampled_from(["Personal", "Campaign", "personal", None]),
    "timestamp": st.one_of(
        st.integers(-10, 2**40),
        st.sampled_from(["2030-01-02T03:04:05+00:00", "2030-01-02T03:04:05", "soon", True]),
    ),
    "timeZone": st.sampled_from(["PST", "", None]),
    "phoneType": st.sampled_from(["Mobile", "HomePhone", "mobile", None]),
    "from": st.integers(-5, 90_000),
    "until": st.integers(-5, 90_000),
    "otherFields": st.one_of(
        st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5))),
        python_values,
    ),
    "nonsense": python_values,
}

#: A valid event per operation (the keys it takes), which the fuzzing then mutates.
RECORD = {
    "recordHandle": 14,
    "applicationId": 134,
    "campaignName": "Campaign1",
    "devicePath": DEVICE,
}
BASES: dict[str, dict[str, Any]] = {
    "CancelRecord": {**RECORD, "callingList": "CallingList1", "chainAttribute": "AllChain"},
    "RejectRecord": {**RECORD, "callingList": "CallingList1"},
    "CompleteRecord": {**RECORD, "callingList": "CallingList1", "callResult": "Answer"},
    "DoNotCallRecord": {**RECORD, "callingList": "CallingList1", "phoneNumber": "3001"},
    "RescheduleRecord": {**RECORD, "callbackType": "Personal", "timestamp": 1893553445},
    "UpdateRecord": {**RECORD, "phoneType": "Mobile", "from": 0, "until": 86339},
    "GetChainedRecord": dict(RECORD),
    "AddRecord": {
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "phoneNumber": "5550001",
        "timeZone": "PST",
        "phoneType": "HomePhone",
        "from": 0,
        "until": 86339,
        "devicePath": DEVICE,
        "chainId": 7,
        "otherFields": {"customer": "Ada"},
    },
    "StartPreviewSession": {
        "applicationId": 134,
        "campaignName": "Campaign1",
        "devicePath": DEVICE,
    },
    "GetPreviewRecord": {"applicationId": 134, "campaignName": "Campaign 1", "devicePath": DEVICE},
    "EndPreviewSession": {"applicationId": 134, "campaignName": "Campaign1", "devicePath": DEVICE},
}
BY_PHONE = {
    "applicationId": 134,
    "campaignName": "Campaign1",
    "phoneNumber": "3001",
    "devicePath": DEVICE,
}


def _mutate(name: str, base: dict[str, Any], changes: dict[str, Any], drop: list[str]) -> Any:
    event = {"operationName": name, **base, **changes}
    for key in drop:
        event.pop(key, None)
    return event


def _events_for(name: str) -> Any:
    base = st.sampled_from([BASES[name]] * 4 + [*BASES.values(), BY_PHONE])
    changes = st.fixed_dictionaries(
        {}, optional={key: st.one_of(PLAUSIBLE[key], python_values) for key in KEYS}
    ).map(lambda d: dict(list(d.items())[:2]))
    return st.builds(
        _mutate,
        st.just(name),
        base,
        st.one_of(st.just({}), changes),
        st.lists(st.sampled_from(KEYS), max_size=2),
    )


events = st.sampled_from(sorted(BASES)).flatmap(_events_for)


def check(event: Any) -> None:
    try:
        request = request_from_bus(event)
    except InvalidOperationRequest as error:
        refused: InvalidOperationRequest | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.errors, "an InvalidOperationRequest must name at least one field"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in refused.errors.items())
        return
    # Valid means safe to send: typed, bounded ids, a path that cannot be steered.
    assert request.operation_name == event["operationName"]
    path = request.gws_path()
    assert re.fullmatch(r"/me/outbound-(records(/[0-9]+)?|campaigns/[^/?#]+)", path), path
    body = request.to_gws_body()
    assert body["operationName"] == event["operationName"]
    assert None not in body.values()
    for key in ("applicationId", "chainId"):
        if key in body:
            assert type(body[key]) is int and 0 < body[key] < 2**31
    assert request_from_bus({"operationName": event["operationName"], **request.to_bus()}) == (
        request
    )


@FUZZ
@given(events)
def test_request_from_bus_accepts_or_names_what_is_wrong(event: dict[str, Any]) -> None:
    check(event)


@FUZZ
@given(python_values)
def test_anything_at_all(event: Any) -> None:
    with contextlib.suppress(InvalidOperationRequest):
        request_from_bus(event)
