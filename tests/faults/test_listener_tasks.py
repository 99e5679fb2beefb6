"""The CometD listener's own tasks (the watch on the client, a channel subscribed again)
against a host cancelling every task of the plugin right after it started: a task cancelled
before its first step never runs its body, so it cannot take the cancellation back. In the
listener's anyio task group such a child cancelled the group's scope, and with it the
receive loop: the listener ended (``background_task_crashed``), nothing was heard any more,
and a "coroutine was never awaited" warning was left behind. They are started again now,
like the plugin's own tasks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import captured_logs, events_named, handles, request_for, until
from tests.helpers import AGENT, PASSWORD

pytestmark = pytest.mark.anyio


def _the_plugins_tasks() -> list[asyncio.Task[object]]:
    """The plugin's tasks and the CometD listener's own (what a host cancelling the tasks of
    its service reaches; the simulator's are spared)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().endswith("._guarded") or "CometDListener" in task.get_name()
    ]


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_the_listeners_tasks_cancelled_before_they_ran_are_started_again(
    pm: pluggy.PluginManager, sim: GWSSimulator, steps: int
) -> None:
    with warnings.catch_warnings(record=True) as caught, captured_logs() as logs:
        warnings.simplefilter("always")
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            for _ in range(steps):
                await asyncio.sleep(0)
            for task in _the_plugins_tasks():
                task.cancel()
            for _ in range(3):
                await asyncio.sleep(0)
            with anyio.fail_after(10):
                ack = await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
            assert ack.reference_id is not None
            assert any("_watch" in task.get_name() for task in _the_plugins_tasks())
        gc.collect()
    assert events_named(logs, "background_task_crashed") == []
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


class _Watched:
    """The listener's long poll and its watch task, and the steps that task takes (every
    ``call_soon`` of a method of that task: its wake-ups) while :meth:`counting`."""

    def __init__(self, plugin: OutboundPlugin) -> None:
        listener = plugin._listener
        assert listener is not None
        self._listener = listener
        self.woken: list[object] = []

    def poll(self) -> asyncio.Future[object] | None:
        transport = getattr(self._listener._client, "_transport", None)
        task: asyncio.Future[object] | None = getattr(transport, "_connect_task", None)
        return task if task is not None and not task.done() else None

    @staticmethod
    def watches() -> list[asyncio.Task[object]]:
        return [t for t in _the_plugins_tasks() if "_watch" in t.get_name()]

    async def started(self) -> asyncio.Task[object]:
        """The watch task, once a poll runs and the watch took its first steps."""
        await until(lambda: self.poll() is not None and self.watches(), timeout=5)
        for _ in range(3):
            await asyncio.sleep(0)
        [watch] = self.watches()
        return watch

    @contextlib.contextmanager
    def counting(self, watch: asyncio.Task[object]) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        call_soon = loop.call_soon

        def counted(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
            if getattr(callback, "__self__", None) is watch:
                self.woken.append(callback)
            return call_soon(callback, *args, **kwargs)

        loop.call_soon = counted  # type: ignore[method-assign]
        try:
            yield
        finally:
            del loop.call_soon


async def test_the_watch_sleeps_while_the_long_poll_is_held(pm: pluggy.PluginManager) -> None:
    """An idle session: the server holds its long poll. The listener's watch on the client
    (which notices a client that stopped polling: see ``test_cometd_recovery``) is not woken
    meanwhile; a client stops polling only when a poll ends. It woke every 0.5 s, in every
    session: 2,000 wake-ups a second in a host's loop with 1,000 sessions, all idle."""
    async with (
        GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=60.0) as sim,
        OutboundPlugin(pm, fast_config(sim.base_url)) as plugin,
    ):
        watched = _Watched(plugin)
        watch = await watched.started()
        held = watched.poll()
        with watched.counting(watch):
            await asyncio.sleep(1.5)  # three periods of the watch's old timer
        assert watched.poll() is held  # still the same long poll, held by the server
        assert watched.woken == []
        assert not watch.done()


async def test_the_watch_sleeps_while_a_busy_client_polls_on(pm: pluggy.PluginManager) -> None:
    """A busy session: every acknowledgement ends a long poll, and aiocometd starts the next
    one at once. The client never stopped polling, so the watch has nothing to check and
    takes no step: the done callback follows each poll to the next. It woke the watch's task
    once per poll ended (a task step per message batch, some 30k instructions per cancel at
    concurrency 1), to find the next poll already running."""
    async with (
        GWSSimulator(users={AGENT: PASSWORD}) as sim,
        OutboundPlugin(pm, fast_config(sim.base_url)) as plugin,
    ):
        watched = _Watched(plugin)
        watch = await watched.started()
        first_poll = watched.poll()
        with watched.counting(watch):
            for handle in handles(sim, 10):
                await plugin.cancel(request_for(sim, handle))
        assert watched.poll() is not first_poll  # the acknowledgements ended polls
        assert watched.woken == []
        assert not watch.done()
