"""The CometD seam: a long-polling Bayeux listener bound to the GWS HTTP session.

Everything that knows about the CometD client package lives here, behind
:class:`CometDListener`, so the transport can be replaced without touching the dispatcher.
The package is ``aiocometd-noloop`` 0.4.9 (pinned); what this module does about its known
behaviour, point by point:

1. its first ``/meta/connect`` after a handshake carries no ``advice.timeout`` and would be
   held by the server: :class:`_SessionExtension` adds ``advice: {"timeout": 0}`` to the first
   connect after every handshake, so opening does not stall;
2. aiohttp's cookie jar drops cookies from IP hosts: the client gets a ``DummyCookieJar`` and
   the extension carries cookies itself, both ways, through the GWS session's jar (one jar for
   REST and CometD: ``JSESSIONID``, ``BAYEUX_BROWSER``);
3. ``close()`` can hang on a full queue: we keep draining while closing, with a timeout;
4. ``close()`` does not wake ``receive()``: the receiving task is cancelled first;
5. a clean close logs a spurious error from the connect task's done callback: it is detached
   before closing;
6. a failed ``open()`` leaks its background task and HTTP session: cleaned up here;
7. the client is constructed inside the running loop;
8. ``receive()`` errors end ``async for``: a ``receive()`` loop handles each error;
9. HTTP 401/403 from the endpoint surface as a decode error: logged as such, and the next
   attempt carries fresh session credentials from the shared jar; an error answer with a
   JSON *object* body (GWS's ``{"statusCode": 20}``) crashed aiocometd with a TypeError
   (found against the interop stand-in): it is turned into a ``TransportError`` here;
10. reconnection after network errors retries every second without backoff: the delay is
    doubled per failed attempt up to ``GWSConfig.reconnect_backoff_max``; after
    ``402::Unknown client`` it re-handshakes and re-subscribes by itself, which this module
    reports so the dispatcher can settle what may have been missed;
11. it sleeps ``advice.interval`` *seconds* before the next ``/meta/connect``, but Bayeux
    gives it in milliseconds (found against cometd-nodejs-server, see ``docs/interop.md``):
    a server advising ``interval: 2000`` (the CometD servers' ``multiple-clients`` advice)
    would stall polling for 33 minutes and let the session expire. :class:`_SessionExtension`
    converts the interval of every incoming advice to seconds before aiocometd reads it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiohttp
import anyio
import structlog
from aiocometd_noloop import Client, ConnectionType, Extension
from aiocometd_noloop.exceptions import (
    AiocometdException,
    ClientInvalidOperation,
    ServerError,
    TransportError,
    TransportTimeoutError,
)

from ._config import GWSConfig
from ._exceptions import GWSTransportError
from ._session import GWSSession, backoff_delays

__all__ = ["CometDListener", "CometDMessage", "CometDState"]

logger = structlog.get_logger(__name__)

CometDMessage = dict[str, Any]
_CLOSE_TIMEOUT: Final = 2.0
_FIRST_RECONNECT_DELAY: Final = 0.5


class CometDState(enum.StrEnum):
    """State of the CometD session, as reported in logs and to the dispatcher."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class _SessionExtension(Extension):  # type: ignore[misc]
    """Outgoing: credentials, shared cookies, CSRF header, ``timeout: 0`` on the first connect.
    Incoming: cookies back into the shared jar, ``advice.interval`` from milliseconds to the
    seconds aiocometd expects, and session events for the listener."""

    def __init__(self, listener: CometDListener) -> None:
        self._listener = listener
        self._first_connect = False

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        session = self._listener.session
        headers["Authorization"] = session.authorization
        cookie = session.cookie_header(self._listener.url)
        if cookie:
            headers["Cookie"] = cookie
        csrf = session.csrf_header()
        if csrf is not None:
            headers[csrf[0]] = csrf[1]
        for message in payload:
            if message.get("channel") == "/meta/connect" and self._first_connect:
                self._first_connect = False
                advice = dict(message.get("advice") or {})
                advice["timeout"] = 0
                message["advice"] = advice
        self._listener._attempt_sent()

    async def incoming(self, payload: list[dict[str, Any]], headers: Any | None = None) -> None:
        if headers is not None:
            self._listener.session.store_cookies(
                self._listener.url, headers.getall("Set-Cookie", ())
            )
        _check_payload(payload)
        for message in payload:
            _interval_to_seconds(message)
            channel = message.get("channel")
            successful = message.get("successful")
            if channel == "/meta/handshake" and successful:
                self._first_connect = True
                self._listener._handshaken()
            elif channel == "/meta/connect":
                if successful:
                    self._listener._connected()
                else:
                    self._listener._connect_refused(str(message.get("error", "")))
            elif channel == "/meta/subscribe" and successful:
                self._listener._subscribed(message.get("subscription"))


def _check_payload(payload: object) -> None:
    """A Bayeux answer is a list of message objects. A JSON error body in its place (GWS
    answers an unauthenticated request with ``{"statusCode": 20, ...}``) made aiocometd and
    this extension fail with AttributeError/TypeError; report it as a transport error."""
    if isinstance(payload, list) and all(isinstance(m, dict) for m in payload):
        return
    detail = "not a list of Bayeux messages"
    if isinstance(payload, dict):
        code, message = payload.get("statusCode"), payload.get("statusMessage")
        if isinstance(code, int) and not isinstance(code, bool):
            detail = f"GWS statusCode {code}"
            if isinstance(message, str):
                detail += f": {message[:200]}"
    raise TransportError(f"the CometD endpoint answered with {detail}")


def _interval_to_seconds(message: dict[str, Any]) -> None:
    # aiocometd passes advice["interval"] to asyncio.sleep(); Bayeux sends milliseconds.
    # The extension sees each reply once, before aiocometd stores its advice.
    advice = message.get("advice")
    if isinstance(advice, dict):
        interval = advice.get("interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool):
            advice["interval"] = max(float(interval), 0.0) / 1000


class _GWSClient(Client):  # type: ignore[misc]
    """The aiocometd client with our own aiohttp session (no cookie jar of its own)."""

    def __init__(self, url: str, *, verify_tls: bool, **kwargs: Any) -> None:
        super().__init__(
            url, [ConnectionType.LONG_POLLING], ssl=None if verify_tls else False, **kwargs
        )
        if url.startswith("http://"):
            self._HTTP_SESSION_CLOSE_TIMEOUT = 0.0

    async def _get_http_session(self) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession | None = self.__dict__.get("_http_session")
        if session is None:
            session = aiohttp.ClientSession(
                json_serialize=self._json_dumps,
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=4),
            )
            self._http_session = session
        return session

    def _detach_connect_callback(self) -> None:
        transport = self._transport
        task = getattr(transport, "_connect_task", None)
        if task is not None and not task.done():
            task.remove_done_callback(transport._connect_done)

    async def cleanup_failed_open(self) -> None:
        transport = self._transport
        if transport is not None:
            self._detach_connect_callback()
            await transport.disconnect()
            await transport.close()
        await self._close_http_session()

    async def close(self) -> None:
        self._detach_connect_callback()
        await super().close()

    def set_reconnect_delay(self, seconds: float) -> None:
        transport = self._transport
        if transport is not None:
            transport._reconnect_timeout = seconds


class CometDListener:
    """Opens the Bayeux session on the GWS session and yields notification messages.

    ``on_lost`` is called when the session is lost (``402::Unknown client``, network loss
    beyond the connection timeout, server disconnect); ``on_restored`` when it is back and
    every channel is subscribed again. Both run on the event loop thread.
    """

    def __init__(
        self,
        config: GWSConfig,
        session: GWSSession,
        channels: Sequence[str],
        *,
        on_lost: Callable[[str], None],
        on_restored: Callable[[], None],
    ) -> None:
        self.config = config
        self.session = session
        self.url = config.cometd_url
        self.channels = tuple(channels)
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._client: _GWSClient | None = None
        self._state = CometDState.CLOSED
        self._connected_event = anyio.Event()
        self._handshakes = 0
        self._subscribed_now: set[str] = set()
        self._awaiting_resubscribe = False
        self._lost = False
        self._failed_attempts = 0
        self.lost_at: float | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> CometDState:
        return self._state

    def _set_state(self, state: CometDState, **details: Any) -> None:
        if state is not self._state:
            logger.info("cometd_state", state=state.value, previous=self._state.value, **details)
            self._state = state
            if state is CometDState.CONNECTED:
                self._connected_event.set()
            elif self._connected_event.is_set():
                self._connected_event = anyio.Event()

    async def wait_connected(self) -> None:
        """Return once the session is connected and subscribed."""
        while self._state is not CometDState.CONNECTED:
            await self._connected_event.wait()

    def _mark_lost(self, why: str) -> None:
        if not self._lost and self._state is not CometDState.CLOSED:
            self._lost = True
            self.lost_at = time.monotonic()
            self._set_state(CometDState.RECONNECTING, reason=why)
            self._on_lost(why)

    def _attempt_sent(self) -> None:
        # Called before every Bayeux request; a successful connect resets the count, so a
        # growing count means failed reconnection attempts: back off exponentially.
        if self._client is not None and self._failed_attempts:
            exponent = min(self._failed_attempts - 1, 16)
            delay = min(_FIRST_RECONNECT_DELAY * 2**exponent, self.config.reconnect_backoff_max)
            self._client.set_reconnect_delay(delay)
        self._failed_attempts += 1

    def _handshaken(self) -> None:
        self._handshakes += 1
        self._subscribed_now.clear()
        if self._handshakes > 1:
            logger.info("cometd_rehandshake", handshakes=self._handshakes)
            self._mark_lost("re-handshake")
            self._awaiting_resubscribe = True

    def _connected(self) -> None:
        self._failed_attempts = 0
        if self._client is not None:
            self._client.set_reconnect_delay(_FIRST_RECONNECT_DELAY)
        if self._lost and not self._awaiting_resubscribe:
            self._restored()

    def _connect_refused(self, error: str) -> None:
        logger.info("cometd_connect_refused", error=error)
        if error.startswith("402"):
            self._mark_lost(error)

    def _subscribed(self, subscription: object) -> None:
        if isinstance(subscription, str):
            self._subscribed_now.add(subscription)
        elif isinstance(subscription, list):
            self._subscribed_now.update(s for s in subscription if isinstance(s, str))
        if self._awaiting_resubscribe and self._subscribed_now.issuperset(self.channels):
            self._awaiting_resubscribe = False
            self._restored()

    def _restored(self) -> None:
        if self._lost:
            self._lost = False
            self._set_state(CometDState.CONNECTED, channels=list(self.channels))
            self._on_restored()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Handshake, first connect (not held) and subscribe to every channel."""
        self._set_state(CometDState.CONNECTING, url=self.url)
        self._handshakes = 0
        client = _GWSClient(
            self.url,
            verify_tls=self.config.verify_tls,
            connection_timeout=self.config.cometd_connection_timeout,
            max_pending_count=self.config.event_queue_size,
            extensions=[_SessionExtension(self)],
        )
        self._client = client
        try:
            await client.open()
            for channel in self.channels:
                await client.subscribe(channel)
        except BaseException as error:
            self._client = None
            with anyio.CancelScope(shield=True):
                await client.cleanup_failed_open()
            self._set_state(CometDState.CLOSED)
            if isinstance(error, AiocometdException | aiohttp.ClientError | OSError):
                raise GWSTransportError(
                    f"the CometD session at {self.url} could not be opened: "
                    f"{type(error).__name__}: {str(error)[:200]}"
                ) from error
            raise
        self._awaiting_resubscribe = False
        self._lost = False
        self._set_state(CometDState.CONNECTED, channels=list(self.channels))

    async def run(self, deliver: Callable[[CometDMessage], Any]) -> None:
        """Receive forever, handing every notification to ``deliver`` (awaited)."""
        delays = backoff_delays(_FIRST_RECONNECT_DELAY, self.config.reconnect_backoff_max)
        while True:
            client = self._client
            if client is None:
                await self._reopen(delays)
                continue
            try:
                message = await client.receive()
            except TransportTimeoutError:
                logger.warning(
                    "cometd_unreachable",
                    seconds=self.config.cometd_connection_timeout,
                )
                self._mark_lost("server unreachable")
                continue
            except (ServerError, ClientInvalidOperation) as error:
                logger.warning("cometd_session_closed_by_server", error=type(error).__name__)
                self._mark_lost("closed by the server")
                await self._discard_client()
                continue
            except AiocometdException as error:
                logger.warning("cometd_receive_failed", error=str(error)[:200])
                continue
            delays = backoff_delays(_FIRST_RECONNECT_DELAY, self.config.reconnect_backoff_max)
            await deliver(message)

    async def _reopen(self, delays: Any) -> None:
        delay = next(delays)
        logger.info("cometd_reopening", delay=delay)
        await anyio.sleep(delay)
        try:
            await self.open()
        except (GWSTransportError, AiocometdException, aiohttp.ClientError, OSError) as error:
            self._set_state(CometDState.RECONNECTING, error=type(error).__name__)
            return
        # A fresh client: anything published since the loss was missed.
        self._lost = True
        self._restored()

    async def _discard_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._close_client(client)

    async def close(self) -> None:
        """Disconnect politely; never hangs longer than a couple of seconds."""
        self._set_state(CometDState.CLOSED)
        await self._discard_client()

    async def _close_client(self, client: _GWSClient) -> None:
        async def drain() -> None:
            while True:
                try:
                    await client.receive()
                except (AiocometdException, ClientInvalidOperation):
                    return

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    try:
                        await client.close()
                    except (AiocometdException, aiohttp.ClientError, OSError) as error:
                        logger.info("cometd_close_error", error=type(error).__name__)
                tg.cancel_scope.cancel()
            if not client.closed:
                await client.cleanup_failed_open()
