"""A host developer's first mistakes on the bus, with the plugin running (on ``FakeGWS`` and
the virtual clock, as the testing kit offers them): each is one clear error naming what to
write, and nothing is sent."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import (
    CancelRequest,
    GWSConfig,
    InvalidCancelRequest,
    InvalidOperationRequest,
    OutboundPlugin,
    make_plugin_manager,
    request_from_bus,
)
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop

from .conftest import ROOT

pytestmark = pytest.mark.anyio

EVENT = {
    "operationName": "RejectRecord",
    "recordHandle": 13,
    "applicationId": 134,
    "campaignName": "Campaign1",
    "callingList": "CallingList1",
}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


@pytest.fixture
def fake() -> FakeGWS:
    return FakeGWS()


@pytest.fixture
async def pm(fake: FakeGWS) -> AsyncIterator[pluggy.PluginManager]:
    pm = make_plugin_manager(load_entrypoints=False)
    config = GWSConfig(base_url="https://gws.example", username="agent1", password="secret")
    async with OutboundPlugin(pm, config, transport=fake):
        yield pm


async def test_a_bus_event_fired_as_an_operation_says_request_from_bus(pm, fake):
    """It said "invalid cancel request" (an InvalidCancelRequest) for a RejectRecord event."""
    with pytest.raises(InvalidOperationRequest) as caught:
        pm.hook.on_operation_requested(request=dict(EVENT))

    assert not isinstance(caught.value, InvalidCancelRequest)
    assert str(caught.value) == (
        "invalid operation request: request: on_operation_requested takes a request object, "
        "got dict (build it from a bus event with request_from_bus(event); nothing was sent)"
    )
    assert fake.posts == []


async def test_a_bus_event_fired_as_a_cancel_says_cancel_request_from_bus(pm, fake):
    event = {key: value for key, value in EVENT.items() if key != "operationName"}
    with pytest.raises(InvalidCancelRequest) as caught:
        pm.hook.on_cancel_requested(request=event)

    assert "got dict (build it from a bus event with CancelRequest.from_bus(event)" in str(
        caught.value
    )
    assert fake.posts == []


async def test_the_positional_call_error_is_the_one_the_docs_quote(pm, fake):
    """pluggy's hooks take keywords only; the docs quote the TypeError a host gets, so a
    search for it lands on the answer."""
    with pytest.raises(TypeError) as caught:
        pm.hook.on_cancel_requested(dict(EVENT))

    quoted = re.findall(r"`(TypeError: [^`]+)`", (ROOT / "docs" / "hooks.md").read_text())
    assert f"TypeError: {caught.value}" in quoted
    assert fake.posts == []


def test_a_bus_event_in_python_names_says_which_camelcase_key_to_write():
    """Each snake_case key listed every key GWS takes, once per key, and no hint."""
    event = {"record_handle": 11, "applicationId": 134, "campaignName": "Campaign1"}
    with pytest.raises(InvalidCancelRequest) as caught:
        CancelRequest.from_bus({**event, "callingList": "CallingList1", "devicePath": "/d/1"})

    assert caught.value.errors["record_handle"] == (
        "unknown key: bus events use GWS camelCase keys, write 'recordHandle'"
    )


def test_a_misspelt_bus_key_names_the_key_meant():
    event = {**EVENT, "campaignNmae": "Campaign1"}
    del event["campaignName"]
    with pytest.raises(InvalidOperationRequest) as caught:
        request_from_bus(event)

    assert caught.value.errors["campaignNmae"] == "unknown key (did you mean 'campaignName'?)"


@pytest.mark.parametrize(
    ("given", "meant"),
    [("Reject", "RejectRecord"), ("complete", "CompleteRecord"), ("Cancel", "CancelRecord")],
)
def test_an_operation_named_by_its_verb_alone_names_the_operation(given, meant):
    """"Reject" listed the eleven operations without a hint (too short for a misspelling)."""
    with pytest.raises(InvalidOperationRequest) as caught:
        request_from_bus({**EVENT, "operationName": given})

    assert caught.value.errors["operationName"].startswith(
        f"unknown operation {given!r} (did you mean {meant!r}? "
    )
