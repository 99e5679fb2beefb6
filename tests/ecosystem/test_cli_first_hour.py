"""What a person meets in the first hour with ``gws-outbound``, run in-process through
``main(argv)`` against a simulator on its own thread: one line per outcome or error, every
``--help`` example runs as shown, wording that follows the failure's reason."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from gws_outbound_plugin import (
    CancelFailure,
    CancelRequest,
    FailureReason,
    OperationFailure,
    RejectRecordRequest,
)
from gws_outbound_plugin.cli._commands import _OPERATION_COMMANDS
from gws_outbound_plugin.cli._format import _failure_line, describe_operation_failure

from .conftest import Cli, ThreadedSimulator

LIST1 = ("--application-id", "134", "--campaign", "Campaign1", "--calling-list", "CallingList1")


def cancel(handle: int, *more: str) -> list[str]:
    return ["cancel", "--record-handle", str(handle), *LIST1, *more]


# -- 4. one line per failure; logs only when asked ------------------------------------------------


def test_a_request_ocs_refuses_prints_its_outcome_line_and_nothing_else(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws)
    result = cli(*cancel(999))

    assert result.status == 1
    (line,) = result.lines
    assert line.startswith("failed ")
    assert "reason=ocs_error error=101" in line
    assert result.err == ""  # no log line besides it


def test_wrong_credentials_are_one_error_line_with_the_http_and_gws_status(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws, GWS_PASSWORD="wrong")
    result = cli(*cancel(11))

    assert result.status == 1
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("gws-outbound cancel: error: GWS refused the credentials of 'agent1'")
    assert "HTTP 401, statusCode 20" in line
    assert "wrong" not in line


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_gws_is_one_error_line_after_the_retries(cli: Cli):
    cli.env(
        GWS_BASE_URL=f"http://127.0.0.1:{closed_port()}",
        GWS_USERNAME="agent1",
        GWS_PASSWORD="secret",
        GWS_RETRY_BACKOFF="0.01",
    )
    result = cli(*cancel(11))

    assert result.status == 1
    (line,) = result.err.splitlines()  # not one line per retry first
    assert line.startswith("gws-outbound cancel: error: GET /api/v2/me to GWS at http://127.0.0.1:")
    assert "connection refused" in line


class TerminalOutput(io.StringIO):
    """stderr on a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("command", [cancel(11), ["tail"]], ids=["cancel", "tail"])
def test_on_a_terminal_a_gws_that_never_answers_shows_that_it_is_connecting(
    cli: Cli, monkeypatch, command
):
    """A GWS that accepts the connection and never answers: nothing at all was shown for
    (retries + 1) x request_timeout (30 s by default), then the error line."""
    with socket.socket() as silent:  # listening, never accepting nor answering
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        cli.env(
            GWS_BASE_URL=f"http://127.0.0.1:{port}",
            GWS_USERNAME="agent1",
            GWS_PASSWORD="secret",
            GWS_REQUEST_TIMEOUT="1.5",
            GWS_RETRIES="0",
        )
        terminal = TerminalOutput()
        monkeypatch.setattr(sys, "stderr", terminal)
        result = cli(*command)
    err = terminal.getvalue()

    assert result.status == 1
    shown = f"\r\x1b[Kconnecting to GWS at http://127.0.0.1:{port} as agent1 ("
    assert shown in err
    assert "s; Ctrl-C to stop)" in err
    # Cleared before the error line, which stands on a line of its own.
    assert err.endswith(
        f"\r\x1b[Kgws-outbound {command[0]}: error: GET /api/v2/me to "
        f"GWS at http://127.0.0.1:{port} failed: no answer within 1.5s (ReadTimeout)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel", "--record-handle", "11"],  # ours: required options
        ["cancel", "--record-handle", "x"],  # argparse's
        ["cancel", "--password", "hunter2"],  # refused before argparse
    ],
    ids=["missing-options", "argparse", "password"],
)
def test_every_error_line_has_the_same_prefix(cli: Cli, argv: list[str]):
    result = cli(*argv)

    assert result.status == 2
    assert result.err.splitlines()[-1].startswith(f"gws-outbound {argv[0]}: error: ")
    assert "hunter2" not in result.err


def test_logs_appear_when_a_log_level_is_asked_for(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    quiet = cli(*cancel(999))
    logged = cli(*cancel(998), "--log-level", "info")

    assert quiet.err == ""
    assert "plugin_started" in logged.err
    assert "failed " in logged.out and "record=998" in logged.out


def test_an_installed_plugin_that_fails_to_load_is_one_warning_line(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, monkeypatch
):
    from .conftest import make_site

    site = make_site(tmp_path, {"broken": "raise RuntimeError('no config here')\n"})
    monkeypatch.syspath_prepend(str(site))
    cli.connect(threaded_gws, GWS_OUTBOUND_PLUGINS="broken")
    result = cli(*cancel(11))

    assert result.status == 0
    (line,) = result.err.splitlines()
    assert line.startswith("gws-outbound cancel: warning: plugin 'broken' not loaded: ")
    assert "no config here" in line


# -- 3. every --help example runs as shown --------------------------------------------------------


def help_examples(cli: Cli, command: str) -> list[str]:
    text = cli(command, "--help").out
    assert "examples:\n" in text, f"{command} --help shows no example"
    block = text.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()]


def as_argv(example: str) -> tuple[list[str], str]:
    """``gws-outbound ARGS`` or ``echo 'LINE' | gws-outbound ARGS``: (ARGS, stdin)."""
    words = shlex.split(example)
    stdin = ""
    if "|" in words:
        bar = words.index("|")
        assert words[0] == "echo" and bar == 2, example
        stdin, words = words[1] + "\n", words[bar + 1 :]
    assert words[0] == "gws-outbound", example
    return words[1:], stdin


@pytest.mark.parametrize("command", sorted(_OPERATION_COMMANDS))
def test_every_help_example_runs_as_shown(cli: Cli, threaded_gws: ThreadedSimulator, command: str):
    cli.connect(threaded_gws)
    examples = help_examples(cli, command)
    assert examples
    for example in examples:
        argv, stdin = as_argv(example)
        result = cli(*argv, stdin=stdin)
        assert result.status == 0, (example, result.out, result.err)
        assert result.out.startswith("acknowledged "), (example, result.out)
        assert "invalid" not in result.out and result.err == "", (example, result)


SEER = """\
from gws_outbound_plugin import hookimpl

@hookimpl
def on_campaign_status(event):
    print("seer saw", event.campaign_name, event.status.value)
"""


def test_every_plugins_help_example_runs_as_shown(cli: Cli, tmp_path):
    """README: every command has --help with examples that run as shown; ``plugins`` and
    ``tail`` had none."""
    from .conftest import make_site

    cli.plugins_from(make_site(tmp_path, {"seer": SEER}))
    cli.env(GWS_OUTBOUND_PLUGINS="seer")
    examples = help_examples(cli, "plugins")
    assert len(examples) == 2
    for example in examples:
        argv, _ = as_argv(example)
        result = cli(*argv)
        assert result.status == 0, (example, result.out, result.err)
        assert "seer" in result.out and "on_campaign_status" in result.out, (example, result.out)
        assert result.err == "", (example, result.err)


class InterruptAfter(io.TextIOBase):
    """stdout for a ``tail`` run: passes everything on, and presses Ctrl-C (SIGINT) once
    each of ``texts`` was written, as a person does once they saw the event."""

    def __init__(self, inner: io.TextIOBase, *texts: str) -> None:
        self._inner = inner
        self._waiting = set(texts)

    def write(self, data: str) -> int:
        written = self._inner.write(data)
        if self._waiting:
            self._waiting -= {text for text in self._waiting if text in data}
            if not self._waiting:
                os.kill(os.getpid(), signal.SIGINT)
        return written

    def flush(self) -> None:
        # Also called when this object is collected (io's finaliser closes it), maybe in a
        # later test, once the captured stream it wraps is closed.
        if not self._inner.closed:
            self._inner.flush()

    def isatty(self) -> bool:
        return False


def test_every_tail_help_example_runs_as_shown(
    cli: Cli, threaded_gws: ThreadedSimulator, monkeypatch, tmp_path
):
    from .conftest import make_site

    cli.connect(threaded_gws)
    cli.plugins_from(make_site(tmp_path, {"seer": SEER}))
    cli.env(GWS_OUTBOUND_PLUGINS="seer")
    examples = help_examples(cli, "tail")
    assert len(examples) == 2
    stop_campaign = lambda: threaded_gws.simulator.send_campaign_status(  # noqa: E731
        "Campaign1", "CampaignStopped"
    )
    for example in examples:
        argv, _ = as_argv(example)
        loaded = "--plugins" in argv  # the installed plugins see every event too
        awaited = ("CampaignStopped", "seer saw") if loaded else ("CampaignStopped",)
        monkeypatch.setattr(sys, "stdout", InterruptAfter(sys.stdout, *awaited))
        with Repeatedly(threaded_gws, stop_campaign):
            result = cli(*argv)
        assert result.status == 0, (example, result.out, result.err)
        assert "CampaignStopped" in result.out, (example, result.out)
        assert ("seer saw Campaign1 CampaignStopped" in result.lines) == loaded, result.out


# -- 2. the wording follows the failure's reason --------------------------------------------------


def test_a_sent_request_without_an_outcome_reads_outcome_unknown_not_failed():
    request = CancelRequest(
        record_handle=11,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path="/devices/d1",
    )
    unknown = CancelFailure(request, FailureReason.OUTCOME_UNKNOWN, message="sent, no answer")
    never_sent = CancelFailure(request, FailureReason.SHUT_DOWN, message="closed")

    assert _failure_line(unknown).startswith("outcome unknown reason=outcome_unknown ")
    assert _failure_line(never_sent).startswith("failed         reason=shut_down ")

    reject = RejectRecordRequest(
        record_handle=12,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path="/devices/d1",
    )
    line = describe_operation_failure(
        OperationFailure("RejectRecord", reject, FailureReason.OUTCOME_UNKNOWN)
    )
    assert line.startswith("outcome unknown RejectRecord reason=outcome_unknown ")


# -- 7. the small ones ----------------------------------------------------------------------------


def test_at_takes_epoch_seconds_like_a_json_timestamp(cli: Cli, threaded_gws: ThreadedSimulator):
    cli.connect(threaded_gws)
    result = cli(
        "reschedule",
        "--record-handle",
        "12",
        "--application-id",
        "134",
        "--campaign",
        "Campaign1",
        "--callback-type",
        "Personal",
        "--at",
        "1893572200",
        "--json",
    )

    assert result.status == 0, result.err
    (line,) = result.lines
    assert json.loads(line)["request"]["scheduled_time"].startswith("2030-01-02T08:16:40")


def test_messages_name_the_options_not_the_fields(cli: Cli):
    result = cli(
        "update",
        "--record-handle",
        "17",
        "--application-id",
        "134",
        "--campaign",
        "Campaign1",
        "--from",
        "10:00",
        "--until",
        "09:00",
    )

    assert result.status == 2
    assert "--until must not be before --from (36000)" in result.err


# -- 9. a one-off plugin for one run, without packaging -------------------------------------------

ONE_OFF = """\
from gws_outbound_plugin import hookimpl

@hookimpl
def on_operation_acknowledged(ack):
    print("one-off plugin saw", ack.operation, ack.record_handle)
"""


def test_a_plugin_file_is_loaded_for_one_run(cli: Cli, threaded_gws: ThreadedSimulator, tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(ONE_OFF, encoding="utf-8")
    cli.connect(threaded_gws)
    result = cli(*cancel(11, "--no-plugins", "--plugin", str(plugin)))

    assert result.status == 0, result.err
    assert "one-off plugin saw CancelRecord 11" in result.lines


def test_a_plugin_module_on_the_path_is_loaded_for_one_run(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, monkeypatch
):
    (tmp_path / "my_other_plugin.py").write_text(ONE_OFF, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    cli.connect(threaded_gws)
    result = cli(*cancel(12, "--plugin", "my_other_plugin"))

    assert result.status == 0, result.err
    assert "one-off plugin saw CancelRecord 12" in result.lines


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("raise RuntimeError('boom')\n", "cannot load it: RuntimeError: boom (at "),
        ("def broken(:\n", "cannot load it: SyntaxError"),
        (
            "from gws_outbound_plugin import hookimpl\n\n@hookimpl\ndef on_cancel_acked(ack):\n"
            "    pass\n",
            "unknown hook 'on_cancel_acked'",
        ),
    ],
    ids=["raises", "syntax", "misspelt-hook"],
)
def test_a_plugin_that_cannot_load_is_one_usage_error_before_anything_is_sent(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, source, message
):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(source, encoding="utf-8")
    cli.connect(threaded_gws)
    result = cli(*cancel(11, "--plugin", str(plugin)))

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert line.startswith(f"gws-outbound cancel: error: --plugin {plugin}: ")
    assert message in line
    assert threaded_gws.call(lambda: threaded_gws.simulator.cancels) == []


RAISING = """\
from gws_outbound_plugin import hookimpl

@hookimpl
def on_operation_acknowledged(ack):
    raise KeyError("campaign")
"""


def test_a_plugin_hook_that_raises_is_one_warning_line_without_a_log_level(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path
):
    """A plugin author trying a plugin with --plugin: its hook raised and nothing said so
    (logs are off unless a level is asked for); the outcome line alone was printed."""
    plugin = tmp_path / "raising.py"
    plugin.write_text(RAISING, encoding="utf-8")
    cli.connect(threaded_gws)
    result = cli(*cancel(11, "--plugin", str(plugin)))

    assert result.status == 0, result.err  # the cancel was acknowledged all the same
    assert result.lines[0].startswith("acknowledged ")
    assert result.err.splitlines() == [
        "gws-outbound cancel: warning: plugin 'raising' raised in on_operation_acknowledged: "
        "KeyError: 'campaign' (--log-level error shows the traceback)"
    ]

    result = cli(*cancel(12, "--plugin", str(plugin), "--log-level", "error"))
    assert "warning: plugin 'raising'" not in result.err  # the log line says it
    assert "plugin_hook_failed" in result.err
    assert "KeyError: 'campaign'" in result.err


def test_plugin_of_an_installed_plugin_loads_it_once(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, monkeypatch
):
    """A plugin author who installed the project (pip install -e .) and then tries it with
    --plugin, as writing-a-plugin.md and the generated module's docstring show: pluggy's
    'ValueError: Plugin already registered under a different name' with the whole registry's
    reprs, exit 2, nothing sent."""
    from .conftest import make_site

    site = make_site(tmp_path, {"mine": ONE_OFF})
    monkeypatch.syspath_prepend(str(site))
    cli.connect(threaded_gws, GWS_OUTBOUND_PLUGINS="mine")

    listed = cli("plugins", "--plugin", "gwsx_mine")
    assert listed.status == 0, listed.err
    assert [line for line in listed.lines if line.startswith("mine ")] == [
        "mine  [gwsx-mine 1.0]"
    ]
    assert listed.err.splitlines() == [
        "gws-outbound plugins: --plugin gwsx_mine is the installed plugin 'mine': loaded once"
    ]

    result = cli(*cancel(11, "--plugin", "gwsx_mine"))
    assert result.status == 0, result.err
    assert result.lines.count("one-off plugin saw CancelRecord 11") == 1


def test_plugin_named_like_an_installed_one_says_how_to_load_it_instead(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, monkeypatch
):
    """The working copy ./mine.py of an installed plugin 'mine': pluggy's 'Plugin name
    already registered' with the registry's reprs."""
    from .conftest import make_site

    site = make_site(tmp_path, {"mine": ONE_OFF})
    monkeypatch.syspath_prepend(str(site))
    (tmp_path / "mine.py").write_text(ONE_OFF, encoding="utf-8")
    cli.connect(threaded_gws, GWS_OUTBOUND_PLUGINS="mine")
    result = cli(*cancel(11, "--plugin", str(tmp_path / "mine.py")))

    assert result.status == 2
    assert result.err.splitlines() == [
        f"gws-outbound cancel: error: --plugin {tmp_path / 'mine.py'}: a plugin named 'mine' "
        "is installed and loaded already: set GWS_OUTBOUND_DISABLE_PLUGINS=mine to load this "
        "one instead"
    ]
    assert threaded_gws.call(lambda: threaded_gws.simulator.cancels) == []


def test_plugins_lists_a_one_off_plugin_with_its_hooks(cli: Cli, tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(ONE_OFF, encoding="utf-8")
    result = cli("plugins", "--plugin", str(plugin))

    assert result.status == 0, result.err
    assert "my_plugin  [(no distribution)]" in result.lines
    assert "    on_operation_acknowledged" in result.lines


IN_AN_OBJECT = """\
from gws_outbound_plugin import hookimpl

class Watch:
    @hookimpl
    def on_operation_acknowledged(self, ack):
        print("watch saw", ack.operation, ack.record_handle)

plugin = Watch()
"""


def test_a_plugin_file_whose_hooks_are_on_an_object_says_which_to_name(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path
):
    """The tutorial's and new-plugin's layout (a class, ``plugin = Watch()``) tried as
    ``--plugin ./watch.py``: the module itself has no hook, so it was registered with none,
    ``plugins`` listed it with no hook and exit 0, and a run sent the cancel to a plugin
    that heard nothing, without a word."""
    plugin = tmp_path / "watch.py"
    plugin.write_text(IN_AN_OBJECT, encoding="utf-8")
    cli.connect(threaded_gws)
    result = cli(*cancel(11, "--no-plugins", "--plugin", str(plugin)))

    assert result.status == 2
    assert result.err.splitlines() == [
        f"gws-outbound cancel: error: --plugin {plugin}: it has no @hookimpl function of its "
        f"own; its hooks are on the object 'plugin' (a Watch): --plugin {plugin}:plugin"
    ]
    assert threaded_gws.call(lambda: threaded_gws.simulator.cancels) == []

    listed = cli("plugins", "--plugin", str(plugin))
    assert listed.status == 2
    assert f"--plugin {plugin}:plugin" in listed.err

    named = cli(*cancel(11, "--no-plugins", "--plugin", f"{plugin}:plugin"))
    assert named.status == 0, named.err
    assert "watch saw CancelRecord 11" in named.lines


def test_a_plugin_file_with_only_a_hook_class_says_to_make_an_instance(cli: Cli, tmp_path):
    plugin = tmp_path / "watch_class.py"
    plugin.write_text(IN_AN_OBJECT.replace("plugin = Watch()\n", ""), encoding="utf-8")
    result = cli("plugins", "--plugin", str(plugin))

    assert result.status == 2
    assert result.err.splitlines() == [
        f"gws-outbound plugins: error: --plugin {plugin}: it has no @hookimpl function of its "
        "own; its hooks are on the class Watch: add an instance to it (plugin = Watch()) and "
        f"give --plugin {plugin}:plugin"
    ]


def test_a_plugin_file_without_any_hook_is_a_warning(cli: Cli, tmp_path):
    plugin = tmp_path / "nothing.py"
    plugin.write_text("def on_operation_acknowledged(ack):\n    pass\n", encoding="utf-8")
    result = cli("plugins", "--plugin", str(plugin))

    assert result.status == 0, result.err
    assert (
        f"gws-outbound plugins: warning: --plugin {plugin} implements no hook (no @hookimpl "
        "function or object in it): it will hear nothing"
    ) in result.err.splitlines()


# -- 11. tail loads plugins on request -------------------------------------------------------

WATCHER = """\
import os, signal
from gws_outbound_plugin import hookimpl

seen = []

@hookimpl
def on_campaign_status(event):
    print("watcher saw", event.campaign_name, event.status.value)
    if not seen:
        seen.append(event)
        os.kill(os.getpid(), signal.SIGINT)   # like Ctrl-C: the tail ends
"""


class Repeatedly:
    """Runs ``action`` on the simulator's loop every 0.1 s while the CLI runs (an event
    published before the tail subscribed is lost, as in CometD); if nothing ended the tail
    after 30 s, interrupts it, so that the test fails instead of hanging."""

    def __init__(self, gws: ThreadedSimulator, action: Callable[[], None]) -> None:
        self._gws = gws
        self._action = action
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while not self._done.wait(0.1):
            if time.monotonic() > deadline:
                os.kill(os.getpid(), signal.SIGINT)
                return
            self._gws.call(self._action)

    def __enter__(self) -> Repeatedly:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(5)


def test_tail_loads_a_plugin_that_sees_unsolicited_events(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path
):
    plugin = tmp_path / "watcher.py"
    plugin.write_text(WATCHER, encoding="utf-8")
    cli.connect(threaded_gws)
    stop_campaign = lambda: threaded_gws.simulator.send_campaign_status(  # noqa: E731
        "Campaign1", "CampaignStopped"
    )
    with Repeatedly(threaded_gws, stop_campaign):
        result = cli("tail", "--plugin", str(plugin))

    assert result.status == 0, result.err
    assert "watcher saw Campaign1 CampaignStopped" in result.lines
    assert any("campaign       CampaignStopped campaign=Campaign1" in line for line in result.lines)


class TerminalInput(io.StringIO):
    """Lines typed at a terminal."""

    def isatty(self) -> bool:
        return True


def test_stdin_on_a_terminal_says_it_reads_json_lines_until_ctrl_d(
    cli: Cli, threaded_gws: ThreadedSimulator, monkeypatch
):
    cli.connect(threaded_gws)
    line = '{"recordHandle": 11, "applicationId": 134, "campaignName": "Campaign1", '
    line += '"callingList": "CallingList1"}\n'
    result = cli.with_stdin(TerminalInput(line), "cancel", "--stdin")

    assert result.status == 0, result.err
    assert result.err.splitlines()[0] == (
        "gws-outbound cancel: reading the records as JSON lines from the terminal, one per "
        "line; end with Ctrl-D (Ctrl-C stops)"
    )


def test_a_campaign_user_event_reads_as_a_campaign_not_a_record():
    from gws_outbound_plugin import UserEvent
    from gws_outbound_plugin.cli._format import describe_user_event

    event = UserEvent(
        channel="/me/internal",
        device_id="d1",
        metrics=None,
        user_event="CampaignStarted",
        user_data={
            "GSW_USER_EVENT": "CampaignStarted",
            "GSW_APPLICATION_ID": 134,
            "GSW_CAMPAIGN_NAME": "Campaign1",
        },
    )
    text = describe_user_event(event)

    assert text.startswith("user_event     CampaignStarted campaign=Campaign1 app=134 ")
    assert "record=?" not in text


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "gws_outbound_plugin", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gws-outbound ")


# -- 7. tail says when the connection is lost and back --------------------------------------------

BACK = """\
import os, signal
from gws_outbound_plugin import hookimpl

seen = []

@hookimpl
def on_connection_state_changed(state, previous):
    if state == "connected" and previous == "reconnecting" and not seen:
        seen.append(state)
        os.kill(os.getpid(), signal.SIGINT)   # like Ctrl-C, once the tail printed it
"""


def test_tail_says_when_the_connection_is_lost_and_back(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path
):
    plugin = tmp_path / "back.py"
    plugin.write_text(BACK, encoding="utf-8")
    cli.connect(threaded_gws)
    forgotten: list[int] = []

    def forget_once() -> None:
        # Once the tail is subscribed to both channels: forgotten between the handshake and
        # the subscriptions, the start itself fails (the tail exits 1, "402::Unknown client").
        simulator = threaded_gws.simulator
        subscribed = {
            message.get("subscription")
            for request in simulator.requests
            if "/meta/subscribe" in request.bayeux_channels and request.status == 200
            for message in (request.body if isinstance(request.body, list) else [request.body])
            if isinstance(message, dict) and message.get("channel") == "/meta/subscribe"
        }
        if not forgotten and subscribed >= {"/v2/me/outbound", "/me/internal"}:
            forgotten.append(simulator.forget_cometd_clients())

    with Repeatedly(threaded_gws, forget_once):
        result = cli("tail", "--plugin", str(plugin))

    assert result.status == 0, result.err
    assert [line[13:] for line in result.lines] == [
        "connection     lost: reconnecting (no event can be heard until it is back)",
        "connection     back: connected and subscribed again (events meanwhile may be missed)",
    ]


# -- 8. devicePath defaults to the agent's own device -------------------------------------------


def test_request_without_device_path_uses_the_agents_own_device(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws)
    line = '{"operationName": "RejectRecord", "recordHandle": 13, "applicationId": 134, '
    line += '"campaignName": "Campaign1", "callingList": "CallingList1"}'
    from_argument = cli("request", line, "--json")
    from_stdin = cli("request", "--stdin", "--json", stdin=line.replace(": 13,", ": 17,") + "\n")

    device = threaded_gws.call(lambda: threaded_gws.simulator.device_path("agent1"))
    for result in (from_argument, from_stdin):
        assert result.status == 0, result.err
        (outcome,) = [json.loads(text) for text in result.lines]
        assert outcome["hook"] == "on_operation_acknowledged"
        assert outcome["request"]["device_path"] == device


@pytest.mark.parametrize("argv", [cancel(11, "--no-plugins"), ["tail"]], ids=["cancel", "tail"])
def test_a_missing_base_url_names_the_base_url_option_too(
    cli: Cli, threaded_gws: ThreadedSimulator, argv: list[str]
):
    """``missing GWS_BASE_URL`` alone sent the newcomer to the README to find how to give
    the node, although every command that talks to GWS has ``--base-url``."""
    cli.env(GWS_USERNAME="agent1", GWS_PASSWORD="secret")
    result = cli(*argv)

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert line.endswith(
        "invalid configuration: missing GWS_BASE_URL; give the GWS node as GWS_BASE_URL or "
        "--base-url URL (e.g. --base-url http://127.0.0.1:8090 for `gws-outbound simulate`)"
    )
    # ... and what it says works:
    assert cli(*cancel(11, "--no-plugins", "--base-url", threaded_gws.base_url)).status == 0


def test_a_misspelt_name_in_the_block_list_is_one_warning_line(
    cli: Cli, threaded_gws: ThreadedSimulator, tmp_path, monkeypatch
):
    """``GWS_OUTBOUND_DISABLE_PLUGINS=sentinal`` loaded the ``sentinel`` plugin the user meant
    to keep out, and nothing said so (``plugins`` showed the filter as if it applied)."""
    from .conftest import make_site

    hook = "from gws_outbound_plugin import hookimpl\n\n@hookimpl\ndef on_user_event(event):\n"
    site = make_site(tmp_path, {"sentinel": hook + "    pass\n"})
    monkeypatch.syspath_prepend(str(site))
    warning = (
        "warning: GWS_OUTBOUND_DISABLE_PLUGINS names 'sentinal', which no installed plugin is "
        "(did you mean 'sentinel'?): it blocks nothing, and sentinel is loaded"
    )
    cli.connect(threaded_gws, GWS_OUTBOUND_PLUGINS="sentinel")
    cli.env(GWS_OUTBOUND_DISABLE_PLUGINS="sentinal,elsewhere")

    listed = cli("plugins")
    assert listed.status == 0
    assert listed.err.splitlines() == [f"gws-outbound plugins: {warning}"]
    assert cli("plugins", "--strict").status == 1

    result = cli(*cancel(11))
    assert result.status == 0
    assert result.err.splitlines() == [f"gws-outbound cancel: {warning}"]

    cli.env(GWS_OUTBOUND_DISABLE_PLUGINS="sentinel")  # spelt right: blocked, and quiet
    assert cli(*cancel(12)).err == ""
