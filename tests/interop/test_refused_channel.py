"""A CometD server whose security policy refuses ``/me/internal`` (cometd-nodejs-server's
``canSubscribe``, answering ``403::subscribe_denied``): the listener starts anyway, warns once,
reports the channel in ``refused_channels`` and asks again, silently, after every re-handshake.
A refused ``/v2/me/outbound`` fails the start with a clear error.

The gws-outbound reference knows ``/me/internal`` from the seed only (§10.8): a real GWS may
refuse it. These tests drive the listener itself (no engine), on the GWS session.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from gws_outbound_plugin import CometDState, GWSTransportError
from gws_outbound_plugin._cometd import CometDListener, CometDMessage
from gws_outbound_plugin._session import GWSSession

from .support import StandIn
from .test_listener_vs_cometd_server import (
    DELIVERY_TIMEOUT,
    INTERNAL,
    OUTBOUND,
    RECOVERY_TIMEOUT,
    cancel_ack_messages,
    config_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

_handles = itertools.count(5001)


class Listening:
    """A listener on a GWS session, running, with what it delivered and reported."""

    def __init__(self, listener: CometDListener) -> None:
        self.listener = listener
        self.messages: list[CometDMessage] = []
        self.lost: list[str] = []
        self.restored = 0
        self._changed = anyio.Event()

    async def deliver(self, message: CometDMessage) -> None:
        self.messages.append(message)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, condition: Any, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                with anyio.move_on_after(0.05):
                    await self._changed.wait()

    def channels_seen(self) -> list[str]:
        return [str(m.get("channel")) for m in self.messages]


@asynccontextmanager
async def listening(standin: StandIn) -> AsyncIterator[Listening]:
    config = config_for(standin, "127.0.0.1")
    session = GWSSession(config)
    await session.open()
    holder: list[Listening] = []
    listener = CometDListener(
        config,
        session,
        [OUTBOUND, INTERNAL],
        on_lost=lambda why: holder[0].lost.append(why),
        on_restored=lambda: setattr(holder[0], "restored", holder[0].restored + 1),
    )
    running = Listening(listener)
    holder.append(running)
    try:
        await listener.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.run, running.deliver)
            try:
                yield running
            finally:
                tg.cancel_scope.cancel()
    finally:
        await listener.close()
        await session.close()


def refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "cometd_subscription_refused"]


async def publish_both(standin: StandIn) -> tuple[dict[str, Any], str]:
    reference_id = uuid.uuid4().hex
    answer = await standin.publish(*cancel_ack_messages(next(_handles), reference_id))
    return answer, reference_id


async def rehandshake(standin: StandIn, running: Listening, handshakes: int) -> None:
    """Expire the Bayeux session; wait for the listener's handshake number ``handshakes``
    and for it to be connected again."""
    restored = running.restored
    await standin.drop_sessions("expire")
    with anyio.fail_after(RECOVERY_TIMEOUT):
        while running.restored == restored:
            await anyio.sleep(0.05)
    assert len((await standin.state())["handshakes"]) == handshakes
    assert running.listener.state is CometDState.CONNECTED


async def test_a_refused_internal_channel_does_not_stop_the_listener(tmp_path: Path) -> None:
    standin = StandIn(tmp_path / "standin.log", server_options=["--refuse-channel", INTERNAL])
    await standin.start()
    try:
        with structlog.testing.capture_logs() as logs:
            async with listening(standin) as running:
                listener = running.listener
                assert listener.state is CometDState.CONNECTED
                assert listener.refused_channels == (INTERNAL,)
                [warning] = refusals(logs)
                assert warning["log_level"] == "warning"
                assert warning["channel"] == INTERNAL
                assert warning["error"] == "403::subscribe_denied"
                state = await standin.state()
                assert state["subscriptions"] == {OUTBOUND: 1}
                assert [r["subscription"] for r in state["refusedSubscribes"]] == [INTERNAL]

                # The outbound channel works; nothing arrives on the refused one.
                answer, reference_id = await publish_both(standin)
                assert answer["subscribers"] == {OUTBOUND: 1, INTERNAL: 0}, answer
                await running.wait_for(lambda: running.messages, DELIVERY_TIMEOUT)
                [message] = running.messages
                assert message["channel"] == OUTBOUND
                assert message["data"]["referenceId"] == reference_id

                # Re-handshake: the listener asks again, silently, and keeps the list true.
                await rehandshake(standin, running, handshakes=2)
                with anyio.fail_after(RECOVERY_TIMEOUT):
                    while len((await standin.state())["refusedSubscribes"]) < 2:
                        await anyio.sleep(0.05)
                assert listener.refused_channels == (INTERNAL,)
                assert len(refusals(logs)) == 1  # warned once, not at every re-handshake
                assert running.lost == ["402::session_unknown"]

                # The server relents: after the next re-handshake the channel is subscribed.
                await standin.refuse_channels()
                await rehandshake(standin, running, handshakes=3)
                with anyio.fail_after(RECOVERY_TIMEOUT):
                    while listener.refused_channels:
                        await anyio.sleep(0.05)
                assert (await standin.state())["subscriptions"] == {OUTBOUND: 1, INTERNAL: 1}
                answer, _ = await publish_both(standin)
                assert answer["subscribers"] == {OUTBOUND: 1, INTERNAL: 1}, answer
                await running.wait_for(
                    lambda: running.channels_seen().count(INTERNAL) == 1, DELIVERY_TIMEOUT
                )
        assert len(refusals(logs)) == 1
        accepted = [e for e in logs if e["event"] == "cometd_subscription_accepted"]
        assert [e["channel"] for e in accepted] == [INTERNAL]
    finally:
        await standin.stop()


async def test_a_channel_refused_after_a_rehandshake_is_reported(standin: StandIn) -> None:
    with structlog.testing.capture_logs() as logs:
        async with listening(standin) as running:
            listener = running.listener
            assert listener.refused_channels == ()
            await standin.refuse_channels(INTERNAL)
            await rehandshake(standin, running, handshakes=2)
            with anyio.fail_after(RECOVERY_TIMEOUT):
                while not listener.refused_channels:
                    await anyio.sleep(0.05)
            assert listener.refused_channels == (INTERNAL,)
            assert (await standin.state())["subscriptions"] == {OUTBOUND: 1}
            answer, _ = await publish_both(standin)
            await running.wait_for(lambda: running.messages, DELIVERY_TIMEOUT)
            assert running.channels_seen() == [OUTBOUND]
            assert answer["subscribers"][INTERNAL] == 0
    [warning] = refusals(logs)
    assert warning["channel"] == INTERNAL and warning["log_level"] == "warning"


async def test_a_refused_outbound_channel_fails_the_start(tmp_path: Path) -> None:
    standin = StandIn(tmp_path / "standin.log", server_options=["--refuse-channel", OUTBOUND])
    await standin.start()
    try:
        config = config_for(standin, "127.0.0.1")
        session = GWSSession(config)
        await session.open()
        try:
            listener = CometDListener(
                config,
                session,
                [OUTBOUND, INTERNAL],
                on_lost=lambda why: None,
                on_restored=lambda: None,
            )
            with pytest.raises(GWSTransportError) as info:
                await listener.open()
            message = str(info.value)
            assert message == (
                f"the CometD server at http://127.0.0.1:{standin.port}/api/v2/notifications "
                f"refused the subscription to {OUTBOUND} (403::subscribe_denied); without it "
                "no acknowledgement can be heard"
            )
            assert listener.state is CometDState.CLOSED
        finally:
            await session.close()
        assert (await standin.state())["sessions"] == 0  # the half-open session was closed
    finally:
        await standin.stop()
