"""Where the library's log lines go: with no logging configured by the host, nothing below
WARNING and nothing on stdout; a host that configures structlog or stdlib logging gets every
event. Each case runs in a fresh interpreter, since logging configuration is process-wide."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from .conftest import ROOT, base_env

PACKAGE = ROOT / "gws_outbound_plugin"

EVENTS = """
from gws_outbound_plugin import get_logger

log = get_logger("gws_outbound_plugin.demo")
log.debug("debug_event", detail=1)
log.info("info_event", detail=2)
log.warning("warning_event", plugin="p1")
log.bind(user="agent1").error("error_event", hook="on_cancel_failed")
try:
    raise ValueError("the cause")
except ValueError:
    log.exception("exception_event")
print("host output")
"""


def run_python(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        env=base_env(),
        check=False,
    )


def test_unconfigured_host_sees_warnings_on_stderr_only():
    result = run_python(EVENTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host output\n"
    assert "debug_event" not in result.stderr
    assert "info_event" not in result.stderr
    assert "warning_event plugin=p1" in result.stderr
    assert "error_event user=agent1 hook=on_cancel_failed" in result.stderr
    assert "exception_event" in result.stderr
    assert "ValueError: the cause" in result.stderr  # with its traceback


def test_a_host_configuring_stdlib_logging_gets_every_event():
    result = run_python(
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, "
        "format='%(levelname)s %(name)s %(message)s')\n" + textwrap.dedent(EVENTS)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host output\n"
    assert "DEBUG gws_outbound_plugin.demo debug_event detail=1" in result.stderr
    assert "INFO gws_outbound_plugin.demo info_event detail=2" in result.stderr
    assert "WARNING gws_outbound_plugin.demo warning_event plugin=p1" in result.stderr


def test_a_host_configuring_structlog_gets_every_event_its_way():
    result = run_python(
        "import sys, structlog\n"
        "structlog.configure(processors=[structlog.processors.add_log_level, "
        "structlog.processors.JSONRenderer()], "
        "logger_factory=structlog.PrintLoggerFactory(sys.stderr))\n" + textwrap.dedent(EVENTS)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host output\n"
    assert '"event": "debug_event"' in result.stderr
    assert '"detail": 1' in result.stderr
    assert '"user": "agent1"' in result.stderr
    assert '"level": "info"' in result.stderr


HOST = """
import sys

import anyio

from gws_outbound_plugin import CancelRequest, GWSConfig, OutboundPlugin, make_plugin_manager


async def main(base_url):
    pm = make_plugin_manager(load_entrypoints=False)
    config = GWSConfig(base_url=base_url, username="agent1", password="secret")
    async with OutboundPlugin(pm, config) as plugin:
        request = CancelRequest(
            record_handle=11,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            device_path=await plugin.device_path(),
        )
        ack = await plugin.cancel(request)
        print("host: cancelled", ack.record_handle)


anyio.run(main, sys.argv[1])
"""


@pytest.mark.anyio
async def test_a_host_without_logging_configuration_gets_only_its_own_output(gws_simulator):
    # The whole library (login, CometD, the engine, the dispatcher), not one module.
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-c", HOST, gws_simulator.base_url], env=base_env(), check=False
        )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert stdout == "host: cancelled 11\n"
    assert stderr == ""


def _structlog_loggers(paths: list[Path]) -> list[str]:
    """``file:line`` of every ``structlog.get_logger(...)`` call in ``paths``."""
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get_logger", "getLogger")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "structlog"
            ):
                offenders.append(f"{path}:{node.lineno}")
    return offenders


def test_every_library_module_logs_through_the_library_logger():
    # structlog.get_logger() at module level prints to stdout when the host configured
    # nothing: `from ._log import get_logger` (`from .._log import get_logger` in
    # subpackages), then `logger = get_logger(__name__)`.
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if path.name != "_log.py"]
    assert _structlog_loggers(modules) == []


def test_the_check_above_finds_direct_structlog_loggers(tmp_path: Path):
    module = tmp_path / "module.py"
    module.write_text("import structlog\n\nlogger = structlog.get_logger(__name__)\n")
    assert _structlog_loggers([module]) == [f"{module}:3"]
