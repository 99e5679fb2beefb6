"""Our CometD listener against the CometD project's NodeJS server (cometd-nodejs-server).

The server is wrapped in a small Node GWS stand-in (``gws_standin.cjs``): GWS REST login,
the Bayeux endpoint at ``/api/v2/notifications`` (handshake only with the session cookie or
Basic credentials) and a control interface to publish GWS-shaped messages, drop the Bayeux
sessions and restart the server. The main scenarios run with the host given as
``127.0.0.1`` and as ``localhost``: cookie handling differs between the two.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiocometd_noloop.exceptions import TransportError

from gws_outbound_plugin import (
    CometDState,
    GWSConfig,
    GWSTransportError,
    OutboundPlugin,
    make_plugin_manager,
)
from gws_outbound_plugin._cometd import CometDListener
from gws_outbound_plugin._session import GWSSession

from .support import Recorder, StandIn

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

HOSTS = ["127.0.0.1", "localhost"]
OUTBOUND = "/v2/me/outbound"
INTERNAL = "/me/internal"
DEVICE_ID = "3a1b6c1e-53c4-4b2c-9d1f-0c6d1f1d2a11"
#: Generous bound on how long one message may take to reach a hook on loopback.
DELIVERY_TIMEOUT = 5.0
#: Bound on recovering from a lost session (402, server restart).
RECOVERY_TIMEOUT = 10.0

_handles = itertools.count(1001)


def config_for(standin: StandIn, host: str, **overrides: Any) -> GWSConfig:
    settings: dict[str, Any] = dict(
        base_url=standin.base_url(host),
        username="agent1",
        password="secret",
        # Keep reconnection quick for the restart test (the default is 30 s).
        reconnect_backoff_max=1.0,
        cometd_connection_timeout=5.0,
        drain_timeout=1.0,
    )
    settings.update(overrides)
    return GWSConfig(**settings)


@asynccontextmanager
async def running_plugin(
    standin: StandIn, host: str, **overrides: Any
) -> AsyncIterator[tuple[OutboundPlugin, Recorder, float]]:
    pm = make_plugin_manager(load_entrypoints=False)
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    started = time.perf_counter()
    # (Not bounded by a cancel scope: entering starts the plugin's task group.)
    async with OutboundPlugin(pm, config_for(standin, host, **overrides)) as plugin:
        opened = time.perf_counter() - started
        yield plugin, recorder, opened


def cancel_ack_messages(
    handle: int, reference_id: str
) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
    """The two GWS messages of one cancel acknowledgement (gws-outbound.md 4.4, 4.5)."""
    outbound = {
        "messageType": "OutboundRecordMessage",
        "notificationType": "RecordCancelAcknowledge",
        "referenceId": reference_id,
        "record": {
            "devicePath": f"/devices/{DEVICE_ID}",
            "callingList": "CallingList1",
            "applicationId": 134,
            "recordHandle": handle,
            "campaignName": "Campaign1",
        },
    }
    user_event = {
        "messageType": "DeviceUserEventMessage",
        "deviceId": DEVICE_ID,
        "userData": {
            "GSW_CHAIN_ATTR": "AllChain",
            "GSW_APPLICATION_ID": 134,
            "GSW_RECORD_HANDLE": handle,
            "GSW_USER_EVENT": "RecordCancelAcknowledge",
            "GSW_CALLING_LIST": "CallingList1",
            "GSW_PHONE": "5551234",
            "GSW_CAMPAIGN_NAME": "Campaign1",
        },
        "metrics": {
            "eventProcessing": {
                "serverGenerationTimestamp": int(time.time() * 1000),
                "nodeProcessingTimeNanos": 125_000,
                "serverProcessingTimeTotalMs": 1,
            }
        },
    }
    return (OUTBOUND, outbound), (INTERNAL, user_event)


async def assert_acknowledgement_arrives(standin: StandIn, recorder: Recorder) -> None:
    """Publish one (foreign) cancel acknowledgement and see it reach the dispatcher."""
    handle = next(_handles)
    reference_id = uuid.uuid4().hex
    answer = await standin.publish(*cancel_ack_messages(handle, reference_id))
    assert answer["subscribers"] == {OUTBOUND: 1, INTERNAL: 1}, answer

    def arrived() -> bool:
        return any(a.reference_id == reference_id for a in recorder.acks) and any(
            e.user_data.get("GSW_RECORD_HANDLE") == handle for e in recorder.events
        )

    await recorder.wait_for(arrived, DELIVERY_TIMEOUT)
    (ack,) = [a for a in recorder.acks if a.reference_id == reference_id]
    assert ack.request is None  # not ours: a "foreign" acknowledgement
    assert ack.record_handle == handle
    assert ack.application_id == 134
    assert ack.campaign_name == "Campaign1"
    assert ack.calling_list == "CallingList1"
    assert ack.phone_number == "5551234"
    assert ack.device_id == DEVICE_ID
    assert ack.metrics is not None


@pytest.mark.parametrize("host", HOSTS)
async def test_open_is_fast_and_bound_to_the_gws_session(standin: StandIn, host: str) -> None:
    async with running_plugin(standin, host) as (plugin, _, opened):
        # cometd-nodejs-server holds a /meta/connect for 30 s when nothing is published:
        # the first connect must not be held.
        assert opened < 1.0, f"open took {opened:.2f}s"
        assert plugin.cometd_state is CometDState.CONNECTED
        state = await standin.state()
        # One handshake, made on the HTTP session of the REST login (JSESSIONID).
        assert [h["auth"] for h in state["handshakes"]] == ["cookie"]
        assert state["httpSessionsIssued"] == {"rest": 1, "bayeux": 0}
        assert state["bayeuxRequests"]["basic"] == 0
        assert state["subscriptions"] == {OUTBOUND: 1, INTERNAL: 1}
        assert state["sessions"] == 1
        assert state["denied"] == 0
        # The listener keeps long-polling (its connect is held, not refused).
        await anyio.sleep(0.3)
        assert plugin.cometd_state is CometDState.CONNECTED
    state = await standin.state()
    assert state["disconnects"] == 1
    assert state["sessions"] == 0


@pytest.mark.parametrize("host", HOSTS)
async def test_both_message_kinds_reach_the_dispatcher(standin: StandIn, host: str) -> None:
    async with running_plugin(standin, host) as (_, recorder, _):
        # Published one by one: each wakes the held /meta/connect.
        handle = next(_handles)
        reference_id = uuid.uuid4().hex
        await standin.publish(*cancel_ack_messages(handle, reference_id), batch=False)
        await recorder.wait_for(lambda: len(recorder.acks) == 1, DELIVERY_TIMEOUT)
        assert recorder.acks[0].reference_id == reference_id
        assert recorder.acks[0].request is None
        assert [e.user_data["GSW_RECORD_HANDLE"] for e in recorder.events] == [handle]

        # Published in one server-side batch: both in one /meta/connect response.
        await assert_acknowledgement_arrives(standin, recorder)

        # A user event on its own goes to on_user_event only.
        alone = {
            "messageType": "DeviceUserEventMessage",
            "deviceId": DEVICE_ID,
            "userData": {
                "GSW_USER_EVENT": "RecordRejectAcknowledge",
                "GSW_APPLICATION_ID": 134,
                "GSW_RECORD_HANDLE": next(_handles),
                "GSW_CALLING_LIST": "CallingList1",
                "GSW_CAMPAIGN_NAME": "Campaign1",
            },
        }
        await standin.publish((INTERNAL, alone))
        await recorder.wait_for(
            lambda: any(e.user_event == "RecordRejectAcknowledge" for e in recorder.events),
            DELIVERY_TIMEOUT,
        )
        (event,) = [e for e in recorder.events if e.user_event == "RecordRejectAcknowledge"]
        assert event.channel == INTERNAL
        assert event.device_id == DEVICE_ID
        assert len(recorder.acks) == 2


@pytest.mark.parametrize("how", ["expire", "disconnect"])
@pytest.mark.parametrize("host", HOSTS)
async def test_recovers_after_the_server_drops_the_session(
    standin: StandIn, host: str, how: str
) -> None:
    async with running_plugin(standin, host) as (plugin, recorder, _):
        await assert_acknowledgement_arrives(standin, recorder)
        answer = await standin.drop_sessions(how)
        assert answer["dropped"] == 1

        # 402::session_unknown (or a server-side /meta/disconnect): the listener must
        # handshake and subscribe again on its own.
        async def resubscribed() -> None:
            while True:
                state = await standin.state()
                if len(state["handshakes"]) >= 2 and state["subscriptions"] == {
                    OUTBOUND: 1,
                    INTERNAL: 1,
                }:
                    return
                await anyio.sleep(0.05)

        with anyio.fail_after(RECOVERY_TIMEOUT):
            await resubscribed()
        await plugin.wait_connected(RECOVERY_TIMEOUT)
        state = await standin.state()
        assert state["sessions"] == 1, state
        await assert_acknowledgement_arrives(standin, recorder)
        assert plugin.cometd_state is CometDState.CONNECTED


@pytest.mark.parametrize("host", HOSTS)
async def test_recovers_after_a_server_restart(standin: StandIn, host: str) -> None:
    async with running_plugin(standin, host) as (plugin, recorder, _):
        await assert_acknowledgement_arrives(standin, recorder)

        await standin.restart()  # killed: every Bayeux and HTTP session is gone

        async def resubscribed() -> None:
            while True:
                state = await standin.state()
                if state["subscriptions"] == {OUTBOUND: 1, INTERNAL: 1}:
                    return
                await anyio.sleep(0.05)

        with anyio.fail_after(RECOVERY_TIMEOUT):
            await resubscribed()
        await plugin.wait_connected(RECOVERY_TIMEOUT)
        state = await standin.state()
        # The new process knows neither JSESSIONID nor BAYEUX_BROWSER. The Basic credentials
        # the listener sends along got its first Bayeux request in; the JSESSIONID issued on
        # that Bayeux response was kept (no REST login in between) and carried the handshake.
        assert state["httpSessionsIssued"] == {"rest": 0, "bayeux": 1}
        assert state["bayeuxRequests"]["basic"] == 1
        assert [h["auth"] for h in state["handshakes"]] == ["cookie"]
        assert state["sessions"] == 1
        await assert_acknowledgement_arrives(standin, recorder)
        assert plugin.cometd_state is CometDState.CONNECTED


@pytest.mark.parametrize(
    "server_options",
    [
        pytest.param(["--interval", "300"], id="interval"),
        # Every /meta/connect is answered at once with the advice the CometD servers give a
        # browser that already has a long poll in progress (two tabs, or a stale session
        # sharing BAYEUX_BROWSER): {"multiple-clients": true, "interval": <ms>}.
        pytest.param(
            ["--max-sessions-per-browser", "0", "--multi-session-interval", "300"],
            id="multiple-clients",
        ),
    ],
)
async def test_follows_interval_advice_in_milliseconds(
    tmp_path: Path, server_options: list[str]
) -> None:
    """Bayeux ``advice.interval`` is in milliseconds. aiocometd waited that many *seconds*
    before polling again: 300 ms became 5 minutes without messages (docs/interop.md)."""
    standin = StandIn(tmp_path / "standin.log", server_options=server_options)
    await standin.start()
    try:
        async with running_plugin(standin, "127.0.0.1") as (plugin, recorder, _):
            for _ in range(3):
                await assert_acknowledgement_arrives(standin, recorder)
            # ... while still waiting between polls as advised, not hammering the server.
            before = (await standin.state())["connects"]
            await anyio.sleep(1.0)
            polls = (await standin.state())["connects"] - before
            assert polls <= 5, f"{polls} connects in 1 s with a 300 ms interval"
            assert plugin.cometd_state is CometDState.CONNECTED
    finally:
        await standin.stop()


async def test_a_refused_bayeux_request_is_a_transport_error(standin: StandIn) -> None:
    """The GWS session expired and the credentials were changed between the REST login and
    the handshake: the stand-in answers HTTP 401 with GWS's JSON body. aiocometd (and our
    extension) used to fail on that body with AttributeError/TypeError."""
    config = config_for(standin, "127.0.0.1")
    session = GWSSession(config)
    await session.open()
    try:
        await standin.set_password("agent1", "changed")
        await standin.drop_http_sessions()
        listener = CometDListener(
            config, session, [OUTBOUND], on_lost=lambda why: None, on_restored=lambda: None
        )
        with pytest.raises(GWSTransportError, match="statusCode 20") as info:
            await listener.open()
        assert isinstance(info.value.__cause__, TransportError)
        assert listener.state is CometDState.CLOSED
    finally:
        await session.close()
    assert (await standin.state())["denied"] == 1


async def test_recovers_once_refused_credentials_are_accepted_again(standin: StandIn) -> None:
    async with running_plugin(standin, "127.0.0.1", cometd_connection_timeout=2.0) as (
        plugin,
        recorder,
        _,
    ):
        await assert_acknowledgement_arrives(standin, recorder)
        # Password changed, every session gone: each Bayeux request is answered HTTP 401.
        await standin.set_password("agent1", "changed")
        await standin.drop_http_sessions()
        await standin.drop_sessions("expire")
        with anyio.fail_after(2.0 + 3):
            while plugin.cometd_state is not CometDState.RECONNECTING:
                await anyio.sleep(0.05)
        refused = (await standin.state())["denied"]
        await anyio.sleep(1.0)
        # Backing off, not hammering the server with refused requests.
        assert (await standin.state())["denied"] - refused <= 3

        await standin.set_password("agent1", "secret")
        await plugin.wait_connected(RECOVERY_TIMEOUT)
        await assert_acknowledgement_arrives(standin, recorder)
