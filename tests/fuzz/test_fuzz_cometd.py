"""Fuzzing the CometD message handling of a started plugin, and the limits on what it accepts.

Whatever arrives from the network (wrong types, missing keys, huge strings, deep nesting,
unknown message types), ``deliver`` never raises, a rejected message is logged exactly once
(``cometd_message_rejected`` or ``cometd_message_failed``), and the dispatcher still
acknowledges a real cancel afterwards.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gws_outbound_plugin import CancelFailed, GWSConfig, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import captured_logs, events_named
from tests.fuzz.strategies import GSW_KEYS, json_scalars, json_values
from tests.helpers import AGENT, Recorder, make_request

pytestmark = pytest.mark.anyio

FUZZ = settings(
    max_examples=250,
    deadline=None,
    # One started plugin serves every example: that is the point (state must survive).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REJECTIONS = ("cometd_message_rejected", "cometd_message_failed")

channels = st.one_of(
    st.sampled_from(["/v2/me/outbound", "/me/internal", "/meta/connect", "", "/x"]),
    json_values,  # lists and objects too: JSON allows them anywhere
)
message_types = st.one_of(
    st.sampled_from(["OutboundRecordMessage", "DeviceUserEventMessage", "Unknown", ""]),
    json_values,  # lists and objects too: JSON allows them anywhere
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "recordHandle": json_scalars,
            "applicationId": json_scalars,
            "campaignName": json_scalars,
            "callingList": json_scalars,
            "devicePath": json_scalars,
        },
    ),
)
user_data = st.one_of(
    json_values,
    st.dictionaries(st.one_of(st.sampled_from(GSW_KEYS), st.text(max_size=8)), json_values),
)
metrics = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "eventProcessing": st.dictionaries(
                st.sampled_from(
                    [
                        "serverGenerationTimestamp",
                        "nodeProcessingTimeNanos",
                        "serverProcessingTimeTotalMs",
                    ]
                ),
                json_scalars,
            )
        }
    ),
)
data_objects = st.fixed_dictionaries(
    {"messageType": message_types},
    optional={
        "notificationType": st.one_of(
            st.sampled_from(["RecordCancelAcknowledge", "Error", "Other"]), json_scalars
        ),
        "referenceId": json_scalars,
        "record": records,
        "userData": user_data,
        "deviceId": json_scalars,
        "metrics": metrics,
        "errorMessage": json_scalars,
    },
)
messages = st.one_of(
    json_values,  # not even an object
    st.fixed_dictionaries({}, optional={"channel": channels, "data": json_values}),
    st.fixed_dictionaries({"channel": channels, "data": data_objects}),
)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": [value]}
    return value


@FUZZ
@given(message=messages)
@example(message=None)
@example(message=["/v2/me/outbound"])
@example(
    message={
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "userData": {"GSW_USER_EVENT": "RecordCancelAcknowledge", "GSW_ERROR_NUMBER": "²"},
        },
    }
)
@example(
    message={
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "userData": {"GSW_ERROR_NUMBER": "9" * 5000},
            "metrics": {"eventProcessing": {"serverGenerationTimestamp": float("inf")}},
        },
    }
)
@example(
    message={
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "userData": {},
            "metrics": {"eventProcessing": {"nodeProcessingTimeNanos": float("nan")}},
        },
    }
)
async def test_arbitrary_messages_never_break_the_dispatcher(
    plugin: OutboundPlugin, message: Any
) -> None:
    engine = plugin._engine
    malformed = engine.stats["malformed"]
    with captured_logs() as logs:
        with anyio.fail_after(5):
            await engine.deliver(message)
    rejected = [event for event in logs if event.get("event") in REJECTIONS]
    assert len(rejected) == engine.stats["malformed"] - malformed <= 1, logs
    # Rejected for what it is, never by an unexpected exception half-way through handling.
    assert events_named(logs, "cometd_message_failed") == [], logs
    for event in rejected:
        assert event["log_level"] == "warning"


EXTREMES = {
    "deep nesting": {
        "channel": "/me/internal",
        "data": {"messageType": "DeviceUserEventMessage", "userData": nested(50_000)},
    },
    "huge string": {
        "channel": "/v2/me/outbound",
        "data": {"messageType": "OutboundRecordMessage", "record": "x" * 5_000_000},
    },
    "huge list": {"channel": "/me/internal", "data": {"messageType": "X", "v": [0] * 500_000}},
    "many userData entries": {
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "userData": {f"GSW_{i}": i for i in range(100_000)},
        },
    },
}


@pytest.mark.parametrize("name", list(EXTREMES))
async def test_extreme_messages_are_rejected_once(
    plugin: OutboundPlugin, recorder: Recorder, name: str
) -> None:
    with captured_logs() as logs:
        with anyio.fail_after(5):
            await plugin._engine.deliver(EXTREMES[name])
    rejected = [event for event in logs if event.get("event") in REJECTIONS]
    assert len(rejected) == 1 == plugin.stats["malformed"], logs
    assert recorder.calls == []


async def test_the_dispatcher_still_works_after_the_fuzz(
    plugin: OutboundPlugin, recorder: Recorder, device_path: str
) -> None:
    garbage: list[Any] = [
        None,
        [],
        "text",
        {"channel": 5},
        {"data": []},
        {"channel": "/v2/me/outbound", "data": {"messageType": "OutboundRecordMessage"}},
        {"channel": "/me/internal", "data": {"messageType": "DeviceUserEventMessage"}},
        {
            "channel": "/me/internal",
            "data": {"messageType": "DeviceUserEventMessage", "userData": nested(3000)},
        },
    ]
    with captured_logs() as logs:
        for message in garbage:
            await plugin._engine.deliver(message)
    rejected = [event for event in logs if event.get("event") in REJECTIONS]
    assert len(rejected) == plugin.stats["malformed"] == 7
    request = make_request(device_path)
    ack = await plugin.cancel(request)
    assert ack.request == request
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [
        "on_record_cancel_acknowledged"
    ]


# -- limits on what the plugin accepts from the network -------------------------------------


def user_event_message(entries: int, *, filler: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {"GSW_USER_EVENT": "ScheduledCall"}
    data.update({f"GSW_X{i}": filler for i in range(entries - 1)})
    return {
        "channel": "/me/internal",
        "data": {"messageType": "DeviceUserEventMessage", "deviceId": "d1", "userData": data},
    }


@pytest.fixture
def small_limits(sim: GWSSimulator) -> GWSConfig:
    return fast_config(sim.base_url, max_message_bytes=4096, max_user_data_entries=16)


async def test_user_data_entries_limit(
    pm: Any, small_limits: GWSConfig, recorder: Recorder
) -> None:
    async with OutboundPlugin(pm, small_limits) as plugin:
        with captured_logs() as logs:
            await plugin._engine.deliver(user_event_message(16))
            await plugin._engine.deliver(user_event_message(17))
            await recorder.wait_for(lambda r: len(r.user_events) == 1)
            await anyio.sleep(0.1)
    assert len(recorder.user_events) == 1
    assert len(recorder.user_events[0].user_data) == 16
    [rejected] = events_named(logs, "cometd_message_rejected")
    assert rejected["reason"] == "more than 16 userData entries"
    assert plugin.stats["malformed"] == 1


async def test_message_size_limit(pm: Any, small_limits: GWSConfig, recorder: Recorder) -> None:
    fits = user_event_message(2, filler="x" * 3800)
    too_big = user_event_message(2, filler="x" * 4100)
    async with OutboundPlugin(pm, small_limits) as plugin:
        with captured_logs() as logs:
            await plugin._engine.deliver(fits)
            await plugin._engine.deliver(too_big)
            await recorder.wait_for(lambda r: len(r.user_events) == 1)
            await anyio.sleep(0.1)
    assert [len(e.user_data["GSW_X0"]) for e in recorder.user_events] == [3800]
    [rejected] = events_named(logs, "cometd_message_rejected")
    assert rejected["reason"] == (
        "larger than 4096 bytes, nested deeper than 64 levels, or not JSON"
    )
    assert plugin.stats["malformed"] == 1


async def test_limits_hold_for_messages_from_the_network(
    pm: Any, small_limits: GWSConfig, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    async with OutboundPlugin(pm, small_limits) as plugin:
        with captured_logs() as logs:
            # Published by the simulated GWS, received over CometD like any notification.
            sim._bayeux.publish(
                AGENT, "/me/internal", user_event_message(2, filler="y" * 5000)["data"]
            )
            sim._bayeux.publish(AGENT, "/me/internal", user_event_message(40)["data"])
            with anyio.fail_after(5):
                while plugin.stats["malformed"] < 2:
                    await anyio.sleep(0.02)
            request = make_request(device_path)
            await plugin.cancel(request)
    assert len(events_named(logs, "cometd_message_rejected")) == 2
    assert len(recorder.user_events) == 1  # only the real cancel's
    assert [c.hook for c in recorder.outcomes_for(request.reference_id)] == [
        "on_record_cancel_acknowledged"
    ]


def test_limits_are_validated() -> None:
    from gws_outbound_plugin import ConfigError

    for name in ("max_message_bytes", "max_user_data_entries"):
        for bad in (0, -1, True, 1.5, "10"):
            with pytest.raises(ConfigError, match=name):
                fast_config("http://127.0.0.1:1", **{name: bad})
    defaults = GWSConfig(base_url="https://gws.example.com", username="a", password="b")
    assert defaults.max_message_bytes == 256 * 1024
    assert defaults.max_user_data_entries == 512


@pytest.mark.parametrize("number", ["²", "9" * 5000, " 17 ", 17, "-3", None])
async def test_odd_error_numbers_still_fail_the_cancel(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str, number: Any
) -> None:
    """Found by the fuzz: "²" passed str.isdigit() and made int() raise half-way through the
    handling, so the OCS refusal was lost and the cancel ended as timed_out."""
    sim.faults.drop_notifications("both")
    request = make_request(device_path)
    ticket = plugin.submit(request)
    with anyio.fail_after(5):
        while not (sim.cancels and sim.cancels[0].status == 200):
            await anyio.sleep(0.01)
    user_data: dict[str, Any] = {
        "GSW_USER_EVENT": "RecordCancelAcknowledge",
        "GSW_RECORD_HANDLE": 11,
        "GSW_APPLICATION_ID": 134,
        "GSW_CAMPAIGN_NAME": "Campaign1",
        "GSW_CALLING_LIST": "CallingList1",
        "GSW_ERROR": "refused",
        "GSW_ERROR_NUMBER": number,
    }
    with captured_logs() as logs:
        await plugin._engine.deliver(
            {
                "channel": "/me/internal",
                "data": {
                    "messageType": "DeviceUserEventMessage",
                    "userData": user_data,
                    "metrics": {"eventProcessing": {"serverGenerationTimestamp": float("inf")}},
                },
            }
        )
        with pytest.raises(CancelFailed) as info:
            await ticket
    failure = info.value.failure
    assert failure.reason.value == "ocs_error" and failure.message == "refused"
    assert failure.error_number == {" 17 ": 17, 17: 17}.get(number)
    assert events_named(logs, "cometd_message_failed") == []
    [event] = recorder.user_events
    assert event.metrics is not None and event.metrics.server_generation_timestamp is None
