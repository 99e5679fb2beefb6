"""HookDispatcher on its own: order, isolation, timeouts, and async plugins that use anyio (on
the virtual clock: a hung hook costs hook_timeout of the loop's time)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from gws_outbound_plugin import HookDispatcher, hookimpl, make_plugin_manager

pytestmark = pytest.mark.anyio


class Scoped:
    """An async implementation that waits inside its own cancel scope and task group."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    async def on_user_event(self, event: str) -> None:
        with anyio.fail_after(1):
            await anyio.sleep(0.01)
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 0.01)
        self.seen.append(event)


class Ordered:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    @hookimpl
    def on_user_event(self, event: str) -> None:
        self.log.append(self.name)


class Slow:
    @hookimpl
    async def on_user_event(self) -> None:
        await anyio.sleep(60)


class Broken:
    @hookimpl
    async def on_user_event(self) -> None:
        raise ValueError("boom")


async def test_async_plugins_may_open_their_own_cancel_scopes() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    scoped = Scoped()
    pm.register(scoped, name="scoped")
    dispatcher = HookDispatcher(pm, hook_timeout=2)
    with capture_logs() as logs:
        for index in range(3):
            await dispatcher.dispatch("on_user_event", event=f"e{index}")
    assert scoped.seen == ["e0", "e1", "e2"]
    assert logs == []


async def test_order_isolation_and_timeouts() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    log: list[str] = []
    pm.register(Ordered("first-registered", log), name="a")
    pm.register(Slow(), name="slow")
    pm.register(Broken(), name="broken")
    pm.register(Ordered("last-registered", log), name="b")
    dispatcher = HookDispatcher(pm, hook_timeout=0.1)
    with capture_logs() as logs:
        await dispatcher.dispatch("on_user_event", event="x")
    # pluggy's order: the most recently registered first.
    assert log == ["last-registered", "first-registered"]
    events = {(entry["event"], entry["plugin"]) for entry in logs}
    assert events == {("plugin_hook_timed_out", "slow"), ("plugin_hook_failed", "broken")}
    # Registrations made later are honoured on the next event.
    pm.unregister(name="slow")
    pm.register(Ordered("late", log), name="late")
    log.clear()
    await dispatcher.dispatch("on_user_event", event="y")
    assert log == ["late", "last-registered", "first-registered"]


class CancelsItself:
    """Cancels its own task (``asyncio.current_task().cancel()``) and returns at once."""

    @hookimpl
    async def on_user_event(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()


async def test_a_hook_cancelling_its_own_task_and_returning_fails_alone() -> None:
    """The cancellation stays in the hook's task, which never waited: that plugin's failure
    (on Python 3.11 too, where the call ends in the first step of a task still to take its
    own), the caller is not cancelled and the next implementation runs."""
    pm = make_plugin_manager(load_entrypoints=False)
    log: list[str] = []
    pm.register(Ordered("after", log), name="after")
    pm.register(CancelsItself(), name="rogue")
    dispatcher = HookDispatcher(pm, hook_timeout=2)
    with capture_logs() as logs:
        for _ in range(2):
            await dispatcher.dispatch("on_user_event", event="x")
            await anyio.lowlevel.checkpoint()  # no cancellation left for the caller
    assert log == ["after", "after"]
    failed = [(entry["event"], entry["plugin"]) for entry in logs]
    assert failed == [("plugin_hook_failed", "rogue")] * 2


class WaitsForAFuture:
    """Waits, in its first step, for a future nothing sets."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.waited_for: asyncio.Future[None] | None = None
        self.cancelled_at_its_await = False

    @hookimpl
    async def on_user_event(self) -> None:
        self.task = asyncio.current_task()
        self.waited_for = asyncio.get_running_loop().create_future()
        try:
            await self.waited_for
        except asyncio.CancelledError:
            self.cancelled_at_its_await = True
            raise


async def test_a_hook_task_cancelled_right_after_its_first_step_gets_it_at_its_await() -> None:
    """A plain ``task.cancel()`` of a hook's task before the loop ran that task (a host
    cancelling every task, in the round the call started in) reaches the hook where its
    first step waits, as for any task waiting there (what it waited for is cancelled):
    that plugin's failure, contained in its task. The call's first step runs at once (Python
    3.12's eager tasks; on 3.11, by hand, the case this test is for: before, the hook
    never ran there)."""
    pm = make_plugin_manager(load_entrypoints=False)
    log: list[str] = []
    hook = WaitsForAFuture()
    pm.register(Ordered("after", log), name="after")
    pm.register(hook, name="waits")
    dispatcher = HookDispatcher(pm, hook_timeout=2)

    def cancel_the_hook_task() -> None:  # runs in the loop's next round, before the task
        assert hook.task is not None
        hook.task.cancel()

    with capture_logs() as logs:
        asyncio.get_running_loop().call_soon(cancel_the_hook_task)
        await dispatcher.dispatch("on_user_event", event="x")
        await anyio.lowlevel.checkpoint()  # no cancellation left for the caller
    assert hook.cancelled_at_its_await
    assert hook.waited_for is not None and hook.waited_for.cancelled()
    assert log == ["after"]
    assert [(entry["event"], entry["plugin"]) for entry in logs] == [
        ("plugin_hook_failed", "waits")
    ]


class NeverWaits:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    async def on_user_event(self) -> None:
        self.calls += 1


async def test_calls_that_never_wait_leave_few_unfinished_tasks_behind() -> None:
    """A caller making many hook calls that end in their first step, never waiting itself,
    does not pile up their tasks (Python 3.11: each has its own, empty, last step to take in
    the loop; 3.12's eager tasks end at once): the caller lets the loop run now and then."""
    pm = make_plugin_manager(load_entrypoints=False)
    hook = NeverWaits()
    pm.register(hook, name="never-waits")
    dispatcher = HookDispatcher(pm, hook_timeout=2)
    before = {task for task in asyncio.all_tasks() if not task.done()}
    for _ in range(500):
        await dispatcher.dispatch("on_user_event", event="x")
    unfinished = {task for task in asyncio.all_tasks() if not task.done()} - before
    assert hook.calls == 500
    assert len(unfinished) <= 65
