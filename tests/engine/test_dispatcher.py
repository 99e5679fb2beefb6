"""HookDispatcher on its own: order, isolation, timeouts, and async plugins that use anyio (on
the virtual clock: a hung hook costs hook_timeout of the loop's time)."""

from __future__ import annotations

import anyio
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
