"""The sender: workers that POST accepted requests to GWS and report how each POST ended.

Data path: ``Engine.accept`` -> correlator ``Send`` -> :meth:`Sender.submit` -> a worker ->
``GWSSession.post_operation`` -> :meth:`Engine.posted`. A worker asks the engine right before
writing (``Engine.sending``) so a request that already has its outcome (shut down, deadline) is
never sent, and the correlator knows from then on that the request may reach GWS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._correlator import PostResult
from ._dispatcher import safe_log
from ._exceptions import (
    GWSAuthenticationError,
    GWSStatusError,
    GWSTransportError,
)
from ._log import get_logger
from ._session import GWSNoAnswerError, GWSSession
from ._spec import Operation

__all__ = ["Sender"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


class _Engine(Protocol):
    def is_queued(self, token: int) -> bool: ...

    def sending(self, token: int) -> bool: ...

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> None: ...


def _noun(request: Operation) -> str:
    return "cancel" if request.spec.name == "CancelRecord" else "request"


class Sender:
    """``workers`` tasks POSTing one request at a time each."""

    def __init__(
        self,
        engine: _Engine,
        session: GWSSession,
        *,
        workers: int,
        queue_size: int,
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
        self._queue_size = queue_size
        self._send: MemoryObjectSendStream[tuple[int, Operation]] | None = None
        self._receive: MemoryObjectReceiveStream[tuple[int, Operation]] | None = None

    def start(self, spawn: Callable[..., None]) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[tuple[int, Operation]](
            self._queue_size
        )
        for _ in range(self._workers):
            spawn(self._worker, self._receive.clone())

    def submit(self, token: int, request: Operation) -> None:
        """Queue a request (no checkpoint). The queue holds ``max_pending`` entries, which
        the engine never exceeds."""
        assert self._send is not None, "the sender was not started"
        self._send.send_nowait((token, request))

    def close(self) -> None:
        for stream in (self._send, self._receive):
            if stream is not None:
                stream.close()

    async def _worker(self, receive: MemoryObjectReceiveStream[tuple[int, Operation]]) -> None:
        async with receive:
            async for token, request in receive:
                if not self._engine.is_queued(token):
                    continue  # it has its outcome already
                try:
                    await self._post(token, request)
                except Exception as error:  # never let one request stop the worker
                    safe_log(
                        logger.exception, "request_send_crashed", reference_id=request.reference_id
                    )
                    # It may have been written: never resent, its acknowledgement still counts.
                    self._engine.posted(
                        token,
                        PostResult.NO_ANSWER,
                        message=f"unexpected error while sending: {type(error).__name__}",
                    )

    async def _post(self, token: int, request: Operation) -> None:
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
        if not self._engine.sending(token):
            return
        try:
            await self._session.post_operation(request.gws_path(), request.to_gws_body())
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
