"""The sender: workers that POST accepted requests to GWS and report how each POST ended.

Data path: ``Engine.accept`` -> correlator ``Send`` -> :meth:`Sender.submit` -> a worker ->
the transport's ``post_operation`` -> :meth:`Engine.posted`. A worker asks the engine right before
writing (``Engine.sending``) so a request that already has its outcome (shut down, deadline) is
never sent, and the correlator knows from then on that the request may reach GWS.

What may have been processed and what certainly was not are kept apart: the path and body are
made before ``sending`` (a host's subclass that raises fails as not sent;
``refuse_unsendable`` refuses one that cannot be made already when it is accepted), and while
the transport waits to write a POST again after an attempt GWS certainly did not get
(``_resend.announce_not_received``) the request counts as not written: a plain
``task.cancel()`` of the worker then has it sent again, after the rest of that backoff and
with the attempts made so far counted (``_resend.Carry``): a host cancelling tasks again and
again makes no more attempts than the retry policy allows.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import anyio

from ._dispatcher import (
    cancelled_by_plugin,
    cancelled_from_outside,
    safe_log,
    take_back_cancellation,
)
from ._effects import PostResult
from ._exceptions import (
    GWSAuthenticationError,
    GWSStatusError,
    GWSTransportError,
    InvalidCancelRequest,
    InvalidOperationRequest,
)
from ._log import get_logger
from ._requests import OPERATION_TYPES, CancelRequest
from ._resend import Carry, announce, stop_announcing
from ._seam import OperationPoster
from ._session import NOT_JSON, GWSNoAnswerError, encode_json
from ._spec import Operation

__all__ = ["OWN_TYPES", "Sender", "Unbuildable", "build_post", "refuse_unsendable"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


class _Engine(Protocol):
    def is_queued(self, token: int) -> bool: ...

    def sending(self, token: int) -> bool: ...

    def resending(self, token: int) -> bool: ...

    def not_received(self, token: int) -> None: ...

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> None: ...


class Unbuildable(Exception):
    """A request's POST cannot be made: its ``gws_path()`` or ``to_gws_body()`` (a host's
    subclass) raised or returned what is no path or body. ``str()`` says which and the
    error's type, never the error's text (it may hold what the host's code read)."""


def build_post(request: Operation) -> tuple[str, Mapping[str, Any]]:
    """The path and body of ``request``'s POST, or :class:`Unbuildable`."""
    path = _made(request, "gws_path", str)
    body = _made(request, "to_gws_body", Mapping)
    return path, body


def _made(request: Operation, method: str, kind: type[Any]) -> Any:
    try:
        value = getattr(request, method)()
    except Exception as error:
        raise Unbuildable(
            f"{type(request).__name__}.{method}() raised {type(error).__name__}"
        ) from error
    if not isinstance(value, kind):
        raise Unbuildable(
            f"{type(request).__name__}.{method}() returned a {type(value).__name__}, "
            f"not a {kind.__name__}"
        )
    return value


#: The request types of the package: their path and body are made from validated fields.
OWN_TYPES: Final = frozenset(t for types in OPERATION_TYPES.values() for t in types)


def refuse_unsendable(request: Operation) -> None:
    """Refuse a request of a host's subclass whose POST cannot be made (its ``gws_path()``
    or ``to_gws_body()`` raises, or returns no path or body, or a body JSON cannot carry),
    as invalid input (:class:`InvalidCancelRequest` for a cancel, else
    :class:`InvalidOperationRequest`), before it is accepted: nothing is sent, no ticket.
    The package's own types (:data:`OWN_TYPES`) need no check."""
    try:
        _path, body = build_post(request)
        try:
            encode_json(body)
        except NOT_JSON as error:  # nested too deep too (RecursionError)
            raise Unbuildable(
                f"{type(request).__name__}.to_gws_body() returned a body that is not JSON "
                f"({type(error).__name__})"
            ) from None
    except Unbuildable as error:
        problem = {"request": f"{error}; nothing was sent"}
        if isinstance(request, CancelRequest):
            raise InvalidCancelRequest(problem) from None
        raise InvalidOperationRequest(problem, operation=_operation_name(request)) from None


def _operation_name(request: Operation) -> str:
    try:
        return request.spec.name
    except Exception:
        return type(request).__name__


def _noun(request: Operation) -> str:
    return "cancel" if request.spec.name == "CancelRecord" else "request"


class Sender:
    """Up to ``workers`` tasks POSTing one request at a time each, started as they are
    needed: one at :meth:`start`, then one more by each worker that takes a request and
    leaves none waiting (workers start workers because a task can start tasks where
    :meth:`submit`, called from a loop callback, cannot)."""

    def __init__(
        self,
        engine: _Engine,
        session: OperationPoster,
        *,
        workers: int,
        connect_timeout: float,
        is_connected: Callable[[], bool],
        wait_connected: Callable[[], Awaitable[Any]],
    ) -> None:
        self._engine = engine
        self._session = session
        self._workers = workers
        self._connect_timeout = connect_timeout
        self._is_connected = is_connected
        self._wait_connected = wait_connected
        self._queue: collections.deque[tuple[int, Operation]] = collections.deque()
        # Futures of the workers waiting for work (a deque and futures instead of a memory
        # stream: the hand-off every request pays is a few attribute operations).
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        # Where the retries of a POST stand while the transport waits to write it again
        # (``_resend.note_backoff``): kept when its worker is interrupted then, so that it
        # is written again after the rest of the backoff, its retries counted on.
        self._carried: dict[int, Carry] = {}
        self._closed = False
        self._started = False
        self._spawn: Callable[..., None] | None = None
        self._running = 0

    def start(self, spawn: Callable[..., None]) -> None:
        self._started = True
        self._spawn = spawn
        self._add_worker()

    def _add_worker(self) -> None:
        assert self._spawn is not None
        self._running += 1
        self._spawn(self._worker)

    def submit(self, token: int, request: Operation) -> None:
        """Queue a request (no checkpoint, never blocks) and wake a waiting worker."""
        assert self._started, "the sender was not started"
        self._queue.append((token, request))
        self._wake_one()

    def _wake_one(self) -> None:
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._carried.clear()
        while self._idle:
            self._wake_one()

    async def _worker(self) -> None:
        """Take requests from the queue and POST them, until the sender is closed.

        A plain ``task.cancel()`` from outside (a host cancelling every task) does not stop
        the worker: it is taken back. If it cut a request short, the request is queued
        again when it was not written yet, or when the transport was waiting to write it
        again after an attempt GWS certainly did not get (nothing of it may have been
        processed), and otherwise counts as sent without an answer (it may have been
        processed: never resent, its acknowledgement still counts).
        """
        queue = self._queue
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not queue:
                waiter = loop.create_future()
                self._idle.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if not cancelled_from_outside():
                        raise
                    take_back_cancellation("request sender", quiet=True)
                continue
            token, request = queue.popleft()
            if queue and self._idle:
                self._wake_one()  # more work: another worker takes it
            if not self._idle and self._running < self._workers:
                self._add_worker()  # none left waiting: one more for the next request
            if not self._engine.is_queued(token):
                if self._carried:
                    self._carried.pop(token, None)
                continue  # it has its outcome already
            try:
                await self._post(token, request)
                if self._carried:
                    self._carried.pop(token, None)
            except asyncio.CancelledError as error:
                if cancelled_by_plugin():
                    raise
                if cancelled_from_outside():
                    take_back_cancellation("request sender", quiet=True)
                    self._interrupted(token, request)
                else:  # raised by what the POST awaited, not a cancellation of this task
                    self._crashed(token, request, error)
            except Exception as error:  # never let one request stop the worker
                self._crashed(token, request, error)
            except BaseException as error:
                # A transport plugged in through the seam may raise a BaseException (a test
                # double's pytest.fail()): that request's failure, not the worker's end (a
                # lost worker is never replaced; with all of them gone nothing is sent).
                if isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                self._crashed(token, request, error)

    def _crashed(self, token: int, request: Operation, error: BaseException) -> None:
        self._carried.pop(token, None)
        safe_log(logger.exception, "request_send_crashed", reference_id=request.reference_id)
        if self._engine.is_queued(token):
            # Before it was written (or between attempts GWS certainly did not get): it
            # was not sent. Failed now rather than left to its deadline.
            self._engine.posted(
                token,
                PostResult.NOT_SENT,
                message=(
                    f"unexpected error before the {_noun(request)} was written: "
                    f"{type(error).__name__}; nothing was sent"
                ),
            )
            return
        # It may have been written: never resent, its acknowledgement still counts.
        self._engine.posted(
            token,
            PostResult.NO_ANSWER,
            message=f"unexpected error while sending: {type(error).__name__}",
        )

    def _unbuildable(self, token: int, request: Operation, error: Unbuildable) -> None:
        """The request's POST could not be made: failed as not sent."""
        safe_log(logger.exception, "request_not_buildable", reference_id=request.reference_id)
        self._engine.posted(
            token,
            PostResult.NOT_SENT,
            message=(
                f"the {_operation_name(request)} request could not be sent: {error}; "
                "nothing was sent"
            ),
        )

    def _interrupted(self, token: int, request: Operation) -> None:
        # Not written yet, or between attempts GWS certainly did not get (back to queued:
        # Engine.not_received): send it again, after the rest of the backoff and with the
        # retries made counted (``_carried``). Its deadline still bounds it.
        if self._engine.is_queued(token):
            self._queue.appendleft((token, request))
            return
        self._carried.pop(token, None)
        self._engine.posted(
            token,
            PostResult.NO_ANSWER,
            message=(
                f"sending the {_noun(request)} was interrupted (a task of the plugin was "
                "cancelled); GWS may have processed it, so it was not sent again"
            ),
        )

    async def _post(self, token: int, request: Operation) -> None:
        carry = self._carried.get(token) if self._carried else None
        if carry is not None:
            # Interrupted between two attempts GWS certainly did not get: the rest of the
            # backoff first (not written meanwhile: its deadline ends it as not sent), then
            # the CometD session checked as for any request.
            rest = carry.not_before - anyio.current_time()
            if rest > 0:
                await anyio.sleep(rest)
        if not self._is_connected():
            # Sent now, its outcome would be published to nobody: wait for CometD.
            with anyio.move_on_after(self._connect_timeout):
                await self._wait_connected()
            if not self._is_connected():
                self._engine.posted(
                    token,
                    PostResult.NOT_SENT,
                    message=f"the CometD session is down; the {_noun(request)} was not sent",
                )
                return
        # Made before the correlator hears it is being written: a request whose path or
        # body cannot be made (a host's subclass that raises) was certainly not sent.
        body: Mapping[str, Any]
        if type(request) in OWN_TYPES:  # made from validated fields (anything raised: _crashed)
            path, body = request.gws_path(), request.to_gws_body()
        else:
            try:
                path, body = build_post(request)
            except Unbuildable as error:
                self._unbuildable(token, request, error)
                return
        if not self._engine.sending(token):
            return
        try:
            engine = self._engine
            announced = announce(  # see _resend
                engine.resending, token, engine.not_received, self._carried
            )
            try:
                await self._session.post_operation(path, body)
            finally:
                stop_announcing(announced)
        except GWSAuthenticationError as error:
            self._engine.posted(token, PostResult.AUTHENTICATION_FAILED, message=str(error))
        except GWSStatusError as error:
            self._engine.posted(
                token,
                PostResult.REJECTED,
                status_code=error.status_code,
                message=error.status_message or str(error),
            )
        except GWSNoAnswerError as error:
            self._engine.posted(token, PostResult.NO_ANSWER, message=str(error))
        except GWSTransportError as error:
            self._engine.posted(token, PostResult.NOT_SENT, message=str(error))
        else:
            self._engine.posted(token, PostResult.ACCEPTED)
