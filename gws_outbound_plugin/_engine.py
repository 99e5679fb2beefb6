"""The engine: wires the pure correlator to the world.

Data path::

    accept (any thread) ──► Correlator.accept ──Send──► Sender (workers, transport POST)
                                  ▲                         │ posted(token, result)
    transport ──message───────────┤◄────────────────────────┘
    timers (DeadlineQueue) ───────┤
    session lost / restored ──────┘
                                  │ effects
                                  ▼
                      Resolved ──► ticket resolved at once ──► OutcomePump (hooks, in order)

Everything but :meth:`Engine.accept` runs on the event loop thread. Each input is handed to
the correlator, which decides synchronously; :meth:`Engine._apply` then carries the effects
out, resolving a ticket before anything that could fail (a log call, a hook) is attempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio

from . import _builders
from ._config import GWSConfig
from ._correlator import Correlator
from ._deadlines import DeadlineQueue
from ._dispatcher import HookDispatcher, safe_log, steadfast
from ._effects import (
    Acknowledged,
    CancelTimer,
    Effect,
    Failed,
    Foreign,
    Limits,
    Notice,
    PostResult,
    Resolved,
    Send,
    StartTimer,
    TimerId,
    Unsolicited,
    UserEventSeen,
)
from ._exceptions import GWSOutboundError, InvalidCancelRequest, NotRunningError
from ._log import get_logger
from ._models import (
    CancelFailure,
    CancelRequest,
    FailureReason,
    OperationAck,
    OperationFailure,
    RecordCancelAck,
)
from ._operations import (
    CampaignStatusEvent,
    OperationRequest,
    PreviewRecordEvent,
    RecordCancelledEvent,
    ScheduledCallEvent,
    preview_record_from_outbound,
    unsolicited_from_user_event,
)
from ._outcomes import OutcomePump
from ._retry import RetryPolicy
from ._seam import OutboundTransport
from ._sender import OWN_TYPES, Sender, refuse_unsendable
from ._session import request_retry_policy
from ._spec import CANCEL_RECORD, OperationSpec
from ._ticket import CancelTicket, OperationTicket

__all__ = ["Engine", "outcome_bound"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

#: The timers held while the listener is held back (see ``Engine.deliver``): what they wait
#: for may be unread behind the hooks. A deadline is never held: it is the outcome's bound.
_HELD_TIMERS: Final = frozenset({"ack", "merge", "refusal", "claim", "settle"})

_UNSOLICITED_HOOKS: Final[Mapping[type, str]] = {
    RecordCancelledEvent: "on_record_cancelled",
    ScheduledCallEvent: "on_scheduled_call",
    CampaignStatusEvent: "on_campaign_status",
    PreviewRecordEvent: "on_preview_record",
}


#: What a re-login adds to a request (``GWSSession``): one login, and the attempt after it.
RELOGIN_EXCHANGES: Final = 2


def outcome_bound(config: GWSConfig, policy: RetryPolicy | None = None) -> float:
    """The longest time from acceptance to a ticket's outcome while the plugin runs.

    Waiting for the CometD session (``request_timeout``), the POST and its retries
    (``request_timeout`` each, plus the longest total delay between them of ``policy``, the
    retry policy the POSTs are sent with: by default ``request_retry_policy(config)``, the
    one ``GWSSession`` uses), one re-login after GWS refused the POST unread (the login and
    the attempt after it, ``request_timeout`` each: the retries go on where they stood), the
    acknowledgement (``ack_timeout``) and the merge window. The correlator enforces it with a
    per-request deadline; closing the plugin resolves every ticket earlier (within
    ``drain_timeout``).
    """
    if policy is None:
        policy = request_retry_policy(config)
    attempts = policy.attempts
    assert attempts is not None, "requests are never retried for ever"
    bound: float = (
        config.request_timeout
        + config.request_timeout * attempts
        + RELOGIN_EXCHANGES * config.request_timeout
        + policy.longest_total_delay()
        + config.ack_timeout
        + config.merge_window
    )
    return bound


def _fallback_payload(
    request: Any, outcome: Acknowledged | Failed, *, generic: bool = False
) -> Any:
    """The outcome's payload when building it raised: an acknowledgement without what
    arrived; else, or when that raises too (a request whose attributes raise), a payload
    that reads nothing of the request. ``generic``: the ``on_operation_*`` payload of a
    cancel (an ``OperationAck`` / ``OperationFailure``)."""
    if isinstance(outcome, Acknowledged) and not generic:
        with contextlib.suppress(Exception):
            return _builders.acknowledgement(request, Acknowledged(None, None))
    spec = getattr(type(request), "_SPEC", None)
    operation = spec.name if isinstance(spec, OperationSpec) else type(request).__name__
    cancel = isinstance(request, CancelRequest) and not generic
    if isinstance(outcome, Acknowledged):
        if cancel:
            return RecordCancelAck(
                reference_id=None,
                record_handle=None,
                application_id=None,
                campaign_name=None,
                calling_list=None,
                phone_number=None,
                chain_attribute=None,
                device_id=None,
                request=request,
            )
        return OperationAck(operation, reference_id=None, request=request, record_handle=None)
    fields: dict[str, Any] = {
        "reason": outcome.reason,
        "status_code": outcome.status_code,
        "error_number": outcome.error_number,
        "message": outcome.message,
        "user_data": outcome.user_data,
        "may_have_acted": outcome.may_have_acted,
    }
    if cancel:
        return CancelFailure(request=request, **fields)
    return OperationFailure(operation=operation, request=request, **fields)


def _generic_payload(request: Any, outcome: Acknowledged | Failed) -> Any:
    """A cancel's ``on_operation_acknowledged`` / ``on_operation_failed`` payload; when
    building it raises (a request whose attributes raise), one that reads nothing of the
    request: the hook is called all the same."""
    try:
        if isinstance(outcome, Acknowledged):
            return _builders.operation_ack(request.spec, request, outcome)
        return _builders.operation_failure(request, outcome)
    except Exception:
        safe_log(logger.exception, "outcome_payload_failed")
        return _fallback_payload(request, outcome, generic=True)


async def _short_nap() -> None:
    await anyio.sleep(0.005)


class Engine:
    """See the module docstring. Created and run by ``OutboundPlugin``."""

    def __init__(
        self,
        config: GWSConfig,
        session: OutboundTransport,
        hooks: HookDispatcher,
        *,
        is_connected: Callable[[], bool],
        wait_connected: Callable[[], Awaitable[Any]],
    ) -> None:
        self._config = config
        self._correlator = Correlator(
            Limits(
                ack_timeout=config.ack_timeout,
                merge_window=config.merge_window,
                max_message_bytes=config.max_message_bytes,
                max_user_data_entries=config.max_user_data_entries,
                deadline=outcome_bound(config, session.retry_policy),
            )
        )
        self._sender = Sender(
            self,
            session,
            workers=config.max_concurrent_requests,
            connect_timeout=config.request_timeout,
            is_connected=is_connected,
            wait_connected=wait_connected,
        )
        self._pump = OutcomePump(hooks)
        # The sender's questions, answered by the correlator itself (no call in between):
        # whether ``token`` waits to be sent; and that its POST is about to be written (False:
        # it has an outcome already, and must not be sent).
        self.is_queued: Callable[[int], bool] = self._correlator.is_queued
        self.sending: Callable[[int], bool] = self._correlator.sending
        self._tickets: dict[int, OperationTicket[Any]] = {}
        self._timers: dict[TimerId, asyncio.TimerHandle] = {}
        self._accept_lock = threading.Lock()
        self._outstanding = 0
        self._accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._loop_thread_object: threading.Thread | None = None
        # Tickets accepted in another thread whose hand-off to the loop has not run yet.
        self._handed_over: set[OperationTicket[Any]] = set()
        self._abandoned = False  # see abandon()
        self._resolved = asyncio.Event()  # made outside the loop: asyncio's can be
        self._draining = False  # whether drain() waits for _resolved
        self._effect_errors = 0
        # Tickets decided and not yet handed to the host (released by the pump after their
        # hooks, or by the queue below hook_timeout after the decision).
        self._unreleased: set[OperationTicket[Any]] = set()
        self._release_queue = DeadlineQueue(self._release)
        # The correlator's timers of one kind all have the same delay (its deadline,
        # ack_timeout, merge_window): one queue each; other timers get a loop timer each.
        self._timer_queues = {
            kind: DeadlineQueue(self._timer_fired)
            for kind in ("deadline", "ack", "merge", "refusal", "claim")
        }
        # Acknowledgement, merge, refusal, claim and settle timers that expired while the listener
        # was held back (more than hook_queue_size hook calls queued): the answers they wait
        # for may be unread behind the hooks, so they are started again once it reads on (the
        # request's deadline still bounds its outcome).
        self._held_back = False
        self._held_timers: list[TimerId] = []
        self._timers_stopped = False
        self._handlers: dict[type, Callable[[Any], None]] = {
            Resolved: self._resolve,
            Send: self._send,
            StartTimer: self._start_timer,
            CancelTimer: self._cancel_timer,
            UserEventSeen: self._user_event_seen,
            Foreign: self._foreign,
            Unsolicited: self._unsolicited,
            Notice: self._notice,
        }

    # -- information -------------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Accepted requests whose ticket is not resolved yet."""
        return self._outstanding

    @property
    def stats(self) -> dict[str, int]:
        stats = dict(self._correlator.stats)
        stats["pending"] = self._outstanding
        stats["hooks_queued"] = self._pump.queued
        stats["engine_errors"] = self._effect_errors
        return stats

    async def wait_hooks_idle(self, timeout: float | None = None) -> bool:
        return await self._pump.wait_idle(timeout)

    # -- accepting (any thread) --------------------------------------------------------------

    def accept(self, request: object) -> OperationTicket[Any]:
        """Accept a request from any thread and return its ticket (no I/O)."""
        if not isinstance(request, OperationRequest):
            if isinstance(request, Mapping):
                hint = "use CancelRequest.from_bus() or request_from_bus() for bus events"
            else:
                hint = "build one of the request types"
            raise InvalidCancelRequest(
                {"request": f"must be a request object, got {type(request).__name__} ({hint})"}
            )
        if type(request) not in OWN_TYPES:  # a host's subclass: can its POST be made?
            refuse_unsendable(request)
        ticket: OperationTicket[Any] = (
            CancelTicket(request, self)
            if isinstance(request, CancelRequest)
            else OperationTicket(request, self)
        )
        on_loop = threading.get_ident() == self._loop_thread
        with self._accept_lock:
            if not self._accepting:
                raise NotRunningError("the GWS outbound plugin is not running; nothing was sent")
            if self._outstanding >= self._config.max_pending:
                raise GWSOutboundError(
                    f"{self._outstanding} requests are pending (max_pending); nothing was sent"
                )
            if not on_loop:
                # Handed to the loop under the lock: once ``stop_accepting`` returns, every
                # request accepted in another thread is in the loop's queue, and the close
                # sees it (a thread descheduled between the two steps otherwise handed it
                # over after the close, which ended it without its hooks).
                assert self._loop is not None
                self._handed_over.add(ticket)
                try:
                    self._loop.call_soon_threadsafe(self._accept_on_loop, ticket)
                except RuntimeError:
                    self._handed_over.discard(ticket)
                    raise NotRunningError(
                        "the GWS outbound plugin's event loop is closed; nothing was sent"
                    ) from None
            self._outstanding += 1
        if on_loop:
            self._accept_on_loop(ticket)
        return ticket

    def _accept_on_loop(self, ticket: OperationTicket[Any]) -> None:
        if self._handed_over:
            with self._accept_lock:
                self._handed_over.discard(ticket)
        try:
            token, effects = self._correlator.accept(ticket.request)
        except Exception as error:  # a request object that misbehaves: it still ends
            safe_log(logger.exception, "request_not_accepted")
            failed = Failed(
                FailureReason.REJECTED,
                f"the request could not be registered ({type(error).__name__}); nothing was sent",
            )
            token = -id(ticket)
            effects = [Resolved(token, ticket.request, failed)]
        self._tickets[token] = ticket
        self._apply(effects)

    # -- the plugin's event loop closed under it (any thread) ----------------------------------

    def loop_closed(self) -> bool:
        """Whether nothing will run on the plugin's loop again: it is closed, or it stopped
        and the thread that ran it ended (a host that let its loop thread end without
        closing the loop)."""
        loop = self._loop
        if loop is None:
            return False
        if loop.is_closed():
            return True
        thread = self._loop_thread_object
        return thread is not None and not thread.is_alive() and not loop.is_running()

    def is_running_here(self) -> bool:
        loop = self._loop
        if loop is None:
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def abandon(self) -> None:
        """The plugin's event loop was closed while requests were pending (a host that stopped
        and closed its loop without leaving the plugin): nothing will run there again, not the
        timers, the hooks nor the close. Decide every pending request now on the evidence at
        hand, as a close does (``outcome_unknown`` if it was sent, ``shut_down`` if not), and
        hand each ticket its outcome at once; their hooks cannot be called (there is no loop
        to call them on). Called by a ticket waited for from another thread or loop; once."""
        with self._accept_lock:
            if self._abandoned or not self.loop_closed():
                return
            self._abandoned = True
            self._accepting = False
            handed_over, self._handed_over = self._handed_over, set()
        decided = 0
        for effect in self._correlator.shutdown():
            if not isinstance(effect, Resolved):
                continue
            ticket = self._tickets.pop(effect.token, None)
            if ticket is not None:
                decided += ticket._resolve(self._payload(effect.request, effect.outcome))
        for ticket in handed_over:  # accepted, never registered: certainly not sent
            never = Failed(
                FailureReason.SHUT_DOWN,
                "the plugin's event loop was closed before the request was sent; nothing was sent",
            )
            decided += ticket._resolve(self._payload(ticket.request, never))
        for ticket in list(self._unreleased):  # decided, its hooks never to be called
            self._unreleased.discard(ticket)
            decided += ticket._release()
        safe_log(logger.error, "plugin_loop_closed", decided=decided)

    # -- running -----------------------------------------------------------------------------

    def start(self, spawn: Callable[..., None]) -> None:
        """Start the workers and the pump with ``spawn(async_function, *args)``."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._loop_thread_object = threading.current_thread()
        for queue in self._timer_queues.values():
            queue.start(self._loop)
        self._release_queue.start(self._loop)
        self._sender.start(spawn)
        spawn(self._pump.run)
        with self._accept_lock:
            self._accepting = True

    def stop_accepting(self) -> None:
        with self._accept_lock:
            self._accepting = False

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every outstanding outcome, then resolve the rest.

        Runs in the plugin's closing task: a plain ``task.cancel()`` from outside does not
        cut its waits short (see ``steadfast``)."""
        with anyio.move_on_after(timeout):
            while self._outstanding:
                self._resolved.clear()
                if self._outstanding:
                    self._draining = True
                    await steadfast(self._resolved.wait, "closing")
        self._apply(self._correlator.shutdown())
        # Requests another thread handed over just before the stop (each in the loop's queue
        # by then, see accept()) are decided (as shut down) when the loop runs their
        # hand-off: give it a moment.
        with anyio.move_on_after(1.0):
            while self._outstanding > len(self._unreleased):
                await steadfast(_short_nap, "closing")

    async def close(self, hook_budget: float) -> None:
        """After :meth:`drain`: stop the timers and the workers, make the queued hook calls
        (every ticket is released meanwhile, by its hooks or its timer, and at the end)."""
        self._timers_stopped = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for queue in self._timer_queues.values():
            queue.clear()
        self._sender.close()
        try:
            await self._pump.close(hook_budget)
        finally:
            self.release_all()

    def cancel_pump(self) -> None:
        self._pump.cancel()

    # -- inputs (event loop thread) ----------------------------------------------------------

    def resending(self, token: int) -> bool:
        """The transport is about to write the POST of ``token`` again (the last attempt
        certainly did not reach GWS); whether it should: not once its request has an outcome
        (its deadline passed meanwhile), as a request with an outcome is never sent, nor once
        a message with its reference id arrived (GWS got an attempt after all: a node in
        front of it passed it on and answered as if not; invariant 8)."""
        if not self._correlator.may_write_again(token):
            return False  # it has its outcome, or GWS got an attempt after all (M1)
        self._apply(self._correlator.resending(token))
        return True

    def not_received(self, token: int) -> None:
        """The transport's last attempt to write the POST of ``token`` certainly did not
        reach GWS, and it waits to write it again (see ``Correlator.not_received``)."""
        self._apply(self._correlator.not_received(token))

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> None:
        self._apply(
            self._correlator.posted(token, result, status_code=status_code, message=message)
        )

    async def deliver(self, message: Mapping[str, Any]) -> None:
        """Handle one CometD message from the listener (never raises). Waits while the hook
        queue holds more than ``hook_queue_size`` calls (backpressure on the listener)."""
        self._apply(self._correlator.message(message))
        if self._pump.queued > self._config.hook_queue_size:
            self._held_back = True
            try:
                await self._pump.wait_below(self._config.hook_queue_size)
            finally:
                self._held_back = False
                held, self._held_timers = self._held_timers, []
                if not self._timers_stopped:
                    delays = {
                        "ack": self._config.ack_timeout,
                        "merge": self._config.merge_window,
                        "refusal": self._config.merge_window,
                        "claim": self._config.merge_window,
                    }
                    for timer in held:
                        if timer[0] == "settle":  # the grace period after a restoration
                            self._apply([StartTimer(timer, self._correlator.settle_delay)])
                        else:
                            self._timer_queues[timer[0]].add(timer, delays[timer[0]])

    def session_lost(self, why: str) -> None:
        safe_log(
            logger.warning, "cometd_session_lost", reason=why, pending=self._correlator.pending
        )
        self._apply(self._correlator.session_lost())

    def session_restored(self) -> None:
        self._apply(self._correlator.session_restored())

    def _timer_fired(self, timer: TimerId) -> None:
        self._timers.pop(timer, None)
        if self._held_back and timer[0] in _HELD_TIMERS:
            self._held_timers.append(timer)  # its answer may be waiting behind the hooks
            return
        self._apply(self._correlator.timer_expired(timer))

    # -- effects -----------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        """Carry the correlator's effects out. Never raises: each effect on its own."""
        handlers = self._handlers
        for effect in effects:
            try:
                handlers[type(effect)](effect)
            except Exception:
                self._effect_errors += 1
                safe_log(logger.exception, "engine_effect_failed", effect=type(effect).__name__)

    def _start_timer(self, effect: StartTimer) -> None:
        timer = effect.timer
        queue = self._timer_queues.get(timer[0])
        if queue is not None:
            # Every timer of this kind has the same length: a queue in order of expiry
            # with one loop timer for its head does (see DeadlineQueue).
            queue.add(timer, effect.delay)
            return
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        assert self._loop is not None
        self._timers[timer] = self._loop.call_later(effect.delay, self._timer_fired, timer)

    def _cancel_timer(self, effect: CancelTimer) -> None:
        timer = effect.timer
        queue = self._timer_queues.get(timer[0])
        if queue is not None:
            queue.discard(timer)
            return
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _send(self, effect: Send) -> None:
        self._sender.submit(effect.token, effect.request)

    def _user_event_seen(self, effect: UserEventSeen) -> None:
        # Lazy: no hook call at all (nor its coroutine) when no plugin implements it.
        event = effect.event
        self._pump.emit_lazy("on_user_event", "event", lambda: event)

    def _notice(self, effect: Notice) -> None:
        method = getattr(logger, effect.level, logger.info)
        safe_log(method, effect.kind, **effect.fields)

    def _resolve(self, effect: Resolved) -> None:
        ticket = self._tickets.pop(effect.token, None)
        request = effect.request
        outcome = effect.outcome
        cancel = isinstance(request, CancelRequest)
        payload = self._payload(request, outcome)
        # First the ticket: decided, and released to the host after the hooks below or
        # hook_timeout from now, whichever comes first. Nothing below can prevent that.
        if ticket is not None:
            ticket._decide(payload)
            self._unreleased.add(ticket)
            self._release_queue.add(ticket, self._config.hook_timeout)
        if isinstance(outcome, Acknowledged):
            if cancel:
                self._pump.emit("on_record_cancel_acknowledged", ack=payload)
                self._pump.emit_lazy(
                    "on_operation_acknowledged", "ack", lambda: _generic_payload(request, outcome)
                )
            else:
                self._pump.emit("on_operation_acknowledged", ack=payload)
        else:
            try:
                self._log_failure(request.spec, request.reference_id, outcome)
            except Exception:  # a request whose attributes raise: its hooks are still called
                self._effect_errors += 1
            if cancel:
                self._pump.emit("on_cancel_failed", failure=payload)
                self._pump.emit_lazy(
                    "on_operation_failed", "failure", lambda: _generic_payload(request, outcome)
                )
            else:
                self._pump.emit("on_operation_failed", failure=payload)
        if ticket is not None:  # after its hooks
            self._pump.emit_call(lambda: self._release(ticket))

    @staticmethod
    def _payload(request: Any, outcome: Acknowledged | Failed) -> Any:
        """The outcome's payload for the ticket and the hooks."""
        try:
            if isinstance(outcome, Acknowledged):
                return _builders.acknowledgement(request, outcome)
            if isinstance(request, CancelRequest):
                return _builders.failure(request, outcome)
            return _builders.operation_failure(request, outcome)
        except Exception:  # a payload we cannot build (a request that raises) still ends it
            safe_log(logger.exception, "outcome_payload_failed")
            return _fallback_payload(request, outcome)

    def _release(self, ticket: OperationTicket[Any]) -> None:
        if ticket not in self._unreleased:
            return  # released already
        self._unreleased.discard(ticket)
        self._release_queue.discard(ticket)
        try:
            ticket._release()
        finally:
            with self._accept_lock:
                self._outstanding -= 1
            if self._draining:  # drain() waits for it
                self._draining = False
                self._resolved.set()

    def release_all(self) -> None:
        """Hand every decided outcome to the host now (at the end of a close)."""
        for ticket in list(self._unreleased):
            self._release(ticket)

    def _log_failure(self, spec: OperationSpec, reference: str, outcome: Failed) -> None:
        event = "cancel_failed" if spec is CANCEL_RECORD else "request_failed"
        safe_log(
            logger.warning,
            event,
            operation=spec.name,
            reference_id=reference,
            reason=outcome.reason.value,
            status_code=outcome.status_code,
            error_number=outcome.error_number,
            detail=outcome.message,
        )

    def _foreign(self, effect: Foreign) -> None:
        spec = effect.spec
        safe_log(logger.info, "foreign_acknowledgement", operation=spec.name)
        acknowledged = Acknowledged(effect.outbound, effect.user_event)
        if spec is CANCEL_RECORD:
            self._pump.emit(
                "on_record_cancel_acknowledged",
                ack=_builders.cancel_ack(None, effect.outbound, effect.user_event),
            )
        self._pump.emit_lazy(
            "on_operation_acknowledged",
            "ack",
            lambda: _builders.operation_ack(spec, None, acknowledged),
        )

    def _unsolicited(self, effect: Unsolicited) -> None:
        event: object | None = None
        if effect.event is not None:
            event = unsolicited_from_user_event(effect.event)
        elif effect.outbound is not None:
            event = preview_record_from_outbound(effect.outbound)
        if event is None:
            return
        hook = _UNSOLICITED_HOOKS.get(type(event))
        if hook is not None:
            self._pump.emit(hook, event=event)
