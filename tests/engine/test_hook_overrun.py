"""A hook call that runs past ``hook_timeout`` is that plugin's failure, however it manages to:
an ``async def`` implementation that shields itself from its timeout or takes the
cancellation back and goes on, a plain one that blocks the event loop. Each passed unreported
(no log line, no ``HookFailure``, so a plugin's test on the testing kit passed) while it held
up every hook call after it, or, for a plain one, the timers that release the tickets: the
promise's ``hook_timeout`` bound. Each test here failed before the fix. On the virtual clock
(tests/engine/conftest.py), but for the plain hook, which blocks for real."""

from __future__ import annotations

import asyncio
import time

import anyio
import pluggy
import pytest
from structlog.testing import capture_logs

from gws_outbound_plugin import HookDispatcher, OutboundPlugin, hookimpl, make_plugin_manager
from gws_outbound_plugin._dispatcher import HookFailure, watch_hook_failures
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


def _failures(pm: pluggy.PluginManager) -> list[HookFailure]:
    failures: list[HookFailure] = []
    watch_hook_failures(pm, failures.append)
    return failures


async def test_a_hook_that_shields_itself_is_reported_at_its_deadline() -> None:
    """``with CancelScope(shield=True)`` around the hook's work ("always finish writing the
    audit record"): ``hook_timeout`` cannot cut it, and nothing said it ran past it."""
    pm = make_plugin_manager(load_entrypoints=False)
    release = anyio.Event()

    class Shielded:
        @hookimpl
        async def on_user_event(self) -> None:
            with anyio.CancelScope(shield=True):
                await release.wait()

    pm.register(Shielded(), name="shielded")
    failures = _failures(pm)
    dispatcher = HookDispatcher(pm, hook_timeout=0.3)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: dispatcher.dispatch("on_user_event", event="x"))
            await anyio.sleep(1.0)
            # Reported while it still runs (it might run for ever), not when it ends.
            reported_while_running = [(f.plugin, f.hook, f.timed_out) for f in failures]
            release.set()
    assert reported_while_running == [("shielded", "on_user_event", True)]
    assert [(e["event"], e["plugin"]) for e in logs] == [("plugin_hook_timed_out", "shielded")]
    assert len(failures) == 1  # once, though it returned after its deadline


async def test_a_hook_that_takes_its_cancellation_back_is_reported() -> None:
    """``except CancelledError`` (or ``contextlib.suppress``) around the hook's wait, then
    return normally: anyio saw no cancellation caught, so no timeout was reported."""
    pm = make_plugin_manager(load_entrypoints=False)

    class Stubborn:
        @hookimpl
        async def on_user_event(self) -> None:
            try:
                await anyio.sleep(60)
            except asyncio.CancelledError:
                return

    pm.register(Stubborn(), name="stubborn")
    failures = _failures(pm)
    with capture_logs() as logs:
        await HookDispatcher(pm, hook_timeout=0.2).dispatch("on_user_event", event="x")
    assert [(f.plugin, f.timed_out) for f in failures] == [("stubborn", True)]
    assert [e["event"] for e in logs] == ["plugin_hook_timed_out"]


async def test_a_hook_within_its_timeout_is_not_reported() -> None:
    pm = make_plugin_manager(load_entrypoints=False)

    class Quick:
        @hookimpl
        async def on_user_event(self) -> None:
            await anyio.sleep(0.1)

    pm.register(Quick(), name="quick")
    failures = _failures(pm)
    with capture_logs() as logs:
        await HookDispatcher(pm, hook_timeout=0.2).dispatch("on_user_event", event="x")
        await anyio.sleep(1.0)  # past where its deadline was: nothing fires later
    assert (failures, logs) == ([], [])


async def test_a_plain_hook_that_blocks_the_loop_past_hook_timeout_is_a_failure(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A plain ``def`` hook doing blocking I/O (``requests.post`` to a webhook): while it runs,
    nothing on the loop runs, the timer that releases a ticket ``hook_timeout`` after its
    outcome included. It was logged as a warning only (``plugin_hook_blocked_loop``), so the
    testing kit let the plugin's test pass."""

    class Blocking:
        @hookimpl
        def on_record_cancel_acknowledged(self) -> None:
            time.sleep(0.25)  # the real clock: a plain hook blocks for real

    pm.register(Blocking(), name="blocking")
    failures = _failures(pm)
    with capture_logs() as logs:
        async with OutboundPlugin(pm, fake_config(hook_timeout=0.2), transport=fake) as plugin:
            await plugin.cancel(request_for(fake, handles(fake, 1)[0]))
            await plugin.wait_hooks_idle(5)
    assert [(f.plugin, f.hook, f.timed_out) for f in failures] == [
        ("blocking", "on_record_cancel_acknowledged", True)
    ]
    assert "blocked the event loop for" in failures[0].error
    assert "hook_timeout (0.2s)" in failures[0].error
    [timed_out] = [e for e in logs if e["event"] == "plugin_hook_timed_out"]
    assert timed_out["plugin"] == "blocking"
    assert timed_out["blocked_seconds"] >= 0.25
    # Still the warning it always was.
    assert [e["plugin"] for e in logs if e["event"] == "plugin_hook_blocked_loop"] == ["blocking"]


async def test_a_plain_hook_within_hook_timeout_is_no_failure_in_a_hurried_close(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A close past its budget gives each remaining async def hook 50 ms: that token timeout
    is not what a plain hook is held to (it did nothing wrong within ``hook_timeout``)."""

    class Slow:
        @hookimpl
        async def on_cancel_failed(self) -> None:
            await anyio.sleep(0.25)  # two of these outlast the close's budget (0.3 s)

        @hookimpl
        def on_operation_failed(self) -> None:
            time.sleep(0.1)  # the real clock; within hook_timeout

    pm.register(Slow(), name="slow")
    failures = _failures(pm)
    fake.faults.drop_notifications(count=None)  # both end outcome_unknown at the close
    config = fake_config(hook_timeout=0.3, drain_timeout=0.1, ack_timeout=30.0)
    with capture_logs() as logs:
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            for handle in handles(fake, 2):
                plugin.submit(request_for(fake, handle))
            while len(fake.posts) < 2:
                await anyio.sleep(0.01)
    assert [e["event"] for e in logs if e["event"] == "hook_calls_hurried_at_close"]
    assert failures == []
    assert len(recorder.failures) == 2
