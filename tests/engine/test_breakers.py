"""Attempts to break the promise (issue 10, "The promise" in docs/hosting.md) and invariant 8
of the design (a CometD message resolves only the request it belongs to; a request GWS may
have processed is never sent again), by a review that tried: each test reproduced a break
that has been fixed since (hooks raising BaseException, aclose() from a hook, a hook shielding
itself at close, a late answer taken by a newer request, two requests on one record swapping
answers, a referenceId reused after an OCS error, wrappers on host-fired hooks, a ticket waiter
on a closed event loop). Tests that could hang bound the wait from a separate task and, when
the plugin is stuck, unstick it (see :func:`_unstick`) so the suite goes on. They run on
FakeGWS and the virtual clock, but the ticket waiter on a closed event loop (another loop in
another thread, in real time): tests/faults/test_ticket_threads.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    CancelRequest,
    FailureReason,
    GWSOutboundError,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
    hookspecs,
)
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import Limits, PostResult, Resolved
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import cancels, fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio

#: How long closing may take in the tests below before it counts as hung (the configs use
#: drain_timeout 0.2 and hook_timeout 0.3, so a working close takes well under a second).
_CLOSE_LIMIT = 1.5


def _unstick(plugin: OutboundPlugin) -> None:
    """Only for a plugin whose close is stuck on the pump's idle event (the breaks below): set
    it so the close ends and the test can report the hang instead of hanging the suite."""
    plugin._engine._pump._idle.set()


async def _run_host(
    plugin: OutboundPlugin, body: Callable[[OutboundPlugin], Awaitable[None]]
) -> tuple[bool, list[BaseException]]:
    """Run ``async with plugin: await body(plugin)`` in a task of its own. Returns whether it
    ended within ``_CLOSE_LIMIT`` of the body's end (else the plugin is unstuck) and what
    escaped from it."""
    escaped: list[BaseException] = []
    body_done = anyio.Event()
    host_done = anyio.Event()

    async def host() -> None:
        try:
            async with plugin:
                try:
                    await body(plugin)
                finally:
                    body_done.set()
        except BaseException as error:
            escaped.append(error)
        finally:
            host_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(host)
        with anyio.fail_after(5):
            await body_done.wait()
        with anyio.move_on_after(_CLOSE_LIMIT):
            await host_done.wait()
        in_time = host_done.is_set()
        while not host_done.is_set():
            _unstick(plugin)
            await anyio.sleep(0.05)
    return in_time, escaped


class Abort(BaseException):
    """A ``BaseException`` that is neither ``KeyboardInterrupt`` nor ``SystemExit`` (pytest's
    ``fail()`` / ``skip()`` raise such exceptions, and so do some frameworks)."""


def _raise_abort() -> None:
    raise Abort("a plugin's BaseException")


def _raise_cancelled() -> None:
    # What a hook sees when something it awaits (a future, a client) was cancelled by others.
    raise asyncio.CancelledError()


# -- 1. a hook that raises a BaseException ------------------------------------------------------


@pytest.mark.parametrize("raise_", [_raise_abort, _raise_cancelled], ids=["abort", "cancelled"])
async def test_a_hook_raising_a_base_exception_is_isolated(
    fake: FakeGWS,
    pm: pluggy.PluginManager,
    recorder: Recorder,
    raise_: Callable[[], None],
) -> None:
    class Raiser:
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            raise_()

    pm.register(Raiser(), name="raiser")
    config = fake_config(hook_timeout=0.3, drain_timeout=0.2)
    first, second = handles(fake, 2)
    outcomes: list[object] = []

    async def body(plugin: OutboundPlugin) -> None:
        fake.faults.status_code(6, "record not found", count=2)
        for handle in (first, second):
            try:
                await plugin.cancel(request_for(fake, handle))
            except CancelFailed as error:
                outcomes.append(error.failure.reason)

    in_time, escaped = await _run_host(OutboundPlugin(pm, config, transport=fake), body)
    assert {
        # the host task was neither cancelled nor handed the plugin's exception
        "escaped from the host": escaped,
        "host saw": outcomes,
        "closing ended": in_time,
        "failures the plugins saw": len(recorder.failures),
    } == {
        "escaped from the host": [],
        "host saw": [FailureReason.REJECTED, FailureReason.REJECTED],
        "closing ended": True,
        "failures the plugins saw": 2,
    }


# -- 2. a hook that closes the plugin ------------------------------------------------------------


async def test_a_hook_can_close_the_plugin(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    config = fake_config(hook_timeout=0.3, drain_timeout=0.2)
    plugin = OutboundPlugin(pm, config, transport=fake)

    class ShutDownOnFailure:  # e.g. "stop the plugin when GWS refuses us"
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            await plugin.aclose()

    pm.register(ShutDownOnFailure(), name="closer")

    async def body(plugin: OutboundPlugin) -> None:
        fake.faults.status_code(6, "record not found")
        with pytest.raises(CancelFailed):
            await plugin.cancel(request_for(fake, handles(fake, 1)[0]))

    in_time, escaped = await _run_host(plugin, body)
    assert (escaped, in_time, len(recorder.failures)) == ([], True, 1)


async def test_aclose_returns_even_if_a_hook_shields_itself(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """'and at the latest when closing ends' (docs/hosting.md): closing must end within its
    documented budget (max(drain_timeout, hook_timeout), then 50 ms per async hook), whatever
    a plugin does on the loop without blocking it. Here a hook shields itself for 1.2 s."""
    hook_done = anyio.Event()

    class Shielded:  # e.g. "always finish writing the audit record"
        @hookimpl
        async def on_cancel_failed(self, failure: CancelFailure) -> None:
            try:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(1.2)
            finally:
                hook_done.set()

    pm.register(Shielded(), name="shielded")
    config = fake_config(hook_timeout=0.3, drain_timeout=0.2)
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.status_code(6, "record not found")
        with pytest.raises(CancelFailed):
            await plugin.cancel(request_for(fake, handles(fake, 1)[0]))
        # The close itself ends within its budget (here from another task: the task that
        # entered the plugin exits its task group, which waits for the shielded hook, as
        # structured concurrency wants).
        async with anyio.create_task_group() as tg:
            tg.start_soon(plugin.aclose)
        returned_while_the_hook_ran = not hook_done.is_set()
        assert plugin.pending_count == 0
    assert returned_while_the_hook_ran
    assert hook_done.is_set()  # and the async with exit waited for it


# -- 3. two of our requests for one record, user events without GSW_REFERENCE_ID ----------------


async def test_two_cancels_of_one_record_each_get_their_own_outcome(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The simulator's user events carry no ``GSW_REFERENCE_ID`` for a known record (whether
    GWS echoes it is UNCONFIRMED in the reference). One POST at a time: the first cancel is
    processed (its messages are a little late), then the second is refused by OCS at once
    ("Record already cancelled")."""
    config = fake_config(max_concurrent_requests=1)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.delay_notifications(0.3, count=1)
        first = plugin.submit(request_for(fake, handle))
        second = plugin.submit(request_for(fake, handle))
        with anyio.fail_after(5):
            results: list[object] = []
            for ticket in (first, second):
                try:
                    results.append(await ticket)
                except CancelFailed as error:
                    results.append(error.failure)
    assert [body["referenceId"] for body in cancels(fake)] == [
        first.reference_id,
        second.reference_id,
    ]
    assert isinstance(results[0], RecordCancelAck)  # GWS acknowledged the first one
    assert isinstance(results[1], CancelFailure)
    assert results[1].reason is FailureReason.OCS_ERROR


def _cancel(reference: str) -> CancelRequest:
    return CancelRequest(
        record_handle=11,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path="/devices/d1",
        reference_id=reference,
    )


_KEYS = {
    "GSW_APPLICATION_ID": 134,
    "GSW_RECORD_HANDLE": 11,
    "GSW_CALLING_LIST": "CallingList1",
    "GSW_CAMPAIGN_NAME": "Campaign1",
}


def _user_event(**user_data: Any) -> dict[str, Any]:
    return {
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "deviceId": "d1",
            "userData": {"GSW_USER_EVENT": "RecordCancelAcknowledge", **_KEYS, **user_data},
        },
    }


def _outbound(reference: str, notification: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "/v2/me/outbound",
        "data": {
            "messageType": "OutboundRecordMessage",
            "notificationType": notification,
            "referenceId": reference,
            "record": {
                "recordHandle": 11,
                "applicationId": 134,
                "campaignName": "Campaign1",
                "callingList": "CallingList1",
            },
            **extra,
        },
    }


def _resolved(effects: list[Any]) -> list[tuple[str, str]]:
    """(referenceId, outcome) of every Resolved effect."""
    return [
        (
            effect.request.reference_id,
            getattr(effect.outcome, "reason", None).value  # type: ignore[union-attr]
            if hasattr(effect.outcome, "reason")
            else "acknowledged",
        )
        for effect in effects
        if isinstance(effect, Resolved)
    ]


def _sent(correlator: Correlator, request: CancelRequest) -> int:
    token, effects = correlator.accept(request)
    assert _resolved(effects) == []
    assert correlator.sending(token)
    correlator.posted(token, PostResult.ACCEPTED)
    return token


def test_an_unreferenced_error_does_not_fail_a_request_gws_acknowledged() -> None:
    correlator = Correlator(Limits(deadline=50.0))
    _sent(correlator, _cancel("A"))
    # B, for the same record, is held until A has its outcome (one at a time per record).
    token_b, effects = correlator.accept(_cancel("B"))
    assert _resolved(effects) == [] and correlator.sending(token_b) is False
    # A's acknowledgement, by its referenceId: A waits for its user event (merge window).
    assert _resolved(correlator.message(_outbound("A", "RecordCancelAcknowledge"))) == []
    # OCS refuses B ("already cancelled"); the user event names the record, not the request.
    error = _user_event(GSW_ERROR="Record already cancelled", GSW_ERROR_NUMBER="102")
    assert _resolved(correlator.message(error)) == []  # someone else's refusal


# -- 4. a referenceId reused after an OCS error --------------------------------------------------


def test_a_reference_reused_after_an_ocs_error_is_not_failed_by_the_old_answer() -> None:
    """Whether GWS reports an OCS error both as a user event and as an outbound ``Error``
    notification (or ``ErrorMessage``) is UNCONFIRMED in the reference; the correlator handles
    each, so it must not let the second one land on a new request with the same id."""
    correlator = Correlator(Limits(deadline=50.0))
    token = _sent(correlator, _cancel("X"))
    error = _user_event(GSW_ERROR="Record is locked", GSW_ERROR_NUMBER="114", GSW_REFERENCE_ID="X")
    assert _resolved(correlator.message(error)) == []  # held for the merge window (M9)
    assert _resolved(correlator.timer_expired(("refusal", token))) == [("X", "ocs_error")]
    token, effects = correlator.accept(_cancel("X"))  # the host retries with the same id
    if _resolved(effects):
        return  # refused at once, nothing sent: fine
    assert correlator.sending(token)
    late = _outbound("X", "Error", errorMessage="Record is locked", errorCode=114)
    assert _resolved(correlator.message(late)) == []  # the old request's, not the new one's


# -- 5. a wrapper on a host-fired hook ---------------------------------------------------------


class RaisingWrapper:
    """An audit wrapper around the host-fired hook that breaks after the core accepted."""

    @hookimpl(wrapper=True, tryfirst=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        yield
        raise RuntimeError("the audit wrapper broke")


class FilteringWrapper:
    """A wrapper that drops the results (the ticket with them)."""

    @hookimpl(wrapper=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        yield
        return []


class AbortingObserver:
    """A plain observer that raises a ``BaseException`` (CoreHooks catches ``Exception``)."""

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        _raise_abort()


@pytest.mark.parametrize("wrapper", [RaisingWrapper, FilteringWrapper, AbortingObserver])
async def test_a_host_fired_hook_wrapper_cannot_hide_an_accepted_request(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder, wrapper: type
) -> None:
    if wrapper is not AbortingObserver:
        with pytest.raises(pluggy.PluginValidationError, match="cannot be wrapped"):
            pm.register(wrapper(), name="wrapper")
        # A bare pluggy manager does not validate registrations: the start refuses it.
        bare = pluggy.PluginManager("gws_outbound")
        bare.add_hookspecs(hookspecs)
        bare.register(wrapper(), name="wrapper")
        with pytest.raises(GWSOutboundError, match="wraps on_cancel_requested"):
            async with OutboundPlugin(bare, fake_config(), transport=fake):
                pass
        return
    pm.register(wrapper(), name="wrapper")
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        request = request_for(fake, handles(fake, 1)[0])
        # The observer's BaseException does not take the ticket away: the request goes on.
        ack = await plugin.cancel(request)
        assert ack.reference_id == request.reference_id
    assert len(cancels(fake)) == 1


# -- 6. a ticket awaited on another event loop: in tests/faults/test_ticket_threads.py (real
# time: another loop in another thread)


# -- 7. a plain hook that blocks the event loop --------------------------------------------------


# -- 8. a late answer of a timed-out request, and the retry that followed it --------------------


async def test_a_late_answer_does_not_acknowledge_the_retry_that_followed_it(
    fake: FakeGWS, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The host does what the docs say after a timeout: a new cancel with a new referenceId.
    The first cancel's messages come late (0.7 s, after the retry was sent); OCS's refusal of
    the retry (the record is cancelled already) comes later still. The retry must not be
    acknowledged by the first cancel's answer (it may time out: its own answer is late)."""
    config = fake_config(ack_timeout=0.5, merge_window=0.05)
    handle = handles(fake, 1)[0]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        fake.faults.delay_notifications(0.7, count=1)
        fake.faults.delay_notifications(1.0, count=1)
        with pytest.raises(CancelFailed) as info:
            await plugin.cancel(request_for(fake, handle))
        assert info.value.failure.reason is FailureReason.TIMED_OUT
        with anyio.fail_after(5):
            try:
                outcome: object = await plugin.cancel(request_for(fake, handle))
            except CancelFailed as error:
                outcome = error.failure
    assert len(cancels(fake)) == 2
    assert isinstance(outcome, CancelFailure), outcome  # not acknowledged by the first's answer
