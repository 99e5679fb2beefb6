"""CancelTicket: the host's handle on one accepted cancel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any, Final

from ._exceptions import CancelFailed
from ._models import CancelFailure, CancelRequest, RecordCancelAck

__all__ = ["CancelTicket"]

Outcome = RecordCancelAck | CancelFailure
# One lock for all tickets: each critical section is a few attribute reads, and a ticket
# stays small (thousands can be pending at once).
_LOCK: Final = threading.Lock()


class CancelTicket:
    """Returned by the core's ``on_cancel_requested``: the outcome of one accepted cancel.

    * ``await ticket`` (on the plugin's event loop) returns the :class:`RecordCancelAck` or
      raises :class:`CancelFailed`;
    * ``ticket.result(timeout)`` does the same from any other thread, blocking;
    * ``ticket.done()`` / ``ticket.outcome`` never block.

    The outcome is set after every plugin's ``on_record_cancel_acknowledged`` or
    ``on_cancel_failed`` implementation has been called for it.
    """

    __slots__ = ("_outcome", "_waiters", "request")

    def __init__(self, request: CancelRequest) -> None:
        self.request = request
        self._outcome: Outcome | None = None
        self._waiters: list[threading.Event | asyncio.Future[None]] | None = None

    @property
    def reference_id(self) -> str:
        """The ``referenceId`` sent to GWS."""
        return self.request.reference_id

    @property
    def outcome(self) -> Outcome | None:
        """The :class:`RecordCancelAck` or :class:`CancelFailure`, or ``None`` while pending."""
        return self._outcome

    def done(self) -> bool:
        """True once the outcome is known."""
        return self._outcome is not None

    def result(self, timeout: float | None = None) -> RecordCancelAck:
        """Block the calling thread until the outcome is known (not on the event loop thread).

        :raises CancelFailed: the cancel failed.
        :raises TimeoutError: no outcome within ``timeout`` seconds (the cancel goes on).
        """
        if self._outcome is None:
            event = threading.Event()
            with _LOCK:
                if self._outcome is None:
                    self._add_waiter(event)
                else:
                    event.set()
            if not event.wait(timeout):
                raise TimeoutError(f"no outcome for referenceId {self.reference_id} yet")
        return self._unwrap()

    def __await__(self) -> Generator[Any, None, RecordCancelAck]:
        return self._wait().__await__()

    async def _wait(self) -> RecordCancelAck:
        if self._outcome is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            with _LOCK:
                if self._outcome is None:
                    self._add_waiter(future)
                else:
                    future.set_result(None)
            await future
        return self._unwrap()

    def _add_waiter(self, waiter: threading.Event | asyncio.Future[None]) -> None:
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)

    def _unwrap(self) -> RecordCancelAck:
        outcome = self._outcome
        if isinstance(outcome, CancelFailure):
            raise CancelFailed(outcome)
        assert outcome is not None
        return outcome

    def _resolve(self, outcome: Outcome) -> bool:
        """Set the outcome once; later calls are ignored and return False."""
        with _LOCK:
            if self._outcome is not None:
                return False
            self._outcome = outcome
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
            elif waiter.get_loop() is running:
                _wake(waiter)  # on the waiter's own loop: no round trip through its self-pipe
            else:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
        return True

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else type(self._outcome).__name__
        return (
            f"<CancelTicket referenceId={self.reference_id!r} "
            f"record={self.request.record_handle} {state}>"
        )


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
