"""``gws-outbound``: the command line of gws_outbound_plugin.

Commands: ``simulate`` (the embedded GWS simulator), ``cancel`` (cancels against the
configured GWS, from options or JSON lines on stdin, on one GWS session), ``plugins``
(installed plugins, their hooks and every load failure), ``tail`` (live events). Results go
to stdout, logs, progress and diagnostics to stderr. This module is an application entry
point, so it is the one place that configures structlog.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import getpass
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final, TextIO

import anyio
import structlog
from anyio.abc import TaskGroup

from ._config import GWSConfig
from ._exceptions import (
    ConfigError,
    GWSAuthenticationError,
    GWSOutboundError,
    InvalidCancelRequest,
)
from ._log import get_logger
from ._manager import (
    ENV_ALLOW,
    ENV_DISABLE,
    close_plugins,
    describe_plugins,
    make_plugin_manager,
    plugin_load_failures,
)
from ._models import (
    BUS_KEYS,
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    RecordCancelAck,
    UserEvent,
)
from ._plugin import OutboundPlugin
from ._ticket import CancelTicket
from .hookspecs import PROJECT_NAME, hookimpl

__all__ = ["main"]

logger = get_logger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

PROG: Final = "gws-outbound"
# Stand-in device path used to validate the other fields before GWS tells us the real one.
_PLACEHOLDER_DEVICE: Final = "/devices/placeholder"
_PLUGIN_CLOSE_TIMEOUT: Final = 5.0
#: How long outcomes are awaited before a progress line appears (terminals only).
_PROGRESS_AFTER: Final = 0.3
_PROGRESS_EVERY: Final = 0.25

_ENVIRONMENT_HELP = """\
configuration (cancel, tail) comes from the environment:
  GWS_BASE_URL       the GWS node, e.g. https://gws.example.com (or --base-url)
  GWS_USERNAME       the agent's user name
  GWS_PASSWORD       the agent's password; when unset and stdin is a terminal you are
                     prompted (it is never taken from the command line)
  GWS_ACK_TIMEOUT, GWS_REQUEST_TIMEOUT, GWS_VERIFY_TLS, ... any other GWSConfig field
plugins (cancel, plugins) are loaded from the 'gws_outbound' entry-point group:
  GWS_OUTBOUND_PLUGINS           comma-separated names to load (default: all)
  GWS_OUTBOUND_DISABLE_PLUGINS   comma-separated names never to load

exit status: 0 success (cancel: every cancel acknowledged), 1 failure (cancel: a cancel
failed or an input line was invalid; GWS unreachable or credentials refused; plugins: a
plugin failed to load), 2 usage or configuration error, 130 interrupted (Ctrl-C)."""


class _UsageError(Exception):
    """A problem with the command line or the configuration: exit status 2."""


# -- output helpers -------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of a payload: dataclasses become objects, enums their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def hook_line(hook: str, payload: Any) -> str:
    """One JSON line: ``{"hook": ..., <payload fields>}`` (the example host's format)."""
    return json.dumps({"hook": hook, **to_jsonable(payload)}, ensure_ascii=False)


def _clock() -> str:
    return dt.datetime.now().astimezone().strftime("%H:%M:%S.%f")[:-3]


def _record_text(
    handle: int | None, application: int | None, campaign: str | None, calling_list: str | None
) -> str:
    return (
        f"record={handle if handle is not None else '?'} "
        f"app={application if application is not None else '?'} "
        f"campaign={campaign or '?'} list={calling_list or '?'}"
    )


def describe_ack(ack: RecordCancelAck) -> str:
    text = "acknowledged   " + _record_text(
        ack.record_handle, ack.application_id, ack.campaign_name, ack.calling_list
    )
    if ack.chain_attribute is not None:
        text += f" chain={ack.chain_attribute.value}"
    text += f" referenceId={ack.reference_id or '?'}"
    if ack.request is None:
        text += " (requested by another client)"
    return text


def describe_failure(failure: CancelFailure) -> str:
    request = failure.request
    text = f"failed         reason={failure.reason.value}"
    if failure.status_code is not None:
        text += f" statusCode={failure.status_code}"
    if failure.error_number is not None:
        text += f" error={failure.error_number}"
    if failure.message:
        text += f" message={json.dumps(failure.message, ensure_ascii=False)}"
    text += " " + _record_text(
        request.record_handle, request.application_id, request.campaign_name, request.calling_list
    )
    return text + f" referenceId={request.reference_id}"


def describe_user_event(event: UserEvent) -> str:
    data = event.user_data

    def get(key: str) -> Any:
        return data.get(key)

    text = f"user_event     {event.user_event or '?'} " + _record_text(
        get("GSW_RECORD_HANDLE"),
        get("GSW_APPLICATION_ID"),
        get("GSW_CAMPAIGN_NAME"),
        get("GSW_CALLING_LIST"),
    )
    if event.is_error:
        text += f" error={get('GSW_ERROR_NUMBER')} message={json.dumps(get('GSW_ERROR'))}"
    if event.device_id:
        text += f" device={event.device_id}"
    return text + f" channel={event.channel}"


# -- logging ------------------------------------------------------------------------------------


def configure_logging(level: str, *, json_logs: bool, stream: TextIO | None = None) -> None:
    """Send structlog's output to stderr (the CLI is an application: it may configure it)."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
    ]
    if json_logs:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


# -- configuration --------------------------------------------------------------------------------


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) before anything was sent: exit status 130, one line on stderr."""


def load_config(
    environ: Mapping[str, str],
    *,
    stdin: TextIO,
    prompt: Callable[[str], str] = getpass.getpass,
    base_url: str | None = None,
) -> GWSConfig:
    """``GWSConfig.from_env`` (``base_url`` overrides ``GWS_BASE_URL``), prompting for the
    password when it is missing and stdin is a terminal.

    Called before the event loop starts, so Ctrl-C at the prompt interrupts it at once.
    """
    overrides: dict[str, Any] = {}
    if base_url is not None:
        overrides["base_url"] = base_url
    if not environ.get("GWS_PASSWORD") and environ.get("GWS_USERNAME") and _isatty(stdin):
        try:
            password = prompt(f"GWS password for {environ['GWS_USERNAME']}: ")
        except EOFError:
            raise _UsageError("no password given (end of input at the prompt)") from None
        except KeyboardInterrupt:
            raise _Interrupted("interrupted at the password prompt; nothing was sent") from None
        if not password:
            raise _UsageError("no password given")
        overrides["password"] = password
    try:
        return GWSConfig.from_env(environ, **overrides)
    except ConfigError as error:
        hint = ""
        if "GWS_PASSWORD" in str(error):
            hint = " (set GWS_PASSWORD, or run from a terminal to be prompted)"
        raise _UsageError(f"{error}{hint}") from None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the parser ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return value


def _add_logging_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default_level = argparse.SUPPRESS if suppress else None
    default_json = argparse.SUPPRESS if suppress else False
    group = parser.add_argument_group("logging (to stderr)")
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default_level,
        help="least severe log level shown (default: warning; error for 'plugins', which "
        "lists the load failures itself)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=default_json,
        help="write logs as JSON lines instead of text",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Cancel Genesys outbound records through Genesys Web Services (GWS) and watch the "
            "outcome, run the embedded GWS simulator, and list the installed plugins."
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

    cancel = commands.add_parser(
        "cancel",
        help="cancel outbound records and print each outcome",
        description=(
            "Cancel outbound records through the GWS configured in the environment "
            "(GWS_BASE_URL, GWS_USERNAME, GWS_PASSWORD), wait for each acknowledgement from "
            "OCS and print one line per record, on one GWS session. The records are the "
            "--record-handle values (several allowed: they share the other options), or JSON "
            "lines on stdin with --stdin (GWS camelCase keys, e.g. "
            '{"recordHandle": 11, "applicationId": 134, "campaignName": "Campaign1", '
            '"callingList": "CallingList1"}; the options give defaults for the keys a line '
            "leaves out). While outcomes are awaited on a terminal, progress is shown on "
            "stderr. Exit status: 0 all acknowledged, 1 a cancel failed or a line was "
            "invalid (the reason is printed), 2 usage or configuration error, 130 "
            "interrupted (the outcome of each unfinished cancel is printed as interrupted). "
            "Installed plugins are loaded and see the cancels too, unless --no-plugins."
        ),
        epilog=_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record = cancel.add_argument_group("the records")
    record.add_argument(
        "--record-handle",
        type=_positive_int,
        action="extend",
        nargs="+",
        metavar="N",
        help="OCS record handle(s) (GSW_RECORD_HANDLE); repeat the option or give several",
    )
    record.add_argument(
        "--application-id",
        type=_positive_int,
        metavar="N",
        help="DBID of the OCS application (applicationId)",
    )
    record.add_argument("--campaign", metavar="NAME", help="campaign name (campaignName)")
    record.add_argument("--calling-list", metavar="NAME", help="calling list (callingList)")
    record.add_argument(
        "--device-path",
        metavar="/devices/ID",
        help="the agent's device (devicePath); default: the agent's first device in GWS",
    )
    record.add_argument("--phone", metavar="NUMBER", help="the record's phone number (optional)")
    record.add_argument(
        "--chain",
        choices=[member.value for member in ChainAttribute],
        help="AllChain cancels the record's whole chain, RecordOnly only this record "
        "(default: not sent, GWS decides)",
    )
    record.add_argument(
        "--reference-id",
        metavar="ID",
        help="referenceId to send, for a single record (default: a new uuid4 hex); GWS "
        "echoes it in the ack",
    )
    record.add_argument(
        "--stdin",
        action="store_true",
        help="read the records as JSON lines from stdin (one cancel per line, GWS camelCase "
        "keys); an invalid line prints an error line and the others go on",
    )
    cancel.add_argument(
        "--json",
        action="store_true",
        help='print each outcome as one JSON line: {"hook": "<hook name>", <payload fields>}',
    )
    cancel.add_argument(
        "--no-plugins",
        action="store_true",
        help="do not load the installed gws_outbound plugins",
    )
    _add_connection_options(cancel)
    _add_logging_options(cancel, suppress=True)

    plugins = commands.add_parser(
        "plugins",
        help="list the installed plugins, the hooks each implements and every load failure",
        description=(
            "List the plugins installed under the 'gws_outbound' entry-point group (after "
            "GWS_OUTBOUND_PLUGINS / GWS_OUTBOUND_DISABLE_PLUGINS), with their distribution "
            "and the hooks each implements, and every plugin that failed to load, with its "
            "error and where it happened. Exit status 1 when a plugin failed to load (or "
            "GWS_OUTBOUND_PLUGINS names one that is not installed)."
        ),
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
    _add_logging_options(plugins, suppress=True)

    tail = commands.add_parser(
        "tail",
        help="print live outbound events and user events until Ctrl-C",
        description=(
            "Connect to the configured GWS as the agent and print every user event "
            "(on_user_event), acknowledged cancel (on_record_cancel_acknowledged) and "
            "failed cancel (on_cancel_failed) as it arrives, until Ctrl-C or SIGTERM. "
            "Plugins are not loaded."
        ),
        epilog=_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per event: {"hook": "<hook name>", <payload fields>}',
    )
    _add_connection_options(tail)
    _add_logging_options(tail, suppress=True)
    return parser


def _version() -> str:
    from . import __version__

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


# -- the commands ---------------------------------------------------------------------------------


class _Context:
    def __init__(self, stdout: TextIO, stderr: TextIO, stdin: TextIO, environ: Mapping[str, str]):
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.environ = environ

    def out(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()


_OPTION_OF_FIELD: Final = {
    "record_handle": "--record-handle",
    "application_id": "--application-id",
    "campaign_name": "--campaign",
    "calling_list": "--calling-list",
    "device_path": "--device-path",
    "phone_number": "--phone",
    "chain_attribute": "--chain",
    "reference_id": "--reference-id",
}


def _option_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The CancelRequest fields the options give (all but the record handle)."""
    fields = {
        "application_id": args.application_id,
        "campaign_name": args.campaign,
        "calling_list": args.calling_list,
        "device_path": args.device_path,
        "phone_number": args.phone,
        "chain_attribute": args.chain,
        "reference_id": args.reference_id,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _check_cancel_arguments(args: argparse.Namespace) -> list[CancelRequest]:
    """The requests of the options (none with --stdin), validated before any network."""
    handles: list[int] = args.record_handle or []
    if args.stdin:
        if handles:
            raise _UsageError("give the records either as --record-handle or with --stdin")
        if args.reference_id is not None:
            raise _UsageError("--reference-id is for a single record (each cancel needs its own)")
        return []
    missing = [
        option
        for option, value in (
            ("--record-handle", handles),
            ("--application-id", args.application_id),
            ("--campaign", args.campaign),
            ("--calling-list", args.calling_list),
        )
        if value is None or value == []
    ]
    if missing:
        raise _UsageError(
            "the following arguments are required: "
            + ", ".join(missing)
            + " (or give the records as JSON lines with --stdin)"
        )
    if args.reference_id is not None and len(handles) > 1:
        raise _UsageError("--reference-id is for a single record (each cancel needs its own)")
    requests = []
    for handle in handles:
        fields = _option_fields(args)
        fields.setdefault("device_path", _PLACEHOLDER_DEVICE)
        fields["record_handle"] = handle
        try:
            requests.append(CancelRequest(**fields))
        except InvalidCancelRequest as error:
            problems = "; ".join(
                f"{_OPTION_OF_FIELD.get(name, name)} {problem}"
                for name, problem in error.errors.items()
            )
            raise _UsageError(f"invalid cancel request: {problems}") from None
    return requests


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = _isatty(stream)
        self._shown = False
        self.submitted = 0
        self.acknowledged = 0
        self.failed = 0
        self._started = time.monotonic()

    @property
    def waiting(self) -> int:
        return self.submitted - self.acknowledged - self.failed

    def clear(self) -> None:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def draw(self) -> None:
        if not self.enabled or self.waiting <= 0:
            return
        seconds = time.monotonic() - self._started
        failed = f", {self.failed} failed" if self.failed else ""
        self._write(
            f"\r\x1b[Kwaiting for {self.waiting} outcome(s): {self.acknowledged} "
            f"acknowledged{failed} ({seconds:.1f} s; Ctrl-C to stop)"
        )
        self._shown = True

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()

    async def run(self) -> None:
        if not self.enabled:
            return
        await anyio.sleep(_PROGRESS_AFTER)
        while True:
            self.draw()
            await anyio.sleep(_PROGRESS_EVERY)


class _CancelRun:
    """Submits the cancels, prints each outcome as it arrives, and on Ctrl-C the outcome of
    each unfinished one."""

    def __init__(self, args: argparse.Namespace, ctx: _Context, plugin: OutboundPlugin) -> None:
        self._args = args
        self._ctx = ctx
        self._plugin = plugin
        self._device: str | None = args.device_path
        self._pending: dict[str, CancelTicket] = {}
        self.progress = _Progress(ctx.stderr)
        self.invalid = 0
        self.interrupted = False

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.progress.failed == 0

    async def device_path(self) -> str:
        if self._device is None:
            self._device = await self._plugin.device_path()
        return self._device

    def _print(self, line: str) -> None:
        self.progress.clear()
        self._ctx.out(line)
        self.progress.draw()

    def report(self, ticket: CancelTicket, *, interrupted: bool = False) -> None:
        outcome = ticket.outcome
        self._pending.pop(ticket.reference_id, None)
        if isinstance(outcome, RecordCancelAck):
            self.progress.acknowledged += 1
            line = (
                hook_line("on_record_cancel_acknowledged", outcome)
                if self._args.json
                else describe_ack(outcome)
            )
        elif isinstance(outcome, CancelFailure):
            self.progress.failed += 1
            if self._args.json:
                extra = {"interrupted": True} if interrupted else {}
                line = json.dumps(
                    {"hook": "on_cancel_failed", **to_jsonable(outcome), **extra},
                    ensure_ascii=False,
                )
            else:
                line = describe_failure(outcome) + (" (interrupted)" if interrupted else "")
        else:
            return
        self._print(line)

    def invalid_line(self, number: int, problem: str, fields: Sequence[str]) -> None:
        self.invalid += 1
        if self._args.json:
            self._print(json.dumps({"error": problem, "fields": list(fields), "line": number}))
        else:
            self._print(f"invalid        line={number} {problem}")

    async def submit(self, tg: TaskGroup, request: CancelRequest) -> None:
        if request.device_path == _PLACEHOLDER_DEVICE:
            request = dataclasses.replace(request, device_path=await self.device_path())
        ticket = self._plugin.submit(request)
        self._pending[ticket.reference_id] = ticket
        self.progress.submitted += 1
        tg.start_soon(self._await, ticket)

    async def _await(self, ticket: CancelTicket) -> None:
        with contextlib.suppress(Exception):
            await ticket
        self.report(ticket)

    async def from_stdin(self, tg: TaskGroup) -> None:
        defaults = {_camel(name): value for name, value in _option_fields(self._args).items()}
        number = 0
        async for line in _stdin_lines(self._ctx.stdin):
            number += 1
            text = line.strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except ValueError as error:
                self.invalid_line(number, f"invalid JSON: {error}", [])
                continue
            if not isinstance(event, dict):
                self.invalid_line(number, "expected a JSON object of GWS camelCase keys", [])
                continue
            merged = {**defaults, **event}
            if merged.get("devicePath") is None:
                merged["devicePath"] = await self.device_path()
            try:
                request = CancelRequest.from_bus(merged)
            except InvalidCancelRequest as error:
                self.invalid_line(number, str(error), error.fields)
                continue
            await self.submit(tg, request)

    def unfinished(self) -> list[CancelTicket]:
        return list(self._pending.values())


async def _stdin_lines(stream: TextIO) -> AsyncIterator[str]:
    """The lines of ``stream``, read by a daemon thread: a Ctrl-C never waits for input, and
    a read still blocked at exit does not keep the process alive."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)

    def read() -> None:
        # Stops when the loop is gone (interrupted) or stdin ends or breaks.
        with contextlib.suppress(Exception):
            for line in stream:
                asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(queue.put(None), loop)

    threading.Thread(target=read, name="gws-outbound stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


def _camel(field: str) -> str:
    for key, name in BUS_KEYS.items():
        if name == field:
            return key
    return field


async def _run_cancel(args: argparse.Namespace, ctx: _Context, config: GWSConfig) -> int:
    requests = _check_cancel_arguments(args)
    # Installed plugins that fail to load are logged by name and skipped.
    pm = make_plugin_manager(load_entrypoints=not args.no_plugins, environ=ctx.environ)
    run: _CancelRun | None = None
    try:
        async with OutboundPlugin(pm, config) as plugin:
            run = _CancelRun(args, ctx, plugin)
            async with anyio.create_task_group() as outer:
                outer.start_soon(_on_signal, run, outer.cancel_scope)
                outer.start_soon(run.progress.run)
                async with anyio.create_task_group() as tg:
                    for request in requests:
                        await run.submit(tg, request)
                    if args.stdin:
                        await run.from_stdin(tg)
                outer.cancel_scope.cancel()  # every outcome is in
            if run.interrupted:
                # Fail what is still pending (reason shut_down) without waiting, and say so.
                await plugin.aclose(drain=False)
                for ticket in run.unfinished():
                    run.report(ticket, interrupted=True)
            elif args.end_session:
                await _end_gws_session(plugin)
    except GWSAuthenticationError:
        ctx.err(f"error: GWS refused the credentials of {config.username!r} at {config.base_url}")
        return EXIT_FAILED
    except GWSOutboundError as error:
        ctx.err(f"error: {error}")
        return EXIT_FAILED
    finally:
        if run is not None:
            run.progress.clear()
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
    if run is not None and run.interrupted:
        ctx.err("interrupted: the cancels still waiting were reported as interrupted")
        return EXIT_INTERRUPTED
    return EXIT_OK if run is not None and run.ok else EXIT_FAILED


async def _on_signal(run: _CancelRun, scope: anyio.CancelScope) -> None:
    stopped = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, stopped)
        await stopped.wait()
        tg.cancel_scope.cancel()
    run.interrupted = True
    scope.cancel()


async def _end_gws_session(plugin: OutboundPlugin) -> None:
    """``POST /api/v2/me {"operationName": "EndContactCenterSession"}`` on the plugin's own
    session (reference §5.1: logs the agent out, restores the default devices and
    invalidates the HTTP session)."""
    session = plugin._session  # the CLI is part of the package
    try:
        await session._with_relogin("POST", "/me", {"operationName": "EndContactCenterSession"})
    except GWSOutboundError as error:
        logger.warning("gws_end_session_failed", error=str(error))
    else:
        logger.info("gws_session_ended", user=plugin.config.username)


def _run_plugins(args: argparse.Namespace, ctx: _Context) -> int:
    pm = make_plugin_manager(environ=ctx.environ)
    infos = describe_plugins(pm)
    failures = sorted(plugin_load_failures(pm), key=lambda failure: failure.name)
    warned = any(info.warnings for info in infos)
    status = EXIT_FAILED if failures or (args.strict and warned) else EXIT_OK
    if args.json:
        entries: list[dict[str, Any]] = [
            {**dataclasses.asdict(info), "error": None, "location": None} for info in infos
        ]
        entries += [
            {
                "name": failure.name,
                "hooks": [],
                "distribution": failure.distribution,
                "version": None,
                "warnings": [],
                "error": failure.error,
                "location": failure.location,
            }
            for failure in failures
        ]
        entries.sort(key=lambda entry: str(entry["name"]))
        ctx.out(json.dumps(entries, indent=2))
        return status
    if not infos and not failures:
        ctx.out(f"no plugin installed under the {PROJECT_NAME!r} entry-point group")
    filters = [
        f"{key}={ctx.environ[key]}" for key in (ENV_ALLOW, ENV_DISABLE) if ctx.environ.get(key)
    ]
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "(no distribution)"
        ctx.out(f"{info.name}  [{origin}]")
        for hook in info.hooks:
            ctx.out(f"    {hook}")
        for warning in info.warnings:
            ctx.out(f"    warning: {warning}")
    for failure in failures:
        origin = f" [{failure.distribution}]" if failure.distribution else ""
        ctx.out(f"{failure.name}{origin}  FAILED TO LOAD")
        for part in _error_lines(failure.error):
            ctx.out(f"    {part}")
        if failure.location:
            ctx.out(f"    at {failure.location}")
        if failure.entry_point:
            ctx.out(f"    entry point: {failure.name} = {failure.entry_point}")
    if filters:
        ctx.out("(filtered by " + ", ".join(filters) + ")")
    if failures:
        ctx.err(
            f"error: {len(failures)} plugin(s) failed to load: "
            + ", ".join(failure.name for failure in failures)
        )
    elif args.strict and warned:
        ctx.err("error: warnings with --strict")
    return status


def _error_lines(error: str) -> list[str]:
    """A long one-line error split at its '; ' separators, for reading."""
    return [part for part in error.split("; ") if part] or [error]


class _TailPrinter:
    """Prints every dispatched hook call; stops the tail when stdout goes away."""

    def __init__(self, ctx: _Context, *, as_json: bool, stop: Callable[[], None]) -> None:
        self._ctx = ctx
        self._json = as_json
        self._stop = stop

    def _print(self, hook: str, payload: Any, text: Callable[[], str]) -> None:
        line = hook_line(hook, payload) if self._json else f"{_clock()} {text()}"
        try:
            self._ctx.out(line)
        except (BrokenPipeError, ValueError):  # the reader went away (| head)
            self._stop()

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._print("on_user_event", event, lambda: describe_user_event(event))

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._print("on_record_cancel_acknowledged", ack, lambda: describe_ack(ack))

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._print("on_cancel_failed", failure, lambda: describe_failure(failure))


async def _run_tail(args: argparse.Namespace, ctx: _Context, config: GWSConfig) -> int:
    pm = make_plugin_manager(load_entrypoints=False)
    stopped = anyio.Event()
    pm.register(_TailPrinter(ctx, as_json=args.json, stop=stopped.set), name="tail")
    try:
        async with OutboundPlugin(pm, config) as plugin:
            ctx.err(
                f"tailing /v2/me/outbound and /me/internal at {config.base_url} as "
                f"{config.username} (CometD {plugin.cometd_state.value}); press Ctrl-C to stop"
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, stopped)
                await stopped.wait()
                tg.cancel_scope.cancel()
            if args.end_session:
                await _end_gws_session(plugin)
    except GWSAuthenticationError:
        ctx.err(f"error: GWS refused the credentials of {config.username!r} at {config.base_url}")
        return EXIT_FAILED
    except GWSOutboundError as error:
        ctx.err(f"error: {error}")
        return EXIT_FAILED
    return EXIT_OK


async def _stop_on_signal(stopped: anyio.Event) -> None:
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stopped.set()
                return
    except NotImplementedError:  # no signal handling on this platform: Ctrl-C raises instead
        await anyio.sleep_forever()


# -- main ---------------------------------------------------------------------------------------


def _split_simulate(argv: Sequence[str]) -> Sequence[str] | None:
    """The simulator's arguments when the command is ``simulate``, else None."""
    index = 0
    while index < len(argv):
        item = argv[index]
        if item == "simulate":
            return argv[index + 1 :]
        if item == "--log-level":
            index += 2
        elif item.startswith("-"):
            index += 1
        else:
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``gws-outbound``; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    simulate = _split_simulate(arguments)
    if simulate is not None:
        from .simulator import main as simulator_main

        return simulator_main(list(simulate), prog="gws-outbound simulate")
    ctx = _Context(sys.stdout, sys.stderr, sys.stdin, os.environ)
    try:
        _refuse_password_arguments(arguments)
    except _UsageError as error:
        ctx.err(f"{PROG}: error: {error}")
        return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(arguments)
    level = args.log_level or ("error" if args.command == "plugins" else "warning")
    configure_logging(level, json_logs=args.log_json)
    try:
        if args.command == "plugins":
            return _run_plugins(args, ctx)
        if args.command == "cancel":
            _check_cancel_arguments(args)  # usage errors before the password prompt
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            return anyio.run(_run_cancel, args, ctx, config, backend="asyncio")
        if args.command == "tail":
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            return anyio.run(_run_tail, args, ctx, config, backend="asyncio")
    except _UsageError as error:
        with contextlib.suppress(BrokenPipeError, ValueError):
            ctx.err(f"{PROG} {args.command}: error: {error}")
        return EXIT_USAGE
    except _Interrupted as error:
        with contextlib.suppress(BrokenPipeError, ValueError):
            ctx.err(f"{PROG} {args.command}: {error}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        with contextlib.suppress(BrokenPipeError, ValueError):
            ctx.err("interrupted")
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
