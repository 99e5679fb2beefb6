"""The CometD (Bayeux 1.0 long-polling) endpoint, exercised with raw JSON exchanges."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from gws_outbound_plugin.simulator import GWSSimulator
from tests.simulator.sim_helpers import GWS, NOTIFICATIONS, USERS, Bayeux, events

pytestmark = pytest.mark.anyio


async def _wait_for_held_connect(sim: GWSSimulator) -> None:
    """Wait until the simulator is holding a /meta/connect (recorded with status 0)."""
    with anyio.fail_after(5):
        while not any(
            r.status == 0 and r.bayeux_channels == ("/meta/connect",) for r in sim.requests
        ):
            await anyio.sleep(0.01)


async def test_handshake_needs_credentials_or_session(sim: GWSSimulator, bayeux: Bayeux):
    handshake = bayeux.message("/meta/handshake", version="1.0")
    refused = await bayeux.post(handshake)
    assert refused.status_code == 401
    assert refused.json()["statusCode"] == 20
    wrong = await bayeux.post(handshake, auth=("agent1", "nope"))
    assert wrong.status_code == 401
    assert sim.cometd_client_count == 0
    assert sim.session_count == 0


async def test_handshake_with_basic_auth(sim: GWSSimulator, bayeux: Bayeux):
    response = await bayeux.post(
        bayeux.message(
            "/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling", "websocket"]
        ),
        auth=("agent1", "secret"),
    )
    assert response.status_code == 200
    [reply] = response.json()
    client_id = reply.pop("clientId")
    assert isinstance(client_id, str) and len(client_id) >= 16
    assert reply == {
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "successful": True,
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000},
        "id": "1",
    }
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("JSESSIONID=") for c in cookies)
    assert any(c.startswith("BAYEUX_BROWSER=") for c in cookies)
    assert sim.session_count == 1
    assert sim.requests[-1].username == "agent1"
    assert sim.requests[-1].bayeux_channels == ("/meta/handshake",)


async def test_handshake_with_the_rest_session_cookie(sim: GWSSimulator, gws: GWS):
    bayeux = Bayeux(gws.http)
    response = await bayeux.post(bayeux.message("/meta/handshake", version="1.0"))
    assert response.status_code == 200
    assert response.json()[0]["successful"] is True
    assert not any(c.startswith("JSESSIONID=") for c in response.headers.get_list("set-cookie"))
    assert sim.session_count == 1


async def test_handshake_refuses_websocket_only(bayeux: Bayeux):
    response = await bayeux.post(
        bayeux.message("/meta/handshake", version="1.0", supportedConnectionTypes=["websocket"]),
        auth=("agent1", "secret"),
    )
    [reply] = response.json()
    assert reply["successful"] is False
    assert reply["supportedConnectionTypes"] == ["long-polling"]


async def test_sub_paths_and_single_objects_are_accepted(bayeux: Bayeux):
    response = await bayeux.http.post(
        NOTIFICATIONS + "/handshake",
        json={"channel": "/meta/handshake", "version": "1.0", "id": "7"},
        auth=("agent1", "secret"),
    )
    [reply] = response.json()
    assert reply["successful"] is True and reply["id"] == "7"
    bayeux.client_id = reply["clientId"]
    [connect] = await bayeux.send(bayeux.message("/meta/connect"))
    assert connect["successful"] is True


async def test_first_connect_is_answered_at_once(new_http):
    async with GWSSimulator(users=USERS, connect_timeout=10.0) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        await bayeux.handshake()
        started = time.monotonic()
        [reply] = await bayeux.connect()
        assert time.monotonic() - started < 5.0  # a held connect would take 10 s
        assert reply == {
            "channel": "/meta/connect",
            "successful": True,
            "clientId": bayeux.client_id,
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 10000},
            "id": "2",
        }


async def test_held_connect_is_released_by_a_publish(sim: GWSSimulator, gws: GWS, bayeux: Bayeux):
    sim_timeout = 2.0
    await bayeux.ready("/v2/me/outbound", "/me/internal")
    result: list[list[dict]] = []

    async def poll() -> None:
        result.append(await bayeux.connect())

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await _wait_for_held_connect(sim)
        assert result == []
        assert (await gws.cancel(11)).json() == {"statusCode": 0}
    assert time.monotonic() - started < sim_timeout
    [replies] = result
    assert [r["channel"] for r in replies] == ["/v2/me/outbound", "/me/internal", "/meta/connect"]


async def test_held_connect_times_out_empty(new_http):
    async with GWSSimulator(users=USERS, connect_timeout=0.3) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        await bayeux.ready("/v2/me/outbound")
        started = time.monotonic()
        [reply] = await bayeux.connect()
        assert time.monotonic() - started >= 0.25
        assert reply["successful"] is True
        assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 300}


async def test_connect_advice_timeout_shortens_the_hold(sim: GWSSimulator, bayeux: Bayeux):
    await bayeux.ready("/v2/me/outbound")
    started = time.monotonic()
    [reply] = await bayeux.connect(timeout_ms=0)
    assert time.monotonic() - started < 1.5  # the server's own hold is 2 s
    assert reply["successful"] is True
    started = time.monotonic()
    [reply] = await bayeux.connect(timeout_ms=200)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.5
    assert reply["successful"] is True


async def test_a_new_connect_releases_the_held_one(sim: GWSSimulator, bayeux: Bayeux):
    await bayeux.ready("/v2/me/outbound")
    result: list[list[dict]] = []

    async def poll() -> None:
        result.append(await bayeux.connect())

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await _wait_for_held_connect(sim)
        [second] = await bayeux.connect(timeout_ms=0)
        assert second["successful"] is True
    assert time.monotonic() - started < 1.5
    [[first]] = result
    assert first["channel"] == "/meta/connect" and first["successful"] is True


async def test_batched_meta_messages_are_answered_together(
    sim: GWSSimulator, gws: GWS, bayeux: Bayeux
):
    await bayeux.ready()
    await bayeux.connect(timeout_ms=0)  # not the first connect any more
    started = time.monotonic()
    replies = await bayeux.send(
        bayeux.message("/meta/connect", connectionType="long-polling"),
        bayeux.message("/meta/subscribe", subscription="/v2/me/outbound"),
        bayeux.message("/meta/subscribe", subscription=["/me/internal"]),
    )
    assert time.monotonic() - started < 1.5  # a connect in a batch is not held
    assert [(r["channel"], r["successful"], r["id"]) for r in replies] == [
        ("/meta/connect", True, "4"),
        ("/meta/subscribe", True, "5"),
        ("/meta/subscribe", True, "6"),
    ]
    assert replies[1]["subscription"] == "/v2/me/outbound"
    assert replies[2]["subscription"] == ["/me/internal"]
    await gws.cancel(11)
    await gws.cancel(12)
    await sim.wait_for_published(4)
    replies = await bayeux.connect()
    delivered = events(replies)
    assert [e["data"]["userData"]["GSW_RECORD_HANDLE"] for e in delivered[1::2]] == [11, 12]
    assert [e["channel"] for e in delivered] == ["/v2/me/outbound", "/me/internal"] * 2
    assert replies[-1]["channel"] == "/meta/connect"


@pytest.mark.parametrize(
    ("channel", "fields"),
    [
        ("/meta/connect", {"connectionType": "long-polling"}),
        ("/meta/subscribe", {"subscription": "/v2/me/outbound"}),
        ("/meta/unsubscribe", {"subscription": "/v2/me/outbound"}),
        ("/meta/disconnect", {}),
    ],
)
async def test_unknown_client_is_402(bayeux: Bayeux, channel: str, fields: dict):
    [reply] = await bayeux.send(
        {"channel": channel, "clientId": "no-such-client", "id": "9", **fields}
    )
    assert reply == {
        "channel": channel,
        "successful": False,
        "error": "402::Unknown client",
        "advice": {"reconnect": "handshake", "interval": 0},
        "id": "9",
    }


async def test_forget_clients_answers_402_and_releases_held_connect(
    sim: GWSSimulator, bayeux: Bayeux
):
    await bayeux.ready("/v2/me/outbound")
    result: list[list[dict]] = []

    async def poll() -> None:
        result.append(await bayeux.connect())

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await _wait_for_held_connect(sim)
        assert sim.forget_cometd_clients() == 1
    assert time.monotonic() - started < 1.5
    [[held]] = result
    assert held["error"] == "402::Unknown client"
    [again] = await bayeux.connect()
    assert again["error"] == "402::Unknown client"
    assert again["advice"]["reconnect"] == "handshake"
    assert sim.cometd_client_count == 0


async def test_idle_cometd_client_is_forgotten(new_http):
    async with GWSSimulator(users=USERS, connect_timeout=0.6, cometd_session_timeout=0.3) as sim:
        polling = Bayeux(await new_http(base_url=sim.base_url))
        idle = Bayeux(await new_http(base_url=sim.base_url))
        await polling.ready("/v2/me/outbound")
        await idle.ready("/v2/me/outbound")
        # A connect held longer than the session timeout keeps its client alive...
        [held] = await polling.connect()
        assert held["successful"] is True
        [after] = await polling.connect(timeout_ms=0)
        assert after["successful"] is True
        # ...while the client that did not poll meanwhile is gone.
        [gone] = await idle.connect(timeout_ms=0)
        assert gone["error"] == "402::Unknown client"
        assert sim.cometd_client_count == 1


async def test_clients_may_not_publish(bayeux: Bayeux):
    await bayeux.ready()
    [reply] = await bayeux.send(bayeux.message("/v2/me/outbound", data={"x": 1}))
    assert reply["successful"] is False
    assert reply["error"] == "403::Publish denied"
    [reply] = await bayeux.send(bayeux.message("/meta/nonsense"))
    assert reply["successful"] is False and reply["error"].startswith("400::")


async def test_subscribing_to_meta_channels_is_denied(bayeux: Bayeux):
    await bayeux.ready()
    [reply] = await bayeux.subscribe("/meta/connect")
    assert reply["successful"] is False and reply["error"].startswith("403::")


async def test_unsubscribe_stops_delivery(sim: GWSSimulator, gws: GWS, bayeux: Bayeux):
    await bayeux.ready("/v2/me/outbound", "/me/internal")
    [reply] = await bayeux.send(
        bayeux.message("/meta/unsubscribe", subscription=["/v2/me/outbound"])
    )
    assert reply["successful"] is True
    await gws.cancel(11)
    await sim.wait_for_published(2)
    assert [e["channel"] for e in events(await bayeux.connect())] == ["/me/internal"]


async def test_wildcard_subscriptions(sim: GWSSimulator, gws: GWS, new_http):
    one_level = Bayeux(await new_http())
    await one_level.ready("/v2/me/*")
    deep = Bayeux(await new_http())
    await deep.ready("/**")
    await gws.cancel(11)
    await sim.wait_for_published(2)
    assert [e["channel"] for e in events(await one_level.connect())] == ["/v2/me/outbound"]
    assert [e["channel"] for e in events(await deep.connect())] == [
        "/v2/me/outbound",
        "/me/internal",
    ]


async def test_disconnect(sim: GWSSimulator, bayeux: Bayeux):
    await bayeux.ready("/v2/me/outbound")
    [reply] = await bayeux.send(bayeux.message("/meta/disconnect"))
    assert reply["successful"] is True
    assert sim.cometd_client_count == 0
    [again] = await bayeux.connect()
    assert again["error"] == "402::Unknown client"


@pytest.mark.parametrize("body", [b"not json", b"[]", b"42"])
async def test_malformed_bayeux_posts_are_400(bayeux: Bayeux, body: bytes):
    response = await bayeux.http.post(
        NOTIFICATIONS, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()[0]["successful"] is False


async def test_queue_is_bounded(new_http):
    async with GWSSimulator(users=USERS, max_queue=3) as sim:
        bayeux = Bayeux(await new_http(base_url=sim.base_url))
        await bayeux.ready("/me/internal")
        gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
        await gws.login()
        for handle in range(901, 906):  # unknown records: one user event each
            await gws.cancel(handle)
        await sim.wait_for_published(5)
        delivered = events(await bayeux.connect())
        assert [e["data"]["userData"]["GSW_RECORD_HANDLE"] for e in delivered] == [903, 904, 905]


async def test_restart_keeps_the_port_and_loses_sessions_and_clients(
    sim: GWSSimulator, gws: GWS, bayeux: Bayeux
):
    assert (await gws.cancel(11)).json() == {"statusCode": 0}
    await sim.wait_for_published(2)  # before anyone subscribed: delivered to nobody
    await bayeux.ready("/v2/me/outbound")
    port, base_url = sim.port, sim.base_url
    result: list[BaseException | list[dict]] = []

    async def poll() -> None:
        try:
            result.append(await bayeux.connect())
        except httpx.TransportError as exc:
            result.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await _wait_for_held_connect(sim)
        await sim.restart()
    assert (sim.port, sim.base_url) == (port, base_url)
    # Like a server going away, the restart cut the held connect off without an answer.
    [cut_off] = result
    assert isinstance(cut_off, httpx.TransportError)
    [again] = await bayeux.connect()
    assert again["error"] == "402::Unknown client"
    response = await gws.http.get("/api/v2/me")  # the old cookie names no session
    assert response.status_code == 401
    assert sim.records[11].cancelled  # OCS keeps its state
    await gws.login()
    assert (await gws.cancel(12)).json() == {"statusCode": 0}
    assert sim.running


async def test_stop_and_start_without_context_manager(new_http):
    sim = GWSSimulator(users=USERS)
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    await sim.start()
    try:
        http = await new_http(base_url=sim.base_url)
        assert (await http.get("/api/v2/me", auth=("agent1", "secret"))).status_code == 200
        with pytest.raises(RuntimeError):
            await sim.start()
    finally:
        await sim.stop()
    await sim.stop()  # idempotent
    assert not sim.running
    with pytest.raises(httpx.ConnectError):
        await http.get("/api/v2/me")
