"""Fuzzing ``CancelRequest.from_bus``: a valid request or ``InvalidCancelRequest``, nothing else."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gws_outbound_plugin import CancelRequest, ChainAttribute, InvalidCancelRequest
from gws_outbound_plugin._requests import BUS_KEYS, MAX_JSON_INT
from tests.fuzz.strategies import (
    Unprintable,
    bus_keys,
    json_values,
    python_values,
    valid_bus_event,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A valid event, then each key replaced by anything at all.
mutated_events = st.builds(
    lambda event, key, value: {**event, key: value},
    valid_bus_event(),
    st.sampled_from([*BUS_KEYS, "operationName"]),
    python_values,
)


def check(event: Any) -> None:
    try:
        request = CancelRequest.from_bus(event)
    except InvalidCancelRequest as error:
        refused: InvalidCancelRequest | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.errors, "an InvalidCancelRequest must name at least one field"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in refused.errors.items())
        assert str(refused).startswith("invalid cancel request: ")
        return
    assert isinstance(event, Mapping)
    # Valid means safe to send: typed, bounded, and the handle cannot alter a URL path.
    assert type(request.record_handle) is int and 0 < request.record_handle <= MAX_JSON_INT
    assert type(request.application_id) is int and 0 < request.application_id <= MAX_JSON_INT
    assert re.fullmatch(r"/devices/[A-Za-z0-9][A-Za-z0-9._:-]*", request.device_path)
    assert request.chain_attribute is None or isinstance(request.chain_attribute, ChainAttribute)
    body = request.to_gws_body()
    assert None not in body.values()
    assert CancelRequest.from_bus(request.to_bus()) == request


@FUZZ
@given(st.dictionaries(bus_keys, python_values, max_size=10))
@example({"recordHandle": "11/../x"})
@example({"recordHandle": 10**5000, "applicationId": 10**5000})
@example({"recordHandle": Unprintable(), "campaignName": Unprintable()})
@example({Unprintable(): 1})
@example({"recordHandle": True, "applicationId": 1.0, "devicePath": "/devices/../../me"})
def test_arbitrary_mappings(event: dict[Any, Any]) -> None:
    check(event)


@FUZZ
@given(mutated_events)
def test_valid_events_with_one_key_replaced(event: dict[str, Any]) -> None:
    check(event)


@FUZZ
@given(valid_bus_event())
def test_valid_events_are_accepted(event: dict[str, Any]) -> None:
    request = CancelRequest.from_bus(event)
    assert request.record_handle == event["recordHandle"]
    if event.get("referenceId") is not None:
        assert request.reference_id == event["referenceId"]


@FUZZ
@given(st.one_of(json_values, python_values))
def test_anything_that_is_not_a_mapping(event: Any) -> None:
    check(event)
