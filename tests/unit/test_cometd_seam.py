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
