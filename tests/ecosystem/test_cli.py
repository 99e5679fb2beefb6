"""The ``gws-outbound`` console script, run as a subprocess against the simulator running in
the test's event loop."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from gws_outbound_plugin import CancelRequest
from gws_outbound_plugin._cli import build_parser
from gws_outbound_plugin.simulator import GWSSimulator

from .conftest import CLI

pytestmark = pytest.mark.anyio

RECORD_ARGS = ("--application-id", "134", "--campaign", "Campaign1", "--calling-list")


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GWS_", "PYTEST_")) and key != "PYTHONPATH"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def gws_env(simulator: GWSSimulator, **extra: str) -> dict[str, str]:
    return base_env(
        {
            "GWS_BASE_URL": simulator.base_url,
            "GWS_USERNAME": "agent1",
            "GWS_PASSWORD": "secret",
            "GWS_ACK_TIMEOUT": "3",
            **extra,
        }
    )


def cancel_args(handle: int, *more: str, calling_list: str = "CallingList1") -> list[str]:
    return ["cancel", "--record-handle", str(handle), *RECORD_ARGS, calling_list, *more]


async def run(
    args: Sequence[str], env: Mapping[str, str], *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    with anyio.fail_after(30):
        result = await anyio.run_process([str(CLI), *args], input=stdin, env=dict(env), check=False)
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


# -- help ---------------------------------------------------------------------------------


def test_the_console_script_is_installed():
    assert CLI.exists(), f"{CLI} is missing: pip install -e . declares it"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_option_has_help_text():
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"simulate", "cancel", "plugins", "tail"}
    for name, command in [("gws-outbound", parser), *commands.items()]:
        assert command.description, name
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions)
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_no_option_takes_a_password():
    parser = build_parser()
    for command in [parser, *_subparsers(parser).values()]:
        for action in command._actions:
            assert not any("pass" in option for option in action.option_strings), action


async def test_help_of_each_command():
    main = await run(["--help"], base_env())
    assert main.returncode == 0
    for command in ("simulate", "cancel", "plugins", "tail", "GWS_PASSWORD"):
        assert command in main.stdout
    cancel = await run(["cancel", "--help"], base_env())
    assert cancel.returncode == 0
    for option in ("--record-handle", "--device-path", "--chain", "--reference-id", "--json"):
        assert option in cancel.stdout
    simulate = await run(["simulate", "--help"], base_env())
    assert simulate.returncode == 0
    assert "--user NAME:PASSWORD" in simulate.stdout
    assert "CallingList1" in simulate.stdout  # the seeded records are listed


# -- cancel ---------------------------------------------------------------------------------


async def test_cancel_acknowledged(gws_simulator):
    result = await run(cancel_args(11, "--no-plugins"), gws_env(gws_simulator))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("acknowledged ")
    assert "record=11" in result.stdout
    (posted,) = gws_simulator.cancels
    # The device path defaults to the agent's device as GWS lists it.
    assert posted.body["devicePath"] == gws_simulator.device_path("agent1")
    assert gws_simulator.records[11].cancelled


async def test_cancel_as_json_with_every_option(gws_simulator):
    device = gws_simulator.device_path("agent1")
    result = await run(
        cancel_args(
            14,
            "--device-path",
            device,
            "--phone",
            "3004",
            "--chain",
            "RecordOnly",
            "--reference-id",
            "ref-cli-1",
            "--json",
            "--no-plugins",
            "--log-level",
            "debug",
        ),
        gws_env(gws_simulator),
    )

    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()  # logs, even at debug level, go to stderr
    outcome = json.loads(line)
    assert outcome["hook"] == "on_record_cancel_acknowledged"
    assert outcome["reference_id"] == "ref-cli-1"
    assert outcome["record_handle"] == 14
    assert outcome["request"]["phone_number"] == "3004"
    assert outcome["request"]["chain_attribute"] == "RecordOnly"
    assert "plugin_started" in result.stderr
    (posted,) = gws_simulator.cancels
    assert posted.body == {
        "operationName": "CancelRecord",
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": device,
        "phoneNumber": "3004",
        "chainAttribute": "RecordOnly",
        "referenceId": "ref-cli-1",
    }
    assert not gws_simulator.records[15].cancelled  # RecordOnly left the chain alone


async def test_cancel_refused_by_ocs_exits_1_with_the_reason(gws_simulator):
    result = await run(cancel_args(999, "--no-plugins"), gws_env(gws_simulator))

    assert result.returncode == 1
    assert result.stdout.startswith("failed ")
    assert "reason=ocs_error" in result.stdout
    assert "error=101" in result.stdout
    assert '"Record not found"' in result.stdout


async def test_cancel_rejected_by_gws_exits_1_as_json(gws_simulator):
    gws_simulator.faults.status_code(code=4, message="Not allowed now")
    result = await run(cancel_args(12, "--json", "--no-plugins"), gws_env(gws_simulator))

    assert result.returncode == 1
    outcome = json.loads(result.stdout)
    assert outcome["hook"] == "on_cancel_failed"
    assert outcome["reason"] == "rejected"
    assert outcome["status_code"] == 4
    assert outcome["message"] == "Not allowed now"


async def test_cancel_with_wrong_credentials_exits_1_without_the_password(gws_simulator):
    env = gws_env(gws_simulator, GWS_PASSWORD="not-the-s3cret")
    result = await run(cancel_args(11, "--no-plugins"), env)

    assert result.returncode == 1
    assert "refused the credentials of 'agent1'" in result.stderr
    assert "not-the-s3cret" not in result.stdout + result.stderr
    assert gws_simulator.cancels == []


async def test_invalid_request_exits_2_before_any_network(gws_simulator):
    args = ["cancel", "--record-handle", "11", "--application-id", "134", "--campaign", " "]
    args += ["--calling-list", "CallingList1", "--device-path", "devices/x", "--no-plugins"]
    result = await run(
        args,
        gws_env(gws_simulator),
    )

    assert result.returncode == 2
    assert "--campaign must not be empty" in result.stderr
    assert "--device-path must look like /devices/<id>" in result.stderr
    assert gws_simulator.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cancel", "--record-handle", "eleven"], "--record-handle"),
        (["cancel", "--record-handle", "11"], "required"),
        (cancel_args(11, "--chain", "Everything"), "--chain"),
        (cancel_args(11, "--password", "secret"), "unrecognized arguments: --password"),
        (["frobnicate"], "invalid choice"),
    ],
)
async def test_usage_errors_exit_2(args, message):
    result = await run(args, base_env())
    assert result.returncode == 2
    assert message in result.stderr


async def test_missing_configuration_exits_2():
    result = await run(cancel_args(11, "--no-plugins"), base_env(), stdin=b"")
    assert result.returncode == 2
    assert "GWS_BASE_URL" in result.stderr
    assert "GWS_PASSWORD" in result.stderr

    env = base_env({"GWS_BASE_URL": "http://127.0.0.1:9", "GWS_USERNAME": "agent1"})
    result = await run(cancel_args(11, "--no-plugins"), env, stdin=b"")
    assert result.returncode == 2  # no terminal to prompt on
    assert "set GWS_PASSWORD, or run from a terminal to be prompted" in result.stderr


_TYPE_PASSWORD = r"""
import os, pty, select, sys, time
password = os.environ.pop("TEST_TYPED_PASSWORD").encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
output, sent, deadline = b"", False, time.monotonic() + 30
while time.monotonic() < deadline:
    if not select.select([fd], [], [], 0.2)[0]:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    output += chunk
    if not sent and b"GWS password for agent1: " in output:
        os.write(fd, password + b"\n")
        sent = True
status = os.waitpid(pid, 0)[1]
sys.stdout.write(output.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
async def test_password_is_prompted_for_on_a_terminal(gws_simulator):
    env = gws_env(gws_simulator, TEST_TYPED_PASSWORD="secret")
    del env["GWS_PASSWORD"]
    with anyio.fail_after(40):
        result = await anyio.run_process(
            [sys.executable, "-c", _TYPE_PASSWORD, str(CLI), *cancel_args(11, "--no-plugins")],
            env=env,
            check=False,
        )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "GWS password for agent1: " in output
    assert "secret" not in output  # not echoed
    assert "acknowledged" in output
    assert gws_simulator.records[11].cancelled


async def test_cancel_runs_the_installed_plugins_and_lets_them_finish(
    installed, gws_simulator, tmp_path
):
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/acks", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    audit_file = tmp_path / "audit.jsonl"
    try:
        env = installed.env(
            {
                **{k: v for k, v in gws_env(gws_simulator).items() if k.startswith("GWS_")},
                "GWS_OUTBOUND_PLUGINS": "audit,webhook",
                "GWS_OUTBOUND_AUDIT_FILE": str(audit_file),
                "GWS_OUTBOUND_WEBHOOK_URL": f"http://{host}:{port}/acks",
            }
        )
        result = await run(cancel_args(16, "--reference-id", "ref-plugins", "--json"), env)
    finally:
        await runner.cleanup()

    assert result.returncode == 0, result.stderr
    # The webhook's queue was flushed before the CLI exited (its aclose() was awaited).
    assert [body["reference_id"] for body in received] == ["ref-plugins"]
    lines = [json.loads(line) for line in audit_file.read_text(encoding="utf-8").splitlines()]
    assert [line["event"] for line in lines] == ["cancel_requested", "cancel_acknowledged"]


# -- plugins ------------------------------------------------------------------------------------


async def test_plugins_lists_the_reference_plugins_and_their_hooks(installed):
    env = installed.env({"GWS_OUTBOUND_PLUGINS": "audit,webhook"})
    text = await run(["plugins"], env)
    assert text.returncode == 0, text.stderr
    assert "audit  [gws-outbound-audit 0.1.0]" in text.stdout
    assert "webhook  [gws-outbound-webhook 0.1.0]" in text.stdout
    assert "    on_cancel_requested" in text.stdout

    listing = await run(["plugins", "--json"], env)
    assert listing.returncode == 0
    plugins = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert plugins["audit"]["hooks"] == [
        "on_cancel_failed",
        "on_cancel_requested",
        "on_record_cancel_acknowledged",
    ]
    assert plugins["webhook"]["hooks"] == ["on_cancel_failed", "on_record_cancel_acknowledged"]
    assert plugins["webhook"]["distribution"] == "gws-outbound-webhook"


async def test_plugins_without_a_filter_lists_every_installed_plugin(installed):
    listing = await run(["plugins", "--json"], installed.env())
    names = {entry["name"] for entry in json.loads(listing.stdout)}
    assert {"audit", "webhook", "tally"} <= names


async def test_plugins_respects_the_block_list(installed):
    env = installed.env(
        {"GWS_OUTBOUND_PLUGINS": "audit,webhook", "GWS_OUTBOUND_DISABLE_PLUGINS": "webhook"}
    )
    result = await run(["plugins"], env)
    assert "audit" in result.stdout
    assert "webhook  [" not in result.stdout
    assert "GWS_OUTBOUND_DISABLE_PLUGINS=webhook" in result.stdout


async def test_plugins_reports_a_broken_plugin_by_name(installed, tmp_path):
    env = installed.env(
        {"GWS_OUTBOUND_PLUGINS": "audit,webhook", "GWS_OUTBOUND_WEBHOOK_URL": "not a url"}
    )
    result = await run(["plugins"], env)
    assert result.returncode == 0
    assert "audit  [" in result.stdout
    assert "webhook  [" not in result.stdout
    assert "plugin_load_failed" in result.stderr
    assert "plugin=webhook" in result.stderr

    strict = await run(["plugins", "--strict"], env)
    assert strict.returncode == 1
    assert "plugin 'webhook' failed to load" in strict.stderr


async def test_plugins_with_none_installed():
    result = await run(["plugins"], base_env({"GWS_OUTBOUND_PLUGINS": "no-such-plugin"}))
    assert result.returncode == 0
    assert "no plugin installed under the 'gws_outbound' entry-point group" in result.stdout


# -- tail ---------------------------------------------------------------------------------------


@asynccontextmanager
async def started(args: Sequence[str], env: Mapping[str, str]) -> AsyncIterator[Process]:
    process = await anyio.open_process([str(CLI), *args], env=dict(env))
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


async def read_line(stream: BufferedByteReceiveStream, timeout: float = 10) -> str:
    with anyio.fail_after(timeout):
        return (await stream.receive_until(b"\n", 1 << 20)).decode()


async def test_tail_prints_events_until_ctrl_c(gws_simulator, gws_outbound, gws_request_factory):
    env = gws_env(gws_simulator)
    async with started(["tail", "--json"], env) as as_json, started(["tail"], env) as readable:
        for process in (as_json, readable):
            assert process.stderr is not None
            status = await read_line(BufferedByteReceiveStream(process.stderr))
            assert "press Ctrl-C to stop" in status

        # Another client of the same agent cancels: tail sees the user event and the ack.
        request: CancelRequest = gws_request_factory(record_handle=19)
        await gws_outbound.cancel(request)

        assert as_json.stdout is not None and readable.stdout is not None
        json_out = BufferedByteReceiveStream(as_json.stdout)
        first, second = [json.loads(await read_line(json_out)) for _ in range(2)]
        assert first["hook"] == "on_user_event"
        assert first["user_event"] == "RecordCancelAcknowledge"
        assert first["user_data"]["GSW_RECORD_HANDLE"] == 19
        assert first["channel"] == "/me/internal"
        assert second["hook"] == "on_record_cancel_acknowledged"
        assert second["reference_id"] == request.reference_id
        assert second["request"] is None  # not tail's own request

        text_out = BufferedByteReceiveStream(readable.stdout)
        user_event, ack = await read_line(text_out), await read_line(text_out)
        assert "user_event     RecordCancelAcknowledge record=19" in user_event
        assert "acknowledged   record=19 app=134 campaign=Campaign1 list=CallingList1 " in ack
        assert "(requested by another client)" in ack

        as_json.send_signal(signal.SIGINT)
        readable.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            assert await as_json.wait() == 0
            assert await readable.wait() == 0


async def test_tail_with_wrong_credentials_exits_1(gws_simulator):
    result = await run(["tail"], gws_env(gws_simulator, GWS_PASSWORD="nope"))
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr


# -- simulate ---------------------------------------------------------------------------------


async def test_simulate_runs_the_simulator_until_ctrl_c():
    async with started(
        ["simulate", "--port", "0", "--user", "bob:pw", "--quiet"], base_env()
    ) as sim:
        assert sim.stdout is not None
        first = await read_line(BufferedByteReceiveStream(sim.stdout))
        assert first.startswith("GWS simulator listening on http://127.0.0.1:")
        base_url = first.split()[-1]
        async with httpx.AsyncClient() as client:
            me = await client.get(base_url + "/api/v2/me", auth=("bob", "pw"))
            refused = await client.get(base_url + "/api/v2/me", auth=("bob", "wrong"))
        assert me.status_code == 200
        assert refused.status_code == 401
        sim.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            assert await sim.wait() == 0
