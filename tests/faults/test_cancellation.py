"""Engine tasks that no cancellation can break (issue 16): plain asyncio cancellation of the
host's tasks, of the plugin's own tasks and from inside hooks. Each test failed before the
engine contained such cancellations."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    CometDState,
    FailureReason,
    GWSConfig,
    OperationFailure,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import (
    SlowToHear,
    captured_logs,
    events_named,
    handles,
    plugin_tasks,
    request_for,
    until,
)
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


class OperationFailures:
    """Records ``on_operation_failed`` (the generic hook every failure also fires)."""

    def __init__(self) -> None:
        self.failures: list[OperationFailure] = []

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        self.failures.append(failure)


# -- a service stopped the usual asyncio way --------------------------------------------------


def _run_service(
    config: GWSConfig,
    requests: list[Any],
    how: str,
    out: dict[str, Any],
    accepted: threading.Event,
) -> None:
    """A service on its own event loop (its own thread): it enters the plugin, submits the
    requests and runs until it is stopped the usual asyncio way:

    * ``"cancel-all"``: a signal handler does ``for task in asyncio.all_tasks(): task.cancel()``
      (the plugin's own tasks included);
    * ``"cancel-all-twice"``: the same, and again while the plugin makes the hook calls of
      the outcomes its close decided (every hook call, its close and its own tasks
      included);
    * ``"cancel-all-while-draining"``: the service closes the plugin, and every task is
      cancelled while the close waits for the outcomes (``drain_timeout``);
    * ``"run-returns"``: ``main()`` returns while the task that entered the plugin still runs,
      and ``asyncio.run`` cancels every task left.
    """
    pm = make_plugin_manager(load_entrypoints=False)
    recorder = Recorder.__new__(Recorder)  # made on this thread's loop, below
    generic = OperationFailures()
    slow = SlowToHearFromAnyThread()
    out["pm"], out["generic"], out["slow"] = pm, generic, slow

    async def serve(entered: asyncio.Event) -> None:
        async with OutboundPlugin(pm, config) as plugin:
            out["plugin"] = plugin
            out["tickets"] = [plugin.submit(request) for request in requests]
            entered.set()
            if how == "cancel-all-while-draining":
                await out["go"].wait()
                await plugin.aclose()  # waits drain_timeout for the outcomes
            await asyncio.Event().wait()  # serves until stopped

    def cancel_all() -> None:  # what a SIGTERM handler of an asyncio service does
        for task in asyncio.all_tasks():
            task.cancel()

    async def main() -> None:
        Recorder.__init__(recorder)
        pm.register(recorder, name="recorder")
        pm.register(generic, name="generic")
        pm.register(slow, name="slow")
        out["recorder"] = recorder
        out["stop"] = (asyncio.get_running_loop(), cancel_all)
        entered = asyncio.Event()
        service = asyncio.create_task(serve(entered))
        await entered.wait()
        accepted.set()
        if how == "run-returns":
            await out["go"].wait()
            return  # asyncio.run cancels the service task and the plugin's tasks
        await service

    out["go"] = _ThreadEvent()
    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        out["cancelled"] = True


class SlowToHearFromAnyThread:
    """An ``async def on_cancel_failed`` that takes a while; tells another thread when it
    first started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.calls = 0

    @hookimpl
    async def on_cancel_failed(self, failure: CancelFailure) -> None:
        self.calls += 1
        self.started.set()
        await asyncio.sleep(0.1)


class _ThreadEvent:
    """Set from the test's thread, awaited on the service's loop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        while not self._event.is_set():
            await asyncio.sleep(0.005)


async def _accepted_by_gws(sim: GWSSimulator, count: int) -> None:
    with anyio.fail_after(5):
        while sum(1 for c in sim.cancels if c.status == 200) < count:
            await anyio.sleep(0.01)


@pytest.mark.parametrize(
    "how", ["cancel-all", "cancel-all-twice", "cancel-all-while-draining", "run-returns"]
)
async def test_a_service_stopped_by_cancelling_every_task_still_delivers_every_outcome(
    sim: GWSSimulator, how: str
) -> None:
    """Issue 16, 1: three cancels pending, then every task of the service's loop is
    cancelled at once, the plugin's own tasks (outcome pump, workers, listener) included.
    Every request still ends in exactly one outcome that reaches its hooks, and the CometD
    and HTTP sessions are closed."""
    config = fast_config(sim.base_url, drain_timeout=2.0, ack_timeout=5.0)
    requests = [request_for(sim, handle) for handle in handles(sim, 3)]
    sim.faults.hold_notifications()
    out: dict[str, Any] = {}
    accepted = threading.Event()
    thread = threading.Thread(
        target=_run_service, args=(config, requests, how, out, accepted), daemon=True
    )
    thread.start()
    with anyio.fail_after(10):
        assert await anyio.to_thread.run_sync(accepted.wait, 10.0)
        await _accepted_by_gws(sim, 3)
        if how == "run-returns":
            out["go"].set()
        elif how == "cancel-all-while-draining":
            out["go"].set()
            while out["plugin"].running:
                await anyio.sleep(0.002)
            loop, cancel_all = out["stop"]
            loop.call_soon_threadsafe(cancel_all)
        else:
            loop, cancel_all = out["stop"]
            loop.call_soon_threadsafe(cancel_all)
            if how == "cancel-all-twice":
                assert await anyio.to_thread.run_sync(out["slow"].started.wait, 5.0)
                loop.call_soon_threadsafe(cancel_all)
        await anyio.to_thread.run_sync(thread.join, 10.0)
    assert not thread.is_alive(), "the service did not stop"
    plugin: OutboundPlugin = out["plugin"]
    recorder: Recorder = out["recorder"]
    references = sorted(request.reference_id for request in requests)
    assert sorted(f.request.reference_id for f in recorder.failures) == references
    # They were sent (GWS accepted them) and not answered: outcome unknown, GWS may have acted.
    assert all(f.reason is FailureReason.OUTCOME_UNKNOWN for f in recorder.failures)
    assert all(f.may_have_acted for f in recorder.failures)
    assert sorted(f.request.reference_id for f in out["generic"].failures) == references
    assert recorder.acks == []
    assert out["slow"].calls == 3
    for ticket in out["tickets"]:
        assert ticket.done()
        with pytest.raises(CancelFailed) as info:
            ticket.result(0)
        assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert not plugin.running
    assert plugin.pending_count == 0
    assert plugin.cometd_state is CometDState.CLOSED
    assert repr(plugin._session).endswith(" closed>")
    with anyio.fail_after(5):  # the CometD session was ended politely (/meta/disconnect)
        while sim.cometd_client_count:
            await anyio.sleep(0.01)


async def test_cancelling_the_host_again_while_it_closes_does_not_cut_the_close_short(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Issue 16, 1: the host's task is cancelled, and cancelled again while the plugin makes
    the hook calls of the outcomes its close decided (a second Ctrl-C, a supervisor
    cancelling every task again). The close still makes every hook call and closes both
    sessions; the host's task then ends cancelled."""
    slow = SlowToHear()
    pm.register(slow, name="slow")
    config = fast_config(sim.base_url, hook_timeout=2.0)
    requests = [request_for(sim, handle) for handle in handles(sim, 3)]
    sim.faults.hold_notifications()
    out: dict[str, Any] = {}

    async def host() -> None:
        async with OutboundPlugin(pm, config) as plugin:
            out["plugin"] = plugin
            out["tickets"] = [plugin.submit(request) for request in requests]
            await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(host())
    with anyio.fail_after(10):
        await _accepted_by_gws(sim, 3)
        task.cancel()
        await slow.started.wait()  # closing: the first shut_down outcome reaches the hooks
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    plugin: OutboundPlugin = out["plugin"]
    assert slow.calls == 3
    assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
        request.reference_id for request in requests
    )
    assert all(ticket.done() for ticket in out["tickets"])
    assert plugin.cometd_state is CometDState.CLOSED
    assert repr(plugin._session).endswith(" closed>")
    assert sim.cometd_client_count == 0


async def test_the_plugins_own_tasks_cancelled_from_outside_keep_running(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Issue 16, 1: a plain ``task.cancel()`` of the plugin's own tasks (the outcome pump,
    the POST workers, the CometD listener), from code that does not own them, while the
    plugin runs: they go on, and the next requests are sent, acknowledged and heard."""
    config = fast_config(sim.base_url)
    first, second = handles(sim, 2)
    async with OutboundPlugin(pm, config) as plugin:
        await plugin.cancel(request_for(sim, first))
        own = plugin_tasks()
        # The pump, the listener and the POST workers started so far (started as needed).
        assert 3 <= len(own) <= config.max_concurrent_requests + 2
        for task in own:
            task.cancel()
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert not any(task.done() for task in own)
        with anyio.fail_after(5):
            ack = await plugin.cancel(request_for(sim, second))
        assert ack.record_handle == second
        assert plugin.running
    assert [a.record_handle for a in recorder.acks] == [first, second]


# -- cancellations coming from hooks ----------------------------------------------------------


class HandRolledTimeout:
    """An ``async def`` hook with a home-made timeout: ``loop.call_later(0.05,
    asyncio.current_task().cancel)``, never disarmed (the hook returns at once)."""

    def __init__(self) -> None:
        self.calls = 0
        self.fired = anyio.Event()

    @hookimpl
    async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self.calls += 1
        if self.calls > 1:
            return
        task = asyncio.current_task()
        assert task is not None

        def timeout() -> None:
            task.cancel()
            self.fired.set()

        asyncio.get_running_loop().call_later(0.05, timeout)
        await anyio.lowlevel.checkpoint()


class Diligent:
    """Another plugin whose hook takes a while: it must not pay for the rogue's timer."""

    def __init__(self, work: float) -> None:
        self.work = work
        self.done: list[int] = []

    @hookimpl
    async def on_user_event(self, event: Any) -> None:
        await anyio.sleep(self.work)
        self.done.append(1)


@pytest.mark.parametrize("work", [0.0, 0.3], ids=["fires-later", "fires-in-another-hook"])
async def test_a_hook_cancelling_its_own_task_never_cancels_the_host(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, work: float
) -> None:
    """Issue 16, 2: the hook's timer cancels "its" task 50 ms after the hook returned, while
    nothing runs or while another plugin's hook runs. The host's task is not cancelled, no
    other plugin's hook is cut, the plugin keeps running and later outcomes reach every
    hook."""
    rogue = HandRolledTimeout()
    diligent = Diligent(work)
    pm.register(rogue, name="rogue")
    if work:
        pm.register(diligent, name="diligent")
    config = fast_config(sim.base_url, hook_timeout=10.0)
    first, second = handles(sim, 2)
    host_cancelled = False
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config) as plugin:
            try:
                await plugin.cancel(request_for(sim, first))
                with anyio.fail_after(5):
                    await rogue.fired.wait()
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
                ack = await plugin.cancel(request_for(sim, second))
            except asyncio.CancelledError:
                host_cancelled = True
                raise
            finally:
                assert not host_cancelled, "the hook's cancellation reached the host's task"
            assert plugin.running
            assert ack.record_handle == second
            assert await plugin.wait_hooks_idle(5)
    assert [a.record_handle for a in recorder.acks] == [first, second]
    assert rogue.calls == 2
    assert events_named(logs, "plugin_hook_failed") == []
    if work:
        assert len(diligent.done) == len(recorder.user_events) == 2


async def test_a_task_started_by_a_hook_waits_for_the_hooks_of_the_ticket_it_awaits(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Issue 16, 3: only the hook's own task may take a ticket's outcome before its hooks
    ran. A task that a hook starts is not inside the hook: there ``await ticket`` returns,
    as anywhere else, after the outcome's hooks were called."""
    config = fast_config(sim.base_url, hook_timeout=2.0)
    first, second = handles(sim, 2)
    plugin = OutboundPlugin(pm, config)
    seen: list[list[int]] = []
    tasks: list[asyncio.Task[None]] = []

    heard: list[int] = []

    async def follow_up() -> None:
        ack = await plugin.cancel(request_for(sim, second))
        assert ack.record_handle == second
        seen.append(list(heard))  # what the plugins had heard when the ticket released

    class StartsATask:
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            tasks.append(asyncio.get_running_loop().create_task(follow_up()))

    class TakesItsTime:
        @hookimpl
        async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
            await anyio.sleep(0.05)
            heard.append(ack.record_handle)

    pm.register(StartsATask(), name="starts-a-task")
    pm.register(TakesItsTime(), name="takes-its-time")
    async with plugin:
        sim.faults.status_code(6, "record not found")
        with pytest.raises(CancelFailed):
            await plugin.cancel(request_for(sim, first))
        await until(lambda: bool(seen), timeout=5)
    assert seen == [[second]]


async def test_aclose_in_a_task_started_by_a_hook_closes_before_returning(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Issue 16, 3: ``await plugin.aclose()`` returns at once only in the hook itself (the
    close waits for the hook calls); in a task the hook started it returns once closed."""
    config = fast_config(sim.base_url, hook_timeout=2.0)
    plugin = OutboundPlugin(pm, config)
    states: list[tuple[bool, int]] = []

    async def close_it() -> None:
        await plugin.aclose()
        states.append((plugin.running, plugin.pending_count))

    class ClosesInATask:
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            if failure.reason is FailureReason.REJECTED:
                asyncio.get_running_loop().create_task(close_it())

    pm.register(ClosesInATask(), name="closes")
    first, second = handles(sim, 2)
    sim.faults.hold_notifications()
    async with plugin:
        held = plugin.submit(request_for(sim, second))
        await _accepted_by_gws(sim, 1)
        sim.faults.status_code(6, "record not found")
        with pytest.raises(CancelFailed):
            await plugin.cancel(request_for(sim, first))
        await until(lambda: bool(states), timeout=5)
        assert held.done()
    assert states == [(False, 0)]
