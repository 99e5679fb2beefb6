"""gws_outbound_plugin.testing: the fixtures and the hook recorder, used as plugin authors
use them."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelRequest,
    ChainAttribute,
    FailureReason,
    hookimpl,
)
from gws_outbound_plugin.testing import (
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


async def test_a_misspelled_hook_name_is_refused_at_once(wait_for_hook, gws_hook_recorder):
    with pytest.raises(ValueError, match="unknown hook 'on_record_cancel_acknowleged'"):
        await wait_for_hook("on_record_cancel_acknowleged")
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
