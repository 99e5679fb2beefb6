"""Tickets: the host's handle on one accepted request (CancelTicket for cancels)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Generator
from typing import Any, Final, Generic, Protocol, TypeVar

from ._exceptions import CancelFailed, OperationFailed
from ._payloads import CancelFailure, OperationAck, OperationFailure, RecordCancelAck
from ._requests import CancelRequest

__all__ = ["HOOK_TASK", "HOOK_TASKS", "CancelTicket", "OperationTicket", "in_hook"]

# RecordCancelAck | CancelFailure for a cancel; OperationAck | OperationFailure otherwise.
Outcome = Any
#: What a ticket resolves with: ``OperationAck``, or ``RecordCancelAck`` for a cancel.
Ack = TypeVar("Ack", OperationAck, RecordCancelAck)

#: The tasks running a hook implementation right now (each ``async def`` hook call runs in a
#: task of its own, see ``_dispatcher``), each with the plugin manager whose hook it runs.
#: In such a task an ``await ticket`` returns as soon as the outcome is decided, without
#: waiting for the hooks of that outcome, which cannot run before the awaiting hook returns.
HOOK_TASKS: Final[dict[asyncio.Task[Any], object]] = {}
_NONE: Final = object()

#: The hook call's task, set in it by the dispatcher: the tasks the hook starts copy it with
#: their context (``asyncio.wait_for`` on Python 3.11, ``gather``, ``shield``, a task group),
#: so while the hook call runs they are inside it too. The hook may be waiting for them: had
#: they waited for the hooks of the outcome they await, the hook would have waited for itself
#: until its timeout. Once the hook call ended, they wait as any other task does.
HOOK_TASK: Final[contextvars.ContextVar[asyncio.Task[Any] | None]] = contextvars.ContextVar(
    "gws_outbound_hook_task", default=None
)


def in_hook(pm: object = None) -> bool:
    """Whether the current task is running a hook implementation, or was started (directly
    or not) by one that is still running; with ``pm``, one of that plugin manager's hooks
    (another plugin's hook on the same loop is like any other task to it)."""
    if not HOOK_TASKS:
        return False  # no hook implementation runs in a task now (the usual case)
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return False
    if task is None:
        return False
    running = HOOK_TASKS.get(task, _NONE)
    if running is _NONE:
        owner = HOOK_TASK.get()
        if owner is None:
            return False
        running = HOOK_TASKS.get(owner, _NONE)  # the hook that started it, while it runs
        if running is _NONE:
            return False
    return pm is None or running is pm


#: How often a thread blocked in ``result()`` (or a task awaiting on another loop) looks
#: whether the plugin's event loop was closed under it.
HOME_CHECK: Final = 0.5


class Home(Protocol):
    """What a ticket knows of the engine that accepted it."""

    def loop_closed(self) -> bool:
        """Whether the plugin's event loop is closed (nothing will ever run there again)."""
        ...

    def is_running_here(self) -> bool:
        """Whether the calling thread runs the plugin's event loop."""
        ...

    def abandon(self) -> None:
        """Decide every pending request at once, the loop being closed (idempotent)."""
        ...


# One lock for all tickets: each critical section is a few attribute reads, and a ticket
# stays small (thousands can be pending at once).
_LOCK: Final = threading.Lock()


class OperationTicket(Generic[Ack]):
    """Returned by the core's ``on_operation_requested``: the outcome of one accepted request.

    ``OperationTicket[OperationAck]`` (``CancelTicket`` is an ``OperationTicket[RecordCancelAck]``).

    * ``await ticket`` (on the plugin's event loop) returns the acknowledgement or raises
      :class:`~gws_outbound_plugin.OperationFailed`;
    * ``ticket.result(timeout)`` does the same from any other thread, blocking;
    * ``ticket.done()`` / ``ticket.outcome`` never block.

    The ticket resolves after the plugins' ``on_operation_acknowledged`` /
    ``on_operation_failed`` implementations for it were called, but never later than
    ``hook_timeout`` after its outcome was decided: no plugin can hold it back. A hook that
    awaits a ticket gets its outcome as soon as it is decided. See "The promise" in
    ``docs/hosting.md``.
    """

    __slots__ = ("_decided", "_home", "_hook_waiters", "_outcome", "_waiters", "request")

    def __init__(self, request: Any, home: Home | None = None) -> None:
        self.request = request
        self._outcome: Outcome | None = None
        self._decided: Outcome | None = None
        self._waiters: list[threading.Event | asyncio.Future[None]] | None = None
        self._hook_waiters: list[asyncio.Future[None]] | None = None
        # The plugin's event loop and what decides the pending requests once it is closed
        # (see ``_stranded``); None for a ticket made outside an engine.
        self._home = home

    @property
    def reference_id(self) -> str:
        """The ``referenceId`` sent to GWS."""
        reference: str = self.request.reference_id
        return reference

    @property
    def outcome(self) -> Outcome | None:
        """The acknowledgement (an :class:`OperationAck`) or the failure (an
        :class:`OperationFailure`), or ``None`` while pending."""
        return self._outcome

    def done(self) -> bool:
        """True once the outcome is known."""
        return self._outcome is not None

    def result(self, timeout: float | None = None) -> Ack:
        """Block the calling thread until the outcome is known (not on an event loop thread).

        :raises OperationFailed: the request failed (``CancelFailed`` for a cancel).
        :raises TimeoutError: no outcome within ``timeout`` seconds (the request goes on).
        :raises RuntimeError: called on a thread that runs an event loop, where blocking
            would stop the loop that delivers the outcome: ``await ticket`` there instead.
        """
        if self._outcome is None:
            if _running_loop() is not None:
                raise RuntimeError(
                    f"{type(self).__name__}.result() would block the event loop this thread "
                    "runs (and with it the outcome it waits for); use `await ticket` on the "
                    "event loop, result() only from other threads"
                )
            event = threading.Event()
            with _LOCK:
                if self._outcome is None:
                    self._add_waiter(event)
                else:
                    event.set()
            if not self._wait_event(event, timeout):
                raise TimeoutError(f"no outcome for referenceId {self.reference_id} yet")
        ack: Ack = self._unwrap()
        return ack

    def _wait_event(self, event: threading.Event, timeout: float | None) -> bool:
        """``event.wait(timeout)``, looking every ``HOME_CHECK`` seconds whether the plugin's
        event loop was closed meanwhile: then nothing would ever set it (see ``_stranded``)."""
        if self._home is None:
            return event.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = HOME_CHECK if deadline is None else min(HOME_CHECK, deadline - time.monotonic())
            if event.wait(max(step, 0.0)):
                return True
            if self._stranded():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _stranded(self) -> bool:
        """Whether the plugin's event loop is closed: the requests pending there were decided
        now (by the home's ``abandon``) and this ticket has its outcome."""
        home = self._home
        if home is None or not home.loop_closed():
            return False
        home.abandon()
        return self._outcome is not None

    def __await__(self) -> Generator[Any, None, Ack]:
        return self._wait().__await__()

    async def _wait(self) -> Ack:
        if self._outcome is None and HOOK_TASKS and in_hook():
            decided: Ack = await self._wait_decided()
            return decided
        if self._outcome is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            with _LOCK:
                if self._outcome is None:
                    waiters = self._waiters
                    if waiters is None:
                        self._waiters = [future]
                    else:
                        waiters.append(future)
                else:
                    future.set_result(None)
            await self._wait_future(future)
        ack: Ack = self._unwrap()
        return ack

    async def _wait_future(self, future: asyncio.Future[None]) -> None:
        """``await future``; on a loop other than the plugin's, looking every ``HOME_CHECK``
        seconds whether the plugin's loop was closed meanwhile (see ``_stranded``)."""
        home = self._home
        if home is None or home.is_running_here():
            await future
            return
        try:
            while not future.done():
                await asyncio.wait((future,), timeout=HOME_CHECK)
                if not future.done() and self._stranded():
                    return
        except BaseException:
            future.cancel()  # as a plain ``await future`` would: nobody waits on it now
            raise
        future.result()

    async def _wait_decided(self) -> Any:
        if self._decided is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            with _LOCK:
                if self._decided is None:
                    if self._hook_waiters is None:
                        self._hook_waiters = []
                    self._hook_waiters.append(future)
                else:
                    future.set_result(None)
            await future
        return self._unwrap(self._decided)

    def _decide(self, outcome: Outcome) -> bool:
        """The outcome is known: wake the hooks that await it (the host waits for
        :meth:`_release`). Later calls are ignored and return False."""
        with _LOCK:
            if self._decided is not None:
                return False
            self._decided = outcome
            waiters, self._hook_waiters = self._hook_waiters, None
        for future in waiters or ():
            _wake_soon(future)
        return True

    def _add_waiter(self, waiter: threading.Event | asyncio.Future[None]) -> None:
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)

    def _unwrap(self, outcome: Outcome | None = None) -> Any:
        if outcome is None:
            outcome = self._outcome
        if isinstance(outcome, CancelFailure):
            raise CancelFailed(outcome)
        if isinstance(outcome, OperationFailure):
            raise OperationFailed(outcome)
        assert outcome is not None
        return outcome

    def _resolve(self, outcome: Outcome) -> bool:
        """Decide and release the outcome at once."""
        self._decide(outcome)
        return self._release()

    def _release(self) -> bool:
        """Hand the decided outcome to the host; later calls are ignored and return False."""
        with _LOCK:
            if self._outcome is not None or self._decided is None:
                return False
            self._outcome = self._decided
            waiters, self._waiters = self._waiters, None
        running: asyncio.AbstractEventLoop | None = None
        if waiters:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
        for waiter in waiters or ():
            if isinstance(waiter, threading.Event):
                waiter.set()
            elif waiter.done():
                continue  # its awaiter gave up (its loop may be closed by now)
            elif waiter.get_loop() is running:
                # On the waiter's own loop: no round trip through its self-pipe.
                waiter.set_result(None)
            else:
                _wake_soon(waiter)
        return True

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else type(self._outcome).__name__
        operation = getattr(self.request, "operation_name", type(self.request).__name__)
        return f"<{type(self).__name__} {operation} referenceId={self.reference_id!r} {state}>"


class CancelTicket(OperationTicket[RecordCancelAck]):
    """Returned by the core's ``on_cancel_requested``: the outcome of one accepted cancel.

    * ``await ticket`` (on the plugin's event loop) returns the :class:`RecordCancelAck` or
      raises :class:`CancelFailed`;
    * ``ticket.result(timeout)`` does the same from any other thread, blocking (never on an
      event loop thread: it raises ``RuntimeError`` at once there);
    * ``ticket.done()`` / ``ticket.outcome`` never block.

    The ticket resolves after the plugins' ``on_record_cancel_acknowledged`` /
    ``on_cancel_failed`` implementations for it were called, but never later than
    ``hook_timeout`` after the outcome was decided: no plugin, however slow or broken, holds
    it back for longer. Inside a hook, ``await ticket`` returns as soon as it is decided.
    """

    __slots__ = ()
    request: CancelRequest

    @property
    def outcome(self) -> RecordCancelAck | CancelFailure | None:
        """The :class:`RecordCancelAck` or :class:`CancelFailure`, or ``None`` while pending."""
        outcome: RecordCancelAck | CancelFailure | None = self._outcome
        return outcome

    def result(self, timeout: float | None = None) -> RecordCancelAck:
        """Block the calling thread until the outcome is known (not on an event loop thread).

        :raises CancelFailed: the cancel failed.
        :raises TimeoutError: no outcome within ``timeout`` seconds (the cancel goes on).
        :raises RuntimeError: called on an event loop thread (``await ticket`` there).
        """
        return super().result(timeout)

    def __await__(self) -> Generator[Any, None, RecordCancelAck]:
        return self._wait().__await__()

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else type(self._outcome).__name__
        return (
            f"<CancelTicket referenceId={self.reference_id!r} "
            f"record={self.request.record_handle} {state}>"
        )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _wake_soon(future: asyncio.Future[None]) -> None:
    if future.done():
        return
    loop = future.get_loop()
    if _running_loop() is loop:
        _wake(future)
        return
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits there any more
        loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
