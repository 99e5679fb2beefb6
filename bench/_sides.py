"""The two sides measured: the plugin, and the raw stack it is built on.

Both do the same work per cancel: a uuid4 ``referenceId``, one POST to
``/api/v2/me/outbound-records/<handle>`` on a logged-in GWS session (Basic auth,
``JSESSIONID``, CSRF header), then waiting until both CometD notifications of the
acknowledgement arrived over the same session's long-poll. The plugin adds what it is made
of: request validation, pluggy, the engine's queue and workers, correlation and merging,
duplicate detection, the isolated dispatcher, the ticket and logging calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections import deque
from typing import Any

import httpcore
import httpx
import pluggy
from aiocometd_noloop import Client, ConnectionType, Extension
from aiocometd_noloop.exceptions import TransportTimeoutError

from bench._common import (
    APPLICATION_ID,
    CALLING_LIST,
    CAMPAIGN,
    OUTBOUND_CHANNEL,
    PASSWORD,
    USER_EVENT_CHANNEL,
)
from gws_outbound_plugin import (
    CancelFailure,
    CancelRequest,
    CancelTicket,
    GWSConfig,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin._transport import AsyncioBackend

perf_counter = time.perf_counter


class BenchFailure(RuntimeError):
    """A cancel did not end in an acknowledgement: the run is not valid."""


# -- the plugin ------------------------------------------------------------------------------


class AckClock:
    """A plugin like a host's: timestamps each acknowledgement as its hook is called."""

    def __init__(self) -> None:
        self.acked: dict[str, float] = {}
        self.failures: list[CancelFailure] = []

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        if ack.request is not None:
            self.acked[ack.request.reference_id] = perf_counter()

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self.failures.append(failure)


class PluginSide:
    name = "plugin"

    def __init__(self, base_url: str, user: str, **config: Any) -> None:
        self.config = GWSConfig(base_url=base_url, username=user, password=PASSWORD, **config)
        self.pm: pluggy.PluginManager = make_plugin_manager(load_entrypoints=False)
        self.clock = AckClock()
        self.pm.register(self.clock, name="bench_clock")
        self.plugin = OutboundPlugin(self.pm, self.config)
        self.device_path = ""

    async def start(self) -> None:
        """Enter the plugin: log in, handshake, subscribe (what startup measures)."""
        await self.plugin.__aenter__()

    async def load_device(self) -> None:
        self.device_path = await self.plugin.device_path()

    async def aclose(self, *, drain: bool = True) -> None:
        await self.plugin.aclose(drain=drain)

    def request(self, handle: int) -> CancelRequest:
        return CancelRequest(
            record_handle=handle,
            application_id=APPLICATION_ID,
            campaign_name=CAMPAIGN,
            calling_list=CALLING_LIST,
            device_path=self.device_path,
        )

    async def cancel(self, handle: int) -> float:
        """One cancel; seconds from the bus call to the acknowledgement hook."""
        started = perf_counter()
        request = self.request(handle)
        ticket = self.plugin.submit(request)
        try:
            await ticket
        except Exception as error:
            raise BenchFailure(f"plugin cancel of {handle} failed: {error}") from None
        return self.clock.acked.pop(request.reference_id) - started

    def submit(self, handle: int) -> CancelTicket:
        return self.plugin.submit(self.request(handle))


# -- the raw baseline ------------------------------------------------------------------------


class _RawExtension(Extension):  # type: ignore[misc]
    """Credentials and the session cookie on every Bayeux request (aiohttp drops cookies
    set by IP hosts), and ``advice.timeout = 0`` on the first connect after a handshake."""

    def __init__(self, side: RawSide) -> None:
        self._side = side
        self._first_connect = False

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers.update(self._side.cometd_headers)
        if self._first_connect:
            for message in payload:
                if message.get("channel") == "/meta/connect":
                    message["advice"] = {**message.get("advice", {}), "timeout": 0}
                    self._first_connect = False

    async def incoming(self, payload: list[dict[str, Any]], headers: Any | None = None) -> None:
        for message in payload:
            if message.get("channel") == "/meta/handshake" and message.get("successful"):
                self._first_connect = True


class RawSide:
    """httpx + aiocometd-noloop, nothing else: the floor the plugin is measured against."""

    name = "raw"

    def __init__(self, base_url: str, user: str, *, max_concurrent: int = 100) -> None:
        # max_concurrent: the plugin's max_concurrent_requests (pool size, submit workers)
        self.base_url = base_url
        self.user = user
        self.max_concurrent = max_concurrent
        token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        self.authorization = "Basic " + token
        self.post_headers: dict[str, str] = {}
        self.cometd_headers: dict[str, str] = {}
        self.device_path = ""
        self.http: httpx.AsyncClient | None = None
        self.cometd: Client | None = None
        # referenceId -> [future, notifications seen]; record handle -> referenceId
        self._waiting: dict[Any, list[Any]] = {}
        self._by_handle: dict[Any, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()
        self._queue_ready: asyncio.Event | None = None

    async def start(self) -> None:
        """Log in, handshake (first connect not held), subscribe both channels."""
        self.http = httpx.AsyncClient(
            base_url=self.base_url + "/api/v2",
            timeout=10.0,
            limits=httpx.Limits(
                max_connections=self.max_concurrent,
                max_keepalive_connections=self.max_concurrent,
            ),
            headers={"Accept": "application/json"},
        )
        response = await self.http.get("/me", headers={"Authorization": self.authorization})
        response.raise_for_status()
        csrf_name = response.headers["X-CSRF-HEADER"]
        self.post_headers = {
            "Authorization": self.authorization,
            csrf_name: response.headers["X-CSRF-TOKEN"],
        }
        cookie = "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())
        self.cometd_headers = {**self.post_headers, "Cookie": cookie}
        client = Client(
            self.base_url + "/api/v2/notifications",
            [ConnectionType.LONG_POLLING],
            extensions=[_RawExtension(self)],
            max_pending_count=1024,  # the plugin's default event_queue_size
        )
        client._HTTP_SESSION_CLOSE_TIMEOUT = 0.0  # plain http: as the plugin does
        self.cometd = client
        await client.open()
        await client.subscribe(OUTBOUND_CHANNEL)
        await client.subscribe(USER_EVENT_CHANNEL)
        self._tasks.append(asyncio.create_task(self._receive_loop()))

    async def load_device(self) -> None:
        assert self.http is not None
        response = await self.http.get("/me/devices", headers=self.post_headers)
        self.device_path = "/devices/" + response.json()["devices"][0]["id"]

    async def aclose(self, *, drain: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.cometd is not None:
            # aiocometd logs every clean close as an error from its connect task's done
            # callback (a known aiocometd-noloop quirk); detach it as the plugin does.
            transport: Any = getattr(self.cometd, "_transport", None)
            connect_task: Any = getattr(transport, "_connect_task", None)
            if connect_task is not None and not connect_task.done():
                connect_task.remove_done_callback(transport._connect_done)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.cometd.close(), 5.0)
            self.cometd = None
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def _body(self, reference_id: str) -> dict[str, Any]:
        return {
            "operationName": "CancelRecord",
            "applicationId": APPLICATION_ID,
            "campaignName": CAMPAIGN,
            "callingList": CALLING_LIST,
            "devicePath": self.device_path,
            "referenceId": reference_id,
        }

    async def _post(self, handle: int, body: dict[str, Any]) -> None:
        assert self.http is not None
        response = await self.http.post(
            f"/me/outbound-records/{handle}", json=body, headers=self.post_headers
        )
        answer = response.json()
        if answer.get("statusCode") != 0:
            entry = self._waiting.pop(body["referenceId"], None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(BenchFailure(f"raw cancel of {handle}: {answer}"))

    def _expect(self, handle: int, reference_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[reference_id] = [future, 0]
        self._by_handle[handle] = reference_id
        return future

    async def cancel(self, handle: int) -> float:
        """One cancel; seconds from the call to the second notification."""
        started = perf_counter()
        reference_id = uuid.uuid4().hex
        future = self._expect(handle, reference_id)
        await self._post(handle, self._body(reference_id))
        return await future - started

    def submit(self, handle: int) -> asyncio.Future[float]:
        """Queue a cancel for ``max_concurrent`` workers (like the plugin's submit)."""
        if not self._queue_ready:
            self._queue_ready = asyncio.Event()
            for _ in range(self.max_concurrent):
                self._tasks.append(asyncio.create_task(self._worker()))
        reference_id = uuid.uuid4().hex
        future = self._expect(handle, reference_id)
        self._queue.append((handle, self._body(reference_id)))
        self._queue_ready.set()
        return future

    async def _worker(self) -> None:
        assert self._queue_ready is not None
        while True:
            while not self._queue:
                self._queue_ready.clear()
                await self._queue_ready.wait()
            handle, body = self._queue.popleft()
            await self._post(handle, body)

    async def _receive_loop(self) -> None:
        assert self.cometd is not None
        client = self.cometd
        while True:
            try:
                message = await client.receive()
            except TransportTimeoutError:
                continue
            self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        """Count one CometD message towards its request: the outbound-channel answer or the
        OCS event (an OCS error settles the request at once); the second settles it."""
        waiting = self._waiting
        data = message.get("data") or {}
        if message.get("channel") == OUTBOUND_CHANNEL:
            reference_id = data.get("referenceId")
        else:
            user_data = data.get("userData") or {}
            reference_id = self._by_handle.pop(user_data.get("GSW_RECORD_HANDLE"), None)
            if "GSW_ERROR" in user_data:
                entry = waiting.pop(reference_id, None)
                if entry is not None:
                    entry[0].set_exception(BenchFailure(f"OCS error: {user_data}"))
                return
        entry = waiting.get(reference_id)
        if entry is None:
            return
        entry[1] += 1
        if entry[1] == 2:
            del waiting[reference_id]
            entry[0].set_result(perf_counter())


# -- the careful raw baseline ---------------------------------------------------------------

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class CarefulRawSide(RawSide):
    """The same libraries with the same tricks as the plugin, and no plugin layer: POSTs
    straight into httpcore's pool (8 connections) on the plugin's asyncio network backend
    with a header list made once, one JSON encoder, and CometD messages taken from
    aiocometd's queue while some are there (``receive()`` only when it is empty). The limit
    of this stack: what the plugin's layers cost is the gap to this one."""

    name = "careful"

    def __init__(self, base_url: str, user: str, *, max_concurrent: int = 8) -> None:
        super().__init__(base_url, user, max_concurrent=max_concurrent)
        self.pool: httpcore.AsyncConnectionPool | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.origin: tuple[bytes, bytes, int | None] = (b"", b"", None)
        self.timeouts = dict.fromkeys(("connect", "read", "write", "pool"), 10.0)

    async def start(self) -> None:
        await super().start()
        assert self.http is not None
        url = httpx.URL(self.base_url)
        self.origin = (url.raw_scheme, url.raw_host, url.port)
        self.headers = [
            (b"Host", url.netloc),
            (b"Accept", b"application/json"),
            *((name.encode(), value.encode()) for name, value in self.cometd_headers.items()),
            (b"Content-Type", b"application/json"),
        ]
        self.pool = httpcore.AsyncConnectionPool(
            max_connections=self.max_concurrent,
            max_keepalive_connections=self.max_concurrent,
            network_backend=AsyncioBackend(),
        )

    async def aclose(self, *, drain: bool = True) -> None:
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None
        await super().aclose(drain=drain)

    async def _post(self, handle: int, body: dict[str, Any]) -> None:
        assert self.pool is not None
        content = _JSON.encode(body).encode()
        scheme, host, port = self.origin
        request = httpcore.Request(
            b"POST",
            httpcore.URL(
                scheme=scheme,
                host=host,
                port=port,
                target=f"/api/v2/me/outbound-records/{handle}".encode(),
            ),
            headers=[*self.headers, (b"Content-Length", str(len(content)).encode())],
            content=content,
            extensions={"timeout": self.timeouts},
        )
        response = await self.pool.handle_async_request(request)
        try:
            answer = json.loads(await response.aread())
        finally:
            await response.aclose()
        if answer.get("statusCode") != 0:
            entry = self._waiting.pop(body["referenceId"], None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(BenchFailure(f"careful raw cancel of {handle}: {answer}"))

    async def _receive_loop(self) -> None:
        assert self.cometd is not None
        client = self.cometd
        queue = client._incoming_queue
        on_message = self._on_message
        while True:
            if not queue.empty():
                message = queue.get_nowait()  # already here: no receive() round of tasks
            else:
                try:
                    message = await client.receive()
                except TransportTimeoutError:
                    continue
            on_message(message)


Side = PluginSide | RawSide


def make_side(kind: str, base_url: str, user: str, **plugin_config: Any) -> Side:
    if kind == "plugin":
        return PluginSide(base_url, user, **plugin_config)
    if kind == "careful":
        return CarefulRawSide(
            base_url, user, max_concurrent=plugin_config.get("max_concurrent_requests", 8)
        )
    return RawSide(base_url, user, max_concurrent=plugin_config.get("max_concurrent_requests", 100))
