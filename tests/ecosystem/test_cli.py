"""The ``gws-outbound`` command line: in-process through ``main(argv)`` (the ``cli`` fixture)
against a simulator on a thread of its own, plus the subprocess smoke tests that need a real
process: the console script's ``--help``, signals (Ctrl-C, SIGTERM), a pseudo-terminal (the
password prompt, the progress display), and ``tail`` and ``simulate`` running until stopped."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from gws_outbound_plugin import CancelRequest, RejectRecordRequest
from gws_outbound_plugin._requests import REQUEST_FIELDS, field_from_text
from gws_outbound_plugin.cli._commands import _OPERATION_COMMANDS
from gws_outbound_plugin.cli._parser import build_parser
from gws_outbound_plugin.simulator import GWSSimulator

from .conftest import CLI, Cli, Installed, ThreadedSimulator, base_env, make_site

RECORD_ARGS = ("--application-id", "134", "--campaign", "Campaign1", "--calling-list")
CAMPAIGN_ARGS = ("--application-id", "134", "--campaign", "Campaign1")
OPERATION_COMMANDS = (
    "cancel",
    "reject",
    "complete",
    "do-not-call",
    "reschedule",
    "update",
    "chained",
    "add-record",
    "preview",
    "request",
)


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
    """The console script as a subprocess."""
    with anyio.fail_after(30):
        # A session of its own: no controlling terminal (the developer's) to prompt on.
        result = await anyio.run_process(
            [str(CLI), *args], input=stdin, env=dict(env), check=False, start_new_session=True
        )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def requests_to(gws: ThreadedSimulator, method: str, path: str) -> list[Any]:
    return gws.read(lambda sim: [r for r in sim.requests if (r.method, r.path) == (method, path)])


def logins(gws: ThreadedSimulator) -> int:
    return len(requests_to(gws, "GET", "/api/v2/me"))


def bodies(gws: ThreadedSimulator, operation: str) -> list[dict[str, Any]]:
    return gws.read(
        lambda sim: [r.body for r in sim.operations if r.body.get("operationName") == operation]
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
    assert set(commands) == {"simulate", "plugins", "tail", "new-plugin", *OPERATION_COMMANDS}
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


def test_every_request_option_is_its_fields_row_in_the_table():
    parser = build_parser()
    commands = _subparsers(parser)
    for name, command in _OPERATION_COMMANDS.items():
        actions = {action.dest: action for action in commands[name]._actions}
        for field in command.fields:
            row = REQUEST_FIELDS[field]
            action = actions[field]
            assert action.option_strings == list(row.flags), (name, field)
            assert action.metavar == row.metavar, (name, field)
            assert action.choices == row.kind.choices, (name, field)
            assert action.help == command.help.get(field, row.help), (name, field)


@pytest.mark.parametrize(
    ("argv", "field", "word"),
    [
        (["cancel", "--record-handle"], "record_handle", "2147483648"),
        (["cancel", "--application-id"], "application_id", "0"),
        (["add-record", "--chain-id"], "chain_id", "-3"),
        (["add-record", "--field"], "other_fields", "novalue"),
        (["reschedule", "--at"], "scheduled_time", "tomorrow"),
    ],
)
def test_an_option_word_is_refused_with_its_request_fields_own_message(argv, field, word, capsys):
    with pytest.raises(ValueError, match=r".") as refused:
        field_from_text(field, word)
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*argv, word])

    assert exited.value.code == 2
    flag = REQUEST_FIELDS[field].flags[0]
    assert f"error: argument {flag}: {refused.value.errors[field]}\n" in capsys.readouterr().err


@pytest.mark.anyio
async def test_the_console_script_prints_its_help():
    main = await run(["--help"], base_env())
    assert main.returncode == 0
    for command in ("simulate", "cancel", "plugins", "tail", "GWS_PASSWORD"):
        assert command in main.stdout


def test_help_of_each_command(cli: Cli):
    cancel = cli("cancel", "--help")
    assert cancel.status == 0
    for option in ("--record-handle", "--device-path", "--chain", "--reference-id", "--json"):
        assert option in cancel.out
    simulate = cli("simulate", "--help")
    assert simulate.status == 0
    assert "--user NAME:PASSWORD" in simulate.out
    assert "CallingList1" in simulate.out  # the seeded records are listed


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_acknowledged(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    result = cli(*cancel_args(11, "--no-plugins"))

    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged ")
    assert "record=11" in result.out
    (posted,) = threaded_gws.read(lambda sim: sim.cancels)
    # The device path defaults to the agent's device as GWS lists it.
    assert posted.body["devicePath"] == threaded_gws.read(lambda sim: sim.device_path("agent1"))
    assert threaded_gws.read(lambda sim: sim.records[11].cancelled)


def test_cancel_as_json_with_every_option(cli: Cli, threaded_gws: ThreadedSimulator):
    device = threaded_gws.read(lambda sim: sim.device_path("agent1"))
    cli.connect(threaded_gws)
    result = cli(
        *cancel_args(
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
        )
    )

    assert result.status == 0, result.err
    (line,) = result.lines  # logs, even at debug level, go to stderr
    outcome = json.loads(line)
    assert outcome["hook"] == "on_record_cancel_acknowledged"
    assert outcome["reference_id"] == "ref-cli-1"
    assert outcome["record_handle"] == 14
    assert outcome["request"]["phone_number"] == "3004"
    assert outcome["request"]["chain_attribute"] == "RecordOnly"
    assert "plugin_started" in result.err
    (posted,) = threaded_gws.read(lambda sim: sim.cancels)
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
    # RecordOnly left the chain alone
    assert not threaded_gws.read(lambda sim: sim.records[15].cancelled)


def test_cancel_refused_by_ocs_exits_1_with_the_reason(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    result = cli(*cancel_args(999, "--no-plugins"))

    assert result.status == 1
    assert result.out.startswith("failed ")
    assert "reason=ocs_error" in result.out
    assert "error=101" in result.out
    assert '"Record not found"' in result.out


def test_cancel_rejected_by_gws_exits_1_as_json(cli: Cli, threaded_gws: ThreadedSimulator):
    threaded_gws.call(
        lambda: threaded_gws.simulator.faults.status_code(code=4, message="Not allowed now")
    )
    cli.connect(threaded_gws)
    result = cli(*cancel_args(12, "--json", "--no-plugins"))

    assert result.status == 1
    outcome = json.loads(result.out)
    assert outcome["hook"] == "on_cancel_failed"
    assert outcome["reason"] == "rejected"
    assert outcome["status_code"] == 4
    assert outcome["message"] == "Not allowed now"


def test_cancel_with_wrong_credentials_exits_1_without_the_password(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws, GWS_PASSWORD="not-the-s3cret")
    result = cli(*cancel_args(11, "--no-plugins"))

    assert result.status == 1
    assert "refused the credentials of 'agent1'" in result.err
    assert "not-the-s3cret" not in result.out + result.err
    assert threaded_gws.read(lambda sim: sim.cancels) == []


def test_invalid_request_exits_2_before_any_network(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["cancel", "--record-handle", "11", "--application-id", "134", "--campaign", " "]
    args += ["--calling-list", "CallingList1", "--device-path", "devices/x", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 2
    assert "--campaign must not be empty" in result.err
    assert "--device-path must look like /devices/<id>" in result.err
    assert threaded_gws.read(lambda sim: sim.requests) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cancel", "--record-handle", "eleven"], "--record-handle"),
        (["cancel", "--record-handle", "11"], "required"),
        (cancel_args(11, "--chain", "Everything"), "--chain"),
        (["frobnicate"], "invalid choice"),
        (
            [*cancel_args(11, "--reference-id", "r1"), "--record-handle", "12"],
            "--reference-id is for a single record",
        ),
        (cancel_args(11, "--stdin"), "either as --record-handle or with --stdin"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args, message):
    result = cli(*args)
    assert result.status == 2
    assert message in result.err


@pytest.mark.parametrize(
    ("args", "prefix", "message"),
    [
        (
            [*cancel_args(11), "--record-handel", "12"],
            "gws-outbound cancel: error:",
            "unrecognized arguments: --record-handel 12 (did you mean --record-handle?)",
        ),
        (
            ["reschedule", "--record-handle", "12", "--calling-list", "CallingList1"],
            "gws-outbound reschedule: error:",
            "unrecognized arguments: --calling-list CallingList1 (--calling-list is not an "
            "option of reschedule)",
        ),
        (
            ["cancle", "--record-handle", "11"],
            "gws-outbound: error:",
            "argument COMMAND: invalid choice: 'cancle' (did you mean 'cancel'?",
        ),
    ],
)
def test_a_misspelt_option_or_command_names_the_one_meant(cli: Cli, args, prefix, message):
    """A newcomer's typo: the error came from the top-level parser (its usage, 'gws-outbound:
    error: unrecognized arguments') without a word on which option or command was meant."""
    result = cli(*args)

    assert result.status == 2
    assert f"{prefix} {message}" in result.err
    if prefix != "gws-outbound: error:":
        assert f"usage: {prefix.removesuffix(': error:')} " in result.err  # the command's usage


def test_missing_configuration_exits_2(cli: Cli):
    result = cli(*cancel_args(11, "--no-plugins"))
    assert result.status == 2
    assert "GWS_BASE_URL" in result.err
    assert "GWS_PASSWORD" in result.err

    cli.env(GWS_BASE_URL="http://127.0.0.1:9", GWS_USERNAME="agent1")
    result = cli(*cancel_args(11, "--no-plugins"))
    assert result.status == 2  # no terminal to prompt on
    assert "set GWS_PASSWORD in the environment: there is no terminal to prompt on" in result.err


def test_missing_configuration_speaks_of_variables_not_of_from_env_keywords(cli: Cli):
    """from_env()'s message suggests its keywords to a program; a CLI user has none."""
    result = cli(*cancel_args(11, "--no-plugins"))

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert line.startswith(
        "gws-outbound cancel: error: invalid configuration: missing GWS_BASE_URL, "
        "GWS_USERNAME, GWS_PASSWORD"
    )
    assert "from_env" not in line and "username=" not in line


_TYPE_PASSWORD = r"""
import os, pty, select, sys, time
password = os.environ.pop("TEST_TYPED_PASSWORD").encode()
piped = os.environ.pop("TEST_PIPED_STDIN", None)
pid, fd = pty.fork()
if pid == 0:
    if piped is not None:  # stdin piped in; the terminal stays the controlling one
        read, write = os.pipe()
        os.write(write, piped.encode())
        os.close(write)
        os.dup2(read, 0)
        os.close(read)
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
@pytest.mark.anyio
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


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.anyio
async def test_password_is_prompted_for_on_the_terminal_when_stdin_is_piped(gws_simulator):
    line = '{"recordHandle": 12, "applicationId": 134, "campaignName": "Campaign1", '
    line += '"callingList": "CallingList1"}\n'
    env = gws_env(gws_simulator, TEST_TYPED_PASSWORD="secret", TEST_PIPED_STDIN=line)
    del env["GWS_PASSWORD"]
    with anyio.fail_after(40):
        result = await anyio.run_process(
            [sys.executable, "-c", _TYPE_PASSWORD, str(CLI), "cancel", "--stdin", "--no-plugins"],
            env=env,
            check=False,
        )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    assert "GWS password for agent1: " in output  # on the terminal, like ssh and sudo
    assert "secret" not in output
    assert "acknowledged   record=12" in output
    assert gws_simulator.records[12].cancelled


@contextlib.contextmanager
def webhook_receiver(gws: ThreadedSimulator) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP endpoint on the simulator's loop: its URL, and the JSON bodies posted to it."""
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/acks", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = gws.portal.call(start)
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/acks", received
    finally:
        gws.portal.call(runner.cleanup)


def test_cancel_runs_the_installed_plugins_and_lets_them_finish(
    cli: Cli, installed: Installed, threaded_gws: ThreadedSimulator, tmp_path
):
    audit_file = tmp_path / "audit.jsonl"
    with webhook_receiver(threaded_gws) as (url, received):
        cli.plugins_from(installed)
        cli.connect(threaded_gws)
        cli.env(
            GWS_OUTBOUND_PLUGINS="audit,webhook",
            GWS_OUTBOUND_AUDIT_FILE=str(audit_file),
            GWS_OUTBOUND_WEBHOOK_URL=url,
        )
        result = cli(*cancel_args(16, "--reference-id", "ref-plugins", "--json"))
        # The webhook's queue was flushed before the CLI returned (its aclose() was awaited).
        delivered = threaded_gws.call(lambda: list(received))

    assert result.status == 0, result.err
    assert [body["reference_id"] for body in delivered] == ["ref-plugins"]
    lines = [json.loads(line) for line in audit_file.read_text(encoding="utf-8").splitlines()]
    assert [line["event"] for line in lines] == ["cancel_requested", "cancel_acknowledged"]


# -- plugins ------------------------------------------------------------------------------------


def test_plugins_lists_the_reference_plugins_and_their_hooks(cli: Cli, installed: Installed):
    cli.plugins_from(installed)
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhook")
    text = cli("plugins")
    assert text.status == 0, text.err
    assert "audit  [gws-outbound-audit 0.1.0]" in text.out
    assert "webhook  [gws-outbound-webhook 0.1.0]" in text.out
    assert "    on_cancel_requested" in text.out

    listing = cli("plugins", "--json")
    assert listing.status == 0
    plugins = {entry["name"]: entry for entry in json.loads(listing.out)}
    assert plugins["audit"]["hooks"] == [
        "on_cancel_failed",
        "on_cancel_requested",
        "on_operation_acknowledged",
        "on_operation_failed",
        "on_operation_requested",
        "on_record_cancel_acknowledged",
    ]
    assert plugins["webhook"]["hooks"] == [
        "on_cancel_failed",
        "on_operation_acknowledged",
        "on_operation_failed",
        "on_record_cancel_acknowledged",
    ]
    assert plugins["webhook"]["distribution"] == "gws-outbound-webhook"


def test_plugins_says_which_installed_plugins_are_not_configured(
    cli: Cli, installed: Installed, tmp_path
):
    cli.plugins_from(installed)
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhook")
    text = cli("plugins")
    assert text.status == 0, text.err
    assert (
        "    not configured (does nothing): set GWS_OUTBOUND_AUDIT_FILE to a file path"
        in text.lines
    )
    assert "set GWS_OUTBOUND_WEBHOOK_URL to a URL" in text.out

    cli.env(
        GWS_OUTBOUND_AUDIT_FILE=str(tmp_path / "audit.jsonl"),
        GWS_OUTBOUND_WEBHOOK_URL="https://hooks.example.com/gws",
    )
    listing = cli("plugins", "--json")
    plugins = {entry["name"]: entry for entry in json.loads(listing.out)}
    assert plugins["audit"]["configured"] is True
    assert plugins["webhook"]["configured"] is True
    assert plugins["webhook"]["setup_hint"] is None
    assert "not configured" not in cli("plugins").out


def test_unconfigured_reference_plugins_are_quiet_in_a_run(
    cli: Cli, installed: Installed, threaded_gws: ThreadedSimulator
):
    cli.plugins_from(installed)
    cli.connect(threaded_gws)
    cli.unset("GWS_ACK_TIMEOUT")
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhook")
    result = cli(*cancel_args(11), "--log-level", "warning")
    assert result.status == 0, result.err
    assert result.err == ""  # no audit_trail_disabled / webhook_disabled warning


def test_plugins_without_a_filter_lists_every_installed_plugin(cli: Cli, installed: Installed):
    cli.plugins_from(installed)
    cli.unset("GWS_OUTBOUND_PLUGINS")
    listing = cli("plugins", "--json")
    names = {entry["name"] for entry in json.loads(listing.out)}
    assert {"audit", "webhook", "tally"} <= names


def test_plugins_respects_the_block_list(cli: Cli, installed: Installed):
    cli.plugins_from(installed)
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhook", GWS_OUTBOUND_DISABLE_PLUGINS="webhook")
    result = cli("plugins")
    assert "audit" in result.out
    assert "webhook  [" not in result.out
    assert "GWS_OUTBOUND_DISABLE_PLUGINS=webhook" in result.out


def test_plugins_reports_a_broken_plugin_by_name_and_exits_1(cli: Cli, installed: Installed):
    cli.plugins_from(installed)
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhook", GWS_OUTBOUND_WEBHOOK_URL="not a url")
    result = cli("plugins")
    assert result.status == 1
    assert "audit  [" in result.out
    assert "webhook [gws-outbound-webhook 0.1.0]  FAILED TO LOAD" in result.out
    assert "    ValueError: the webhook URL must be an http:// or https:// URL" in result.out
    assert "/gws_outbound_webhook/__init__.py:" in result.out  # where it failed
    assert "    entry point: webhook = gws_outbound_webhook:plugin" in result.out
    assert "error: 1 plugin(s) failed to load: webhook" in result.err
    assert "Traceback" not in result.err

    listing = cli("plugins", "--json")
    assert listing.status == 1
    entries = {entry["name"]: entry for entry in json.loads(listing.out)}
    assert entries["audit"]["error"] is None
    assert entries["webhook"]["error"].startswith("ValueError: the webhook URL must be")
    assert "/gws_outbound_webhook/__init__.py:" in entries["webhook"]["location"]
    assert entries["webhook"]["hooks"] == []
    assert entries["webhook"]["distribution"] == "gws-outbound-webhook 0.1.0"


def test_plugins_lists_every_failure_not_only_the_first(cli: Cli, tmp_path):
    site = make_site(
        tmp_path,
        {
            "broken": "import gwsx_no_such_module\n",
            "typo": "from gws_outbound_plugin import hookimpl\n\n\n@hookimpl\n"
            "def on_user_evnt(event):\n    pass\n",
            "badarg": "from gws_outbound_plugin import hookimpl\n\n\n@hookimpl\n"
            "def on_user_event(evnt):\n    pass\n",
        },
    )
    cli.plugins_from(site)
    cli.env(GWS_OUTBOUND_PLUGINS="broken,typo,badarg")
    result = cli("plugins")
    assert result.status == 1
    assert "error: 3 plugin(s) failed to load: badarg, broken, typo" in result.err
    assert "broken [gwsx-broken 1.0]  FAILED TO LOAD" in result.out
    assert "    ModuleNotFoundError: No module named 'gwsx_no_such_module'" in result.out
    assert f"    at {site / 'gwsx_broken.py'}:1" in result.out
    assert "unknown hook 'on_user_evnt': did you mean 'on_user_event'?" in result.out
    assert "on_user_event(evnt) asks for {'evnt'}" in result.out
    assert "\\n" not in result.out  # pluggy's multi-line message is not squeezed

    strict = cli("plugins", "--strict", "--json")
    assert strict.status == 1
    assert {entry["name"] for entry in json.loads(strict.out)} == {"broken", "typo", "badarg"}


def test_plugins_warns_about_hook_functions_without_hookimpl(cli: Cli, tmp_path):
    site = make_site(
        tmp_path,
        {"forgetful": "def on_record_cancel_acknowledged(ack):\n    pass\n"},
    )
    cli.plugins_from(site)
    cli.env(GWS_OUTBOUND_PLUGINS="forgetful")
    result = cli("plugins")
    assert result.status == 0  # it loaded; it just does nothing
    assert "forgetful  [gwsx-forgetful 1.0]" in result.out
    assert (
        "    warning: on_record_cancel_acknowledged is named like the hook but has no "
        "@hookimpl: it is never called"
    ) in result.out

    strict = cli("plugins", "--strict", "--json")
    assert strict.status == 1
    (entry,) = json.loads(strict.out)
    assert entry["hooks"] == []
    assert entry["error"] is None
    assert "has no @hookimpl" in entry["warnings"][0]


def test_plugins_warns_about_an_entry_point_naming_the_module_not_its_object(cli: Cli, tmp_path):
    """The tutorial's layout (``plugin = Watch()`` in the module) announced as ``watch =
    "gwsx_watch"`` instead of ``"gwsx_watch:plugin"``: the module, with no hook of its own,
    was listed with no hook and no word, and every host loaded a plugin that heard nothing."""
    source = (
        "from gws_outbound_plugin import hookimpl\n\n"
        "class Watch:\n"
        "    @hookimpl\n"
        "    def on_user_event(self, event):\n"
        "        pass\n\n"
        "plugin = Watch()\n"
    )
    cli.plugins_from(make_site(tmp_path, {"watch": source}))
    cli.env(GWS_OUTBOUND_PLUGINS="watch")
    result = cli("plugins")
    assert result.status == 0, result.err
    assert "watch  [gwsx-watch 1.0]" in result.out
    assert (
        "    warning: the module gwsx_watch implements no hook: they are on its object "
        "'plugin' (a Watch), so it hears nothing; name that object instead (an entry point "
        '"gwsx_watch:plugin", --plugin gwsx_watch:plugin)'
    ) in result.lines

    strict = cli("plugins", "--strict")
    assert strict.status == 1


def test_plugins_names_an_allowed_plugin_that_is_not_installed(cli: Cli, installed: Installed):
    cli.plugins_from(installed)
    cli.env(GWS_OUTBOUND_PLUGINS="audit,webhok")
    result = cli("plugins")
    assert result.status == 1
    assert "audit  [" in result.out
    assert "webhok  FAILED TO LOAD" in result.out
    assert "    not installed (installed: audit, tally, webhook)" in result.out


def test_plugins_with_none_installed(cli: Cli):
    result = cli("plugins")
    assert result.status == 0
    assert "no plugin installed under the 'gws_outbound' entry-point group" in result.out


# -- tail ---------------------------------------------------------------------------------------


@asynccontextmanager
async def started(
    args: Sequence[str], env: Mapping[str, str], *, raw: bool = False
) -> AsyncIterator[Process]:
    """The CLI (or, with ``raw``, the command ``args``) as a running process."""
    command = list(args) if raw else [str(CLI), *args]
    process = await anyio.open_process(command, env=dict(env))
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


@pytest.mark.anyio
async def test_tail_prints_events_until_ctrl_c(gws_simulator, gws_outbound, gws_request_factory):
    env = gws_env(gws_simulator)
    async with (
        started(["tail", "--json", "--end-session"], env) as as_json,
        started(["tail"], env) as readable,
    ):
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
    # Only the --end-session one ended its GWS session.
    ended = [r for r in gws_simulator.requests if (r.method, r.path) == ("POST", "/api/v2/me")]
    assert [r.body for r in ended] == [{"operationName": "EndContactCenterSession"}]


def test_tail_with_wrong_credentials_exits_1(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws, GWS_PASSWORD="nope")
    result = cli("tail")
    assert result.status == 1
    assert "refused the credentials" in result.err


# -- simulate ---------------------------------------------------------------------------------


@pytest.mark.anyio
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


# -- the command line never takes a password, and says what it is -------------------------------


@pytest.mark.parametrize(
    "password_args",
    [
        ["--password", "s3cr3t-typed"],
        ["--password=s3cr3t-typed"],
        ["--pass", "s3cr3t-typed"],
        ["--pasword", "s3cr3t-typed"],
        ["-pw", "s3cr3t-typed"],
    ],
)
def test_a_password_argument_is_refused_without_echoing_it(cli: Cli, password_args):
    result = cli(*cancel_args(11), *password_args)
    assert result.status == 2
    assert "s3cr3t-typed" not in result.out + result.err
    assert "never taken from the command line" in result.err
    assert "GWS_PASSWORD" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_version(cli: Cli):
    from gws_outbound_plugin import __version__

    result = cli("--version")
    assert result.status == 0
    assert result.out.strip() == f"gws-outbound {__version__}"


# -- connection options ---------------------------------------------------------------------------


def test_base_url_option_wins_over_the_environment(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws, GWS_BASE_URL="http://127.0.0.1:9")  # nothing listens there
    result = cli(*cancel_args(11, "--no-plugins", "--base-url", threaded_gws.base_url + "/api/v2"))
    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged ")

    cli.unset("GWS_BASE_URL")
    result = cli(*cancel_args(12, "--no-plugins", "--base-url", threaded_gws.base_url))
    assert result.status == 0, result.err


def test_the_gws_session_is_left_open_unless_end_session_is_asked(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws)
    result = cli(*cancel_args(11, "--no-plugins"))
    assert result.status == 0, result.err
    assert threaded_gws.read(lambda sim: sim.session_count) == 1
    assert not requests_to(threaded_gws, "POST", "/api/v2/me")

    threaded_gws.call(threaded_gws.simulator.expire_sessions)
    result = cli(*cancel_args(12, "--no-plugins", "--end-session"))
    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged ")
    (ended,) = requests_to(threaded_gws, "POST", "/api/v2/me")
    assert ended.body == {"operationName": "EndContactCenterSession"}
    assert ended.had_session_cookie and ended.had_csrf_token
    assert threaded_gws.read(lambda sim: sim.session_count) == 0
    assert "Traceback" not in result.err
    assert "warning" not in result.err.lower(), result.err


# -- many records, one session --------------------------------------------------------------------


def test_many_record_handles_on_one_session(cli: Cli, threaded_gws: ThreadedSimulator):
    args = [*cancel_args(11, "--no-plugins", "--json"), "--record-handle", "14", "16"]
    args += ["--chain", "RecordOnly"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 0, result.err
    outcomes = [json.loads(line) for line in result.lines]
    assert sorted(outcome["record_handle"] for outcome in outcomes) == [11, 14, 16]
    assert {outcome["hook"] for outcome in outcomes} == {"on_record_cancel_acknowledged"}
    assert logins(threaded_gws) == 1
    cancels = threaded_gws.read(lambda sim: sim.cancels)
    assert [c.body["chainAttribute"] for c in cancels] == ["RecordOnly"] * 3


def test_one_failure_among_many_exits_1_and_reports_each(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    result = cli(*cancel_args(12, "--no-plugins"), "--record-handle", "999")
    assert result.status == 1
    lines = sorted(result.lines)
    assert len(lines) == 2
    assert lines[0].startswith("acknowledged ") and "record=12" in lines[0]
    assert lines[1].startswith("failed ") and "record=999" in lines[1]


def test_records_as_json_lines_on_stdin(cli: Cli, threaded_gws: ThreadedSimulator):
    device = threaded_gws.read(lambda sim: sim.device_path("agent1"))
    lines = [
        {"recordHandle": 11},  # the rest from the options
        {
            "recordHandle": 21,
            "campaignName": "Campaign2",
            "callingList": "CallingList2",
            "referenceId": "ref-21",
        },
        "not json",
        {"recordHandle": "x", "campaign": "typo"},
        {"recordHandle": 999, "devicePath": device},
    ]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    args = ["cancel", "--stdin", *RECORD_ARGS, "CallingList1", "--json", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args, stdin=stdin + "\n\n")

    assert result.status == 1  # one refused by OCS, two invalid lines
    out = [json.loads(line) for line in result.lines]
    errors = sorted((line for line in out if "error" in line), key=lambda line: line["line"])
    assert [error["line"] for error in errors] == [3, 4]
    assert errors[0]["error"].startswith("invalid JSON")
    assert "recordHandle" in errors[1]["fields"] and "campaign" in errors[1]["fields"]
    acked = {line["record_handle"]: line for line in out if line.get("hook", "").endswith("ged")}
    assert set(acked) == {11, 21}
    assert acked[21]["reference_id"] == "ref-21"
    (failed,) = [line for line in out if line.get("hook") == "on_cancel_failed"]
    assert failed["request"]["record_handle"] == 999
    assert failed["reason"] == "ocs_error"
    assert logins(threaded_gws) == 1
    assert {c.body["devicePath"] for c in threaded_gws.read(lambda sim: sim.cancels)} == {device}


def test_no_progress_display_when_stderr_is_not_a_terminal(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    # The outcome takes long enough for the progress display to appear on a terminal.
    threaded_gws.call(lambda: threaded_gws.simulator.faults.delay_notifications(0.8))
    cli.connect(threaded_gws)
    result = cli(*cancel_args(11, "--no-plugins"))
    assert result.status == 0, result.err
    assert "waiting for" not in result.err
    assert "\r" not in result.err + result.out


# -- Ctrl-C ---------------------------------------------------------------------------------------


async def wait_until(condition: Any, timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_ctrl_c_while_waiting_prints_the_interrupted_outcome_as_json(gws_simulator):
    gws_simulator.faults.hold_notifications()  # the outcome never comes
    async with started(
        [*cancel_args(11, "--no-plugins", "--json", "--reference-id", "ref-int")],
        gws_env(gws_simulator),
    ) as process:
        await wait_until(lambda: len(gws_simulator.cancels) == 1)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            assert await process.wait() == 130
        assert process.stdout is not None and process.stderr is not None
        stdout = (await process.stdout.receive()).decode()
        stderr = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                stderr += await process.stderr.receive()
    (line,) = stdout.splitlines()
    outcome = json.loads(line)
    assert outcome["hook"] == "on_cancel_failed"
    # It was sent: GWS may have acted, so the outcome is unknown, not "shut_down" (issue 16).
    assert outcome["reason"] == "outcome_unknown"
    assert outcome["may_have_acted"] is True
    assert outcome["interrupted"] is True
    assert outcome["request"]["reference_id"] == "ref-int"
    assert "interrupted" in stderr.decode()
    assert "Traceback" not in stderr.decode()


@pytest.mark.anyio
async def test_ctrl_c_with_nothing_waiting_does_not_point_at_reports_above(gws_simulator):
    """``cancel --stdin``: one line answered, then Ctrl-C while reading more: the last line
    said 'the records still waiting were reported above', and none was."""
    args = ["cancel", "--stdin", "--no-plugins", *RECORD_ARGS, "CallingList1"]
    async with started(args, gws_env(gws_simulator)) as process:
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        await process.stdin.send(b'{"recordHandle": 999}\n')  # OCS refuses it at once
        line = await read_line(BufferedByteReceiveStream(process.stdout))
        assert line.startswith("failed ")
        process.send_signal(signal.SIGINT)  # stdin still open: the CLI waits for lines
        with anyio.fail_after(15):
            assert await process.wait() == 130
        stderr = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                stderr += await process.stderr.receive()
    assert stderr.decode().splitlines() == [
        "gws-outbound cancel: interrupted: no request was waiting for its outcome"
    ]


# -- on a terminal: the password prompt and the progress display ---------------------------------

_PTY_DRIVER = r"""
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = sys.stdout.buffer
commands = b""
reading = True
while True:
    ready = select.select([fd] + ([0] if reading else []), [], [], 0.2)[0]
    if fd in ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out.write(chunk)
        out.flush()
    if 0 in ready:
        data = os.read(0, 4096)
        if not data:
            reading = False
        commands += data
        while b"\n" in commands:
            line, commands = commands.split(b"\n", 1)
            os.write(fd, bytes.fromhex(line.decode()))
status = os.waitpid(pid, 0)[1]
out.write(b"\n@@exit %d\n" % os.waitstatus_to_exitcode(status))
out.flush()
"""


class Terminal:
    """The CLI on a pseudo-terminal: what it writes, and keys typed into it."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.transcript = ""

    async def expect(self, text: str, timeout: float = 15) -> None:
        assert self.process.stdout is not None
        with anyio.fail_after(timeout):
            while text not in self.transcript:
                self.transcript += (await self.process.stdout.receive()).decode(errors="replace")

    async def type(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data.hex().encode() + b"\n")

    async def exit_status(self) -> int:
        await self.expect("@@exit ")
        await self.expect("\n", timeout=5)
        tail = self.transcript.rsplit("@@exit ", 1)[1]
        return int(tail.split()[0])


@asynccontextmanager
async def terminal(args: Sequence[str], env: Mapping[str, str]) -> AsyncIterator[Terminal]:
    async with started([sys.executable, "-c", _PTY_DRIVER, str(CLI), *args], env, raw=True) as p:
        yield Terminal(p)


def prompting_env(simulator: GWSSimulator) -> dict[str, str]:
    env = gws_env(simulator)
    del env["GWS_PASSWORD"]
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (b"\x04", 2, "no password given (end of input at the prompt)"),
        (b"\x03", 130, "interrupted at the password prompt; nothing was sent"),
    ],
    ids=["ctrl-d", "ctrl-c"],
)
@pytest.mark.anyio
async def test_ctrl_d_or_ctrl_c_at_the_password_prompt_ends_at_once(
    gws_simulator, key, status, message
):
    async with terminal(cancel_args(11, "--no-plugins"), prompting_env(gws_simulator)) as tty:
        await tty.expect("GWS password for agent1: ")
        await tty.type(key)
        assert await tty.exit_status() == status
    assert message in tty.transcript
    assert "Traceback" not in tty.transcript
    assert gws_simulator.requests == []


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.anyio
async def test_progress_is_shown_on_a_terminal_while_waiting(gws_simulator):
    gws_simulator.faults.hold_notifications()
    async with terminal(cancel_args(11, "--no-plugins"), gws_env(gws_simulator)) as tty:
        await tty.expect("waiting for 1 outcome(s): 0 acknowledged")
        gws_simulator.faults.release_notifications()
        await tty.expect("acknowledged   record=11")
        assert await tty.exit_status() == 0


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.anyio
async def test_after_ctrl_c_the_progress_line_no_longer_says_press_ctrl_c(gws_simulator):
    """Between the interrupted outcomes it drew 'waiting for 1 outcome(s) ... (Ctrl-C to
    stop)' again, after Ctrl-C had been pressed."""
    gws_simulator.faults.hold_notifications()
    args = ["cancel", "--record-handle", "11", "12", "13", *RECORD_ARGS, "CallingList1"]
    async with terminal([*args, "--no-plugins"], gws_env(gws_simulator)) as tty:
        await tty.expect("waiting for 3 outcome(s): 0 acknowledged")
        await tty.type(b"\x03")
        assert await tty.exit_status() == 130
    after = tty.transcript.split("^C", 1)[1]
    assert after.count("(interrupted)") == 3
    assert "Ctrl-C to stop" not in after


# -- the other operations -------------------------------------------------------------------------


def test_every_operation_command_has_the_options_of_cancel():
    commands = _subparsers(build_parser())
    for name in OPERATION_COMMANDS:
        options = {flag for action in commands[name]._actions for flag in action.option_strings}
        shared = {"--json", "--no-plugins", "--base-url", "--end-session", "--log-level"}
        assert shared <= options, name
        assert "--device-path" in options, name
        if name != "preview":
            assert "--stdin" in options, name


def test_help_of_an_operation_command(cli: Cli):
    result = cli("reschedule", "--help")
    assert result.status == 0
    for text in ("--callback-type {Personal,Campaign}", "--at DATETIME", "UTC offset", "exit"):
        assert text in result.out, text
    # Wrapped, but for the examples: whole command lines, to copy and paste.
    examples = result.out.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert examples and all(line.startswith("  ") for line in examples)
    text = [line for line in result.lines if line not in examples]
    assert max(len(line) for line in text) <= 100


def test_complete_with_a_call_result(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["complete", "--record-handle", "11", *RECORD_ARGS, "CallingList1"]
    args += ["--call-result", "Answer", "--phone-number", "3001", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged   CompleteRecord record=11 app=134 ")
    assert "callResult=Answer" in result.out
    (body,) = bodies(threaded_gws, "CompleteRecord")
    assert (body["callResult"], body["phoneNumber"]) == ("Answer", "3001")
    record = threaded_gws.read(lambda sim: sim.records[11])
    assert (record.status, record.call_result) == ("completed", "Answer")


def test_reject_many_records_one_refused_exits_1_as_json(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["reject", "--record-handle", "13", "999", *RECORD_ARGS, "CallingList1", "--json"]
    cli.connect(threaded_gws)
    result = cli(*args, "--no-plugins")

    assert result.status == 1
    outcomes = {line["hook"]: line for line in map(json.loads, result.lines)}
    assert set(outcomes) == {"on_operation_acknowledged", "on_operation_failed"}
    acked, failed = outcomes["on_operation_acknowledged"], outcomes["on_operation_failed"]
    assert (acked["operation"], acked["record_handle"]) == ("RejectRecord", 13)
    assert (failed["operation"], failed["reason"]) == ("RejectRecord", "ocs_error")
    assert failed["request"]["record_handle"] == 999
    assert logins(threaded_gws) == 1


def test_reschedule_sends_epoch_seconds_and_the_callback_comes_back(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    args = ["reschedule", "--record-handle", "16", *CAMPAIGN_ARGS, "--callback-type"]
    args += ["Personal", "--at", "2030-01-02T09:30:00+01:00", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 0, result.err
    assert "acknowledged   RescheduleRecord record=16 " in result.out
    assert "callback=Personal at=2030-01-02T09:30:00+01:00" in result.out
    (body,) = bodies(threaded_gws, "RescheduleRecord")
    assert body["timestamp"] == 1893573000  # 2030-01-02T08:30:00Z
    assert body["callbackType"] == "Personal"
    assert "callingList" not in body
    assert threaded_gws.read(lambda sim: sim.records[16].status) == "scheduled"


def test_do_not_call_by_record_and_by_phone_number(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    by_record = ["do-not-call", "--record-handle", "16", *RECORD_ARGS, "CallingList1"]
    result = cli(*by_record, "--chain", "AllChain", "--no-plugins")
    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged   DoNotCallRecord record=16 ")

    by_phone = ["do-not-call", "--phone", "3005", *CAMPAIGN_ARGS, "--no-plugins"]
    result = cli(*by_phone)
    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged   DoNotCallRecord phone=3005 app=134 ")
    paths = threaded_gws.read(lambda sim: [r.path for r in sim.operations])
    assert paths == ["/api/v2/me/outbound-records/16", "/api/v2/me/outbound-records"]
    assert threaded_gws.read(lambda sim: sim.records[15].status) == "do_not_call"
    assert "3005" in threaded_gws.read(lambda sim: sim.do_not_call_numbers)


def test_update_takes_the_call_window_as_hh_mm(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["update", "--record-handle", "17", *CAMPAIGN_ARGS, "--phone-type", "Mobile"]
    args += ["--time-zone", "EST", "--from", "08:00", "--until", "17:30", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 0, result.err
    assert result.out.startswith("acknowledged   UpdateRecord record=17 ")
    (body,) = bodies(threaded_gws, "UpdateRecord")
    assert (body["phoneType"], body["timeZone"]) == ("Mobile", "EST")
    assert (body["from"], body["until"]) == (8 * 3600, 17 * 3600 + 1800)


def test_chained_prints_the_chained_records(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    result = cli("chained", "--record-handle", "11", *CAMPAIGN_ARGS, "--no-plugins")

    assert result.status == 0, result.err
    first, *chained = result.lines
    assert first.startswith("acknowledged   GetChainedRecord record=11 ")
    assert "chained=2" in first
    assert [line.split()[1] for line in chained] == ["record=12", "record=13"]
    assert all(line.startswith("chained        ") and "chain=101" in line for line in chained)

    as_json = cli("chained", "--record-handle", "14", *CAMPAIGN_ARGS, "--json", "--no-plugins")
    (line,) = as_json.lines
    assert [record["recordHandle"] for record in json.loads(line)["records"]] == [15]


def test_add_record_prints_the_new_handle(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["add-record", *RECORD_ARGS, "CallingList1", "--phone", "5550001"]
    args += ["--time-zone", "PST", "--phone-type", "HomePhone", "--from", "0"]
    args += ["--until", "86399", "--field", "tier=gold", "--field", "note=a=b", "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args)

    assert result.status == 0, result.err
    new_handle = threaded_gws.read(lambda sim: max(sim.records))
    assert result.out.startswith(f"acknowledged   AddRecord record={new_handle} app=134 ")
    (body,) = bodies(threaded_gws, "AddRecord")
    assert body["otherFields"] == {"tier": "gold", "note": "a=b"}
    assert (body["from"], body["until"]) == (0, 86399)


def test_a_preview_session_in_order_on_one_gws_session(cli: Cli, threaded_gws: ThreadedSimulator):
    args = ["preview", "start", "get", "get", "end", *CAMPAIGN_ARGS, "--no-plugins"]
    cli.connect(threaded_gws)
    result = cli(*args, "--end-session")

    assert result.status == 0, result.err
    lines = result.lines
    assert [line.split()[1] for line in lines] == [
        "StartPreviewSession",
        "GetPreviewRecord",
        "GetPreviewRecord",
        "EndPreviewSession",
    ]
    assert "record=11 app=134 campaign=Campaign1 list=CallingList1 chain=101 phone=3001" in lines[1]
    assert "record=12 " in lines[2]
    operations = threaded_gws.read(lambda sim: [r.body["operationName"] for r in sim.operations])
    assert operations == [
        "StartPreviewSession",
        "GetPreviewRecord",
        "GetPreviewRecord",
        "EndPreviewSession",
    ]
    assert not threaded_gws.read(lambda sim: sim.preview_session_active("agent1", "Campaign1"))
    ended = requests_to(threaded_gws, "POST", "/api/v2/me")
    assert [r.body for r in ended] == [{"operationName": "EndContactCenterSession"}]


def test_no_preview_record_left_is_not_a_failure(cli: Cli, threaded_gws: ThreadedSimulator):
    # A stopped campaign hands out nothing.
    threaded_gws.call(
        lambda: threaded_gws.simulator.send_campaign_status("Campaign1", "CampaignStopped")
    )
    cli.connect(threaded_gws)
    result = cli("preview", "start", "get", *CAMPAIGN_ARGS, "--json", "--no-plugins")

    assert result.status == 0, result.err
    started, got = map(json.loads, result.lines)
    assert started["operation"] == "StartPreviewSession"
    assert (got["operation"], got["empty"], got["record_handle"]) == (
        "GetPreviewRecord",
        True,
        None,
    )

    text = cli("preview", "get", *CAMPAIGN_ARGS, "--no-plugins")
    assert text.status == 0, text.err
    assert "GetPreviewRecord campaign=Campaign1 app=134 empty (no record available)" in text.out


def test_request_takes_any_operation_as_json(cli: Cli, threaded_gws: ThreadedSimulator):
    reject = {
        "operationName": "RejectRecord",
        "recordHandle": 20,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
    }
    cancel_it = dict(reject, operationName="CancelRecord")
    cli.connect(threaded_gws)
    result = cli(
        "request", json.dumps(reject), json.dumps(cancel_it), "--sequential", "--no-plugins"
    )
    assert result.status == 1  # a rejected record cannot be cancelled
    acked, refused = result.lines
    assert acked.startswith("acknowledged   RejectRecord record=20 ")
    assert refused.startswith("failed         reason=ocs_error error=105 ")  # a cancel's line
    operations = threaded_gws.read(lambda sim: [r.body["operationName"] for r in sim.operations])
    assert operations == ["RejectRecord", "CancelRecord"]


def test_request_reads_json_lines_from_stdin(cli: Cli, threaded_gws: ThreadedSimulator):
    lines = [
        {"operationName": "StartPreviewSession", "applicationId": 134, "campaignName": "Campaign2"},
        {"operationName": "GetPreviewRecord", "applicationId": 134, "campaignName": "Campaign2"},
        {"recordHandle": 11},  # no operationName
        {"operationName": "Frobnicate"},
        {"operationName": "GetChainedRecord", "recordHandle": 21, "applicationId": 134},
    ]
    stdin = "\n".join(map(json.dumps, lines)) + "\nnot json\n"
    cli.connect(threaded_gws)
    result = cli("request", "--stdin", "--sequential", "--json", "--no-plugins", stdin=stdin)

    assert result.status == 1  # invalid lines
    out = [json.loads(line) for line in result.lines]
    errors = {line["line"]: line for line in out if "error" in line}
    assert sorted(errors) == [3, 4, 5, 6]
    assert errors[3]["fields"] == ["operationName"]
    assert "unknown operation 'Frobnicate'" in errors[4]["error"]
    assert errors[5]["fields"] == ["campaignName"]
    assert errors[6]["error"].startswith("invalid JSON")
    outcomes = [line for line in out if "hook" in line]
    assert [(o["hook"], o["operation"]) for o in outcomes] == [
        ("on_operation_acknowledged", "StartPreviewSession"),
        ("on_operation_acknowledged", "GetPreviewRecord"),
    ]
    assert outcomes[1]["record_handle"] == 21
    device = threaded_gws.read(lambda sim: sim.device_path("agent1"))
    devices = threaded_gws.read(lambda sim: {r.body["devicePath"] for r in sim.operations})
    assert devices == {device}


def test_stdin_lines_of_an_operation_command_take_defaults_from_the_options(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    lines = [{"recordHandle": 14, "callResult": "Busy"}, {"recordHandle": 15}]
    stdin = "\n".join(map(json.dumps, lines)) + "\n"
    args = ["complete", "--stdin", *RECORD_ARGS, "CallingList1", "--call-result", "Answer"]
    cli.connect(threaded_gws)
    result = cli(*args, "--no-plugins", stdin=stdin)

    assert result.status == 0, result.err
    assert len(result.lines) == 2
    results = {
        body["referenceId"]: body["callResult"] for body in bodies(threaded_gws, "CompleteRecord")
    }
    assert sorted(results.values()) == ["Answer", "Busy"]
    call_results = threaded_gws.read(
        lambda sim: (sim.records[14].call_result, sim.records[15].call_result)
    )
    assert call_results == ("Busy", "Answer")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["do-not-call", *CAMPAIGN_ARGS], "--record-handle or --phone"),
        (["do-not-call", "--record-handle", "11", *CAMPAIGN_ARGS], "--calling-list"),
        (
            ["reschedule", "--record-handle", "11", *CAMPAIGN_ARGS, "--callback-type", "Personal"],
            "required: --at",
        ),
        (
            ["reschedule", "--record-handle", "11", "--at", "2030-01-02T09:30:00"],
            "has no UTC offset",
        ),
        (["reschedule", "--callback-type", "Later"], "invalid choice"),
        (
            ["update", "--record-handle", "11", *CAMPAIGN_ARGS],
            "--phone/--time-zone/--phone-type/--from/--until at least one must be given",
        ),
        (["update", "--from", "25:00"], "HH:MM"),
        (["add-record", *RECORD_ARGS, "L"], "required: --phone, --time-zone, --phone-type"),
        (["add-record", "--field", "novalue"], "NAME=VALUE"),
        (["preview", *CAMPAIGN_ARGS], "required"),
        (["preview", "begin", *CAMPAIGN_ARGS], "invalid choice"),
        (["request"], "give the requests as JSON arguments, or as JSON lines with --stdin"),
        (["request", "{", "--no-plugins"], "request 1 is not valid JSON"),
        (["request", '{"operationName": "RejectRecord"}'], "request 1: invalid RejectRecord"),
        (["reject", "--record-handle", "11", "--stdin"], "either as --record-handle or with"),
        (
            ["complete", "--record-handle", "11", "12", *RECORD_ARGS, "L", "--reference-id", "r"],
            "--reference-id is for a single record",
        ),
    ],
)
def test_operation_usage_errors_exit_2_before_any_network(cli: Cli, args, message):
    result = cli(*args)
    assert result.status == 2, result.err
    assert message in result.err


@pytest.mark.anyio
async def test_ctrl_c_reports_an_unfinished_operation_as_interrupted(gws_simulator):
    gws_simulator.faults.hold_notifications()  # the outcome never comes
    args = ["reject", "--record-handle", "12", *RECORD_ARGS, "CallingList1", "--json"]
    args += ["--reference-id", "ref-int", "--no-plugins"]
    async with started(args, gws_env(gws_simulator)) as process:
        await wait_until(lambda: len(gws_simulator.operations) == 1)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            assert await process.wait() == 130
        assert process.stdout is not None
        stdout = (await process.stdout.receive()).decode()
    (line,) = stdout.splitlines()
    outcome = json.loads(line)
    assert (outcome["hook"], outcome["operation"]) == ("on_operation_failed", "RejectRecord")
    # Sent, never answered: GWS may have acted, so the outcome is unknown (issue 16).
    assert (outcome["reason"], outcome["interrupted"]) == ("outcome_unknown", True)
    assert outcome["request"]["reference_id"] == "ref-int"


@pytest.mark.anyio
async def test_tail_prints_other_operations_and_unsolicited_events(gws_simulator, gws_outbound):
    async with started(["tail", "--json"], gws_env(gws_simulator)) as tail:
        assert tail.stderr is not None and tail.stdout is not None
        assert "press Ctrl-C" in await read_line(BufferedByteReceiveStream(tail.stderr))
        out = BufferedByteReceiveStream(tail.stdout)

        # Another client of the agent (the test's plugin) rejects a record.
        reject = RejectRecordRequest(
            record_handle=18,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            device_path=gws_simulator.device_path("agent1"),
        )
        await gws_outbound.perform(reject)
        gws_simulator.send_campaign_status("Campaign1", "CampaignStopped")

        lines = [json.loads(await read_line(out)) for _ in range(4)]
        tail.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            assert await tail.wait() == 0
    assert sorted(line["hook"] for line in lines) == [
        "on_campaign_status",
        "on_operation_acknowledged",
        "on_user_event",
        "on_user_event",
    ]
    by_hook = {line["hook"]: line for line in lines}
    assert by_hook["on_operation_acknowledged"]["operation"] == "RejectRecord"
    assert by_hook["on_operation_acknowledged"]["request"] is None  # not tail's own
    status = by_hook["on_campaign_status"]
    assert (status["status"], status["campaign_name"]) == ("CampaignStopped", "Campaign1")


def test_the_text_lines_of_the_unsolicited_events():
    from gws_outbound_plugin import (
        CallbackType,
        CampaignStatus,
        CampaignStatusEvent,
        PreviewRecordEvent,
        RecordCancelledEvent,
        ScheduledCallEvent,
    )
    from gws_outbound_plugin.cli._format import describe_unsolicited

    where = {"application_id": 134, "campaign_name": "Campaign1", "calling_list": "CallingList1"}
    due = ScheduledCallEvent(
        record_handle=12,
        **where,
        phone_number="3002",
        chain_id=101,
        callback_type=CallbackType.PERSONAL,
    )
    assert describe_unsolicited(due) == (
        "scheduled_call record=12 app=134 campaign=Campaign1 list=CallingList1 "
        "callback=Personal phone=3002 (callback due)"
    )
    gone = RecordCancelledEvent(record_handle=13, **where, phone_number=None, chain_id=None)
    assert describe_unsolicited(gone).startswith("record_cancel  record=13 app=134 ")
    status = CampaignStatusEvent(
        status=CampaignStatus.MODE_CHANGED,
        campaign_name="Campaign1",
        application_id=134,
        group_name=None,
        dialing_mode="Progressive",
    )
    assert describe_unsolicited(status) == (
        "campaign       CampaignModeChanged campaign=Campaign1 app=134 mode=Progressive"
    )
    pushed = PreviewRecordEvent(record_handle=None)
    assert describe_unsolicited(pushed) == (
        "preview_record record=? app=? campaign=? list=? phone=? (pushed by OCS)"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("86399", 86399), ("08:00", 28800), ("8:05:09", 29109), ("23:59:59", 86399)],
)
def test_call_window_times(text, seconds):
    from gws_outbound_plugin.cli._commands import _read_word

    assert _read_word("call_from", text) == seconds


@pytest.mark.parametrize("text", ["86400", "24:00", "-1", "8:60", "8h", "", "\uff11\uff12"])
def test_call_window_times_out_of_range(text):
    from gws_outbound_plugin.cli._commands import _read_word

    with pytest.raises(argparse.ArgumentTypeError, match="seconds after midnight"):
        _read_word("call_from", text)
