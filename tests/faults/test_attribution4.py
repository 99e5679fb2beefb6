"""The right outcome, not just one (after test_attribution.py to test_attribution3.py and
test_attribution5.py): a request ending with another request's answer. Each test failed before
its fix."""

from __future__ import annotations

from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    GetPreviewRecordRequest,
    OutboundPlugin,
    StartPreviewSessionRequest,
)
from gws_outbound_plugin.testing import FakeGWS, HookRecorder
from tests.engine.conftest import fake_config

pytestmark = pytest.mark.anyio


@pytest.mark.virtual_clock
class TestOnTheVirtualClock:
    """On ``FakeGWS`` and the virtual clock (exact timelines, no wall time)."""

    async def test_another_desktop_s_no_record_does_not_empty_the_record_we_were_handed(
        self, pm: pluggy.PluginManager
    ) -> None:
        """Our ``GetPreviewRecord`` is answered: its ``PreviewRecord`` notification (with
        our referenceId) hands out record 11; its user event is late. Meanwhile another
        desktop of the agent asks the same campaign for a record and OCS tells it "no
        record" (``PreviewRecordEmpty``, a user event without a referenceId, relayed to
        every desktop of the agent). Before, that user event was matched by campaign to our
        request, still in its merge window, and acknowledged it at once with ``empty`` true
        (and the other desktop's user data) beside the record: a host reading ``ack.empty``
        ("no record left: end the session") never worked record 11, which OCS had handed to
        the agent and now held for it. Once a request's acknowledgement came by reference,
        an unreferenced "no record" is another client's answer, as an unreferenced refusal
        is (M9): the request is acknowledged with its record."""
        fake = FakeGWS()
        seen = HookRecorder()
        pm.register(seen, name="seen")
        common = {
            "campaign_name": "Campaign1",
            "application_id": 134,
            "device_path": fake.device_path(),
        }
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            await plugin.perform(StartPreviewSessionRequest(**common))
            fake.faults.drop_notifications("user_event", operation="GetPreviewRecord")
            request = GetPreviewRecordRequest(**common)
            ticket = plugin.submit(request)
            with anyio.fail_after(5):
                while not _with_reference(fake, request.reference_id):
                    await anyio.sleep(0.001)
            await anyio.sleep(0.01)  # delivered: the merge window is open
            fake.publish(
                "/me/internal",
                {
                    "messageType": "DeviceUserEventMessage",
                    "deviceId": fake.device_id(),
                    "userData": {
                        "GSW_USER_EVENT": "PreviewRecordEmpty",
                        "GSW_APPLICATION_ID": 134,
                        "GSW_CAMPAIGN_NAME": "Campaign1",
                    },
                },
            )
            ack = await ticket
            await plugin.wait_hooks_idle(5)
        (notification,) = _with_reference(fake, request.reference_id)
        handed_out = notification["record"]["userData"]["GSW_RECORD_HANDLE"]
        assert fake.records[handed_out].held_by == fake.username
        assert ack.empty is False
        assert ack.record_handle == handed_out
        assert ack.user_data.get("GSW_USER_EVENT") != "PreviewRecordEmpty"
        acks = [call.kwargs["ack"] for call in seen.calls_of("on_operation_acknowledged")]
        assert [(a.operation, a.empty) for a in acks] == [
            ("StartPreviewSession", False),
            ("GetPreviewRecord", False),
        ]
        assert seen.calls_of("on_operation_failed") == []


def _with_reference(fake: FakeGWS, reference_id: str) -> list[dict[str, Any]]:
    return [data for _, data in fake.published if data.get("referenceId") == reference_id]
