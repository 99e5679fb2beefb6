"""A Bayeux 1.0 server, long-polling only, the way GWS 8.5 runs CometD.

This module knows nothing about HTTP: the HTTP layer authenticates handshakes and passes
the decoded messages of one POST to :meth:`BayeuxServer.handle`, which answers with the
reply messages. Events reach a client only in the answer to its ``/meta/connect``.

Rules (see ``docs/simulator.md``):

* a ``/meta/connect`` is held up to ``connect_timeout`` seconds (or the ``advice.timeout``
  the client sent, when shorter) and answered as soon as a message is queued for its
  client; the first connect after a handshake and a connect sent together with other
  messages are answered at once; a new connect releases the one being held; the
  ``hold_fault`` callback (the ``hold_connects`` fault) may name a different hold for a
  connect about to be held, without changing the advice, and the ``refuse_fault`` callback
  (the ``refuse_connects`` fault) may have a connect refused instead;
* a client that has not polled (no connect in progress) for ``session_timeout`` seconds is
  forgotten; messages naming an unknown client get ``402::Unknown client`` with
  ``advice.reconnect = "handshake"``;
* each client's queue holds at most ``max_queue`` messages; beyond that the oldest are
  dropped (and counted);
* clients may not publish: ``403::Publish denied``;
* subscribing to a forbidden channel (the ``forbidden`` callback says which) is refused
  with ``403::Forbidden channel``, and nothing published on such a channel is delivered
  (not even to a wildcard subscription).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._log import get_logger

__all__ = ["DEFAULT_MAX_QUEUE", "BatchResult", "BayeuxServer", "ServerStopping", "channel_matches"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

DEFAULT_MAX_QUEUE = 10_000
LONG_POLLING = "long-polling"

_HANDSHAKE = "/meta/handshake"
_CONNECT = "/meta/connect"
_SUBSCRIBE = "/meta/subscribe"
_UNSUBSCRIBE = "/meta/unsubscribe"
_DISCONNECT = "/meta/disconnect"

# Why a held connect was woken up.
_WAKE_MESSAGE = "message"
_WAKE_TAKEOVER = "takeover"
_WAKE_GONE = "gone"
_WAKE_DISCONNECTED = "disconnected"
_WAKE_STOPPING = "stopping"
_WAKE_TIMEOUT = "timeout"


class ServerStopping(Exception):
    """A held connect was interrupted because the simulator is stopping."""


@dataclass(eq=False, slots=True)
class _Client:
    client_id: str
    username: str
    last_seen: float
    subscriptions: set[str] = field(default_factory=set)
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    waiter: asyncio.Future[str] | None = None
    polling: bool = False
    connected: bool = False
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Replies to one POST, plus what the HTTP layer wants to know about it."""

    replies: list[dict[str, Any]]
    username: str | None
    handshake_succeeded: bool


def channel_matches(pattern: str, channel: str) -> bool:
    """Bayeux channel matching with ``/*`` (one segment) and ``/**`` (any depth) wildcards."""
    if pattern == channel:
        return True
    if pattern.endswith("/**"):
        prefix = pattern[:-2]
        return channel.startswith(prefix) and len(channel) > len(prefix)
    if pattern.endswith("/*"):
        prefix = pattern[:-1]
        rest = channel[len(prefix) :]
        return channel.startswith(prefix) and bool(rest) and "/" not in rest
    return False


def _valid_subscription(channel: object) -> bool:
    return (
        isinstance(channel, str)
        and channel.startswith("/")
        and len(channel) > 1
        and not channel.startswith("/meta/")
        and "//" not in channel
    )


class BayeuxServer:
    """Clients, subscriptions, queues and the Bayeux meta-channel protocol.

    :param hold_fault: called once for each connect about to be held; seconds to hold it
        instead of the usual time, or ``None`` for the usual time.
    :param advice_fault: called once for each successful connect reply about to be sent; what
        to change in its advice (``interval``, ``reconnect``), or ``None``.
    :param refuse_fault: called once for each ``/meta/connect`` of a known client; the
        ``error`` and ``advice`` (or ``None`` for no advice) of an unsuccessful reply to send
        instead of connecting it, or ``None`` to connect it as usual.
    :param handshake_fault: called once for each authenticated ``/meta/handshake``; the
        ``error`` and ``advice`` of an unsuccessful reply to send instead, or ``None``.
    :param subscribe_fault: called with the subscription of each ``/meta/subscribe`` of a
        known client; a number of seconds: the client is forgotten first, and the message
        answered ``402::Unknown client`` that many seconds later.
    :param forbidden: tells whether a channel may not be subscribed to (nor delivered).
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        session_timeout: float,
        max_queue: int = DEFAULT_MAX_QUEUE,
        hold_fault: Callable[[], float | None] | None = None,
        advice_fault: Callable[[], dict[str, Any] | None] | None = None,
        refuse_fault: Callable[[], tuple[str, dict[str, Any] | None] | None] | None = None,
        handshake_fault: Callable[[], tuple[str, dict[str, Any] | None] | None] | None = None,
        subscribe_fault: Callable[[object], float | None] | None = None,
        forbidden: Callable[[str], bool] | None = None,
    ) -> None:
        self._forbidden = forbidden or (lambda channel: False)
        self._connect_timeout = connect_timeout
        self._session_timeout = session_timeout
        self._max_queue = max_queue
        self._hold_fault = hold_fault
        self._advice_fault = advice_fault
        self._refuse_fault = refuse_fault
        self._handshake_fault = handshake_fault
        self._subscribe_fault = subscribe_fault
        self._clients: dict[str, _Client] = {}

    # ------------------------------------------------------------------ inspection
    @property
    def client_count(self) -> int:
        self.sweep()
        return len(self._clients)

    def _advice(self) -> dict[str, Any]:
        return {
            "reconnect": "retry",
            "interval": 0,
            "timeout": round(self._connect_timeout * 1000),
        }

    def _expired(self, client: _Client, now: float) -> bool:
        return not client.polling and now - client.last_seen > self._session_timeout

    def _lookup(self, client_id: object) -> _Client | None:
        if not isinstance(client_id, str):
            return None
        client = self._clients.get(client_id)
        if client is None:
            return None
        if self._expired(client, time.monotonic()):
            self._drop(client, _WAKE_GONE)
            return None
        return client

    def _drop(self, client: _Client, reason: str) -> None:
        self._clients.pop(client.client_id, None)
        if client.waiter is not None and not client.waiter.done():
            client.waiter.set_result(reason)

    def sweep(self) -> None:
        """Forget every client that has not polled for ``session_timeout`` seconds."""
        now = time.monotonic()
        for client in [c for c in self._clients.values() if self._expired(c, now)]:
            self._drop(client, _WAKE_GONE)

    def forget_all(self, *, stopping: bool = False) -> int:
        """Forget every client; held connects answer 402 (or end the connection if stopping)."""
        clients = list(self._clients.values())
        for client in clients:
            self._drop(client, _WAKE_STOPPING if stopping else _WAKE_GONE)
        return len(clients)

    # ------------------------------------------------------------------ publishing
    def publish(self, username: str, channel: str, data: dict[str, Any]) -> int:
        """Queue ``data`` on ``channel`` for ``username``'s subscribed clients; count them."""
        message = {"channel": channel, "data": data}
        now = time.monotonic()
        recipients = 0
        if self._forbidden(channel):
            return recipients
        for client in list(self._clients.values()):
            if client.username != username:
                continue
            if self._expired(client, now):
                self._drop(client, _WAKE_GONE)
                continue
            if not any(channel_matches(pattern, channel) for pattern in client.subscriptions):
                continue
            if len(client.queue) >= self._max_queue:
                client.queue.popleft()
                client.dropped += 1
                if client.dropped == 1:
                    logger.warning(
                        "gws_simulator_cometd_queue_full",
                        username=username,
                        max_queue=self._max_queue,
                    )
            client.queue.append(message)
            recipients += 1
            if client.waiter is not None and not client.waiter.done():
                client.waiter.set_result(_WAKE_MESSAGE)
        return recipients

    # ------------------------------------------------------------------- protocol
    async def handle(self, messages: list[Any], username: str | None) -> BatchResult:
        """Answer the messages of one POST.

        :param username: the GWS user the POST authenticated as; required for a handshake
            (the HTTP layer refuses unauthenticated handshakes before calling this).
        :raises ServerStopping: when a held connect is interrupted by a simulator stop.
        """
        replies: list[dict[str, Any]] = []
        client_user: str | None = None
        handshake_ok = False
        alone = len(messages) == 1
        for message in messages:
            if not isinstance(message, dict):
                replies.append({"successful": False, "error": "400::Message is not a JSON object"})
                continue
            channel = message.get("channel")
            if not isinstance(channel, str) or not channel:
                replies.append(_failure(message, None, "400::Missing channel"))
                continue
            if channel == _HANDSHAKE:
                reply = self._handshake(message, username)
                if reply.get("successful") is True:
                    handshake_ok = True
                    client_user = client_user or username
                replies.append(reply)
                continue
            if not channel.startswith("/meta/"):
                replies.append(_failure(message, channel, "403::Publish denied"))
                continue
            if channel not in (_CONNECT, _SUBSCRIBE, _UNSUBSCRIBE, _DISCONNECT):
                replies.append(_failure(message, channel, "400::Unknown meta channel"))
                continue
            client = self._lookup(message.get("clientId"))
            if client is None:
                replies.append(_unknown_client(message, channel))
                continue
            client_user = client_user or client.username
            if channel == _CONNECT:
                refusal = self._refuse_fault() if self._refuse_fault is not None else None
                if refusal is not None:
                    client.last_seen = time.monotonic()
                    reply = _failure(message, channel, refusal[0])
                    reply["clientId"] = client.client_id
                    if refusal[1] is not None:
                        reply["advice"] = refusal[1]
                    replies.append(reply)
                    continue
                replies.extend(await self._connect(client, message, may_hold=alone))
            elif channel == _SUBSCRIBE:
                forget = self._subscribe_fault
                late = None if forget is None else forget(message.get("subscription"))
                if late is not None:
                    self._drop(client, _WAKE_GONE)
                    if late > 0:
                        await asyncio.sleep(late)
                    replies.append(_unknown_client(message, channel))
                    continue
                replies.append(self._subscribe(client, message, add=True))
            elif channel == _UNSUBSCRIBE:
                replies.append(self._subscribe(client, message, add=False))
            else:
                self._drop(client, _WAKE_DISCONNECTED)
                replies.append(_success(message, channel, client.client_id))
        return BatchResult(replies=replies, username=client_user, handshake_succeeded=handshake_ok)

    def _handshake(self, message: dict[str, Any], username: str | None) -> dict[str, Any]:
        if username is None:
            reply = _failure(message, _HANDSHAKE, "403::Handshake denied")
            reply["advice"] = {"reconnect": "none", "interval": 0}
            return reply
        refusal = self._handshake_fault() if self._handshake_fault is not None else None
        if refusal is not None:
            reply = _failure(message, _HANDSHAKE, refusal[0])
            if refusal[1] is not None:
                reply["advice"] = refusal[1]
            return reply
        offered = message.get("supportedConnectionTypes")
        if isinstance(offered, list) and LONG_POLLING not in offered:
            reply = _failure(message, _HANDSHAKE, "400::No common connection type")
            reply["supportedConnectionTypes"] = [LONG_POLLING]
            reply["advice"] = {"reconnect": "none", "interval": 0}
            return reply
        client = _Client(
            client_id=secrets.token_hex(16),
            username=username,
            last_seen=time.monotonic(),
        )
        self._clients[client.client_id] = client
        reply = {
            "channel": _HANDSHAKE,
            "version": "1.0",
            "supportedConnectionTypes": [LONG_POLLING],
            "clientId": client.client_id,
            "successful": True,
            "advice": self._advice(),
        }
        if "id" in message:
            reply["id"] = message["id"]
        return reply

    async def _connect(
        self, client: _Client, message: dict[str, Any], *, may_hold: bool
    ) -> list[dict[str, Any]]:
        connection_type = message.get("connectionType")
        if connection_type is not None and connection_type != LONG_POLLING:
            return [_failure(message, _CONNECT, "400::Unsupported connection type")]
        # A newer connect takes over from the one being held.
        if client.waiter is not None and not client.waiter.done():
            client.waiter.set_result(_WAKE_TAKEOVER)
        client.last_seen = time.monotonic()
        hold_for = self._connect_timeout
        advice = message.get("advice")
        if isinstance(advice, dict):
            asked = advice.get("timeout")
            if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
                hold_for = min(hold_for, asked / 1000)
        first = not client.connected
        client.connected = True
        reason = _WAKE_MESSAGE
        if may_hold and not first and not client.queue:
            faulty = self._hold_fault() if self._hold_fault is not None else None
            if faulty is not None:
                hold_for = faulty
            if hold_for > 0:
                reason = await self._hold(client, hold_for)
        if reason == _WAKE_STOPPING:
            raise ServerStopping
        if reason == _WAKE_GONE:
            return [_unknown_client(message, _CONNECT)]
        reply = _success(message, _CONNECT, client.client_id)
        reply["advice"] = self._advice()
        if reason == _WAKE_DISCONNECTED:
            reply["advice"] = {"reconnect": "none", "interval": 0}
            return [reply]
        if reason == _WAKE_TAKEOVER:
            return [reply]
        changed = self._advice_fault() if self._advice_fault is not None else None
        if changed:
            reply["advice"] = {**reply["advice"], **changed}
        events = list(client.queue)
        client.queue.clear()
        client.last_seen = time.monotonic()
        return [*events, reply]

    async def _hold(self, client: _Client, seconds: float) -> str:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        client.waiter = waiter
        client.polling = True
        try:
            async with asyncio.timeout(seconds):
                return await waiter
        except TimeoutError:
            return _WAKE_TIMEOUT
        finally:
            client.last_seen = time.monotonic()
            # After a takeover the newer connect owns the client's waiter and polling flag.
            if client.waiter is waiter:
                client.waiter = None
                client.polling = False

    def _subscribe(self, client: _Client, message: dict[str, Any], *, add: bool) -> dict[str, Any]:
        channel = _SUBSCRIBE if add else _UNSUBSCRIBE
        subscription = message.get("subscription")
        wanted: list[object]
        if isinstance(subscription, str):
            wanted = [subscription]
        elif isinstance(subscription, list) and subscription:
            wanted = list(subscription)
        else:
            reply = _failure(message, channel, "400::Missing subscription")
            reply["clientId"] = client.client_id
            return reply
        if not all(_valid_subscription(item) for item in wanted):
            reply = _failure(message, channel, "403::Subscription denied")
            reply["clientId"] = client.client_id
            reply["subscription"] = subscription
            return reply
        if add and any(isinstance(item, str) and self._forbidden(item) for item in wanted):
            reply = _failure(message, channel, "403::Forbidden channel")
            reply["clientId"] = client.client_id
            reply["subscription"] = subscription
            return reply
        for item in (entry for entry in wanted if isinstance(entry, str)):
            if add:
                client.subscriptions.add(item)
            else:
                client.subscriptions.discard(item)
        reply = _success(message, channel, client.client_id)
        reply["subscription"] = subscription
        return reply


def _success(message: dict[str, Any], channel: str, client_id: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"channel": channel, "successful": True, "clientId": client_id}
    if "id" in message:
        reply["id"] = message["id"]
    return reply


def _failure(message: dict[str, Any], channel: str | None, error: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"successful": False, "error": error}
    if channel is not None:
        reply["channel"] = channel
    if "id" in message:
        reply["id"] = message["id"]
    return reply


def _unknown_client(message: dict[str, Any], channel: str) -> dict[str, Any]:
    reply = _failure(message, channel, "402::Unknown client")
    reply["advice"] = {"reconnect": "handshake", "interval": 0}
    return reply
