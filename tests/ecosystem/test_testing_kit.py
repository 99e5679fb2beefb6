"""gws_outbound_plugin.testing: the fixtures and the hook recorder, used as plugin authors
use them."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest

from gws_outbound_plugin import (
    AddRecordRequest,
    CallbackType,
    CampaignStatus,
    CancelFailed,
    CancelRequest,
    ChainAttribute,
    CompleteRecordRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    FailureReason,
    GetPreviewRecordRequest,
    OperationFailed,
    PhoneType,
    RejectRecordRequest,
    StartPreviewSessionRequest,
    hookimpl,
)
from gws_outbound_plugin.testing import (
    DEFAULT_CALLBACK_DELAY,
    RECORDER_PLUGIN_NAME,
    SIMULATOR_PASSWORD,
    SIMULATOR_USER,
    UNKNOWN_RECORD_HANDLE,
    CancelRequestFactory,
    HookRecorder,
    HookWaitTimeout,
)

pytestmark = pytest.mark.anyio


async def test_the_fixtures_are_wired_together(
    gws_simulator, gws_plugin_manager, gws_hook_recorder, gws_config, gws_outbound
):
    assert gws_config.base_url == gws_simulator.base_url
    assert (gws_config.username, gws_config.password) == (SIMULATOR_USER, SIMULATOR_PASSWORD)
    assert gws_config.ack_timeout <= 2
    assert gws_outbound.running
    assert gws_outbound.pm is gws_plugin_manager
    assert gws_outbound.config is gws_config
    assert gws_plugin_manager.get_plugin(RECORDER_PLUGIN_NAME) is gws_hook_recorder
    # No installed plugin sneaks in: only the recorder and the core's parts are registered.
    names = {name for name, _ in gws_plugin_manager.list_name_plugin()}
    assert {name for name in names if not name.startswith("gws_outbound_core")} == {
        RECORDER_PLUGIN_NAME
    }
    assert {"gws_outbound_core", "gws_outbound_core_absent_guard"} <= names
    assert await gws_outbound.device_path() == gws_simulator.device_path(SIMULATOR_USER)


async def test_the_recorder_sees_every_hook_of_a_cancel_in_order(
    gws_outbound, gws_hook_recorder, gws_request_factory, wait_for_hook
):
    request = gws_request_factory()
    ack = await gws_outbound.cancel(request)
    # The ticket resolves before the hooks run: wait for the last one.
    await wait_for_hook("on_operation_acknowledged")

    calls = gws_hook_recorder.calls
    assert [call.name for call in calls] == [
        "on_cancel_requested",
        "on_user_event",
        "on_record_cancel_acknowledged",
        "on_operation_acknowledged",
    ]
    assert calls[0].request is request
    assert calls[1].event.user_event == "RecordCancelAcknowledge"
    assert calls[2].ack is ack
    assert calls[0].thread_id == threading.get_ident()
    assert gws_hook_recorder.calls_of("on_cancel_failed") == []
    with pytest.raises(AttributeError, match="has no argument 'failure'"):
        _ = calls[2].failure


async def test_wait_for_hook_with_a_predicate(gws_outbound, gws_request_factory, wait_for_hook):
    first, second = gws_request_factory(), gws_request_factory()
    gws_outbound.submit(first)
    gws_outbound.submit(second)

    call = await wait_for_hook(
        "on_record_cancel_acknowledged",
        lambda call: call.ack.reference_id == second.reference_id,
    )
    assert call.ack.record_handle == second.record_handle
    # A call made before the wait counts too.
    earlier = await wait_for_hook(
        "on_record_cancel_acknowledged", lambda call: call.ack.reference_id == first.reference_id
    )
    assert earlier.ack.record_handle == first.record_handle


async def test_wait_for_hook_times_out_with_what_it_saw(
    gws_outbound, gws_request_factory, wait_for_hook, gws_simulator
):
    gws_simulator.faults.ocs_error(number=7, message="Nope")
    with pytest.raises(CancelFailed):
        await gws_outbound.cancel(gws_request_factory())

    started = anyio.current_time()
    with pytest.raises(HookWaitTimeout) as caught:
        await wait_for_hook("on_record_cancel_acknowledged", timeout=0.2)
    assert 0.15 <= anyio.current_time() - started < 2
    message = str(caught.value)
    assert "no on_record_cancel_acknowledged call within 0.2 s" in message
    assert "on_cancel_requested x1" in message
    assert "last failure: cancel of record" in message
    assert "ocs_error error_number=7 Nope" in message
    assert isinstance(caught.value, AssertionError)


async def test_a_predicate_that_raises_does_not_match(gws_hook_recorder, gws_request_factory):
    gws_hook_recorder.on_cancel_requested(gws_request_factory())
    with pytest.raises(HookWaitTimeout):
        await gws_hook_recorder.wait_for(
            "on_cancel_requested", lambda call: call.no_such_argument, timeout=0.05
        )


async def test_the_timeout_of_a_predicate_that_raised_says_what_it_raised(
    gws_hook_recorder, gws_request_factory
):
    """A typo in the predicate (call.failure for a hook that passes ack) looked like a call
    that never came: the timeout said nothing of the AttributeError."""
    gws_hook_recorder.on_cancel_requested(gws_request_factory())
    with pytest.raises(HookWaitTimeout) as caught:
        await gws_hook_recorder.wait_for(
            "on_cancel_requested", lambda call: call.failure.reason, timeout=0.05
        )

    assert str(caught.value).splitlines()[1] == (
        "  the predicate raised on a call of on_cancel_requested: AttributeError: "
        "on_cancel_requested has no argument 'failure' (it has request) (a call it cannot "
        "read does not match)"
    )


async def test_a_misspelled_hook_name_is_refused_at_once(wait_for_hook, gws_hook_recorder):
    with pytest.raises(ValueError, match="unknown hook") as caught:
        await wait_for_hook("on_record_cancel_acknowleged")
    # As registration says it (it only listed every hook, the one meant among them).
    assert str(caught.value).startswith(
        "unknown hook 'on_record_cancel_acknowleged': did you mean "
        "'on_record_cancel_acknowledged'? the hooks are "
    )
    with pytest.raises(ValueError, match="unknown hook"):
        gws_hook_recorder.calls_of("on_ack")


async def test_waiting_from_another_thread(gws_outbound, gws_hook_recorder, gws_request_factory):
    # A GUI-style host: the cancel is fired from a worker thread, which waits blocking.
    request = gws_request_factory()

    def worker() -> str:
        ticket = gws_outbound.submit(request)  # on_cancel_requested runs in this thread
        call = gws_hook_recorder.wait_for_blocking(
            "on_record_cancel_acknowledged",
            lambda call: call.ack.reference_id == ticket.reference_id,
            timeout=5,
        )
        return str(call.ack.reference_id)

    assert await anyio.to_thread.run_sync(worker) == request.reference_id
    (requested,) = gws_hook_recorder.calls_of("on_cancel_requested")
    assert requested.thread_id != threading.get_ident()


async def test_a_waiter_on_the_loop_is_woken_by_a_call_from_another_thread(
    gws_hook_recorder, gws_request_factory
):
    request = gws_request_factory()

    async def fire_later() -> None:
        await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(gws_hook_recorder.on_cancel_requested, request)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire_later)
        call = await gws_hook_recorder.wait_for("on_cancel_requested", timeout=5)
    assert call.request is request


def test_wait_for_blocking_times_out():
    recorder = HookRecorder()
    with pytest.raises(HookWaitTimeout, match=r"no on_user_event call within 0\.05 s"):
        recorder.wait_for_blocking("on_user_event", timeout=0.05)


async def test_the_request_factory(gws_simulator, gws_request_factory):
    first = gws_request_factory()
    second = gws_request_factory()
    assert (first.record_handle, second.record_handle) == (11, 12)
    assert first.device_path == gws_simulator.device_path(SIMULATOR_USER)
    assert first.reference_id != second.reference_id
    assert first.phone_number is None
    assert first.chain_attribute is None

    chosen = gws_request_factory(
        record_handle=21, phone_number="4001", chain_attribute=ChainAttribute.ALL_CHAIN
    )
    assert (chosen.campaign_name, chosen.calling_list) == ("Campaign2", "CallingList2")
    assert chosen.phone_number == "4001"
    assert chosen.chain_attribute is ChainAttribute.ALL_CHAIN

    with pytest.raises(LookupError, match="no record 5"):
        gws_request_factory(record_handle=5)
    unknown = gws_request_factory.unknown_record()
    assert unknown.record_handle == UNKNOWN_RECORD_HANDLE
    assert isinstance(unknown, CancelRequest)


async def test_the_request_factory_skips_cancelled_records_and_runs_out(
    gws_outbound, gws_request_factory, gws_simulator
):
    await gws_outbound.cancel(gws_request_factory(record_handle=11, chain_attribute="AllChain"))
    # 11, 12 and 13 share chain 101: all three are cancelled now.
    assert gws_request_factory().record_handle == 14
    remaining = [gws_request_factory() for _ in range(len(gws_simulator.records) - 4)]
    assert [request.record_handle for request in remaining] == sorted(
        handle for handle in gws_simulator.records if handle > 14
    )
    with pytest.raises(LookupError, match="every seeded record"):
        gws_request_factory()


async def test_unknown_record_is_refused_by_ocs(gws_outbound, gws_request_factory, wait_for_hook):
    with pytest.raises(CancelFailed) as caught:
        await gws_outbound.cancel(gws_request_factory.unknown_record())
    assert caught.value.failure.reason is FailureReason.OCS_ERROR
    call = await wait_for_hook("on_cancel_failed")
    assert call.failure is caught.value.failure


async def test_a_plugin_under_test_gets_real_outcomes(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    seen: list[object] = []

    class Plugin:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack):
            await anyio.lowlevel.checkpoint()
            seen.append(ack.reference_id)

    gws_plugin_manager.register(Plugin(), name="under-test")
    request = gws_request_factory()
    await gws_outbound.cancel(request)
    # The ticket resolves before the hooks run; the recorder, registered before the plugin,
    # is called after it.
    await wait_for_hook("on_record_cancel_acknowledged")
    assert seen == [request.reference_id]


async def test_the_factory_also_works_for_another_user(gws_simulator):
    factory = CancelRequestFactory(gws_simulator, username=SIMULATOR_USER)
    assert factory().device_path == gws_simulator.device_path(SIMULATOR_USER)
    with pytest.raises(KeyError, match="unknown simulator user"):
        CancelRequestFactory(gws_simulator, username="nobody")()


async def test_the_simulator_fixture_is_fresh_for_each_test(gws_simulator, gws_config):
    # Records cancelled by earlier tests are not cancelled here.
    assert not any(state.cancelled for state in gws_simulator.records.values())
    assert gws_simulator.requests == []
    assert gws_config.base_url == gws_simulator.base_url


# -- every operation --------------------------------------------------------------------------


async def test_the_factory_makes_a_request_of_every_operation(gws_simulator, gws_request_factory):
    device = gws_simulator.device_path(SIMULATOR_USER)
    reject = gws_request_factory.reject()
    complete = gws_request_factory.complete(call_result="Answer")
    do_not_call = gws_request_factory.do_not_call(chain_attribute=ChainAttribute.ALL_CHAIN)
    reschedule = gws_request_factory.reschedule()
    update = gws_request_factory.update()
    chained = gws_request_factory.chained(record_handle=21)
    by_phone = gws_request_factory.do_not_call_phone()
    cancel = gws_request_factory.cancel()

    assert isinstance(reject, RejectRecordRequest)
    assert isinstance(complete, CompleteRecordRequest) and complete.call_result == "Answer"
    assert isinstance(do_not_call, DoNotCallRecordRequest)
    # Each record is handed out once, in handle order; 21 was asked for by handle.
    handles = [r.record_handle for r in (reject, complete, do_not_call, reschedule, update)]
    assert handles == [11, 12, 13, 14, 15]
    assert (chained.record_handle, chained.campaign_name) == (21, "Campaign2")
    assert (by_phone.phone_number, by_phone.campaign_name) == ("3006", "Campaign1")
    assert cancel.record_handle == 17
    assert all(r.device_path == device for r in (reject, chained, by_phone, cancel))
    assert reject.calling_list == "CallingList1"
    # A callback one hour later on the simulator's clock; an update that changes nothing.
    assert reschedule.callback_type is CallbackType.PERSONAL
    assert reschedule.scheduled_time - gws_simulator.clock.datetime() <= DEFAULT_CALLBACK_DELAY
    assert reschedule.scheduled_time.utcoffset() is not None
    assert (update.phone_number, update.calling_list) == ("3005", None)
    assert gws_request_factory.update(phone_type=PhoneType.MOBILE).phone_number is None

    first, second = gws_request_factory.add_record(), gws_request_factory.add_record()
    assert isinstance(first, AddRecordRequest)
    seeded = {state.record.phone_number for state in gws_simulator.records.values()}
    assert first.phone_number != second.phone_number
    assert not {first.phone_number, second.phone_number} & seeded
    assert gws_request_factory.add_record(call_from=3600).call_from == 3600

    start = gws_request_factory.start_preview()
    assert isinstance(start, StartPreviewSessionRequest)
    assert (start.campaign_name, start.application_id) == ("Campaign1", 134)
    assert isinstance(gws_request_factory.get_preview(), GetPreviewRecordRequest)
    end = gws_request_factory.end_preview(campaign_name="Campaign2")
    assert isinstance(end, EndPreviewSessionRequest)
    assert (end.campaign_name, end.application_id) == ("Campaign2", 134)


async def test_every_request_of_the_factory_is_acknowledged(
    gws_outbound, gws_request_factory, gws_hook_recorder, wait_for_hook
):
    factory = gws_request_factory
    requests = [
        factory.start_preview(),
        factory.get_preview(),
        factory.reject(),
        factory.complete(call_result="Answer"),
        factory.do_not_call(),
        factory.reschedule(),
        factory.update(),
        factory.chained(),
        factory.do_not_call_phone(),
        factory.add_record(),
        factory.cancel(),
        factory.end_preview(),
    ]
    for request in requests:
        ack = await gws_outbound.perform(request)
        assert ack.reference_id == request.reference_id, request
        await wait_for_hook(
            "on_operation_acknowledged", lambda call, r=request: call.ack.request is r
        )
    acknowledged = [
        call.ack.operation for call in gws_hook_recorder.calls_of("on_operation_acknowledged")
    ]
    assert acknowledged == [request.operation_name for request in requests]
    assert gws_hook_recorder.calls_of("on_operation_failed") == []
    # The cancel went through on_cancel_requested, the others through on_operation_requested.
    assert len(gws_hook_recorder.calls_of("on_operation_requested")) == len(requests) - 1
    assert len(gws_hook_recorder.calls_of("on_cancel_requested")) == 1


async def test_unknown_record_is_refused_by_ocs_for_every_record_operation(
    gws_outbound, gws_request_factory
):
    for operation in (
        "CancelRecord",
        "RejectRecord",
        "CompleteRecord",
        "DoNotCallRecord",
        "RescheduleRecord",
        "UpdateRecord",
        "GetChainedRecord",
    ):
        request = gws_request_factory.unknown_record(operation)
        assert request.operation_name == operation
        with pytest.raises(OperationFailed) as caught:
            await gws_outbound.perform(request)
        assert caught.value.failure.reason is FailureReason.OCS_ERROR, operation
    with pytest.raises(ValueError, match="takes a record operation"):
        gws_request_factory.unknown_record("AddRecord")


async def test_the_recorder_hears_what_ocs_says_unprompted(
    gws_outbound, gws_simulator, gws_request_factory, wait_for_hook
):
    await gws_outbound.perform(gws_request_factory.start_preview())
    held = await gws_outbound.perform(gws_request_factory.get_preview())
    gws_simulator.send_record_cancel(held.record_handle)
    pushed = gws_simulator.send_preview_record("Campaign1")
    gws_simulator.send_campaign_status("Campaign1", "CampaignStopped")

    cancelled = await wait_for_hook("on_record_cancelled")
    assert cancelled.event.record_handle == held.record_handle
    preview = await wait_for_hook("on_preview_record")
    assert preview.event.record_handle == pushed
    status = await wait_for_hook("on_campaign_status")
    assert status.event.status is CampaignStatus.STOPPED


async def test_wait_for_hook_names_the_last_failed_operation(
    gws_outbound, gws_request_factory, wait_for_hook
):
    with pytest.raises(OperationFailed):
        await gws_outbound.perform(gws_request_factory.unknown_record("RejectRecord"))
    with pytest.raises(HookWaitTimeout, match=r"last failure: RejectRecord of record 999999"):
        await wait_for_hook("on_operation_acknowledged", timeout=0.1)


class CallbackPlanner:
    """A third party's plugin: counts acknowledged operations and keeps the callbacks due."""

    def __init__(self) -> None:
        self.acknowledged: dict[str, int] = {}
        self.due: list[tuple[int | None, str | None]] = []

    @hookimpl
    def on_operation_acknowledged(self, ack):
        self.acknowledged[ack.operation] = self.acknowledged.get(ack.operation, 0) + 1

    @hookimpl
    async def on_scheduled_call(self, event):
        await anyio.lowlevel.checkpoint()  # an async def hook: awaited by the core
        kind = event.callback_type.value if event.callback_type else None
        self.due.append((event.record_handle, kind))


async def test_a_plugin_with_the_new_hooks_tested_with_the_kit(
    gws_plugin_manager, gws_outbound, gws_simulator, gws_request_factory, wait_for_hook
):
    planner = CallbackPlanner()
    gws_plugin_manager.register(planner, name="callback-planner")

    request = gws_request_factory.reschedule()  # due one hour later on the simulator's clock
    await gws_outbound.perform(request)
    await gws_outbound.perform(gws_request_factory.complete(call_result="Busy"))
    await gws_outbound.wait_hooks_idle(5)
    assert planner.acknowledged == {"RescheduleRecord": 1, "CompleteRecord": 1}
    assert planner.due == []  # not yet

    gws_simulator.clock.advance(3600)  # OCS's time moves on: the callback is due
    await wait_for_hook("on_scheduled_call")
    await gws_outbound.wait_hooks_idle(5)
    assert planner.due == [(request.record_handle, "Personal")]
