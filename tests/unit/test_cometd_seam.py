"""Where the plugin uses aiocometd-noloop's internals (``_GWSClient`` in ``_cometd.py``): a
queued message is taken without ``receive()``'s round of tasks (``receive_queued``), and a
client that stopped polling is recognised by its polling task (``stopped_polling``). They are
written against the pinned version; these tests fail when that version or the code they rely
on changes, so that the seam is checked again before the pin moves."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import inspect
from typing import Any

import pytest
from aiocometd_noloop import Client
from aiocometd_noloop.exceptions import ServerError

from gws_outbound_plugin._cometd import (
    _QUEUE_SEAM,
    PINNED_AIOCOMETD,
    _GWSClient,
    _interval_to_seconds,
)

pytestmark = pytest.mark.anyio

#: sha256 of the source of what receive_queued stands in for and relies on, in 0.4.9:
#: Client.receive, _get_message, _verify_response, open (makes the queue), __init__.
SOURCE_DIGEST = "68e2d76448995f1b09548a3fbeca9b43c7e2c377216051a13aab63d8823757c0"


def test_the_pinned_version_is_installed_and_the_seam_is_on() -> None:
    assert importlib.metadata.version("aiocometd-noloop") == PINNED_AIOCOMETD
    assert _QUEUE_SEAM


def test_the_internals_the_seam_relies_on_are_unchanged() -> None:
    parts = [Client.receive, Client._get_message, Client._verify_response, Client.open]
    parts.append(Client.__init__)
    source = "".join(inspect.getsource(part) for part in parts)
    assert hashlib.sha256(source.encode()).hexdigest() == SOURCE_DIGEST, (
        "aiocometd-noloop's receive path changed: check _GWSClient.receive_queued against it"
    )


#: sha256 of the source of what ``_GWSClient.stopped_polling`` relies on, in 0.4.9: the
#: transport keeps its one polling task in ``_connect_task`` and starts the next from its
#: done callback (``_start_connect_task``, ``_connect_done``, ``_follow_advice``), and
#: ``disconnect`` cancels it.
POLLING_DIGEST = "5b9ab56c0c1f242266b939a9234fc663c4dd2039838f8ea397186062a9c03c3b"


def test_the_polling_internals_the_watch_relies_on_are_unchanged() -> None:
    from aiocometd_noloop.transports.base import TransportBase

    parts = [
        TransportBase._start_connect_task,
        TransportBase._connect_done,
        TransportBase._follow_advice,
        TransportBase.disconnect,
    ]
    source = "".join(inspect.getsource(part) for part in parts)
    assert hashlib.sha256(source.encode()).hexdigest() == POLLING_DIGEST, (
        "aiocometd-noloop's polling changed: check _GWSClient.stopped_polling against it"
    )


async def test_queued_messages_come_out_in_order_as_receive_gives_them() -> None:
    client = _GWSClient("http://127.0.0.1:1/cometd", verify_tls=True)
    assert client.receive_queued() is None  # not opened: no queue yet
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    client._incoming_queue = queue  # what open() makes
    first = {"channel": "/v2/me/outbound", "data": {"n": 1}}
    second = {"channel": "/v2/me/outbound", "data": {"n": 2}}
    refusal = {"channel": "/meta/subscribe", "successful": False, "error": "403::denied"}
    for message in (first, second, refusal, first):
        queue.put_nowait(message)
    assert client.receive_queued() == first
    assert client.receive_queued() == second
    with pytest.raises(ServerError):
        client.receive_queued()
    assert client.receive_queued() == first  # an error takes only its own message
    assert client.receive_queued() is None


@pytest.mark.parametrize(
    ("advised", "seconds", "capped"),
    [
        (0, 0.0, False),
        (300, 0.3, False),
        (2000, 2.0, False),  # the multiple-clients advice
        (-5, 0.0, False),
        (3_600_000, 5.0, True),
        (float("inf"), 5.0, True),  # Python's JSON parser reads Infinity and NaN
        (float("nan"), 5.0, True),
    ],
)
def test_the_advised_interval_is_in_milliseconds_and_capped(
    advised: float, seconds: float, capped: bool
) -> None:
    """aiocometd sleeps ``advice.interval`` seconds before its next long poll: an hour, or
    Infinity or NaN, made the listener deaf while connected (tests/faults/test_cometd_advice.py
    on the wire)."""
    message: dict[str, Any] = {"channel": "/meta/connect", "advice": {"interval": advised}}
    returned = _interval_to_seconds(message, 5.0)
    assert message["advice"]["interval"] == seconds
    assert (returned is not None) is capped


#: sha256 of the source of what ``_GWSClient._get_message`` relies on besides ``receive``'s
#: own path, in 0.4.9: the timeout it mirrors (``_wait_connection_timeout``, as
#: ``_GWSClient._wait_reconnected``), and the transport's one ``asyncio.Event`` per state, set when
#: the state is entered and cleared when it is left (its waiters are woken by the wait).
WAIT_DIGEST = "998c71656e7c28307c78aaf743592835e7380ffd44f9850d90e5b329a2d2b940"


def test_the_state_internals_the_wait_relies_on_are_unchanged() -> None:
    from aiocometd_noloop.transports.base import TransportBase

    parts = [
        Client._wait_connection_timeout,
        TransportBase.wait_for_state,
        TransportBase._set_state_event,
        TransportBase._state.fset,  # type: ignore[attr-defined]
        TransportBase.__init__,
    ]
    source = "".join(inspect.getsource(part) for part in parts)
    assert hashlib.sha256(source.encode()).hexdigest() == WAIT_DIGEST, (
        "aiocometd-noloop's transport states changed: check _GWSClient._get_message against them"
    )


async def test_queue_and_event_wake_a_future_put_in_their_waiters() -> None:
    """``_GWSClient._wait_once`` waits as ``asyncio.Queue.get()`` and ``asyncio.Event.wait()``
    do, with its own future in their lists: the first getter is woken by ``put_nowait``
    (and taken off the list), every waiter of an event by ``set()``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int] = asyncio.Queue()
    first, second = loop.create_future(), loop.create_future()
    queue._getters.extend((first, second))  # type: ignore[attr-defined]
    queue.put_nowait(1)
    assert first.done() and first.result() is None and not second.done()
    assert list(queue._getters) == [second]  # type: ignore[attr-defined]
    queue._wakeup_next(queue._getters)  # type: ignore[attr-defined]
    assert second.done()
    event = asyncio.Event()
    waiter = loop.create_future()
    event._waiters.append(waiter)  # type: ignore[attr-defined]
    event.set()
    assert waiter.result() is True


def _left_nothing_behind(queue: asyncio.Queue[Any], transport: Any) -> None:
    """No future of a wait is left in the queue's getters or the transport's events; the
    ``CONNECTING`` event keeps the client's one watch (``_GWSClient._watch_connecting``)."""
    from aiocometd_noloop.constants import TransportState

    assert not queue._getters  # type: ignore[attr-defined]
    for state, event in transport._state_events.items():
        assert len(event._waiters) <= (1 if state is TransportState.CONNECTING else 0)


def _client_on(state: Any) -> tuple[_GWSClient, asyncio.Queue[dict[str, object]], Any]:
    """A client whose transport (aiocometd's own, not started) is in ``state``."""
    from aiocometd_noloop.transports.long_polling import LongPollingTransport

    client = _GWSClient("http://127.0.0.1:1/cometd", verify_tls=True)
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    transport = LongPollingTransport(
        url="http://127.0.0.1:1/cometd", incoming_queue=queue, http_session=None
    )
    transport._state = state
    client._incoming_queue = queue
    client._transport = transport
    closed: list[bool] = []

    async def close() -> None:  # what ServerError closes: nothing was opened here
        closed.append(True)

    client.close = close  # type: ignore[method-assign]
    client.closed_calls = closed  # type: ignore[attr-defined]
    return client, queue, transport


async def test_the_wait_returns_a_message_then_the_servers_end_then_the_timeout() -> None:
    """The outcomes of aiocometd's ``_get_message``, in its order: a queued message first
    (also when the session ended meanwhile), then ``ServerError`` once the server ended the
    session (the client closed), then ``TransportTimeoutError`` once the transport was
    connecting for ``connection_timeout``; nothing is left behind in the queue's or the
    events' lists."""
    from aiocometd_noloop.constants import TransportState
    from aiocometd_noloop.exceptions import TransportTimeoutError

    client, queue, transport = _client_on(TransportState.CONNECTED)
    message = {"channel": "/v2/me/outbound", "data": {}}
    waiting = asyncio.ensure_future(client._get_message(10.0))
    await asyncio.sleep(0)
    queue.put_nowait(message)
    assert await waiting is message
    # The session ends during a wait: ServerError, the client closed.
    waiting = asyncio.ensure_future(client._get_message(10.0))
    await asyncio.sleep(0)
    transport._state = TransportState.SERVER_DISCONNECTED
    with pytest.raises(ServerError):
        await waiting
    assert client.closed_calls == [True]  # type: ignore[attr-defined]
    # Messages queued before still come first.
    queue.put_nowait(message)
    assert await client._get_message(10.0) is message
    # Connecting for longer than the timeout (here from before the wait): timed out.
    client, queue, transport = _client_on(TransportState.CONNECTING)
    with pytest.raises(TransportTimeoutError):
        await client._get_message(0.05)
    # Connecting, then connected again (long within the timeout): the wait goes on; the
    # countdown starts afresh when it is connecting again, and ends it.
    client, queue, transport = _client_on(TransportState.CONNECTED)
    waiting = asyncio.ensure_future(client._get_message(3600.0))
    await asyncio.sleep(0)
    transport._state = TransportState.CONNECTING
    for _ in range(3):
        await asyncio.sleep(0)
    transport._state = TransportState.CONNECTED
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    _left_nothing_behind(queue, transport)
    waiting = asyncio.ensure_future(client._get_message(0.05))
    await asyncio.sleep(0)
    transport._state = TransportState.CONNECTING
    with pytest.raises(TransportTimeoutError):
        await asyncio.wait_for(waiting, 30.0)  # a guard against a hang only
    _left_nothing_behind(queue, transport)


async def test_a_cancelled_wait_leaves_the_message_queued() -> None:
    """The waiting task cancelled in the loop turn in which the message was queued (woken,
    not resumed yet): the message stays in the queue for the next wait."""
    from aiocometd_noloop.constants import TransportState

    client, queue, _ = _client_on(TransportState.CONNECTED)
    message = {"channel": "/v2/me/outbound", "data": {}}
    waiting = asyncio.ensure_future(client._get_message(10.0))
    await asyncio.sleep(0)
    queue.put_nowait(message)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.qsize() == 1
    assert await client._get_message(10.0) is message


async def test_an_interrupted_wait_raises_and_leaves_the_queue_as_it_was() -> None:
    """``interrupt()`` ends a pending wait (the receive loop then replaces a client that polls
    no more); with no wait pending it does nothing and says so."""
    from aiocometd_noloop.constants import TransportState

    from gws_outbound_plugin._cometd import _WaitInterrupted

    client, queue, transport = _client_on(TransportState.CONNECTED)
    assert not client.interrupt()
    waiting = asyncio.ensure_future(client._get_message(10.0))
    await asyncio.sleep(0)
    assert client.interrupt()
    message = {"channel": "/v2/me/outbound", "data": {}}
    queue.put_nowait(message)  # the same loop turn: it stays queued
    with pytest.raises(_WaitInterrupted):
        await waiting
    assert not client.interrupt()
    assert await client._get_message(10.0) is message
    _left_nothing_behind(queue, transport)


async def test_two_waits_at_once_each_get_a_message_and_time_out_on_their_own() -> None:
    """A close drains the client (``receive()`` in a task of its own) while the listener's
    wait may still be pending: two waits on one client. Each takes one message; one that
    ends (here: cancelled) leaves the other's reconnection countdown running."""
    from aiocometd_noloop.constants import TransportState
    from aiocometd_noloop.exceptions import TransportTimeoutError

    client, queue, transport = _client_on(TransportState.CONNECTED)
    first = asyncio.ensure_future(client._get_message(10.0))
    second = asyncio.ensure_future(client._get_message(10.0))
    await asyncio.sleep(0)
    one, two = {"channel": "/a", "data": {}}, {"channel": "/b", "data": {}}
    queue.put_nowait(one)
    queue.put_nowait(two)
    assert {id(await first), id(await second)} == {id(one), id(two)}
    short = asyncio.ensure_future(client._get_message(0.05))
    long = asyncio.ensure_future(client._get_message(3600.0))
    await asyncio.sleep(0)
    transport._state = TransportState.CONNECTING  # both count down, each its own timeout
    await asyncio.sleep(0)
    long.cancel()
    with pytest.raises(TransportTimeoutError):
        await asyncio.wait_for(short, 30.0)  # a guard against a hang only
    with pytest.raises(asyncio.CancelledError):
        await long
    _left_nothing_behind(queue, transport)
