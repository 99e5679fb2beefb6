"""What a host does around the plugin (hunt15): a second plugin on the same bus, a task
factory of its own, a KeyboardInterrupt out of a hook, an entering task that ends without
closing the plugin. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import (
    GWSOutboundError,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop
from tests.engine.conftest import fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


async def test_a_second_plugin_on_the_same_manager_is_refused_whatever_its_name(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """``name=`` only renamed the core: a second ``OutboundPlugin(pm, ..., name="b")`` on a
    manager where one runs was accepted, and then every request fired on the bus was
    accepted by both cores: sent twice (the same referenceId through two sessions) and
    given two outcomes on the same hooks. It is refused now, before anything is sent, and
    the first plugin goes on alone."""
    fake_a, fake_b = FakeGWS(), FakeGWS()
    async with OutboundPlugin(pm, fake_config(), transport=fake_a) as first:
        second = OutboundPlugin(pm, fake_config(), transport=fake_b, name="second")
        try:
            with pytest.raises(GWSOutboundError, match="one OutboundPlugin per plugin manager"):
                await second.__aenter__()
            assert not second.running
            ack = await first.cancel(request_for(fake_a, handles(fake_a, 1)[0]))
        finally:
            await second.aclose()
    assert fake_b.posts == []
    assert len(fake_a.posts) == 1
    assert [a.reference_id for a in recorder.acks] == [ack.reference_id]
    assert recorder.failures == []


async def test_a_plugin_may_start_on_a_manager_once_the_one_before_closed(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The refusal is for two at once: a plugin made after the first one closed (a host
    logging the agent in again) starts on the same manager, under another name too."""
    fake = FakeGWS()
    async with OutboundPlugin(pm, fake_config(), transport=fake) as first:
        await first.cancel(request_for(fake, handles(fake, 1)[0]))
    async with OutboundPlugin(pm, fake_config(), transport=fake, name="again") as again:
        await again.cancel(request_for(fake, handles(fake, 2)[1]))
    assert len(recorder.acks) == 2


async def test_two_plugins_entering_one_manager_at_once_start_one(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Both entered at once, each passed the check made before it opened its session: the
    check is made again just before the core binds, so one of them starts and the other
    closes what it opened and raises."""
    fakes = [FakeGWS(), FakeGWS()]
    plugins = [
        OutboundPlugin(pm, fake_config(), transport=fake, name=f"agent{i}")
        for i, fake in enumerate(fakes)
    ]
    try:
        results = await asyncio.gather(
            *(plugin.__aenter__() for plugin in plugins), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, GWSOutboundError)]
        started = [p for p in plugins if p.running]
        assert len(refused) == 1 and len(started) == 1, results
        fake = fakes[plugins.index(started[0])]
        ack = await started[0].cancel(request_for(fake, handles(fake, 1)[0]))
    finally:
        for plugin in plugins:
            await plugin.aclose()
    assert [len(f.posts) for f in fakes].count(0) == 1
    assert [a.reference_id for a in recorder.acks] == [ack.reference_id]
    assert all(f.state.value == "closed" for f in fakes)


class Interrupts:
    """An ``async def`` hook that raises ``KeyboardInterrupt`` (a Ctrl-C landing in it),
    in its first step or after waiting once."""

    def __init__(self, waits: bool) -> None:
        self.waits = waits

    @hookimpl
    async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        if self.waits:
            await asyncio.sleep(0)
        raise KeyboardInterrupt


@pytest.mark.parametrize("waits", [False, True], ids=["first step", "after waiting"])
def test_a_keyboard_interrupt_in_an_async_hook_reaches_the_host_and_nothing_is_left_unretrieved(
    waits: bool,
) -> None:
    """A ``KeyboardInterrupt`` goes through to the host (as documented), but it left tasks
    holding it as their exception, logged by asyncio as "Task exception was never
    retrieved" once collected: the outcome pump's (every Python), and the hook call's own
    task on Python 3.12 and later when the hook raised it in its first step (the task's
    eager first step raised it out of its constructor: the task was lost with it)."""
    unretrieved: list[dict[str, Any]] = []

    async def host() -> None:
        # Everything made here: once the loop is gone, nothing else keeps its tasks alive.
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unretrieved.append(context)
        )
        pm = make_plugin_manager(load_entrypoints=False)
        pm.register(Interrupts(waits), name="interrupts")
        fake = FakeGWS()
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            plugin.submit(request_for(fake, handles(fake, 1)[0]))
            await asyncio.sleep(5)

    interrupted = False
    try:
        asyncio.run(host())
    except KeyboardInterrupt:  # not kept: its traceback would keep the tasks alive
        interrupted = True
    assert interrupted
    gc.collect()
    assert [c.get("message") for c in unretrieved] == []


class HostTask(asyncio.Task):  # type: ignore[type-arg]
    """What a host's task factory makes (its own Task subclass, carrying what it tracks)."""

    request_id = "host-request-7"


class ReadsItsTask:
    """A host's plugin that relies on its task factory: every task of the loop is a
    ``HostTask``."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        task = asyncio.current_task()
        self.seen.append(getattr(task, "request_id", f"a {type(task).__name__}"))
        await asyncio.sleep(0)
        self.seen.append(getattr(asyncio.current_task(), "request_id", "?"))


async def _cancel_under_task_factory(
    pm: pluggy.PluginManager, reader: ReadsItsTask, factory: Any
) -> Any:
    """One cancel on FakeGWS with ``factory`` as the loop's task factory, ``reader``
    registered; its acknowledgement once every hook call is done."""
    loop = asyncio.get_running_loop()
    pm.register(reader, name="reader")
    fake = FakeGWS()
    loop.set_task_factory(factory)
    try:
        async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
            ack = await plugin.cancel(request_for(fake, handles(fake, 1)[0]))
            assert await plugin.wait_hooks_idle(5)
    finally:
        loop.set_task_factory(None)
    return ack


@pytest.mark.parametrize("eager", [False, True], ids=["plain factory", "eager factory"])
async def test_the_hook_calls_run_in_tasks_of_the_hosts_task_factory(
    pm: pluggy.PluginManager, eager: bool
) -> None:
    """The hook calls' tasks were made by hand (``asyncio.Task(...)``, eager on Python 3.12,
    a first step run by hand on 3.11), bypassing a task factory the host set: a hook
    relying on it (a Task subclass carrying a request id, context propagation, the host's
    list of its tasks) found a plain ``Task``. They are the factory's now."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if eager and sys.version_info >= (3, 12):  # Python 3.11 has no eager tasks
            kwargs["eager_start"] = True
        return HostTask(coro, loop=loop, **kwargs)

    reader = ReadsItsTask()
    ack = await _cancel_under_task_factory(pm, reader, factory)
    assert ack.reference_id
    assert reader.seen == ["host-request-7", "host-request-7"]


async def test_a_task_factory_taking_loop_and_coro_only_runs_the_hook_calls(
    pm: pluggy.PluginManager,
) -> None:
    """A task factory written before Python 3.11, ``factory(loop, coro)`` (as asyncio
    documented it then, and as libraries of the time still install it): the hook calls'
    tasks were asked of it with ``context=``, which asyncio passes on to the factory, and
    every ``async def`` hook call raised ``TypeError`` ("hook_dispatch_crashed", the hook
    never run, "coroutine ... was never awaited"). Made within the call's context instead,
    they run, in the factory's tasks."""
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        task = HostTask(coro, loop=loop)
        made.append(task)
        return task

    reader = ReadsItsTask()
    ack = await _cancel_under_task_factory(pm, reader, factory)
    assert ack.reference_id
    assert reader.seen == ["host-request-7", "host-request-7"]
    assert made


@pytest.mark.parametrize("pending", [0, 2])
def test_a_plugin_its_entering_task_left_open_closes_when_the_loop_ends(pending: int) -> None:
    """A host whose entering task ends without closing the plugin (``await
    plugin.__aenter__()`` in a startup routine whose shutdown half never ran): ``asyncio.run``
    then cancels every task left and waits for them. The plugin's tasks take a plain
    ``task.cancel()`` back and run until the plugin stops them, which nothing was left to
    do: ``asyncio.run`` never returned. Now the plugin closes itself then (as
    ``aclose(drain=False)``: every pending request is decided and its hooks are called), and
    ``asyncio.run`` returns once that close is done."""
    recorder = Recorder()
    held: list[Any] = []

    async def host() -> None:
        pm = make_plugin_manager(load_entrypoints=False)
        pm.register(recorder, name="recorder")
        fake = FakeGWS()
        plugin = OutboundPlugin(pm, fake_config(), transport=fake)
        await plugin.__aenter__()
        held.append(plugin)
        await plugin.cancel(request_for(fake, handles(fake, 3)[0]))
        fake.faults.hold_notifications()
        held.extend(plugin.submit(request_for(fake, h)) for h in handles(fake, 3)[1 : 1 + pending])
        await asyncio.sleep(0.01)

    with asyncio.Runner(loop_factory=virtual_clock_loop) as runner:
        runner.run(host())
        loop = runner.get_loop()
        # Only if the close hangs: stops the loop, and close() raises RuntimeError. On the
        # virtual clock, a loop with nothing to do reaches it at once.
        guard = loop.call_later(3600, loop.stop)
        runner.close()  # asyncio.run's end: cancel every task left, wait for them
        guard.cancel()
    plugin, *tickets = held
    assert not plugin.running
    assert plugin.transport.state.value == "closed"
    assert all(ticket.done() for ticket in tickets)
    assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
        t.reference_id for t in tickets
    )
    assert len(recorder.acks) == 1


async def test_a_cancellation_as_a_connection_is_made_is_not_lost() -> None:
    """The HTTP transport connected with ``asyncio.wait_for``, which on Python 3.11 loses a
    cancellation of the caller that comes as the connection is made: it returned the
    connection and the caller went on as if never cancelled (a host's ``asyncio.timeout``
    around entering the plugin expired and the plugin started anyway; a ``task.cancel()`` at
    Ctrl-C was ignored). Each loop turn of a connect to a real loopback server gets a
    cancellation here: every connect cancelled before it returned ends cancelled."""
    from gws_outbound_plugin._transport import AsyncioBackend

    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = AsyncioBackend()
    ignored: list[int] = []
    try:
        for turns in range(16):
            task = asyncio.get_running_loop().create_task(
                backend.connect_tcp("127.0.0.1", port, timeout=5)
            )
            for _ in range(turns):
                await asyncio.sleep(0)
            cancelled = not task.done() and task.cancel()
            try:
                stream = await task
            except asyncio.CancelledError:
                continue
            await stream.aclose()
            if cancelled:
                ignored.append(turns)
    finally:
        server.close()
        await server.wait_closed()
    assert ignored == []


class Quick:
    """An ``async def`` hook that never waits: its call ends in its task's first step."""

    @hookimpl
    async def on_user_event(self, event: Any) -> None:
        return None


def test_a_loop_stopped_with_hook_tasks_pending_does_not_change_the_next_loop_of_its_thread() -> (
    None
):
    """Python 3.11: the call of a hook that never waits ends in its task's first step, taken
    at once, and the task ends at the loop's next round; the dispatcher lets the loop run
    only when more than 64 such tasks are pending. Their count was the thread's: a loop
    stopped with 64 of them pending left it at 64 for the next loop the thread ran, which
    then let its loop run after every such hook call (a trip through the loop each, other
    tasks running in between). Each loop has its own count now."""
    from gws_outbound_plugin._dispatcher import HookDispatcher

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Quick(), name="quick")
    first = asyncio.new_event_loop()
    resume = asyncio.Event()

    async def calls_and_stops() -> None:
        dispatcher = HookDispatcher(pm)
        for _ in range(64):
            await dispatcher.dispatch("on_user_event", event="x")
        first.stop()  # before the hook calls' tasks took their last step
        await resume.wait()

    pending = first.create_task(calls_and_stops())
    first.run_forever()
    ran_between: list[bool] = []

    async def calls_once() -> None:
        ran: list[bool] = []
        asyncio.get_running_loop().call_soon(ran.append, True)
        await HookDispatcher(pm).dispatch("on_user_event", event="x")
        ran_between.append(bool(ran))

    try:
        second = asyncio.new_event_loop()
        try:
            second.run_until_complete(calls_once())
        finally:
            second.close()
    finally:
        first.call_soon(resume.set)
        first.run_until_complete(pending)
        first.close()
    assert ran_between == [False]
