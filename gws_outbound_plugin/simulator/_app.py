"""The simulator's aiohttp application: its routes, and the middleware that records every
request (REST and Bayeux, not admin) and turns a handler's failure into GWS's JSON 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from .._log import get_logger
from ._auth import CSRF_HEADER, SESSION_COOKIE, same
from ._http import (
    ADMIN_PREFIX,
    CURRENT_INFO,
    INTERNAL_ERROR,
    NOTIFICATIONS_PATH,
    RequestInfo,
    json_response,
)
from ._recording import DecodedBody, RecordedRequest, decode_body, redact, redact_query
from ._state import SimulatorState

__all__ = ["HTTPServer", "Handler", "RequestRecorder", "Route", "build_app"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: (HTTP method or ``"*"``, path pattern, handler)
Route = tuple[str, str, Handler]

_SHUTDOWN_GRACE = 0.5


def build_app(middleware: Any, routes: Iterable[Route], *, not_found: Handler) -> web.Application:
    """An aiohttp application with ``middleware``, ``routes`` (added in order) and
    ``not_found`` answering every other path under ``/api/v2/``."""
    app = web.Application(middlewares=[middleware])
    for method, path, handler in routes:
        if method == "GET":
            app.router.add_get(path, handler)  # answers HEAD too, as aiohttp's add_get does
        else:
            app.router.add_route(method, path, handler)
    # Matched against the percent-decoded path: ``(?s)`` so that a newline (``%0A``) is
    # matched too, and GWS's JSON 404 answers it rather than aiohttp's text one.
    app.router.add_route("*", "/api/v2/{tail:(?s:.*)}", not_found)
    return app


class HTTPServer:
    """The listening aiohttp server, and the task sweeping idle sessions and CometD clients.

    :param host: the address to listen on; :param port: 0 picks a free one, kept afterwards.
    """

    def __init__(self, state: SimulatorState, host: str, port: int) -> None:
        self._state = state
        self._host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self, app: web.Application) -> None:
        """Listen on the host and port, serving ``app``."""
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_GRACE
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self, shut_down: Callable[[], Awaitable[None]]) -> None:
        """Stop sweeping, await ``shut_down()`` (not :attr:`running` any more), then stop
        listening (the handlers still running get a short grace)."""
        runner, sweeper = self._runner, self._sweeper
        if runner is None:
            return
        self._runner = self._sweeper = None
        if sweeper is not None:
            sweeper.cancel()
        await shut_down()
        if sweeper is not None:
            await asyncio.wait([sweeper])  # never raises, so our own cancellation still can
        await runner.cleanup()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._state.sweep_interval)
            self._state.sweep()


class RequestRecorder:
    """The middleware: records each request as it arrives and once it is answered.

    :param request_log: called with each :class:`RecordedRequest` once it is answered;
        exceptions it raises are logged and ignored.
    """

    def __init__(
        self,
        state: SimulatorState,
        request_log: Callable[[RecordedRequest], None] | None,
    ) -> None:
        self._state = state
        self._request_log = request_log
        self.requests: list[RecordedRequest] = []
        #: Bumped by :meth:`clear`: a request answered after it is not put back in the list.
        self._generation = 0
        #: Set while the simulator stops: requests on kept-alive connections are cut.
        self.stopping = False

    def clear(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()
        self._generation += 1

    def posts(self, *prefixes: str) -> list[RecordedRequest]:
        """The recorded POSTs to a path starting with one of ``prefixes``."""
        return [
            item
            for item in self.requests
            if item.method == "POST" and item.path.startswith(prefixes)
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        if self.stopping:
            # A request on a kept-alive connection while stopping: the server is gone.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        info, too_large = await self._note(request)
        context_token = CURRENT_INFO.set(info)
        generation, index = self._generation, len(self.requests)
        self.requests.append(_record(request, info, status=0))
        status = 0
        try:
            if too_large is not None:
                raise too_large
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            logger.exception(
                "gws_simulator_handler_failed", method=request.method, path=request.path
            )
            status = 500
            return json_response(
                {"statusCode": INTERNAL_ERROR, "statusMessage": "Simulator internal error"},
                status=500,
            )
        finally:
            CURRENT_INFO.reset(context_token)
            self._answered(
                _record(request, info, status=0 if info.reset else status), generation, index
            )

    async def _note(self, request: web.Request) -> tuple[RequestInfo, web.HTTPException | None]:
        """What the request's record needs, read before its handler runs (and a too-large
        body's exception, raised once the request is recorded)."""
        started = time.monotonic()
        started_ns = time.perf_counter_ns()
        try:
            raw = await request.read()
        except web.HTTPException as exc:
            raw = b""
            too_large: web.HTTPException | None = exc
        else:
            too_large = None
        session = self._state.sessions.peek(request.cookies.get(SESSION_COOKIE))
        token = request.headers.get(CSRF_HEADER)
        info = RequestInfo(
            body=decode_body(raw),
            started=started,
            started_ns=started_ns,
            had_basic_auth=request.headers.get("Authorization", "")[:6].lower() == "basic ",
            had_session_cookie=session is not None,
            had_csrf_token=session is not None
            and token is not None
            and same(token, session.csrf_token),
        )
        if request.path == NOTIFICATIONS_PATH or request.path.startswith(NOTIFICATIONS_PATH + "/"):
            info.bayeux_channels = _channels(info.body)
        return info, too_large

    def _answered(self, record: RecordedRequest, generation: int, index: int) -> None:
        if generation == self._generation:
            self.requests[index] = record
        if self._request_log is not None:
            try:
                self._request_log(record)
            except Exception:
                logger.exception("gws_simulator_request_log_failed")


def _record(request: web.Request, info: RequestInfo, *, status: int) -> RecordedRequest:
    body = info.body
    recorded_body = redact(body.value) if body.is_json else (body.raw_text or None)
    answered = status != 0 or info.reset
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=redact_query(request.query.items()),
        body=recorded_body,
        had_session_cookie=info.had_session_cookie,
        had_csrf_token=info.had_csrf_token,
        had_basic_auth=info.had_basic_auth,
        username=info.username,
        status=status,
        bayeux_channels=info.bayeux_channels,
        time=info.started,
        duration_ms=(time.monotonic() - info.started) * 1000 if answered else 0.0,
    )


def _channels(body: DecodedBody) -> tuple[str, ...]:
    """The channels named by the Bayeux messages of a request body."""
    value = body.value if body.is_json else None
    messages = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    return tuple(
        message["channel"]
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("channel"), str)
    )
