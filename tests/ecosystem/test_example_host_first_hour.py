"""examples/host.py run in-process through its ``main(argv)``: what a host author tries first."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
import structlog

from .conftest import ROOT, Cli, ThreadedSimulator

DEVICE = "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f"  # agent1's device in the simulator


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("example_host", ROOT / "examples" / "host.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_host", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    # One process, many runs: the host's structlog set-up caches loggers bound to the stderr
    # of the run that first used them (capsys replaces it per test). Logs are not what these
    # tests look at, so the library logs as it does in a host that configures nothing.
    monkeypatch.setattr(module, "configure_logging", lambda verbose: None)
    handlers = list(logging.getLogger().handlers)
    yield module
    structlog.reset_defaults()
    for handler in logging.getLogger().handlers:  # the host's logging.basicConfig
        if handler not in handlers:
            logging.getLogger().removeHandler(handler)


def run_host(host: ModuleType, monkeypatch, capsys, *argv: str, stdin: str = "") -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    status = host.main(list(argv))
    return status, capsys.readouterr().out


def hooks(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_bus_event_without_device_path_gets_the_agents_own_device(
    host, cli: Cli, monkeypatch, capsys
):
    line = {
        "operationName": "RejectRecord",
        "recordHandle": 13,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
    }
    cancel = {
        "recordHandle": 14,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
    }
    status, out = run_host(
        host,
        monkeypatch,
        capsys,
        "--stdin",
        "--no-entrypoints",
        stdin=json.dumps(line) + "\n" + json.dumps(cancel) + "\n",
    )

    assert status == 0
    calls = hooks(out)
    assert not [call for call in calls if "error" in call], calls
    acks = {
        call["operation"]: call for call in calls if call["hook"] == "on_operation_acknowledged"
    }
    assert acks["RejectRecord"]["request"]["device_path"] == DEVICE
    assert acks["CancelRecord"]["request"]["device_path"] == DEVICE


def test_a_plugin_file_is_loaded_for_one_run(host, cli: Cli, monkeypatch, capsys, tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "from gws_outbound_plugin import hookimpl\n\n"
        "@hookimpl\n"
        "def on_operation_acknowledged(ack):\n"
        "    print('my_plugin saw', ack.operation)\n",
        encoding="utf-8",
    )
    line = {
        "recordHandle": 15,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
    }
    status, out = run_host(
        host,
        monkeypatch,
        capsys,
        "--stdin",
        "--no-entrypoints",
        "--plugin",
        str(plugin),
        stdin=json.dumps(line) + "\n",
    )

    assert status == 0
    assert "my_plugin saw CancelRecord" in out.splitlines()


def test_a_plugin_file_whose_hooks_are_on_an_object_says_which_to_name(
    host, cli: Cli, monkeypatch, capsys, tmp_path
):
    """new-plugin's layout (a class and ``plugin = Plugin()``) given as ``--plugin FILE``:
    the module, which has no hook of its own, was registered and the run went on with a
    plugin that heard nothing."""
    plugin = tmp_path / "watch.py"
    plugin.write_text(
        "from gws_outbound_plugin import hookimpl\n\n"
        "class Watch:\n"
        "    @hookimpl\n"
        "    def on_operation_acknowledged(self, ack):\n"
        "        print('watch saw', ack.operation)\n\n"
        "plugin = Watch()\n",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as caught:
        run_host(host, monkeypatch, capsys, "--stdin", "--no-entrypoints", "--plugin", str(plugin))
    assert str(caught.value.code) == (
        f"--plugin {plugin}: its hooks are on the object 'plugin': give --plugin {plugin}:plugin"
    )

    line = {"recordHandle": 17, "applicationId": 134, "campaignName": "Campaign1"}
    line["callingList"] = "CallingList1"
    status, out = run_host(
        host,
        monkeypatch,
        capsys,
        "--stdin",
        "--no-entrypoints",
        "--plugin",
        f"{plugin}:plugin",
        stdin=json.dumps(line) + "\n",
    )
    assert status == 0
    assert "watch saw CancelRecord" in out.splitlines()


def test_a_plugin_file_of_an_installed_plugin_is_loaded_once(
    host, cli: Cli, monkeypatch, capsys, tmp_path
):
    """The plugin being written, installed with pip install -e and given with --plugin: the
    host stopped with pluggy's 'Plugin already registered' and the registry's reprs."""
    from .conftest import make_site

    source = (
        "from gws_outbound_plugin import hookimpl\n\n"
        "@hookimpl\n"
        "def on_operation_acknowledged(ack):\n"
        "    print('mine saw', ack.operation)\n"
    )
    monkeypatch.syspath_prepend(str(make_site(tmp_path, {"hostmine": source})))
    cli.env(GWS_OUTBOUND_PLUGINS="hostmine")
    line = {"recordHandle": 16, "applicationId": 134, "campaignName": "Campaign1"}
    line["callingList"] = "CallingList1"
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(line) + "\n"))
    capsys.readouterr()
    status = host.main(["--stdin", "--plugin", "gwsx_hostmine"])
    captured = capsys.readouterr()

    assert status == 0, captured.err
    assert captured.out.splitlines().count("mine saw CancelRecord") == 1
    assert "--plugin gwsx_hostmine is the installed plugin 'hostmine': loaded once" in captured.err


def test_on_another_gws_the_demo_says_which_steps_it_skipped(
    host, cli: Cli, threaded_gws: ThreadedSimulator, monkeypatch, capsys
):
    cli.connect(threaded_gws)  # as for a real GWS: the host has no hold on its clock
    status, out = run_host(host, monkeypatch, capsys, "--no-entrypoints")

    assert status == 0
    assert "(simulator)" not in out
    assert "the steps that move OCS's clock and stop the campaign were skipped" in out


def test_a_gws_that_refuses_or_a_missing_setting_is_one_error_line(
    host, cli: Cli, threaded_gws: ThreadedSimulator, monkeypatch, capsys
):
    """A host author pointing the example at their GWS: a wrong password, or GWS_BASE_URL
    set without the rest, ended in a 20-line traceback through anyio and asyncio."""
    cli.connect(threaded_gws, GWS_PASSWORD="wrong")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    capsys.readouterr()
    status = host.main(["--no-entrypoints"])
    err = capsys.readouterr().err

    assert status == 1
    assert "Traceback" not in err
    assert (
        f"host.py: error: GWS refused the credentials of 'agent1' at {threaded_gws.base_url} "
        "(HTTP 401, statusCode 20)"
    ) in err.splitlines()

    cli.unset("GWS_USERNAME", "GWS_PASSWORD")
    status = host.main(["--no-entrypoints"])
    err = capsys.readouterr().err

    assert status == 2
    assert "Traceback" not in err
    assert (
        "host.py: error: invalid configuration: missing GWS_USERNAME, GWS_PASSWORD (or pass "
        "username=..., password=... to GWSConfig.from_env(): a keyword wins over its variable) "
        "(without GWS_BASE_URL the host runs on the embedded simulator)"
    ) in err.splitlines()


class WaitingTerminal:
    """A terminal where nobody types: each read waits for a line that never comes, and the
    first one presses Ctrl-C (SIGINT to this process) a moment later."""

    def __init__(self) -> None:
        self._read_end, self._write_end = os.pipe()  # the read end stays open: a read may
        self._pressed = threading.Event()  # still be on its way out when the test ends

    def isatty(self) -> bool:
        return True

    def readline(self, *args: object) -> str:
        if not self._pressed.is_set():
            self._pressed.set()
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        line = b""
        while not line.endswith(b"\n") and (byte := os.read(self._read_end, 1)):
            line += byte
        return line.decode()

    def __iter__(self) -> WaitingTerminal:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Ctrl-D: a read still waiting returns."""
        os.close(self._write_end)


def test_ctrl_c_while_reading_stdin_leaves_no_thread_that_keeps_the_process_alive(
    host, cli: Cli, monkeypatch, capsys
):
    """``examples/host.py --stdin`` on a terminal, Ctrl-C: the plugin closed, then the process
    hung until Enter or Ctrl-D: the line was read by a worker thread of the event loop, not a
    daemon, which the interpreter waits for at exit."""
    before = set(threading.enumerate())
    terminal = WaitingTerminal()
    monkeypatch.setattr(sys, "stdin", terminal)
    # Ctrl-C on a terminal reaches Python's handler. A test run started in the background
    # (``pytest ... &`` from a script, ``nohup``) begins with SIGINT ignored: asyncio then
    # leaves it so, the keypress was lost and this test hung for good instead of running.
    ignoring = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status = host.main(["--stdin", "--no-entrypoints"])
        left = [
            thread
            for thread in threading.enumerate()
            if thread not in before and thread.is_alive() and not thread.daemon
        ]
    finally:
        terminal.close()
        signal.signal(signal.SIGINT, ignoring)

    assert status == 130
    assert left == []
