"""OCS user data whose values are lists or objects (a KVList value may be one): "payloads are
immutable, one plugin cannot change what another receives" (docs/hooks.md). The user event's
``user_data`` was read-only at the top only: a plugin's ``on_user_event`` could change a
nested value for the plugins after it and, through the acknowledgement built from that user
event, for every ``on_record_cancel_acknowledged`` and the host's own outcome. Each test failed
before the fix (on FakeGWS and the virtual clock)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import (
    CancelRequest,
    OutboundPlugin,
    RecordCancelAck,
    UserEvent,
    hookimpl,
)
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.support import handles, request_for, until
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

NESTED: dict[str, Any] = {
    "GSW_CUSTOM_KV": {"tier": "gold", "flags": ["vip"]},
    "GSW_CUSTOM_LIST": [1, {"two": 2}],
}


class Meddler:
    """Tries to change what the others receive; records whether it could."""

    def __init__(self) -> None:
        self.changed: list[str] = []

    def _meddle(self, user_data: Mapping[str, Any]) -> None:
        attempts = (
            lambda: user_data["GSW_CUSTOM_KV"].__setitem__("tier", "bronze"),
            lambda: user_data["GSW_CUSTOM_KV"]["flags"].append("meddled"),
            lambda: user_data["GSW_CUSTOM_LIST"].append(3),
            lambda: user_data["GSW_CUSTOM_LIST"][1].__setitem__("two", 22),
        )
        for index, attempt in enumerate(attempts):
            try:
                attempt()
            except (TypeError, AttributeError):
                continue
            self.changed.append(f"attempt {index}")

    @hookimpl(tryfirst=True)
    def on_user_event(self, event: UserEvent) -> None:
        self._meddle(event.user_data)


class Reader:
    def __init__(self) -> None:
        self.user_events: list[Any] = []
        self.acks: list[Any] = []

    @hookimpl(trylast=True)
    def on_user_event(self, event: UserEvent) -> None:
        self.user_events.append(_plain(event.user_data))

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self.acks.append(_plain(ack.user_data))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _answer_with_nested_user_data(fake: FakeGWS, request: CancelRequest) -> None:
    """OCS acknowledges ``request`` (its referenceId in both messages) with nested values in
    the user event's userData."""
    record = fake.records[request.record_handle].record
    fake.publish(
        "/v2/me/outbound",
        {
            "messageType": "OutboundRecordMessage",
            "notificationType": "RecordCancelAcknowledge",
            "referenceId": request.reference_id,
            "record": {
                "devicePath": fake.device_path(),
                "callingList": record.calling_list,
                "applicationId": record.application_id,
                "recordHandle": request.record_handle,
                "campaignName": record.campaign_name,
            },
        },
    )
    fake.publish(
        "/me/internal",
        {
            "messageType": "DeviceUserEventMessage",
            "deviceId": fake.device_id(),
            "userData": {
                "GSW_USER_EVENT": "RecordCancelAcknowledge",
                "GSW_REFERENCE_ID": request.reference_id,
                "GSW_APPLICATION_ID": record.application_id,
                "GSW_RECORD_HANDLE": request.record_handle,
                "GSW_CAMPAIGN_NAME": record.campaign_name,
                **NESTED,
            },
        },
    )


async def test_no_plugin_changes_the_nested_user_data_of_an_outcome(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    meddler, reader = Meddler(), Reader()
    pm.register(meddler, name="meddler")
    pm.register(reader, name="reader")
    request = request_for(fake, handles(fake, 1)[0])
    fake.faults.drop_notifications()  # the fake's own answer: ours comes instead
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        ticket = plugin.submit(request)
        await plugin.wait_hooks_idle(5)  # POSTed, its own answer dropped
        _answer_with_nested_user_data(fake, request)
        ack = await ticket
        assert await plugin.wait_hooks_idle(5)
    assert meddler.changed == []
    expected = {key: _plain(value) for key, value in NESTED.items()}
    for seen in (*reader.user_events, *reader.acks, _plain(ack.user_data)):
        assert {key: seen[key] for key in NESTED} == expected
    assert len(reader.acks) == 1


async def test_an_unsolicited_user_event_is_read_only_all_the_way_down(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    meddler, reader = Meddler(), Reader()
    pm.register(meddler, name="meddler")
    pm.register(reader, name="reader")
    async with OutboundPlugin(pm, fake_config(), transport=fake):
        fake.publish(
            "/me/internal",
            {
                "messageType": "DeviceUserEventMessage",
                "deviceId": fake.device_id(),
                "userData": {"GSW_USER_EVENT": "SomethingElse", **NESTED},
            },
        )
        await until(lambda: reader.user_events, "the user event's hooks")
    assert meddler.changed == []
    assert reader.user_events == [{"GSW_USER_EVENT": "SomethingElse", **NESTED}]
