"""The promise, broken again and fixed (after tests/faults/test_promise_found.py to 4): each
test here failed before its fix. Every accepted request ends in exactly one outcome, its own,
and its ticket resolves within the documented bound, whatever plugins, log pipelines, the
server, the host task or asyncio cancellation do. These run on ``FakeGWS`` and the virtual
clock (the timelines are exact and cost no wall time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import pluggy
import pytest
import structlog

from gws_outbound_plugin import CancelFailed, CancelFailure, FailureReason, OutboundPlugin, hookimpl
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import SlowToHear, handles, request_for, until
from tests.helpers import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_clock]


# -- lead 4: a log pipeline that raises a BaseException ------------------------------------------


class PipelineAssertion(BaseException):
    """What a host's test processor raises (pytest's ``fail()`` raises a ``BaseException``
    too, ``Failed``, so that no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def pipeline_failing_on(event_name: str) -> Iterator[list[str]]:
    """structlog configured by a host whose processor raises ``PipelineAssertion`` (a
    ``BaseException``) on one event of the plugin; yields the events it broke on."""
    broken: list[str] = []

    def explode(
        logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event_dict.get("event") == event_name:
            broken.append(event_name)
            raise PipelineAssertion(f"the host's test pipeline failed on {event_name}")
        return event_dict

    previous = structlog.get_config()
    structlog.configure(processors=[explode, structlog.processors.KeyValueRenderer()])
    try:
        yield broken
    finally:
        structlog.configure(**previous)


async def test_a_log_pipeline_raising_a_base_exception_loses_no_outcome(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A host's structlog processor that asserts on what it sees (``pytest.fail()`` in a
    host's test: a ``BaseException``) fails on ``cancel_failed``. Three cancels get no
    answer and time out at the same instant.

    Before, the log calls of the plugin swallowed ``Exception`` only: the first timeout's
    ``cancel_failed`` log raised out of the engine, so its ``on_cancel_failed`` was never
    called (the host's plugins never heard of the outcome), and out of the timer queue
    half-way, so the two other requests' acknowledgement timers were dropped: they ended only
    at their deadline (``outcome_bound``, far later than ``ack_timeout``) and not as
    ``timed_out``."""
    config = fake_config()
    fake.faults.drop_notifications("both", count=None)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        with pipeline_failing_on("cancel_failed") as broken:
            tickets = [plugin.submit(request_for(fake, h)) for h in handles(fake, 3)]
            await until(lambda: len(cancels(fake)) == 3, timeout=30, step=0.001)
            with anyio.fail_after(config.ack_timeout + config.hook_timeout):
                for ticket in tickets:
                    with pytest.raises(CancelFailed) as info:
                        await ticket
                    assert info.value.failure.reason is FailureReason.TIMED_OUT
            assert await plugin.wait_hooks_idle(5)
        assert broken  # the pipeline did break
        assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
            t.reference_id for t in tickets
        )
        assert recorder.acks == []


# -- lead 2: a hook that closes the plugin while it is closing ------------------------------------


class CloseOnFailure:
    """A breaker-style plugin: on a failure it closes the plugin (``await plugin.aclose()``,
    which the docs say returns at once inside a hook) and counts the calls that returned."""

    def __init__(self) -> None:
        self.plugin: OutboundPlugin | None = None
        self.returned = 0

    @hookimpl
    async def on_cancel_failed(self, failure: CancelFailure) -> None:
        assert self.plugin is not None
        await self.plugin.aclose()
        self.returned += 1


async def test_a_hook_closing_the_plugin_while_it_closes_loses_no_hook_call(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Three cancels pending when the host leaves ``async with``; a plugin whose
    ``on_cancel_failed`` closes the plugin (a breaker: "on a failure, stop") gets the first
    of the three failures the close decides.

    Before, ``aclose()`` inside a hook returned at once only while the plugin ran: during the
    close it waited (shielded, so ``hook_timeout`` could not cut it) for the close, which
    waited for the hook calls, this one included. The close broke the deadlock only when its
    hook budget ran out, then dropped every hook call still queued
    (``hook_calls_dropped_at_close``): the host's other plugins never heard of any of the
    three outcomes, and leaving ``async with`` took ``max(drain_timeout, hook_timeout)`` +
    ``hook_timeout`` more."""
    closer = CloseOnFailure()
    pm.register(closer, name="closer")  # called before the recorder (pluggy: last in, first)
    fake.faults.hold_notifications()
    plugin = OutboundPlugin(pm, fake_config(drain_timeout=0.2), transport=fake)
    closer.plugin = plugin
    async with plugin:
        tickets = [plugin.submit(request_for(fake, h)) for h in handles(fake, 3)]
        await until(lambda: len(cancels(fake)) == 3, timeout=30, step=0.001)
    assert all(ticket.done() for ticket in tickets)
    assert closer.returned == 3
    assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
        t.reference_id for t in tickets
    )


# -- lead 3: the host's task cancelled again while the plugin closes, inside a scope of its own --


@pytest.mark.parametrize("first", ["task.cancel()", "the host's scope cancelled"])
async def test_a_host_cancelled_again_while_closing_leaves_its_own_scopes_intact(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, first: str
) -> None:
    """The host's task (``task.cancel()``, a Ctrl-C) is cancelled, and again while the plugin
    makes the hook calls of the outcomes its close decided; the ``async with`` sits in a
    cancel scope of the host's own (``anyio.move_on_after``, a ``CancelScope``, a task
    group: any structured host has one).

    Before, the second cancellation made ``aclose()`` raise before it left the plugin's task
    group, which the host's task had entered in ``__aenter__``: the group's cancel scope was
    left open on the host's task, so leaving the host's own scope raised ``RuntimeError:
    Attempted to exit a cancel scope that isn't the current tasks's current cancel scope``
    instead of the host's ``CancelledError``."""
    slow = SlowToHear()
    pm.register(slow, name="slow")
    fake.faults.hold_notifications()
    out: dict[str, Any] = {}

    async def host() -> None:
        with anyio.CancelScope() as scope:  # the host's own scope
            out["scope"] = scope
            async with OutboundPlugin(pm, fake_config(hook_timeout=2.0), transport=fake) as p:
                out["tickets"] = [p.submit(request_for(fake, h)) for h in handles(fake, 3)]
                await asyncio.Event().wait()
        out["left"] = True

    task = asyncio.get_running_loop().create_task(host())
    with anyio.fail_after(10):
        await until(lambda: len(cancels(fake)) == 3, timeout=30, step=0.001)
        if first == "task.cancel()":
            task.cancel()
        else:
            out["scope"].cancel()
        await slow.started.wait()  # closing: the first outcome reaches the hooks
        task.cancel()
        # Cancelled, as the host asked (not a RuntimeError from its own scope).
        with pytest.raises(asyncio.CancelledError):
            await task
    assert slow.calls == 3
    assert all(ticket.done() for ticket in out["tickets"])
    assert sorted(f.request.reference_id for f in recorder.failures) == sorted(
        t.reference_id for t in out["tickets"]
    )


async def test_a_host_cancelled_while_another_task_closes_the_plugin_leaves_its_scopes_intact(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Another task closes the plugin (a signal handler's ``await plugin.aclose()``); the
    host's task, cancelled, leaves ``async with`` while that close makes its hook calls, and
    is cancelled again while it waits for it there.

    Before, the second cancellation went through the wait for the other task's close (a
    plain ``task.cancel()`` is not stopped by anyio's shield) and ``aclose()`` raised
    without leaving the plugin's task group: as above, leaving the host's own scope raised
    ``RuntimeError`` instead of the host's ``CancelledError``."""
    slow = SlowToHear()
    pm.register(slow, name="slow")
    fake.faults.hold_notifications()
    out: dict[str, Any] = {}
    entered = anyio.Event()

    async def host() -> None:
        with anyio.CancelScope():  # the host's own scope
            async with OutboundPlugin(pm, fake_config(hook_timeout=2.0), transport=fake) as p:
                out["plugin"] = p
                out["tickets"] = [p.submit(request_for(fake, h)) for h in handles(fake, 3)]
                entered.set()
                await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(host())
    with anyio.fail_after(10):
        await entered.wait()
        await until(lambda: len(cancels(fake)) == 3, timeout=30, step=0.001)
        plugin: OutboundPlugin = out["plugin"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(plugin.aclose)  # another task closes it
            await slow.started.wait()  # closing: the first outcome reaches the hooks
            task.cancel()  # the host leaves async with: it waits for that close
            await anyio.sleep(0.01)
            task.cancel()  # and is cancelled again while it waits
            with pytest.raises(asyncio.CancelledError):
                await task
    assert slow.calls == 3
    assert all(ticket.done() for ticket in out["tickets"])
    assert len(recorder.failures) == 3


# -- the host's own tooling raising a BaseException after the core accepted ----------------------


async def test_a_monitor_raising_a_base_exception_after_the_core_accepted_keeps_the_ticket(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """``pm.add_hookcall_monitoring(before, after)`` whose ``after`` fails the way a host's
    test tooling does (pytest's ``fail()``: a ``BaseException``) for the host-fired hook, once
    the core accepted the request.

    Before, ``submit()`` kept the ticket only for an ``Exception``: this one reached the host
    (so ``perform()`` / ``cancel()`` raised it) while the cancel was accepted and sent, and a
    host told it failed might send it again. An observer of the hook raising the same is
    contained already (its failure, logged)."""

    def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
        if hook_name == "on_cancel_requested":
            raise PipelineAssertion("the host's monitor failed")

    pm.add_hookcall_monitoring(lambda *_: None, after)
    request = request_for(fake, handles(fake, 1)[0])
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        with anyio.fail_after(10):
            ack = await plugin.cancel(request)
    assert ack.request == request
    assert [ack.request for ack in recorder.acks] == [request]
    assert len(cancels(fake)) == 1


# -- a transport that raises a BaseException -------------------------------------------------------


class TransportAssertion(BaseException):
    """What a transport plugged in through the seam may raise (a test double calling
    ``pytest.fail()``): not an ``Exception``."""


class FailsFirstPosts(FakeGWS):
    """``FakeGWS`` whose first ``failures`` POSTs raise ``TransportAssertion``."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def post_operation(self, path: str, body: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise TransportAssertion("the transport's own assertion failed")
        return await super().post_operation(path, body)


async def test_a_transport_raising_a_base_exception_does_not_stop_the_sending(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A transport plugged in through the seam raises a ``BaseException`` from
    ``post_operation`` for the first POSTs, as many as there are POST workers. Before, each
    such raise ended its worker for good (only ``Exception`` was caught): the requests it
    carried waited for their deadline, and once every worker was gone nothing was sent any
    more, so every later cancel ended ``transport_failure`` at its deadline instead of being
    acknowledged. Now each such request ends ``outcome_unknown`` (it may have been written:
    never resent) and the workers go on."""
    workers = 2
    fake = FailsFirstPosts(failures=workers)
    config = fake_config(max_concurrent_requests=workers)
    seeded = handles(fake, workers + 3)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        first = [plugin.submit(request_for(fake, handle)) for handle in seeded[:workers]]
        await until(lambda: all(ticket.done() for ticket in first), timeout=30, step=0.001)
        for ticket in first:
            outcome = ticket.outcome
            assert isinstance(outcome, CancelFailure)
            assert outcome.reason is FailureReason.OUTCOME_UNKNOWN
        started = anyio.current_time()
        later = [plugin.submit(request_for(fake, handle)) for handle in seeded[workers:]]
        with anyio.fail_after(config.ack_timeout):
            for ticket in later:
                await ticket  # acknowledged (raised CancelFailed before)
        assert anyio.current_time() - started < config.ack_timeout
    assert len(cancels(fake)) == 3
