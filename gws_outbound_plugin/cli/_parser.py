"""The argument parser: every command and option, built from the command table."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any, Final

from .._hints import closest
from .._requests import REQUEST_FIELDS
from ._commands import _OPERATION_COMMANDS, _PREVIEW, _PREVIEW_ACTIONS, _REQUEST, _Command, _reader
from ._common import _ENVIRONMENT_HELP, _HELP_WIDTH, PROG, _UsageError


def _fill(text: str) -> str:
    """A paragraph of help wrapped to the help's width, never inside a word such as
    ``gws-outbound-NAME`` (a command to copy)."""
    return textwrap.fill(text, _HELP_WIDTH, break_on_hyphens=False, break_long_words=False)


def _add_logging_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default_level = argparse.SUPPRESS if suppress else None
    default_json = argparse.SUPPRESS if suppress else False
    group = parser.add_argument_group("logging (to stderr)")
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default_level,
        help="show the library's and the plugins' logs from this level on (default: none; "
        "each outcome and error is printed as one line anyway)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=default_json,
        help="write logs as JSON lines instead of text",
    )


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        dest="one_off_plugins",
        metavar="MODULE_OR_FILE[:ATTR]",
        help="also load this plugin for this run, without packaging it: a module on the "
        "Python path (my_plugin, package.module) or a .py file (./my_plugin.py), or an "
        "object in one as in an entry point (package:plugin); repeatable",
    )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the GWS connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="the GWS node, e.g. https://gws.example.com (default: GWS_BASE_URL)",
    )
    group.add_argument(
        "--end-session",
        action="store_true",
        help="on exit, end the GWS session (POST /api/v2/me EndContactCenterSession): this "
        "also LOGS THE AGENT OUT of the contact center, most likely on their desktop too; "
        "without it the HTTP session is left to expire on the GWS node",
    )


def _add_request_options(parser: argparse.ArgumentParser, command: _Command) -> None:
    group = parser.add_argument_group(f"the {command.what}")
    for field in command.fields:
        row = REQUEST_FIELDS[field]
        keywords: dict[str, Any] = {
            "dest": field,
            "metavar": row.metavar,
            "help": command.help.get(field, row.help),
            "choices": row.kind.choices,
            "type": _reader(field),
        }
        if field == "record_handle":
            keywords.update(action="extend", nargs="+")
        elif row.repeatable:
            keywords["action"] = "append"
        group.add_argument(*row.flags, **keywords)
    if command is _PREVIEW:
        parser.add_argument(
            "actions",
            nargs="+",
            choices=tuple(_PREVIEW_ACTIONS),
            metavar="ACTION",
            help="start, get or end, in the order given (e.g. 'start get get')",
        )
        return
    if command is _REQUEST:
        parser.add_argument(
            "requests",
            nargs="*",
            metavar="JSON",
            help="a request as one JSON object with its operationName (several allowed)",
        )
        parser.add_argument(
            "--sequential",
            action="store_true",
            help="send one request at a time, each after the previous one's outcome (for "
            "requests that depend on each other, e.g. StartPreviewSession then "
            "GetPreviewRecord)",
        )
    group.add_argument(
        "--stdin",
        action="store_true",
        help=f"read the {command.what} as JSON lines from stdin ({command.stdin_help}, GWS "
        "camelCase keys); an invalid line prints an error line and the others go on",
    )


def _add_operation_command(commands: Any, command: _Command) -> None:
    examples = "".join(f"  {example}\n" for example in command.examples)
    parser = commands.add_parser(
        command.name,
        help=command.summary,
        description=_fill(command.description),
        epilog=(f"examples:\n{examples}\n" if examples else "") + _ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_request_options(parser, command)
    parser.add_argument(
        "--json",
        action="store_true",
        help='print each outcome as one JSON line: {"hook": "<hook name>", <payload fields>}',
    )
    parser.add_argument(
        "--no-plugins",
        action="store_true",
        help="do not load the installed gws_outbound plugins (--plugin ones still are)",
    )
    _add_plugin_option(parser)
    _add_connection_options(parser)
    _add_logging_options(parser, suppress=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_fill(
            "Work on Genesys outbound records through Genesys Web Services (GWS) and watch "
            "each outcome (cancel, reject, complete, do-not-call, reschedule, update, chained "
            "records, add a record, preview dialing, any operation as JSON), run the embedded "
            "GWS simulator, list the installed plugins, write a new plugin project and tail "
            "live events.",
        ),
        epilog=_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {_version()}", help="show the version"
    )
    _add_logging_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "simulate",
        help="run the embedded GWS simulator (see 'gws-outbound simulate --help')",
        description=(
            "Run the embedded GWS simulator on loopback until Ctrl-C. Takes the options of "
            "'python -m gws_outbound_plugin.simulator': --port, --user NAME:PASSWORD, "
            "--no-csrf, --records FILE, --fault SPEC, --quiet, ..."
        ),
        add_help=False,
    )

    for command in _OPERATION_COMMANDS.values():
        _add_operation_command(commands, command)
    _add_plugins_command(commands)
    _add_new_plugin_command(commands)
    _add_tail_command(commands)
    return parser


def _add_plugins_command(commands: Any) -> None:
    plugins = commands.add_parser(
        "plugins",
        help="list the installed plugins, the hooks each implements and every load failure",
        description=_fill(
            "List the plugins installed under the 'gws_outbound' entry-point group (after "
            "GWS_OUTBOUND_PLUGINS / GWS_OUTBOUND_DISABLE_PLUGINS), with their distribution "
            "and the hooks each implements, and every plugin that failed to load, with its "
            "error and where it happened. Exit status 1 when a plugin failed to load (or "
            "GWS_OUTBOUND_PLUGINS names one that is not installed).",
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} plugins\n"
            f"  {PROG} plugins --json --strict\n"
            "\n"
            "a plugin not installed yet: --plugin ./my_plugin.py (its @hookimpl functions) or\n"
            "--plugin ./my_plugin.py:plugin (an object in it, as an entry point names it)\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plugins.add_argument(
        "--json",
        action="store_true",
        help='print a JSON array: one object per plugin, with "error" (null when it loaded), '
        '"location" and "warnings"',
    )
    plugins.add_argument(
        "--strict",
        action="store_true",
        help="also exit with status 1 for warnings (e.g. a function named like a hook "
        "without @hookimpl)",
    )
    _add_plugin_option(plugins)
    _add_logging_options(plugins, suppress=True)


def _add_new_plugin_command(commands: Any) -> None:
    new_plugin = commands.add_parser(
        "new-plugin",
        help="write a new plugin project: package, entry point, one hook, a passing test",
        description=_fill(
            "Write a new plugin project into DIR/gws-outbound-NAME (DIR is created when "
            "missing): pyproject.toml with its gws_outbound entry point (NAME), "
            "src/gws_outbound_NAME/__init__.py with one "
            "hook (on_operation_acknowledged), and tests/ that pass on the testing kit "
            "(gws_outbound_plugin.testing). Then: cd gws-outbound-NAME && pip install -e "
            "'.[test]' && pytest. docs/writing-a-plugin.md explains every part.",
        ),
        epilog=f"example:\n  {PROG} new-plugin call-log --directory /tmp\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    new_plugin.add_argument(
        "name",
        metavar="NAME",
        help="the plugin's name for hosts (lower case, digits, '-'), e.g. call-log",
    )
    new_plugin.add_argument(
        "--directory",
        metavar="DIR",
        default=".",
        help=(
            "where to create the project's folder (created when missing; default: the "
            "current directory)"
        ),
    )
    _add_logging_options(new_plugin, suppress=True)


def _add_tail_command(commands: Any) -> None:
    tail = commands.add_parser(
        "tail",
        help="print live outbound events and user events until Ctrl-C",
        description=_fill(
            "Connect to the configured GWS as the agent and print, as they arrive, every user "
            "event (on_user_event), every acknowledged cancel (on_record_cancel_acknowledged) "
            "and other operation (on_operation_acknowledged), the agent's other clients' "
            "included (a request of theirs that OCS refused shows as its user event, with "
            "the error: only the client that sent it hears of its failure), and what OCS says "
            "unprompted: a record cancelled by someone else (on_record_cancelled), a callback "
            "due (on_scheduled_call), a pushed preview record (on_preview_record), a campaign "
            "status (on_campaign_status); until Ctrl-C or SIGTERM. How a real GWS relays "
            "OCS's unprompted events is UNCONFIRMED. Plugins are loaded only when asked "
            "(--plugins: the installed ones; --plugin: one module or file), and then see "
            "every event too: the way to watch a plugin's unsolicited hooks at work.",
        ),
        epilog=(
            f"examples:\n  {PROG} tail\n  {PROG} tail --json --plugins\n\n" + _ENVIRONMENT_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per event: {"hook": "<hook name>", <payload fields>}',
    )
    tail.add_argument(
        "--plugins",
        action="store_true",
        help="load the installed gws_outbound plugins (GWS_OUTBOUND_PLUGINS / "
        "GWS_OUTBOUND_DISABLE_PLUGINS apply), so that they see every event too",
    )
    _add_plugin_option(tail)
    _add_connection_options(tail)
    _add_logging_options(tail, suppress=True)


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


_OPTIONS_NAMED_AS_COMMANDS: Final = {
    "help": f"'{PROG} --help' lists every command, '{PROG} COMMAND --help' explains one",
    "version": f"'{PROG} --version' prints the version",
}


def refuse_unknown_command(parser: argparse.ArgumentParser, arguments: Sequence[str]) -> None:
    """A misspelt command (``cancle``) is a usage error that names the command meant; argparse
    (before Python 3.14) only lists every command."""
    index = command_index(arguments)
    commands = command_parsers(parser)
    if index is None or arguments[index] in commands:
        return
    named = arguments[index]
    option = _OPTIONS_NAMED_AS_COMMANDS.get(named)
    if option is not None:  # `gws-outbound help` (as git has it), `gws-outbound version`
        parser.error(f"{named!r} is not a command: {option}")
    close = closest(named, commands, 0.6)
    if close:
        parser.error(
            f"argument COMMAND: invalid choice: {named!r} (did you mean {close!r}? "
            f"'{PROG} --help' lists every command)"
        )


def command_index(arguments: Sequence[str]) -> int | None:
    """Where the command is: the first argument that is not an option (nor the value of
    ``--log-level``)."""
    index = 0
    while index < len(arguments):
        item = arguments[index]
        if item == "--log-level":
            index += 2
        elif item.startswith("-"):
            index += 1
        else:
            return index
    return None


def refuse_unrecognized(
    parser: argparse.ArgumentParser, command: str, unrecognized: Sequence[str]
) -> None:
    """Arguments the command does not take: reported by the command's own parser (its usage
    and ``gws-outbound <command>: error:``, not the top-level ones), with the option meant
    for a misspelt one, or that the option belongs to other commands only."""
    own = command_parsers(parser).get(command, parser)
    everywhere = {
        option
        for each in (parser, *command_parsers(parser).values())
        for option in _option_strings(each)
    }
    hints = []
    for item in unrecognized:
        if not item.startswith("--"):
            continue
        option = item.split("=", 1)[0]
        close = closest(option, _option_strings(own))
        if close:
            hints.append(f"did you mean {close}?")
        elif option in everywhere:
            hints.append(f"{option} is not an option of {command}")
    hint = f" ({'; '.join(hints)})" if hints else ""
    own.error(f"unrecognized arguments: {' '.join(unrecognized)}{hint}")


def _version() -> str:
    from .. import __version__

    return __version__


#: Option names (and misspellings) that would carry a secret: refused before argparse echoes.
_SECRET_OPTIONS: Final = ("pas", "pw", "secret", "token", "cred")


def _refuse_password_arguments(arguments: Sequence[str]) -> None:
    """A password on the command line is refused before argparse sees it: argparse would
    echo the unrecognised arguments, the password among them."""
    for item in arguments:
        if item == "--":
            return
        option = item.split("=", 1)[0].lower()
        if option.startswith("-") and option.lstrip("-").startswith(_SECRET_OPTIONS):
            raise _UsageError(
                "a password is never taken from the command line (it would stay in the "
                "shell history and the process list): set GWS_PASSWORD, or leave it unset "
                "and type it at the prompt"
            )
