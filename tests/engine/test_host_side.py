"""What a host does around the plugin (hunt15): a second plugin on the same bus, a task
factory of its own, a KeyboardInterrupt out of a hook, an entering task that ends without
closing the plugin. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import gc
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
from gws_outbound_plugin.testing import FakeGWS
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
