"""The GWS simulator against the CometD project's JavaScript client.

``js_client_vs_simulator.mjs`` runs the official client (``cometd`` + ``cometd-nodejs-client``)
the way a GWS web application would: REST login, the session cookie handed to the CometD
client, subscriptions made in the ``/meta/handshake`` listener, a cancel, both messages
received; then the simulator loses the client and the JS client must recover by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from gws_outbound_plugin.simulator import GWSSimulator

from .support import NodeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

#: Bound on the whole Node scenario (two cancels, one disruption, one recovery).
SCENARIO_TIMEOUT = 20.0


@asynccontextmanager
async def js_client(tmp_path: Path, base_url: str, *extra: str) -> AsyncIterator[NodeProcess]:
    node = NodeProcess(
        "js_client_vs_simulator.mjs",
        ["--base-url", base_url, "--user", "agent1", "--records", "11,14", *extra],
        tmp_path / "js_client.log",
        env={"GWS_PASSWORD": "secret"},
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def run_scenario(
    node: NodeProcess, on_disrupt: Callable[[], Awaitable[None]] | None = None
) -> list[dict[str, Any]]:
    """Read the script's JSON lines up to ``done``/``failed``; answer ``disrupt``."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(SCENARIO_TIMEOUT):
        while True:
            line = await node.readline(SCENARIO_TIMEOUT)
            event = json.loads(line)
            events.append(event)
            if event["event"] == "disrupt":
                assert on_disrupt is not None, "the script asked for a disruption"
                await on_disrupt()
                await node.write("go")
            if event["event"] in ("done", "failed"):
                break
    assert events[-1]["event"] == "done", f"{events[-1]}\nstderr:\n{node.stderr()}"
    assert await node.wait() == 0
    return events


def of(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def check_rounds(events: list[dict[str, Any]], device_path: str) -> None:
    """Both cancels were acknowledged, each with its two GWS-shaped messages."""
    for round_, handle in ((1, 11), (2, 14)):
        (posted,) = [e for e in of(events, "cancel-posted") if e["round"] == round_]
        assert posted["status"] == 200
        assert posted["body"] == {"statusCode": 0}
        (acked,) = [e for e in of(events, "acknowledged") if e["round"] == round_]
        assert acked["handle"] == handle
        assert acked["notificationType"] == "RecordCancelAcknowledge"
        assert acked["userEvent"] == "RecordCancelAcknowledge"
        outbound = [
            e
            for e in of(events, "message")
            if e["channel"] == "/v2/me/outbound" and e["referenceId"] == posted["referenceId"]
        ]
        assert len(outbound) == 1
        assert outbound[0]["messageType"] == "OutboundRecordMessage"
        assert outbound[0]["record"] == {
            "devicePath": device_path,
            "callingList": "CallingList1",
            "applicationId": 134,
            "recordHandle": handle,
            "campaignName": "Campaign1",
        }
        internal = [
            e
            for e in of(events, "message")
            if e["channel"] == "/me/internal" and e["userData"]["GSW_RECORD_HANDLE"] == handle
        ]
        assert len(internal) == 1
        assert internal[0]["messageType"] == "DeviceUserEventMessage"
        assert internal[0]["deviceId"] == device_path.removeprefix("/devices/")
        user_data = internal[0]["userData"]
        assert user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
        assert user_data["GSW_APPLICATION_ID"] == 134
        assert user_data["GSW_CAMPAIGN_NAME"] == "Campaign1"
        assert user_data["GSW_CALLING_LIST"] == "CallingList1"


def check_recovered_by_rehandshake(events: list[dict[str, Any]]) -> dict[str, Any]:
    (recovered,) = of(events, "recovered")
    assert recovered["transport"] == "long-polling"
    # The client learnt it was forgotten from the server's Bayeux answer ...
    assert "402::Unknown client" in recovered["connectFailures"]
    # ... then handshook again (a re-establishment, as the CometD client tells it) and its
    # /meta/handshake listener subscribed again, both channels in one batch.
    successful = [e for e in of(events, "handshake") if e["successful"]]
    assert [e["reestablish"] for e in successful] == [False, True]
    assert successful[0]["clientId"] != successful[1]["clientId"]
    subscribes = of(events, "subscribe")
    assert len(subscribes) == 4
    assert all(e["successful"] for e in subscribes)
    (disconnected,) = of(events, "disconnected")
    assert disconnected["successful"] is True
    return recovered


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_official_client_recovers_after_the_simulator_forgets_it(
    tmp_path: Path, host: str
) -> None:
    async with GWSSimulator(users={"agent1": "secret"}, csrf=True, host=host, port=0) as sim:
        async with js_client(tmp_path, sim.base_url, "--long-polling-only") as node:
            events = await run_scenario(node)
        device_path = sim.device_path("agent1")
    (logged_in,) = of(events, "logged-in")
    assert logged_in["cookies"] == ["JSESSIONID"]
    assert logged_in["csrf"] is True
    (ready,) = of(events, "ready")
    assert ready["transport"] == "long-polling"
    # The session cookie came from the REST login; BAYEUX_BROWSER from the Bayeux handshake.
    assert ready["cookies"] == {"JSESSIONID": "rest", "BAYEUX_BROWSER": "cometd"}
    # Long-polling only: the very first handshake succeeds.
    assert of(events, "handshake")[0]["successful"] is True
    (forgotten,) = of(events, "forgotten")
    assert forgotten["body"]["forgotten"] == 1
    check_rounds(events, device_path)
    recovered = check_recovered_by_rehandshake(events)
    assert recovered["seconds"] < 5.0


async def test_official_client_falls_back_from_websocket_to_long_polling(
    tmp_path: Path,
) -> None:
    """Off the shelf the client tries WebSocket first; GWS (and the simulator) only do
    long-polling. The refused upgrade must make the client fall back, not give up."""
    async with GWSSimulator(users={"agent1": "secret"}, port=0) as sim:
        async with js_client(tmp_path, sim.base_url) as node:
            events = await run_scenario(node)
        device_path = sim.device_path("agent1")
    handshakes = of(events, "handshake")
    assert handshakes[0]["successful"] is False
    assert handshakes[0]["transport"] == "websocket"
    (ready,) = of(events, "ready")
    assert ready["transport"] == "long-polling"
    check_rounds(events, device_path)
    check_recovered_by_rehandshake(events)


async def test_official_client_recovers_from_forget_through_the_python_api(
    tmp_path: Path,
) -> None:
    async with GWSSimulator(users={"agent1": "secret"}, port=0) as sim:

        async def forget() -> None:
            assert sim.forget_cometd_clients() == 1

        async with js_client(
            tmp_path, sim.base_url, "--long-polling-only", "--disrupt", "stdin"
        ) as node:
            events = await run_scenario(node, forget)
        device_path = sim.device_path("agent1")
    check_rounds(events, device_path)
    check_recovered_by_rehandshake(events)


async def test_official_client_recovers_after_a_simulator_restart(tmp_path: Path) -> None:
    """A restart loses the GWS session too: the handshake is refused with HTTP 401 until
    the application logs in again; the client retries the handshake on its own."""
    async with GWSSimulator(users={"agent1": "secret"}, port=0) as sim:
        async with js_client(
            tmp_path,
            sim.base_url,
            "--long-polling-only",
            "--disrupt",
            "stdin",
            "--deadline",
            str(int(SCENARIO_TIMEOUT * 1000)),
        ) as node:
            events = await run_scenario(node, sim.restart)
        device_path = sim.device_path("agent1")
    check_rounds(events, device_path)
    (recovered,) = of(events, "recovered")
    assert recovered["transport"] == "long-polling"
    successful = [e for e in of(events, "handshake") if e["successful"]]
    assert [e["reestablish"] for e in successful] == [False, True]
    refused = [e for e in of(events, "handshake") if not e["successful"]]
    assert refused, "the handshake after the restart should have been refused (no session)"
    assert {e["httpCode"] for e in refused} == {401}
    assert of(events, "relogged-in")


async def test_official_client_against_the_simulator_cli(tmp_path: Path) -> None:
    """The simulator in its own process (``python -m gws_outbound_plugin.simulator``)."""
    command = [
        sys.executable,
        "-m",
        "gws_outbound_plugin.simulator",
        "--port",
        "0",
        "--user",
        "agent1:secret",
    ]
    log = (tmp_path / "simulator.log").open("w", encoding="utf-8")
    simulator = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=log)
    try:
        stdout = simulator.stdout
        assert stdout is not None
        first = b""
        with anyio.fail_after(15):
            while b"\n" not in first:
                first += await stdout.receive()
        line = first.split(b"\n", 1)[0].decode()
        prefix = "GWS simulator listening on "
        assert line.startswith(prefix), line
        base_url = line[len(prefix) :]

        async def drain() -> None:
            """Read and discard the CLI's log lines (one per request), so its pipe never fills."""
            async for _ in stdout:
                continue

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            async with js_client(tmp_path, base_url, "--long-polling-only") as node:
                events = await run_scenario(node)
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if simulator.returncode is None:
                simulator.terminate()
                with anyio.move_on_after(10):
                    await simulator.wait()
                if simulator.returncode is None:
                    simulator.kill()
                    await simulator.wait()
            await simulator.aclose()
            log.close()
    assert simulator.returncode == 0, (tmp_path / "simulator.log").read_text()
    (device,) = of(events, "device")
    check_rounds(events, device["devicePath"])
    check_recovered_by_rehandshake(events)
