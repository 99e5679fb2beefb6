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
10. reconnection after network errors retries every second without backoff: the delay
    follows the package's :class:`~gws_outbound_plugin._retry.RetryPolicy` (0.5 s, doubled
    per failed attempt, up to ``GWSConfig.reconnect_backoff_max``); so do the attempts
    after a refused ``/meta/connect`` (it follows the refusal's ``interval``, 0: back to back),
    from the second refusal in a row on, and a refused connect is no connection (its
    transport counts any answer as "connected"); after
    ``402::Unknown client`` it re-handshakes and re-subscribes by itself, which this module
    reports so the dispatcher can settle what may have been missed;
11. it sleeps ``advice.interval`` *seconds* before the next ``/meta/connect``, but Bayeux
    gives it in milliseconds (found against cometd-nodejs-server, see ``docs/interop.md``):
    a server advising ``interval: 2000`` (the CometD servers' ``multiple-clients`` advice)
    would stall polling for 33 minutes and let the session expire. :class:`_SessionExtension`
    converts the interval of every incoming advice to seconds before aiocometd reads it,
    capped at half of ``ack_timeout``: a longer wait (an hour, ``Infinity``, ``NaN``) left the
    client deaf while "connected", and every outcome timed out. Every advice is given a
    usable ``timeout`` (aiocometd gives each request 1.2 x the last advised one, and none
    at all when the last advice had none): see :func:`_usable_timeout`;
12. after a re-handshake it re-subscribes only the channels the server accepted before, and
    forgets a channel whose re-subscription is refused: the listener subscribes the refused
    ones again itself (see :attr:`CometDListener.refused_channels`);
13. ``receive()`` starts three tasks and an ``asyncio.wait`` for every message, even when
    messages are already queued: :meth:`_GWSClient.receive_queued` takes a queued message
    as ``receive()`` would, and :meth:`_GWSClient._get_message` waits for the next one with
    one future and no task (for the pinned version only;
    ``tests/unit/test_cometd_seam.py`` fails when the pinned version changes them);
14. it indexes ``channel`` of every message, and ``successful`` and ``subscription`` of a
    subscription reply: one message without them failed the whole long-poll answer half-way
    (``KeyError``) and lost the messages after it (a cancel's answers): :class:`_SessionExtension`
    leaves such a message out (``cometd_message_malformed``) before aiocometd reads the answer,
    and ``successful`` out of a notification (``receive()`` raised ``"successful": false``
    as the server's ``ServerError``, read as the session closed: :func:`_as_notification`);
15. it polls from one task at a time and schedules the next from that task's done callback:
    a cancelled task (a host cancelling every task of its loop) or a failing callback ends
    polling for good, unsaid, while ``receive()`` waits forever and the transport says
    "connected"; a cancelled helper task of ``receive()`` raises ``CancelledError`` into the
    listener: :meth:`CometDListener._watch` notices a client that polls no more
    (:meth:`_GWSClient.stopped_polling`, internals of the pinned version) and the receive
    loop replaces it with a new one, and a ``CancelledError`` that is not the listener's
    own is taken as an interrupted wait;
16. its ``open()`` awaits its connect task: a timeout around it cancelled that task through
    the await, and the task's done callback took the cancellation that named the timeout, so
    an anonymous ``CancelledError`` escaped the timeout: :func:`_within` runs ``open()`` in
    a task of its own;
17. ``receive()`` takes the next message in a task of its own and drops it when the waiting
    task is cancelled in the loop turn in which that task took it: ``_GWSClient._get_message``
    takes it in the waiting task itself, so it stays queued for the next wait.

A refused subscription to an optional channel (anything but ``/v2/me/outbound``; GWS's
``/me/internal`` is known from the seed only, gws-outbound.md §10.8) does not stop the
listener: it is logged once (``cometd_subscription_refused``), kept in ``refused_channels`` and
tried again after every re-handshake. A refused ``/v2/me/outbound`` fails ``open()``.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.metadata
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import anyio
from aiocometd_noloop import Client, ConnectionType, Extension
from aiocometd_noloop.constants import TransportState
from aiocometd_noloop.exceptions import (
    AiocometdException,
    ClientInvalidOperation,
    ServerError,
    TransportError,
    TransportTimeoutError,
)

from ._background import BackgroundTasks
from ._config import GWSConfig
from ._dispatcher import cancelled_by_plugin, cancelled_from_outside, take_back_cancellation
from ._exceptions import GWSTransportError
from ._failures import describe_failure, exception_chain, target_of
from ._log import get_logger
from ._retry import RetryPolicy
from ._session import GWSSession
from ._transport import ssl_context

__all__ = [
    "OUTBOUND_CHANNEL",
    "START_HANDSHAKES",
    "CometDListener",
    "CometDMessage",
    "CometDState",
]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

CometDMessage = dict[str, Any]
_CLOSE_TIMEOUT: Final = 2.0
_FIRST_RECONNECT_DELAY: Final = 0.5
#: How often (seconds) the listener checks that its CometD client still polls while none of
#: its polls is in flight (else it checks when the poll ends: see ``CometDListener._watch``).
_WATCH_PERIOD: Final = 0.5
#: The client's transport states in which it polls no more, and says so (``receive()``
#: raises, or the listener closed it).
_NOT_POLLING: Final = frozenset(
    (TransportState.SERVER_DISCONNECTED, TransportState.DISCONNECTING, TransportState.DISCONNECTED)
)
#: Handshakes :meth:`CometDListener.open` makes at most when the server forgets the client
#: before it is subscribed (``402::Unknown client``).
START_HANDSHAKES: Final = 3
#: The channel of the operation acknowledgements: without it no outcome can be heard.
OUTBOUND_CHANNEL: Final = "/v2/me/outbound"
#: The aiocometd-noloop version whose internals ``_GWSClient.receive_queued`` relies on.
PINNED_AIOCOMETD: Final = "0.4.9"
_QUEUE_SEAM: Final = importlib.metadata.version("aiocometd-noloop") == PINNED_AIOCOMETD


#: The longest ``advice.timeout`` (milliseconds) taken from the server: ten minutes, twenty
#: times GWS's 30 s. A longer one is replaced by the last usable one: a long poll lost on the
#: way would be waited for that long, "connected" and deaf.
_MAX_TIMEOUT_MS: Final = 600_000
#: The shortest ``advice.timeout`` (milliseconds) the client waits by: a shorter one (``true``
#: is read as 1 ms) gave every request up before its answer could travel back.
_MIN_TIMEOUT_MS: Final = 1_000
#: The timeout (milliseconds) in force before the server advised a usable one: GWS's (and
#: the CometD servers') default.
_DEFAULT_TIMEOUT_MS: Final = 30_000
#: :func:`_usable_timeout`'s "nothing unusable".
_USABLE: Final = object()
_ABSENT: Final = object()
#: What :meth:`_GWSClient._wait_once` returns when the transport stayed disconnected.
_TIMED_OUT: Final = object()
#: What :meth:`_GWSClient._wait_once` returns after :meth:`_GWSClient.interrupt`.
_INTERRUPTED: Final = object()


class _WaitInterrupted(Exception):
    """``receive()``'s wait was interrupted (:meth:`_GWSClient.interrupt`)."""


class _Wait:
    """One wait of :meth:`_GWSClient._wait_once`: its future, its ``connection_timeout``,
    and the countdown of that timeout while the transport is connecting."""

    __slots__ = ("countdown", "timeout", "waiter")

    def __init__(self, waiter: asyncio.Future[object], timeout: float) -> None:
        self.waiter = waiter
        self.timeout = timeout
        self.countdown: asyncio.Task[None] | None = None

    def counted(self, task: asyncio.Task[None]) -> None:
        """The countdown ended: the transport stayed disconnected for ``timeout`` (or the
        countdown was cancelled from outside: the wait starts again)."""
        if task is self.countdown and not self.waiter.done():
            self.countdown = None
            self.waiter.set_result(None if task.cancelled() else _TIMED_OUT)


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
        # An outcome published while the client waits is heard after the wait: leave the
        # acknowledgement's timeout room for the rest.
        self._max_interval = listener.config.ack_timeout / 2
        self._capped_logged = False
        self._unusable_logged = False
        self._backed_off = False
        """Whether the advice aiocometd keeps is one :meth:`_back_off` wrote."""
        self._advice: dict[str, Any] = {"reconnect": "retry", "interval": 0}
        """The advice of the server's last successful handshake or connect reply, as
        aiocometd reads it (the interval in seconds)."""
        self._timeout: float | None = None
        """The last usable ``advice.timeout`` (milliseconds) the server sent this client."""

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
            if message.get("channel") == "/meta/connect":
                self._listener._connect_sent()
                if self._first_connect:
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
        if type(payload) is not list:
            _check_payload(payload)
        for message in payload:
            # The usual message, read as it is: an object with a channel of its own (not a
            # subscription reply, which has more to check). Anything else: every message is
            # checked, and the unreadable ones left out.
            if type(message) is not dict:
                _check_payload(payload)
            channel = message.get("channel")
            if type(channel) is not str or not channel or channel in _SUBSCRIPTION_REPLIES:
                readable = [message for message in payload if _readable(message)]
                if len(readable) != len(payload):
                    payload[:] = readable  # aiocometd reads this list next
                break
        for message in payload:
            if (
                "advice" not in message
                and "successful" not in message
                and not message["channel"].startswith("/meta/")
            ):
                # A notification as servers send them (no advice, no successful): nothing
                # below applies to it (a /meta/ reply without successful still goes on).
                continue
            _as_notification(message)
            self._timeout, unusable = _usable_timeout(message, self._timeout)
            if unusable is not _USABLE and not self._unusable_logged:
                self._unusable_logged = True
                logger.warning(
                    "cometd_advice_unusable",
                    advised=repr(unusable)[:100],
                    timeout_ms=message["advice"]["timeout"],
                )
            advised = _interval_to_seconds(message, self._max_interval)
            if advised is not None and not self._capped_logged:
                self._capped_logged = True
                logger.warning(
                    "cometd_interval_capped", advised_ms=advised, seconds=self._max_interval
                )
            channel = message.get("channel")
            successful = message.get("successful")
            if successful and channel in ("/meta/connect", "/meta/handshake"):
                advice = message.get("advice")
                if isinstance(advice, dict):
                    self._advice = dict(advice)
            if channel == "/meta/handshake":
                if successful:
                    self._first_connect = True
                    self._listener._handshaken()
                else:
                    delay = self._listener._handshake_refused(str(message.get("error", "")))
                    if delay > 0:
                        self._back_off(message, delay)
            elif channel == "/meta/connect":
                self._listener._connect_answered()
                if successful:
                    if self._backed_off and "advice" not in message:
                        # aiocometd would keep waiting the backoff between long polls.
                        message["advice"] = dict(self._advice)
                    self._backed_off = False
                    self._listener._connected()
                else:
                    delay = self._listener._connect_refused(str(message.get("error", "")))
                    if delay > 0:
                        self._back_off(message, delay)
            elif channel == "/meta/subscribe":
                if successful:
                    self._listener._subscribed(message.get("subscription"))
                else:
                    self._listener._subscribe_refused(
                        message.get("subscription"), message.get("error")
                    )

    def _back_off(self, message: dict[str, Any], delay: float) -> None:
        """Have aiocometd wait ``delay`` seconds before it follows the advice of a refused
        connect or handshake (it waits ``advice.interval``, 0 from GWS and CometD servers: a
        server that refuses every long poll got them back to back, hundreds a second)."""
        advice = message.get("advice")
        if not isinstance(advice, dict):  # none: aiocometd keeps the last one (with a timeout)
            advice = message["advice"] = {
                "timeout": _DEFAULT_TIMEOUT_MS if self._timeout is None else self._timeout
            }
        interval = advice.get("interval")
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval < delay:
            advice["interval"] = delay
        self._backed_off = True


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


_SUBSCRIPTION_REPLIES: Final = frozenset({"/meta/subscribe", "/meta/unsubscribe"})


def _readable(message: dict[str, Any]) -> bool:
    """Whether aiocometd can read ``message``. It indexes ``channel`` of every message, and
    ``successful`` and ``subscription`` of a subscription reply: one without them failed the
    whole long-poll answer half-way (``KeyError``), losing the messages after it. Such a
    message is left out and logged (``cometd_message_malformed``); the rest is read."""
    channel = message.get("channel")
    if not isinstance(channel, str) or not channel:
        why = "no channel"
    elif channel in _SUBSCRIPTION_REPLIES and not (
        "successful" in message
        and isinstance(message.get("subscription", ""), str)
        and ("subscription" in message or not message["successful"])
    ):
        why = "a subscription reply without successful or subscription"
    else:
        return True
    logger.warning(
        "cometd_message_malformed",
        reason=why,
        channel=channel[:200] if isinstance(channel, str) else type(channel).__name__,
    )
    return False


def _as_notification(message: dict[str, Any]) -> None:
    """A notification (what aiocometd queues for ``receive()``: ``data`` on a channel that is
    not ``/meta/``) carries no ``successful``; one that says ``false`` (or ``null``, a broken
    server's or proxy's) made ``receive()`` raise it as a ``ServerError``, which reads as the
    server closing the session: the session counted lost and the notification was lost with
    it. The field is left out; the notification is read like any other."""
    if "successful" in message and "data" in message:
        channel = message["channel"]
        if not channel.startswith("/meta/") and not (
            channel.startswith("/service/") and "id" in message
        ):
            del message["successful"]


def _usable_timeout(message: dict[str, Any], last: float | None) -> tuple[float | None, object]:
    """Make the advice of ``message`` one aiocometd can live with, before it stores it.

    aiocometd stores the advice of the last reply that had one, whole, and gives every later
    request (long polls, handshakes, subscriptions) 1.2 x its ``timeout`` (milliseconds):

    * ``Infinity`` made each request fail (``OverflowError`` in aiohttp) before any reply could
      bring a new advice; ``true`` (read as 1 ms) and any timeout of a few milliseconds gave
      each request up before its answer could come: deaf for good either way;
    * none at all (an advice without ``timeout``, as in every ``402::Unknown client`` reply,
      or dropped by us), and aiocometd sends its requests with no timeout (``timeout=None``
      to aiohttp): a request the network lost, such as the re-handshake after a 402, was
      waited for forever; so was any long poll under a timeout of 31 years (``1e12``);
    * an advice that is no JSON object (``null``, a string) failed aiocometd's reconnection
      callback (``AttributeError``), which then scheduled no more polls.

    So every advice gets a usable timeout: a number from 0 to :data:`_MAX_TIMEOUT_MS`,
    raised to :data:`_MIN_TIMEOUT_MS` (the server holds a poll no longer than it advised, and
    the answer needs time to travel); any other value (not a number, ``NaN``, negative,
    infinite, too long) and a missing one are replaced by ``last``, the last usable timeout
    the server advised (:data:`_DEFAULT_TIMEOUT_MS`, GWS's, before it advised any); an advice
    that is no object becomes ``{}`` first.

    Returns the usable timeout now in force (``last`` when the message advises none) and
    the unusable value the server advised, if any (:data:`_USABLE` when there was none)."""
    if "advice" not in message:
        return last, _USABLE
    advice = message["advice"]
    unusable: object = _USABLE
    if not isinstance(advice, dict):
        unusable = advice
        advice = message["advice"] = {}
    timeout = advice.get("timeout", _ABSENT)
    if timeout is not _ABSENT:
        if (
            isinstance(timeout, int | float)
            and not isinstance(timeout, bool)
            and 0 <= timeout <= _MAX_TIMEOUT_MS  # not NaN
        ):
            usable = max(timeout, _MIN_TIMEOUT_MS)
            advice["timeout"] = usable
            return usable, unusable
        unusable = timeout
    advice["timeout"] = _DEFAULT_TIMEOUT_MS if last is None else last
    return last, unusable


def _interval_to_seconds(message: dict[str, Any], cap: float) -> int | float | None:
    """aiocometd passes ``advice["interval"]`` to ``asyncio.sleep()`` before the next
    connect; Bayeux sends milliseconds. The extension sees each reply once, before aiocometd
    stores its advice. No outcome is heard during that wait: it is at most ``cap`` seconds.
    Returns the advised interval when it was capped."""
    advice = message.get("advice")
    if isinstance(advice, dict):
        interval = advice.get("interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool):
            seconds = max(float(interval), 0.0) / 1000
            if seconds <= cap:  # NaN too is capped
                advice["interval"] = seconds
                return None
            advice["interval"] = cap
            return interval
    return None


class _GWSClient(Client):  # type: ignore[misc]
    """The aiocometd client with our own aiohttp session (no cookie jar of its own)."""

    def __init__(self, url: str, *, verify_tls: bool, **kwargs: Any) -> None:
        # The REST side's SSL context (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR as
        # set now): aiohttp's own default was made from the system's store when aiohttp was
        # imported, so the two sides could trust different CAs.
        super().__init__(
            url,
            [ConnectionType.LONG_POLLING],
            ssl=ssl_context(True) if verify_tls else False,
            **kwargs,
        )
        if url.startswith("http://"):
            self._HTTP_SESSION_CLOSE_TIMEOUT = 0.0
        self._waits: list[_Wait] = []
        """The waits in ``receive()`` (see :meth:`_wait_once` and :meth:`interrupt`)."""
        self._connecting_watch: tuple[Any, asyncio.Future[bool]] | None = None

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

    async def _negotiate_transport(self) -> Any:
        transport = await super()._negotiate_transport()
        _quiet_when_cancelled(transport)
        return transport

    def _detach_connect_callback(self) -> None:
        transport = self._transport
        task = getattr(transport, "_connect_task", None)
        if task is not None and not task.done():
            task.remove_done_callback(transport._connect_done)

    async def release(self) -> None:
        """Release what a close that was cut short left: the connect task and the HTTP
        session (a no-op for what is already closed)."""
        transport = self._transport
        try:
            if transport is not None:
                self._detach_connect_callback()
                await _logged_failure(transport.close())
        finally:
            await self._close_http_session()

    async def cleanup_failed_open(self) -> None:
        """Release what a failed (or abandoned) ``open()`` left: its connect task and its HTTP
        session. The polite ``/meta/disconnect`` waits at most ``_CLOSE_TIMEOUT`` for a server
        that stopped answering (aiocometd would wait its own request timeout, the server's
        advised ``timeout`` and more, and then raise); its errors are logged, never raised;
        and the HTTP session is closed also when a cancellation (a second Ctrl-C) cuts the
        disconnect short."""
        transport = self._transport
        try:
            if transport is not None:
                self._detach_connect_callback()
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    await _logged_failure(transport.disconnect())
                await _logged_failure(transport.close())
        finally:
            await self._close_http_session()

    async def close(self) -> None:
        self._detach_connect_callback()
        await super().close()

    async def _get_message(self, connection_timeout: float) -> CometDMessage:
        """aiocometd's wait for the next message (pinned version), without its tasks.

        aiocometd races three tasks with ``asyncio.wait`` for every wait: one takes the
        next message from the queue, one waits for the server to end the session
        (``ServerError``), one for the transport to be reconnecting for longer than
        ``connection_timeout`` (``TransportTimeoutError``); the two left over are cancelled.
        Here one future waits for all three, woken the way ``asyncio.Queue.get()`` and
        ``asyncio.Event.wait()`` wake theirs (see :meth:`_wait_once`), and the message is
        taken from the queue in the waiting task itself: a cancellation of that task leaves
        it in the queue for the next wait (aiocometd's queue task took it, and dropped it
        when the waiting task was cancelled in that loop turn: an acknowledgement never
        heard). Same outcomes, same order: a queued message first, then the server's end of
        the session, then the timeout."""
        if not _QUEUE_SEAM:  # pragma: no cover - another version: aiocometd's own
            message: CometDMessage = await super()._get_message(connection_timeout)
            return message
        queue: asyncio.Queue[CometDMessage] = self._incoming_queue
        transport = self._transport
        while True:
            if not queue.empty():
                taken: CometDMessage = queue.get_nowait()
                return taken
            woken = None
            if transport.state is not TransportState.SERVER_DISCONNECTED:
                woken = await self._wait_once(queue, transport, connection_timeout)
                if woken is _INTERRUPTED:
                    raise _WaitInterrupted
                if not queue.empty():
                    continue  # a message first, as aiocometd's wait returns it first
            if woken is True or transport.state is TransportState.SERVER_DISCONNECTED:
                await self.close()
                raise ServerError("Connection closed by the server", transport.last_connect_result)
            if woken is _TIMED_OUT:
                raise TransportTimeoutError("Lost connection with the server.")

    async def _wait_once(
        self, queue: asyncio.Queue[CometDMessage], transport: Any, connection_timeout: float
    ) -> object:
        """Wait until a message is queued (``None``), the server ended the session
        (``True``) or the transport was reconnecting for ``connection_timeout`` seconds
        (:data:`_TIMED_OUT`); ``None`` too after the countdown was cancelled from outside (the
        caller waits again). One future: put in the queue's getters (``put_nowait`` wakes
        the first, as for ``Queue.get()``) and in the waiters of the transport's
        ``SERVER_DISCONNECTED`` event (``set()`` wakes them all, as for ``Event.wait()``).
        The countdown is aiocometd's ``_wait_connection_timeout``, started as its first
        step would go on: at once if the transport is connecting, else when it starts to
        (:meth:`_connecting`)."""
        waiter: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        getters: Any = queue._getters  # type: ignore[attr-defined]
        events: Any = transport._state_events
        ended: Any = events[TransportState.SERVER_DISCONNECTED]._waiters
        getters.append(waiter)
        ended.append(waiter)
        wait = _Wait(waiter, connection_timeout)
        self._waits.append(wait)  # one, but for a close draining while the listener waits
        if connection_timeout:
            if events[TransportState.CONNECTING].is_set():
                self._count_down(transport, wait)
            elif self._connecting_watch is None or self._connecting_watch[0] is not transport:
                self._watch_connecting(transport)
        try:
            return await waiter
        except BaseException:
            if (
                waiter.done()
                and not waiter.cancelled()
                and waiter.result() is None
                and not queue.empty()
            ):
                # Woken by put_nowait() but cancelled before taking the message: it stays
                # queued, and the next getter in line (if any) is woken, as Queue.get() does.
                queue._wakeup_next(getters)  # type: ignore[attr-defined]
            raise
        finally:
            self._waits.remove(wait)
            waiter.cancel()
            if waiter in getters:  # not when put_nowait() woke it: it took it off
                getters.remove(waiter)
            if waiter in ended:
                ended.remove(waiter)
            countdown = wait.countdown
            if countdown is not None:
                wait.countdown = None
                countdown.cancel()

    def _watch_connecting(self, transport: Any) -> None:
        """Keep a future in the waiters of ``transport``'s ``CONNECTING`` event: when it
        starts connecting during a wait, :meth:`_connecting` starts the countdown."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        transport._state_events[TransportState.CONNECTING]._waiters.append(future)
        future.add_done_callback(self._connecting)
        self._connecting_watch = (transport, future)

    def _connecting(self, future: asyncio.Future[bool]) -> None:
        watch = self._connecting_watch
        if watch is None or watch[1] is not future or future.cancelled():
            return
        transport = watch[0]
        waiters = transport._state_events[TransportState.CONNECTING]._waiters
        if future in waiters:
            waiters.remove(future)
        self._watch_connecting(transport)  # for the next time
        if transport is self._transport:
            for wait in self._waits:
                if wait.timeout and wait.countdown is None and not wait.waiter.done():
                    self._count_down(transport, wait)

    def _count_down(self, transport: Any, wait: _Wait) -> None:
        countdown = asyncio.get_running_loop().create_task(
            self._wait_reconnected(transport, wait.timeout)
        )
        countdown.add_done_callback(wait.counted)
        wait.countdown = countdown

    def interrupt(self) -> bool:
        """End the wait for a message in ``receive()`` now: it raises
        :class:`_WaitInterrupted` (the message queued meanwhile, if any, stays queued).
        False when no such wait is pending (another version than the pinned one: the
        caller cancels its wait)."""
        interrupted = False
        for wait in self._waits:
            if not wait.waiter.done():
                wait.waiter.set_result(_INTERRUPTED)
                interrupted = True
        return interrupted

    @staticmethod
    async def _wait_reconnected(transport: Any, timeout: float) -> None:
        """aiocometd's ``_wait_connection_timeout`` once the transport is connecting: ends
        when it was not connected again within ``timeout`` seconds."""
        while True:
            try:
                await asyncio.wait_for(transport.wait_for_state(TransportState.CONNECTED), timeout)
            except TimeoutError:
                return
            await transport.wait_for_state(TransportState.CONNECTING)

    def receive_queued(self) -> CometDMessage | None:
        """The next message if one is already queued (as ``receive()`` would return it,
        ``ServerError`` for an unsuccessful reply), else ``None``: ``receive()`` then waits.
        Always ``None`` with another version than the pinned one."""
        queue = self.__dict__.get("_incoming_queue") if _QUEUE_SEAM else None
        if queue is None or queue.empty():
            return None
        message: CometDMessage = queue.get_nowait()
        self._verify_response(message)
        return message

    def stopped_polling(self) -> bool:
        """Whether the client stopped polling for good without saying so.

        aiocometd polls in one task at a time (the long poll, or the wait before it) and
        starts the next one from that task's done callback. When the task is cancelled from
        outside (a host cancelling every task of its loop), or the callback fails, no poll
        is scheduled any more, while ``receive()`` waits for good and the transport still
        says "connected". Seen as: the task cancelled, or done and still the current one at
        the next check (its callback had a whole loop turn to start the next). Not while
        the transport says it stopped (the server ended the session: ``receive()`` raises),
        nor before it is open."""
        transport = self._transport
        task = getattr(transport, "_connect_task", None)
        if (
            self.closed
            or task is None
            or not task.done()
            or getattr(transport, "state", None) in _NOT_POLLING
        ):
            self._finished_poll = None
            return False
        if task.cancelled() or task is self.__dict__.get("_finished_poll"):
            return True
        self._finished_poll = task
        return False

    def poll_in_flight(self) -> asyncio.Future[Any] | None:
        """The client's poll (aiocometd's connect task: the long poll, or the wait before it)
        while it runs, else ``None`` (not open yet, closed, or the last one ended). Until it
        ends, :meth:`stopped_polling` cannot say ``True``."""
        task: asyncio.Future[Any] | None = getattr(self._transport, "_connect_task", None)
        return None if self.closed or task is None or task.done() else task

    def set_reconnect_delay(self, seconds: float) -> None:
        transport = self._transport
        if transport is not None:
            transport._reconnect_timeout = seconds


def _quiet_when_cancelled(transport: Any) -> None:
    """aiocometd's done callback of its connect task (``_connect_done``) reads the task's
    result and catches ``Exception`` only: for a cancelled task (a host cancelling every task
    of its loop, ``asyncio.run`` ending, an ``open()`` cut short) the ``CancelledError`` left
    the callback, and asyncio logged "Exception in callback TransportBase._connect_done" at
    ERROR in the host's log. Nothing else happened in it (no next poll is scheduled: the
    listener notices and replaces the client); it now returns quietly instead.

    Nor does an ``Exception`` the callback raises reach asyncio's handler: the callback logs
    through the host's standard logging, and a handler or filter that raises stops it before
    it starts the next poll. That is logged (``cometd_client_callback_failed``); the client
    polls no more, and the listener notices and replaces it, as above."""
    connect_done = getattr(transport, "_connect_done", None)
    if connect_done is None:  # pragma: no cover - another aiocometd version
        return

    def _connect_done(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        try:
            connect_done(future)
        except Exception as error:
            logger.warning("cometd_client_callback_failed", error=type(error).__name__)

    transport._connect_done = _connect_done


async def _logged_failure(step: Awaitable[object]) -> None:
    """Await a step of closing a CometD client; its failure is logged (``cometd_close_error``),
    never raised. Any ``Exception``: besides its own errors and the network's, the client's
    code runs the host's standard logging (a handler or filter that raises)."""
    try:
        await step
    except Exception as error:
        logger.info("cometd_close_error", error=type(error).__name__)


def _retrieve(task: asyncio.Future[None]) -> None:
    """Mark the exception of a finished ``task`` as retrieved (nothing else is done with it
    here)."""
    if not task.cancelled():
        task.exception()


async def _within(limit: float, step: Awaitable[None]) -> None:
    """Await ``step`` in a task of its own, cancelled after ``limit`` seconds (then
    ``TimeoutError``), or when the caller is.

    aiocometd's ``open()`` awaits its connect task. Cancelled from the awaiting task (a timeout
    scope around ``open()``), asyncio cancelled that connect task through the await, its own
    done callback (``_connect_done``, registered first) took the ``CancelledError`` that named
    the scope, and the one that reached the awaiting task was anonymous: anyio took it for
    someone else's cancellation and let it through. A start whose first connect went
    unanswered raised ``CancelledError`` to the host, which was never cancelled, instead of
    ``GWSTransportError``; a new client's start while running ended the listener.

    The step's exception is retrieved even when nobody gets it (the timeout came, or the
    caller was cancelled): asyncio does not log it as "never retrieved"."""
    task = asyncio.ensure_future(step)
    # Its exception is asked for whatever happens here: else one the step raised on being
    # cancelled (at the timeout, or with the caller), or in the loop turn in which the
    # caller was cancelled, was logged by asyncio as "never retrieved" when collected.
    task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait((task,), timeout=limit)
    finally:
        if not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait((task,))
    if not done:
        raise TimeoutError
    task.result()


class _RequiredChannelRefused(Exception):
    """The server refused a channel the listener cannot work without."""


class _ClientForgotten(Exception):
    """The server forgot the client while :meth:`CometDListener.open` was at ``step``."""

    def __init__(self, step: str, error: ServerError) -> None:
        super().__init__(step)
        self.step = step
        self.error = error


def _unknown_client(error: ServerError) -> bool:
    """Whether the server answered ``402::Unknown client`` (it forgot the client)."""
    code = error.error
    return isinstance(code, str) and code.startswith("402")


def _subscription_names(subscription: object) -> list[str]:
    if isinstance(subscription, str):
        return [subscription]
    if isinstance(subscription, list):
        return [s for s in subscription if isinstance(s, str)]
    return []


def _bayeux_error(error: object) -> str:
    return " ".join(error.split())[:200] if isinstance(error, str) and error else "no reason given"


def describe_cometd_failure(error: BaseException, timeout: float | None = None) -> str:
    """One line saying why a CometD request failed (never a secret)."""
    if isinstance(error, ServerError):
        what = str(error.message).rstrip(".") if error.message else "refused"
        return f"{what}: {_bayeux_error(error.error)} ({type(error).__name__})"
    for link in exception_chain(error):
        if isinstance(link, aiohttp.ContentTypeError):
            body = _bayeux_error(link.message.rsplit("mimetype: ", 1)[-1] if link.message else "?")
            return f"HTTP {link.status} with a {body} body, not Bayeux (ContentTypeError)"
        if isinstance(link, aiohttp.ClientResponseError):
            return f"HTTP {link.status} {_bayeux_error(link.message)} ({type(link).__name__})"
    if isinstance(error, TransportError) and error.__cause__ is not None:
        return describe_failure(error.__cause__, timeout)  # aiohttp's error, named as such
    return describe_failure(error, timeout)


class CometDListener:
    """Opens the Bayeux session on the GWS session and yields notification messages.

    ``on_lost`` is called when the session is lost (``402::Unknown client``, network loss
    beyond the connection timeout, server disconnect); ``on_restored`` when it is back and
    every channel the server accepts is subscribed again. Both run on the event loop thread.

    ``required`` names the channels whose refusal fails :meth:`open` (default: the
    ``/v2/me/outbound`` acknowledgements); the server may refuse any other channel: see
    :attr:`refused_channels`.
    """

    def __init__(
        self,
        config: GWSConfig,
        session: GWSSession,
        channels: Sequence[str],
        *,
        on_lost: Callable[[str], None],
        on_restored: Callable[[], None],
        required: Collection[str] = (OUTBOUND_CHANNEL,),
        on_state: Callable[[CometDState, CometDState], None] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.url = config.cometd_url
        self.channels = tuple(channels)
        self.required = frozenset(required)
        self._where = target_of(self.url) + urlsplit(self.url).path
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._on_state = on_state
        """Called with (state, previous) on every change of :attr:`state`."""
        self._watch_woken: asyncio.Future[None] | None = None
        """What :meth:`_watch` waits on while the client's poll is in flight."""
        self._current_client: _GWSClient | None = None
        self._state = CometDState.CLOSED
        self._connected_event = anyio.Event()
        self._handshakes = 0
        self._subscribed_now: set[str] = set()
        self._awaiting_resubscribe = False
        self._resubscribe_refused = False
        self._refused: dict[str, str] = {}
        self._warned: set[str] = set()
        self._resubscribing: set[str] = set()
        self._lost = False
        self._failed_attempts = 0
        self._refusals = 0
        """``/meta/connect``s refused since the last successful one."""
        self._connected_since_handshake = False
        self._opening = False
        """Whether :meth:`open` is at work."""
        self._starting = False
        """Whether :meth:`open` is the first start (not a new client while running)."""
        self._connect_unanswered = False
        self._tasks: BackgroundTasks | None = None
        self._stalled: _GWSClient | None = None
        """The client :meth:`_watch` found polling no more (replaced by the receive loop)."""
        self._receiving: anyio.CancelScope | None = None
        """Around the receive loop's wait in ``receive()``, while it waits (only with
        another aiocometd version than the pinned one: else ``_GWSClient.interrupt``)."""
        self.reconnect_policy = RetryPolicy(
            retries=None,
            first_delay=min(_FIRST_RECONNECT_DELAY, config.reconnect_backoff_max),
            max_delay=config.reconnect_backoff_max,
        )
        """The delays between reconnection attempts (0.5 s doubled up to
        ``reconnect_backoff_max``)."""
        self.lost_at: float | None = None

    @property
    def _client(self) -> _GWSClient | None:
        return self._current_client

    @_client.setter
    def _client(self, client: _GWSClient | None) -> None:
        # A new client (or none): :meth:`_watch` stops waiting for the old one's poll.
        self._current_client = client
        woken = self._watch_woken
        if woken is not None and not woken.done():
            woken.set_result(None)

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> CometDState:
        return self._state

    @property
    def refused_channels(self) -> tuple[str, ...]:
        """The channels the server refuses to subscribe us to right now (in the order of
        ``channels``); empty when every channel is subscribed."""
        return tuple(channel for channel in self.channels if channel in self._refused)

    def _set_state(self, state: CometDState, **details: Any) -> None:
        if state is not self._state:
            logger.info("cometd_state", state=state.value, previous=self._state.value, **details)
            previous, self._state = self._state, state
            if state is CometDState.CONNECTED:
                self._connected_event.set()
            elif self._connected_event.is_set():
                self._connected_event = anyio.Event()
            if self._on_state is not None:
                self._on_state(state, previous)

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
            self._client.set_reconnect_delay(self.reconnect_policy.backoff(self._failed_attempts))
        self._failed_attempts += 1

    def _connect_sent(self) -> None:
        """A ``/meta/connect`` is about to be sent. If the one before it got no answer, it
        failed on the way (the server went away, the network broke): the connection state
        says so at once. The session itself is not lost yet: the server keeps this client's
        messages until ``cometd_connection_timeout``, so only then (or on the server's word)
        are pending outcomes given up on."""
        if self._connect_unanswered and self._state is CometDState.CONNECTED:
            logger.warning("cometd_connect_failed")
            self._set_state(CometDState.RECONNECTING, reason="a long poll failed")
        self._connect_unanswered = True

    def _connect_answered(self) -> None:
        self._connect_unanswered = False

    def _handshaken(self) -> None:
        self._handshakes += 1
        self._subscribed_now.clear()
        self._connected_since_handshake = False
        if self._handshakes > 1:
            logger.info("cometd_rehandshake", handshakes=self._handshakes)
            self._mark_lost("re-handshake")
            self._awaiting_resubscribe = True
            # aiocometd re-subscribes only what the server accepted before: the rest is ours.
            self._resubscribe_refused = bool(self._refused)

    def _connected(self) -> None:
        self._failed_attempts = 0
        self._refusals = 0
        self._connected_since_handshake = True
        client = self._client
        if client is not None:
            client.set_reconnect_delay(self.reconnect_policy.first_delay)
            if self._resubscribe_refused and self._tasks is not None:
                self._resubscribe_refused = False
                for channel in self.refused_channels:
                    self._start_subscribing_again(client, channel)
        if self._opening:
            # A new client's first connect: open() says connected (and the listener that the
            # session is back) once its channels are subscribed, not before: a request sent
            # now would have its answer published before the subscription, to nobody.
            return
        if self._lost and not self._awaiting_resubscribe:
            self._restored()
        elif not self._lost and self._state is CometDState.RECONNECTING:
            # A failed long poll, then a connect of the same client: nothing was lost.
            self._set_state(
                CometDState.CONNECTED, channels=[c for c in self.channels if c not in self._refused]
            )

    def _handshake_refused(self, error: str) -> float:
        """A ``/meta/handshake`` was refused. Returns the seconds to wait before the next
        attempt, as after a refused connect: aiocometd follows the refusal's advice at once
        (``reconnect: handshake``, ``interval: 0``: back to back)."""
        logger.info("cometd_handshake_refused", error=error)
        self._refusals += 1
        if self._refusals < 2:
            return 0.0
        return self.reconnect_policy.backoff(self._refusals - 1)

    def _connect_refused(self, error: str) -> float:
        """A ``/meta/connect`` was refused: not connected. Returns the seconds to wait
        before the next attempt: none after the first refusal since the last successful
        connect (the server's advice is followed: a re-handshake after ``402::Unknown
        client``), then the reconnection backoff."""
        logger.info("cometd_connect_refused", error=error)
        self._refusals += 1
        if error.startswith("402"):
            self._mark_lost(error)
        elif self._state is CometDState.CONNECTED:
            self._set_state(
                CometDState.RECONNECTING, reason=f"a long poll was refused: {_bayeux_error(error)}"
            )
        if self._refusals < 2:
            return 0.0
        return self.reconnect_policy.backoff(self._refusals - 1)

    def _subscribed(self, subscription: object) -> None:
        for channel in _subscription_names(subscription):
            self._subscribed_now.add(channel)
            self._warned.discard(channel)
            if self._refused.pop(channel, None) is not None:
                logger.info("cometd_subscription_accepted", channel=channel)
        self._check_resubscribed()

    def _subscribe_refused(self, subscription: object, error: object) -> None:
        for channel in _subscription_names(subscription):
            self._note_refused(channel, _bayeux_error(error))
        self._check_resubscribed()

    def _note_refused(self, channel: str, error: str) -> None:
        """Remember a refusal; warn once per channel until it is accepted again."""
        self._subscribed_now.discard(channel)
        self._refused[channel] = error
        required = channel in self.required
        if required and self._opening:
            return  # open() fails with a clear error
        if channel not in self._warned:
            self._warned.add(channel)
            if required:
                logger.error(
                    "cometd_subscription_refused",
                    channel=channel,
                    error=error,
                    consequence="no acknowledgement can be heard; asking again",
                )
            else:
                logger.warning(
                    "cometd_subscription_refused",
                    channel=channel,
                    error=error,
                    consequence="continuing without it",
                )
        if required:
            # Refused after a re-handshake: nothing can be heard without it; keep asking.
            self._mark_lost(f"subscription to {channel} refused")
            client = self._client
            if client is not None:
                self._start_subscribing_again(client, channel)

    def _start_subscribing_again(self, client: _GWSClient, channel: str) -> None:
        if self._tasks is not None and channel not in self._resubscribing:
            self._resubscribing.add(channel)
            self._tasks.spawn(self._subscribe_again, client, channel)

    def _check_resubscribed(self) -> None:
        if not self._awaiting_resubscribe:
            return
        wanted = {c for c in self.channels if c in self.required or c not in self._refused}
        if self._subscribed_now.issuperset(wanted):
            self._awaiting_resubscribe = False
            if self._connected_since_handshake:  # else at the first connect that is not refused
                self._restored()

    def _restored(self) -> None:
        if self._lost:
            self._lost = False
            self._set_state(
                CometDState.CONNECTED,
                channels=[c for c in self.channels if c not in self._refused],
            )
            self._on_restored()

    async def _subscribe_again(self, client: _GWSClient, channel: str) -> None:
        """Subscribe ``channel`` again on ``client`` (refused before). An optional channel is
        asked once (again after the next re-handshake); a required one until accepted."""
        delays = self.reconnect_policy.delays()
        try:
            while self._client is client and channel in self._refused:
                try:
                    await client.subscribe(channel)
                    return  # the extension saw the answer
                except ServerError:
                    if channel not in self.required:
                        return  # still refused (noted by the extension): next handshake
                except AiocometdException as error:
                    # Not connected yet (the connect that got us here is finishing), or a
                    # network error: the reconnection machinery is at work; ask again later.
                    logger.debug(
                        "cometd_resubscribe_deferred", channel=channel, error=str(error)[:200]
                    )
                await anyio.sleep(next(delays))
        finally:
            self._resubscribing.discard(channel)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Handshake, first connect (not held) and subscribe to every channel.

        A server that forgets the client before it is subscribed (``402::Unknown client``
        on a subscription or the first connect: a node restarting, a load balancer moving
        the client) is handshaken again, as after a loss once running: at most
        :data:`START_HANDSHAKES` handshakes in all, each step bounded by ``request_timeout``.

        :raises GWSTransportError: the handshake or first connect failed, the server
            refused a required channel, or forgot the client at each of the handshakes; the
            message names the endpoint and the cause.

        Opening again while running (a new client after the server ended the session, or
        after the client stopped polling) keeps the state ``reconnecting``, also when it
        fails: only the first start is ``connecting``, and ``closed`` if it fails.
        """
        self._starting = self._state is CometDState.CLOSED
        if self._starting:
            self._set_state(CometDState.CONNECTING, url=self.url)
        self._opening = True
        try:
            await self._open_clients()
        finally:
            self._opening = False
        self._awaiting_resubscribe = False
        if self._lost:  # before (a new client while running) or meanwhile (a re-handshake)
            self._restored()
        else:
            self._set_state(
                CometDState.CONNECTED, channels=[c for c in self.channels if c not in self._refused]
            )

    def _open_failed(self) -> None:
        if self._starting:
            self._set_state(CometDState.CLOSED)

    async def _open_clients(self) -> None:
        attempt = 1
        while True:
            try:
                await self._open_client()
                break
            except _ClientForgotten as forgotten:
                if attempt >= START_HANDSHAKES:
                    self._open_failed()
                    cause = describe_cometd_failure(forgotten.error)
                    raise GWSTransportError(
                        f"the CometD {forgotten.step} at {self._where} failed: {cause}; "
                        f"{attempt} attempts"
                    ) from forgotten.error
                logger.warning(
                    "cometd_start_rehandshake",
                    step=forgotten.step,
                    error=_bayeux_error(forgotten.error.error),
                    attempt=attempt,
                )
                attempt += 1

    async def _open_client(self) -> None:
        """One attempt of :meth:`open` on a new client: handshake, connect, subscribe.

        :raises _ClientForgotten: the server no longer knows the client (402); the client
            is closed, and the caller may try again.
        """
        self._handshakes = 0
        client = _GWSClient(
            self.url,
            verify_tls=self.config.verify_tls,
            connection_timeout=self.config.cometd_connection_timeout,
            max_pending_count=self.config.event_queue_size,
            extensions=[_SessionExtension(self)],
        )
        self._client = client
        step = "handshake"
        # aiocometd sets no timeout on a request before the server's first advice: bound
        # each step ourselves, or a server that never answers would stall the start.
        limit = self.config.request_timeout
        try:
            await _within(limit, client.open())
            for channel in self.channels:
                step = f"subscription to {channel}"
                try:
                    with anyio.fail_after(limit):
                        await client.subscribe(channel)
                except ServerError as refusal:
                    if _unknown_client(refusal):
                        raise
                    reason = _bayeux_error(refusal.error)
                    if channel in self.required:
                        raise _RequiredChannelRefused(reason) from None
                    self._note_refused(channel, reason)
        except BaseException as error:
            self._client = None
            with anyio.CancelScope(shield=True):
                await client.cleanup_failed_open()
            if isinstance(error, ServerError) and _unknown_client(error):
                raise _ClientForgotten(step, error) from None
            self._open_failed()
            if isinstance(error, _RequiredChannelRefused):
                raise GWSTransportError(
                    f"the CometD server at {self._where} refused the {step} ({error}); "
                    "without it no acknowledgement can be heard"
                ) from None
            if isinstance(error, AiocometdException | aiohttp.ClientError | OSError):
                cause = describe_cometd_failure(error, limit)
                raise GWSTransportError(
                    f"the CometD {step} at {self._where} failed: {cause}"
                ) from error
            raise

    async def run(self, deliver: Callable[[CometDMessage], Any]) -> None:
        """Receive forever, handing every notification to ``deliver`` (awaited)."""
        # Plain asyncio tasks, not an anyio task group's: one cancelled before its first
        # step (a host cancelling every task right after the start) never runs its body, so
        # it cannot take the cancellation back, and in a task group it would cancel the
        # group's scope, the receive loop with it. BackgroundTasks starts it again.
        tasks = BackgroundTasks("CometDListener")
        await tasks.enter()
        self._tasks = tasks
        tasks.spawn(self._watch)
        try:
            await self._receive(deliver)
        finally:
            self._tasks = None
            await tasks.exit()

    async def _watch(self) -> None:
        """Check that the client still polls; one that stopped without saying so
        (:meth:`_GWSClient.stopped_polling`) is handed to the receive loop to be replaced by
        a new one (a new handshake and subscriptions).

        Checked when the client's poll ends (or the client changes), and every
        :data:`_WATCH_PERIOD` while none is in flight: a client can stop polling only when
        a poll ends, so an idle session's long poll, held by the server, wakes nothing
        here (a periodic check woke every session's watch twice a second)."""
        while True:
            try:
                await self._until_worth_checking()
            except asyncio.CancelledError:
                if not cancelled_from_outside():
                    raise
                take_back_cancellation("CometDListener._watch", quiet=True)
                continue
            client = self._client
            if (
                client is None
                or client is self._stalled
                or self._state not in (CometDState.CONNECTED, CometDState.RECONNECTING)
                or not client.stopped_polling()
            ):
                continue
            logger.warning(
                "cometd_client_stalled",
                consequence="the CometD session is started again; outcomes may have been missed",
            )
            self._stalled = client
            if not client.interrupt() and self._receiving is not None:
                self._receiving.cancel()

    async def _until_worth_checking(self) -> None:
        """Return when the current client's poll in flight ended without a next one (or was
        cancelled), or the client changed; after :data:`_WATCH_PERIOD` when no poll is in
        flight (none yet, the client is being replaced, or one ended and nothing started the
        next: the check after it says so)."""
        current = self._client
        poll = None if current is None else current.poll_in_flight()
        if current is None or poll is None:
            await anyio.sleep(_WATCH_PERIOD)
            return
        client: _GWSClient = current
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watched = [poll]

        def wake(ended: asyncio.Future[Any]) -> None:
            # Runs after aiocometd's own done callback (added first), which starts the next
            # poll: a client that polls on has nothing to check, so the next poll is
            # followed from here, without a step of the watch's task per poll (one per
            # message batch in a busy session). Anything else (no next poll, a cancelled
            # one, another client) wakes the watch to check.
            if woken.done():
                return
            if not ended.cancelled() and client is self._current_client:
                following = client.poll_in_flight()
                if following is not None and following is not ended:
                    watched[0] = following
                    following.add_done_callback(wake)
                    return
            woken.set_result(None)

        poll.add_done_callback(wake)
        self._watch_woken = woken
        try:
            await woken
        finally:
            self._watch_woken = None
            watched[0].remove_done_callback(wake)
            woken.cancel()

    async def _receive(self, deliver: Callable[[CometDMessage], Any]) -> None:
        delays = self.reconnect_policy.delays()
        reopened = False  # whether a delay was drawn from ``delays`` since they were made
        while True:
            client = self._client
            if client is None:
                await self._reopen(delays)
                reopened = True
                continue
            try:
                message = client.receive_queued()
                if message is None:
                    if client is self._stalled:  # and everything it read was delivered
                        self._mark_lost("the CometD client stopped polling")
                        await self._discard_client()
                        continue
                    # Only a client that polls no more is interrupted here: its queue is
                    # empty and stays so, and no message is lost with the wait.
                    if _QUEUE_SEAM:
                        try:
                            message = await client.receive()
                        except _WaitInterrupted:
                            continue  # the client is replaced
                    else:  # pragma: no cover - another version: its wait is cancelled
                        try:
                            with anyio.CancelScope() as self._receiving:
                                message = await client.receive()
                        finally:
                            self._receiving = None
                        if message is None:
                            continue  # interrupted: the client is replaced
            except asyncio.CancelledError:
                if cancelled_by_plugin() or cancelled_from_outside():
                    raise
                # One of the client's own tasks (its wait for a message) was cancelled from
                # outside, not this one: ask again.
                logger.info("cometd_receive_interrupted")
                continue
            except TransportTimeoutError:
                # Raised again after every further cometd_connection_timeout while the
                # server stays away: said once per loss (the client goes on trying).
                (logger.debug if self._lost else logger.warning)(
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
            except Exception as error:
                # Not the client's own error: the host's standard logging raising in its code
                # (a handler or filter). The client may be left half-way: replaced by a new
                # one, as one that stopped polling (outcomes may have been missed).
                logger.warning("cometd_receive_failed", error=type(error).__name__)
                self._mark_lost("the CometD client failed")
                await self._discard_client()
                continue
            if reopened:  # a message came through: the next loss starts the delays afresh
                delays = self.reconnect_policy.delays()
                reopened = False
            await deliver(message)

    async def _reopen(self, delays: Iterator[float]) -> None:
        delay = next(delays)
        logger.info("cometd_reopening", delay=delay)
        await anyio.sleep(delay)
        # A fresh client: anything published since the loss was missed. open() says the
        # session is back once the client is subscribed.
        self._lost = True
        try:
            await self.open()
        except (GWSTransportError, AiocometdException, aiohttp.ClientError, OSError) as error:
            logger.info("cometd_reopen_failed", error=str(error)[:300])
            self._set_state(CometDState.RECONNECTING, error=str(error)[:300])
        except Exception as error:
            # The client's code runs the host's standard logging: a handler or filter that
            # raises fails this attempt (the client was released), not the listener.
            logger.info("cometd_reopen_failed", error=type(error).__name__)
            self._set_state(CometDState.RECONNECTING, error=type(error).__name__)

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
                except Exception:  # its own errors, or the host's logging raising in it
                    return

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    await _logged_failure(client.close())
                tg.cancel_scope.cancel()
            if not client.closed:
                await client.cleanup_failed_open()
            else:
                # aiocometd marks the client closed in a ``finally``, also when its close
                # was cut short (the polite disconnect unanswered within _CLOSE_TIMEOUT):
                # its HTTP session, closed last, may still be open.
                await client.release()
