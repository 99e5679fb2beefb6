"""The promise, reproduction by reproduction (issue 10): every accepted request ends in
exactly one outcome and its ticket resolves, whatever plugins, log pipelines, the server or
the host task do. Each test here failed on the engine before the correlator. They run on
FakeGWS and the virtual clock; the two that need HTTP itself are in
tests/faults/test_promise_wire.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pluggy
import pytest
import structlog

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    FailureReason,
    GWSConfig,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
)
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


class SlowFailureHook:
    """An ``async on_cancel_failed`` that sleeps far beyond any hook_timeout."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    async def on_cancel_failed(self, failure: CancelFailure) -> None:
        self.calls += 1
        await anyio.sleep(60)


async def test_close_resolves_every_ticket_and_makes_every_hook_call(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Reproduction 1: a slow async hook, 8 pending cancels, a short drain."""
    slow = SlowFailureHook()
    pm.register(slow, name="slow")
    config = fake_config(hook_timeout=0.3, drain_timeout=0.2)
    fake.faults.hold_notifications()
    plugin = OutboundPlugin(pm, config, transport=fake)
    async with plugin:
        tickets = [plugin.submit(request_for(fake, h)) for h in handles(fake, 8)]
        with anyio.fail_after(5):
            while len(cancels(fake)) < 8:
                await anyio.sleep(0.01)
    assert all(ticket.done() for ticket in tickets)
    assert plugin.pending_count == 0
    for ticket in tickets:
        with anyio.fail_after(1), pytest.raises(CancelFailed) as info:
            await ticket
        # Sent and unanswered at close: GWS may have acted (issue 16), so not "shut_down".
        assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
        assert info.value.failure.may_have_acted is True
    # Every outcome hook call was made, the slow one included (each cut at hook_timeout).
    assert len(recorder.failures) == 8
    assert slow.calls == 8


@contextlib.contextmanager
def log_pipeline_raising_on(event_name: str) -> Iterator[None]:
    """A host's structlog processor that raises on one event."""

    def explode(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") == event_name:
            raise RuntimeError(f"the host's log pipeline broke on {event_name}")
        return event

    previous = structlog.get_config()
    structlog.configure(processors=[explode, structlog.processors.KeyValueRenderer()])
    try:
        yield
    finally:
        structlog.configure(**previous)


async def test_a_log_pipeline_that_raises_does_not_lose_the_outcome(
    fake: FakeGWS, plugin: OutboundPlugin, recorder: Recorder
) -> None:
    """Reproduction 2: the host's processor raises on ``cancel_failed``."""
    request = request_for(fake, handles(fake, 1)[0])
    fake.faults.status_code(6, "record not found")
    with (
        log_pipeline_raising_on("cancel_failed"),
        anyio.fail_after(5),
        pytest.raises(CancelFailed) as info,
    ):
        await plugin.cancel(request)
    assert info.value.failure.reason is FailureReason.REJECTED
    assert [f.request.reference_id for f in recorder.failures] == [request.reference_id]


async def test_a_reused_reference_id_cannot_take_the_late_acknowledgement(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Reproduction 3: a cancel times out; the host resends it with the same referenceId."""
    config = fake_config(ack_timeout=0.3)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.hold_notifications()
        first = request_for(fake, handle, reference_id="resent-1")
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(first)
        assert info.value.failure.reason is FailureReason.TIMED_OUT
        again = request_for(fake, handle, reference_id="resent-1")
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(again)
        # Refused at once, nothing sent: its answer could not be told from the first one's.
        assert info.value.failure.reason is FailureReason.REJECTED
        assert "referenceId resent-1" in (info.value.failure.message or "")
        assert len(cancels(fake)) == 1
        fake.faults.release_notifications()
        with anyio.fail_after(5):
            while len(fake.published) < 2:
                await anyio.sleep(0.01)
        with anyio.fail_after(5):
            while plugin.stats["late"] < 1:
                await anyio.sleep(0.01)
        assert recorder.acks == []  # the late acknowledgement resolves nothing
        assert len(recorder.failures) == 2


async def test_a_hook_can_await_another_cancel(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Reproduction 6: ``await plugin.cancel(...)`` inside ``on_cancel_failed``."""
    config = fake_config(hook_timeout=2.0)
    first, second = handles(fake, 2)
    results: list[RecordCancelAck] = []
    plugin = OutboundPlugin(pm, config, transport=fake)

    class RetryElsewhere:
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            results.append(await plugin.cancel(request_for(fake, second)))

    pm.register(RetryElsewhere(), name="retry")
    async with plugin:
        fake.faults.status_code(6, "record not found")
        with pytest.raises(CancelFailed):
            await plugin.cancel(request_for(fake, first))
        with anyio.fail_after(5):
            while not results:
                await anyio.sleep(0.01)
    assert [ack.record_handle for ack in results] == [second]
    assert [ack.record_handle for ack in recorder.acks] == [second]


async def test_aclose_from_another_task(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, config: GWSConfig
) -> None:
    """Reproduction 7: ``aclose()`` from a task other than the one that entered the plugin
    neither raises nor cancels the host task."""
    reached_the_end = False
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        ticket = plugin.submit(request_for(fake, handles(fake, 1)[0]))
        async with anyio.create_task_group() as tg:
            tg.start_soon(plugin.aclose)
        assert not plugin.running
        assert ticket.done()
        await anyio.lowlevel.checkpoint()  # the host task was not cancelled
        reached_the_end = True
    assert reached_the_end
    assert plugin.pending_count == 0


async def test_aclose_twice_concurrently_and_a_cancelled_host(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, config: GWSConfig
) -> None:
    """Two concurrent closes both return once it is closed; a host task cancelled inside
    ``async with`` still gets every decided outcome delivered."""
    handle = handles(fake, 1)[0]
    with anyio.CancelScope() as scope:
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            fake.faults.hold_notifications()
            ticket = plugin.submit(request_for(fake, handle))
            async with anyio.create_task_group() as tg:
                tg.start_soon(plugin.aclose)
                tg.start_soon(plugin.aclose)
            scope.cancel()
            await anyio.sleep(1)
    assert ticket.done()
    assert len(recorder.failures) == 1


async def test_ticket_result_on_the_event_loop_thread_raises_at_once(
    fake: FakeGWS, plugin: OutboundPlugin
) -> None:
    """Issue 13: ``ticket.result()`` on the loop's thread would block the loop that delivers
    the outcome (a deadlock without a timeout, a misleading TimeoutError with one)."""
    ticket = plugin.submit(request_for(fake, handles(fake, 1)[0]))
    for timeout in (None, 5.0):
        with pytest.raises(RuntimeError, match="await ticket"):
            ticket.result(timeout)
    ack = await ticket  # the right way, on the loop
    assert ticket.result() is ack  # once resolved, result() returns at once anywhere


async def test_ticket_result_from_another_thread(fake: FakeGWS, plugin: OutboundPlugin) -> None:
    ticket = plugin.submit(request_for(fake, handles(fake, 1)[0]))
    ack = await anyio.to_thread.run_sync(ticket.result, 5.0)
    assert ack.reference_id == ticket.reference_id


async def test_every_ticket_resolves_within_the_documented_bound(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """docs/hosting.md: every ticket resolves within ``outcome_bound`` + ``hook_timeout`` of
    acceptance. Five requests on one record wait for each other (one at a time per record)
    and no acknowledgement ever comes: without the per-request deadline the last would wait
    for the four before it (4 times ack_timeout); with it, those still queued fail at their
    deadline, unsent."""
    config = fake_config(request_timeout=0.3, retries=0, ack_timeout=0.6, merge_window=0.1)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        bound = plugin.outcome_bound
        assert bound == pytest.approx(0.3 + 0.3 + 2 * 0.3 + 0.6 + 0.1)  # a re-login counted
        fake.faults.hold_notifications()
        handle = handles(fake, 1)[0]
        tickets = [plugin.submit(request_for(fake, handle)) for _ in range(5)]
        reasons = []
        with anyio.fail_after(bound + config.hook_timeout + 2.0):
            for ticket in tickets:
                with pytest.raises(CancelFailed) as info:
                    await ticket
                reasons.append(info.value.failure)
    assert reasons[0].reason is FailureReason.TIMED_OUT
    unsent = [f for f in reasons[1:] if f.reason is FailureReason.TRANSPORT_FAILURE]
    assert unsent and all("nothing was sent" in (f.message or "") for f in unsent)
    assert len(cancels(fake)) == 5 - len(unsent)
