"""A cancel ends as exactly one acknowledged-or-failed hook, whatever GWS, OCS or the other
plugins answer: engine behaviour, on FakeGWS and the virtual clock (the wire's own cases are in
tests/integration/test_cancel.py)."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    FailureReason,
    GWSConfig,
    OutboundPlugin,
    hookimpl,
)
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.helpers import Recorder, make_request
from tests.integration.test_cancel import only_outcome

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("code", [1, 2, 3, 5, 6, 10])
async def test_status_code_errors_end_in_one_failure(
    plugin: OutboundPlugin, fake: FakeGWS, recorder: Recorder, device_path: str, code: int
) -> None:
    fake.faults.status_code(code, "refused by the test")
    request = make_request(device_path)
    with pytest.raises(CancelFailed) as info:
        await plugin.cancel(request)
    failure = info.value.failure
    assert failure.reason is FailureReason.REJECTED
    assert failure.status_code == code
    assert failure.message == "refused by the test"
    assert only_outcome(recorder, request.reference_id) == "on_cancel_failed"
    assert recorder.acks == []


async def test_ocs_error_is_a_failure_not_an_ack(
    plugin: OutboundPlugin, recorder: Recorder, device_path: str
) -> None:
    request = make_request(device_path, handle=999_999)
    with pytest.raises(CancelFailed) as info:
        await plugin.cancel(request)
    failure = info.value.failure
    assert failure.reason is FailureReason.OCS_ERROR
    assert failure.error_number is not None
    assert failure.message
    assert failure.user_data["GSW_ERROR"] == failure.message
    assert only_outcome(recorder, request.reference_id) == "on_cancel_failed"
    [event] = recorder.user_events
    assert event.is_error


async def test_no_ack_within_the_timeout_is_a_failure(
    pm: pluggy.PluginManager, fake: FakeGWS, recorder: Recorder, device_path: str
) -> None:
    fake.faults.drop_notifications("both")
    async with OutboundPlugin(pm, fake_config(ack_timeout=0.3), transport=fake) as plugin:
        request = make_request(device_path)
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(request)
    assert info.value.failure.reason is FailureReason.TIMED_OUT
    assert only_outcome(recorder, request.reference_id) == "on_cancel_failed"
    assert recorder.user_events == []


@pytest.mark.parametrize("fault", ["duplicate", "reverse", "drop_outbound", "drop_user_event"])
async def test_notification_faults_end_in_exactly_one_ack(
    plugin: OutboundPlugin, fake: FakeGWS, recorder: Recorder, device_path: str, fault: str
) -> None:
    if fault == "duplicate":
        fake.faults.duplicate_notifications(times=3)
    elif fault == "reverse":
        fake.faults.reverse_notifications()
    elif fault == "drop_outbound":
        fake.faults.drop_notifications("outbound")
    else:
        fake.faults.drop_notifications("user_event")
    request = make_request(device_path)
    ack = await plugin.cancel(request)
    await anyio.sleep(0.3)  # let any straggling copy arrive (on the virtual clock)
    assert only_outcome(recorder, request.reference_id) == "on_record_cancel_acknowledged"
    assert ack.record_handle == 11
    expected_events = 0 if fault == "drop_user_event" else 1
    assert len(recorder.user_events) == expected_events
    if fault == "drop_user_event":
        assert dict(ack.user_data) == {}
    else:
        assert ack.user_data["GSW_RECORD_HANDLE"] == 11


class Raising:
    @hookimpl
    def on_record_cancel_acknowledged(self) -> None:
        raise RuntimeError("plugin bug")

    @hookimpl
    def on_user_event(self) -> None:
        raise KeyError("another plugin bug")


class Hanging:
    @hookimpl
    async def on_record_cancel_acknowledged(self) -> None:
        await anyio.sleep(3600)


class RaisingObserver:
    @hookimpl
    def on_cancel_requested(self) -> None:
        raise RuntimeError("observer bug")


async def test_raising_and_hanging_plugins_do_not_disturb_others(
    pm: pluggy.PluginManager,
    config: GWSConfig,
    fake: FakeGWS,
    recorder: Recorder,
    device_path: str,
) -> None:
    # Registered after the recorder, so pluggy calls them first.
    pm.register(Raising(), name="raising")
    pm.register(Hanging(), name="hanging")
    pm.register(RaisingObserver(), name="raising-observer")
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        started = anyio.current_time()
        first = await plugin.cancel(make_request(device_path, handle=11))
        second = await plugin.cancel(make_request(device_path, handle=12))
        elapsed = anyio.current_time() - started
    assert [a.record_handle for a in recorder.acks] == [11, 12]
    assert first.record_handle == 11 and second.record_handle == 12
    assert len(recorder.user_events) == 2
    # Each hang is cut at hook_timeout (0.3 s of the loop's clock), not an hour.
    assert elapsed < 5
