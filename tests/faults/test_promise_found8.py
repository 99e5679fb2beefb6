"""The promise, broken again and fixed (after tests/faults/test_promise_found.py to 5): each
test here failed before its fix. Every accepted request ends in exactly one outcome, its own,
within the documented bound, and a request the plugin cannot send is refused before it is
accepted ("Nothing invalid reaches the network")."""

from __future__ import annotations

import json
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import (
    AddRecordRequest,
    CancelRequest,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    GetPreviewRecordRequest,
    InvalidOperationRequest,
    OutboundPlugin,
    PhoneType,
    request_from_bus,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

#: Where the bus events below get half of an emoji (U+1F600 is "\ud83d\ude00" in UTF-16).
CUT = "CUT-HERE"


def _cut_emoji(request: Any, operation_name: bool = True) -> dict[str, Any]:
    """``request``'s bus event as a JavaScript desktop would send it after cutting a text at
    a length limit in the middle of an emoji: JSON.stringify writes the lone half as the
    escape ``\\ud83d``, which Python's JSON decoder reads as a lone surrogate."""
    event = request.to_bus()
    if operation_name:
        event.setdefault("operationName", request.operation_name)
    text = json.dumps(event).replace(CUT, "\\ud83d")
    cut: dict[str, Any] = json.loads(text)
    return cut


async def test_a_text_with_half_an_emoji_is_refused_before_anything_is_accepted(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, device_path: str
) -> None:
    """A bus event whose text was cut in the middle of an emoji (a lone surrogate: valid
    JSON, a valid Python ``str``) passed validation, so the host got a ticket; but no such
    text can be written as UTF-8, so the POST failed while it was being built, before a byte
    left. The host then waited ``ack_timeout`` and was told ``outcome_unknown`` with
    ``may_have_acted`` true ("GWS may or may not have acted: look at the record") for a
    request GWS never received (for a campaign operation, whose name goes in the URL path,
    the same). Validation now refuses such a text, naming the field (never the phone number
    or another field's value): nothing is accepted, nothing is sent."""
    handle = handles(sim, 1)[0]
    record = sim.records[handle].record
    common = {"application_id": record.application_id, "device_path": device_path}
    campaign = {**common, "campaign_name": record.campaign_name}
    events = {
        "callingList": _cut_emoji(
            request_for(sim, handle, calling_list=record.calling_list + CUT), False
        ),
        "campaignName": _cut_emoji(
            GetPreviewRecordRequest(**{**campaign, "campaign_name": "Preview" + CUT})
        ),
        "otherFields": _cut_emoji(
            AddRecordRequest(
                **campaign,
                calling_list=record.calling_list,
                phone_number="5550123",
                time_zone="UTC",
                phone_type=PhoneType.MOBILE,
                call_from=0,
                call_until=3600,
                other_fields={"note": "call back after lunch " + CUT},
            )
        ),
        "phoneNumber": _cut_emoji(DoNotCallPhoneRequest(**campaign, phone_number="5550199" + CUT)),
        "callResult": _cut_emoji(
            CompleteRecordRequest(
                **campaign,
                record_handle=handle,
                calling_list=record.calling_list,
                call_result="Answered" + CUT,
            )
        ),
        "referenceId": _cut_emoji(request_for(sim, handle, reference_id="desk-7" + CUT), False),
    }
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        for field, event in events.items():
            build = request_from_bus if "operationName" in event else CancelRequest.from_bus
            with pytest.raises(InvalidOperationRequest) as info:
                plugin.submit(build(event))
            assert list(info.value.errors) == [field]
            assert "lone surrogate" in info.value.errors[field]
            message = str(info.value)
            message.encode("utf-8")  # a log line can carry it
            assert "5550199" not in message
            assert "lunch" not in message
        # A bus key cut the same way is named, escaped: the error can be logged.
        event = {**events["callingList"], "note\ud83d": "x"}
        with pytest.raises(InvalidOperationRequest) as info:
            CancelRequest.from_bus(event)
        assert "note\\ud83d" in str(info.value)
        str(info.value).encode("utf-8")
        assert plugin.pending_count == 0
    assert sim.operations == []
    assert recorder.calls == []


def test_the_constructor_refuses_it_too() -> None:
    """The same rule for a request built in Python (a name read from a file with
    ``errors="surrogateescape"``, a command-line word the locale could not decode)."""
    with pytest.raises(InvalidOperationRequest) as info:
        CancelRequest(
            record_handle=11,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="List\udcff",
            device_path="/devices/x1",
        )
    assert list(info.value.errors) == ["calling_list"]
    # A whole emoji, and any other text that UTF-8 can carry, is fine.
    request = CancelRequest(
        record_handle=11,
        application_id=134,
        campaign_name="Campagne \U0001f600 été",
        calling_list="Liste",
        device_path="/devices/x1",
    )
    assert request.to_bus()["campaignName"].encode("utf-8")
