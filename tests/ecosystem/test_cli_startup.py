"""What ``gws-outbound --version`` / ``--help`` and a plugin's ``import`` load: the command
line's own parser, not the plugin core, httpx and aiocometd (whose import took most of a
second before anything was printed). Checked by what is imported, not by a clock."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from gws_outbound_plugin.cli._common import _HELP_WIDTH, _UsageError
from gws_outbound_plugin.cli._environment import load_config
from gws_outbound_plugin.cli._parser import build_parser

from .conftest import ROOT, Cli, base_env

#: Modules that only a command that talks to GWS (or runs plugins) needs.
HEAVY = (
    "aiohttp",
    "httpx",
    "structlog",
    "gws_outbound_plugin._plugin",
    "gws_outbound_plugin._dispatcher",
    "gws_outbound_plugin._cometd",
)

_PROBE = """
import json, sys
{code}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def imported_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code, heavy=HEAVY)],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["cancel", "--help"]])
def test_version_and_help_import_nothing_of_the_plugin_core(argv):
    code = (
        "from gws_outbound_plugin._cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try: main({argv!r})\n"
        "    except SystemExit: pass"
    )
    assert imported_after(code) == []


def test_a_plugins_import_of_hookimpl_imports_nothing_of_the_plugin_core():
    assert imported_after("from gws_outbound_plugin import hookimpl, get_logger") == ["structlog"]


def test_every_public_name_is_still_importable_from_the_package():
    code = (
        "import gws_outbound_plugin as package\n"
        "missing = [n for n in package.__all__ if not hasattr(package, n)]\n"
        "assert not missing, missing\n"
        "assert set(package.__all__) <= set(dir(package))"
    )
    assert imported_after(code) == sorted(HEAVY)  # all of it, once asked for


EXAMPLES = ("  gws-outbound ", "  echo ")  # whole command lines, to copy and paste


def _commands() -> list[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return [name for name in commands.choices if name != "simulate"]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", ["", *_commands()])
def test_every_help_fits_the_width_but_its_examples(cli: Cli, command: str):
    """A description, a choice list or the exit status line that ran past the width: one
    line of 185 characters in 'update --help' (the phone types in the usage)."""
    result = cli(*([command] if command else []), "--help")

    assert result.status == 0
    text = [line for line in result.lines if not line.startswith(EXAMPLES)]
    long = [line for line in text if len(line) > _HELP_WIDTH]
    assert long == []


@pytest.mark.parametrize(
    ("word", "answer"),
    [
        ("help", "'gws-outbound --help' lists every command"),
        ("version", "'gws-outbound --version' prints the version"),
    ],
)
def test_help_and_version_as_commands_point_to_the_options(cli: Cli, word: str, answer: str):
    """`gws-outbound help` (as git and pip have it) listed fourteen commands, none of which
    it meant."""
    result = cli(word)

    assert result.status == 2
    assert result.err.splitlines()[-1].startswith(
        f"gws-outbound: error: {word!r} is not a command: {answer}"
    )


def test_tail_does_not_promise_failures_it_cannot_hear(cli: Cli):
    """tail makes no request, and another client's refused request reaches it as a user
    event only (docs/hooks.md, on_user_event); its help promised "failed cancel
    (on_cancel_failed)" and "failed other operation (on_operation_failed)"."""
    result = cli("tail", "--help")

    description = result.out.split("\n\n", 2)[1]
    assert "on_cancel_failed" not in description
    assert "on_operation_failed" not in description
    assert "shows as its user event" in " ".join(description.split())


def test_on_a_terminal_a_missing_user_name_is_not_blamed_on_the_terminal():
    """Without GWS_USERNAME the password prompt is skipped (it names the user), and the
    error said "there is no terminal to prompt on" to someone at a terminal."""
    with pytest.raises(_UsageError) as caught:
        load_config(
            {"GWS_BASE_URL": "http://127.0.0.1:8090"},
            stdin=io.StringIO(""),
            has_terminal=lambda: True,
        )

    assert str(caught.value) == (
        "invalid configuration: missing GWS_USERNAME, GWS_PASSWORD (set GWS_USERNAME: the "
        "password is then asked for on the terminal)"
    )
