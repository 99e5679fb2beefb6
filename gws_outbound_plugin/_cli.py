"""``gws-outbound``: the command line of gws_outbound_plugin.

Commands: ``simulate`` (the embedded GWS simulator), ``cancel`` (one cancel against the
configured GWS), ``plugins`` (installed plugins and their hooks), ``tail`` (live events).
Results go to stdout, logs and diagnostics to stderr. This module is an application entry
point, so it is the one place that configures structlog.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import enum
import getpass
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TextIO

import anyio
import pluggy
import structlog

from ._config import GWSConfig
from ._exceptions import (
    CancelFailed,
    ConfigError,
    GWSAuthenticationError,
    GWSOutboundError,
    InvalidCancelRequest,
    PluginLoadError,
)
from ._manager import ENV_ALLOW, ENV_DISABLE, describe_plugins, make_plugin_manager
from ._models import (
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    RecordCancelAck,
    UserEvent,
)
from ._plugin import OutboundPlugin
from .hookspecs import PROJECT_NAME, hookimpl

__all__ = ["main"]

logger = structlog.get_logger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

PROG: Final = "gws-outbound"
# Stand-in device path used to validate the other fields before GWS tells us the real one.
_PLACEHOLDER_DEVICE: Final = "/devices/placeholder"
_PLUGIN_CLOSE_TIMEOUT: Final = 5.0

_ENVIRONMENT_HELP = """\
configuration (cancel, tail) comes from the environment:
  GWS_BASE_URL       the GWS node, e.g. https://gws.example.com
  GWS_USERNAME       the agent's user name
  GWS_PASSWORD       the agent's password; when unset and stdin is a terminal you are
                     prompted (never pass it on the command line)
  GWS_ACK_TIMEOUT, GWS_REQUEST_TIMEOUT, GWS_VERIFY_TLS, ... any other GWSConfig field
plugins (cancel, plugins) are loaded from the 'gws_outbound' entry-point group:
  GWS_OUTBOUND_PLUGINS           comma-separated names to load (default: all)
  GWS_OUTBOUND_DISABLE_PLUGINS   comma-separated names never to load

exit status: 0 success (cancel: acknowledged), 1 failure (cancel: failed, or GWS
unreachable / credentials refused), 2 usage or configuration error."""


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


def load_config(
    environ: Mapping[str, str],
    *,
    stdin: TextIO,
    prompt: Callable[[str], str] = getpass.getpass,
) -> GWSConfig:
    """``GWSConfig.from_env``, prompting for the password when it is missing and stdin is a
    terminal."""
    overrides: dict[str, Any] = {}
    if not environ.get("GWS_PASSWORD") and environ.get("GWS_USERNAME") and _isatty(stdin):
        password = prompt(f"GWS password for {environ['GWS_USERNAME']}: ")
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
    default_level = argparse.SUPPRESS if suppress else "warning"
    default_json = argparse.SUPPRESS if suppress else False
    group = parser.add_argument_group("logging (to stderr)")
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default_level,
        help="least severe log level shown (default: warning)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=default_json,
        help="write logs as JSON lines instead of text",
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
        help="cancel one outbound record and print the outcome",
        description=(
            "Cancel one outbound record through the GWS configured in the environment "
            "(GWS_BASE_URL, GWS_USERNAME, GWS_PASSWORD), wait for the acknowledgement from "
            "OCS and print it. Exit status: 0 acknowledged, 1 failed (the reason is "
            "printed), 2 usage or configuration error. Installed plugins are loaded and "
            "see the cancel too, unless --no-plugins."
        ),
        epilog=_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record = cancel.add_argument_group("the record")
    record.add_argument(
        "--record-handle",
        type=_positive_int,
        required=True,
        metavar="N",
        help="OCS record handle (GSW_RECORD_HANDLE)",
    )
    record.add_argument(
        "--application-id",
        type=_positive_int,
        required=True,
        metavar="N",
        help="DBID of the OCS application (applicationId)",
    )
    record.add_argument(
        "--campaign", required=True, metavar="NAME", help="campaign name (campaignName)"
    )
    record.add_argument(
        "--calling-list", required=True, metavar="NAME", help="calling list (callingList)"
    )
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
        help="referenceId to send (default: a new uuid4 hex); GWS echoes it in the ack",
    )
    cancel.add_argument("--json", action="store_true", help="print the outcome as one JSON line")
    cancel.add_argument(
        "--no-plugins",
        action="store_true",
        help="do not load the installed gws_outbound plugins",
    )
    _add_logging_options(cancel, suppress=True)

    plugins = commands.add_parser(
        "plugins",
        help="list the installed plugins and the hooks each implements",
        description=(
            "List the plugins installed under the 'gws_outbound' entry-point group (after "
            "GWS_OUTBOUND_PLUGINS / GWS_OUTBOUND_DISABLE_PLUGINS), with their distribution "
            "and the hooks each implements. A plugin that fails to load is reported on "
            "stderr and left out (exit status 1 with --strict)."
        ),
    )
    plugins.add_argument("--json", action="store_true", help="print a JSON array")
    plugins.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a plugin fails to load, instead of skipping it",
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
    _add_logging_options(tail, suppress=True)
    return parser


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


def _build_request(args: argparse.Namespace) -> CancelRequest:
    fields: dict[str, Any] = {
        "record_handle": args.record_handle,
        "application_id": args.application_id,
        "campaign_name": args.campaign,
        "calling_list": args.calling_list,
        "device_path": args.device_path or _PLACEHOLDER_DEVICE,
        "phone_number": args.phone,
        "chain_attribute": args.chain,
    }
    if args.reference_id is not None:
        fields["reference_id"] = args.reference_id
    try:
        return CancelRequest(**fields)
    except InvalidCancelRequest as error:
        options = {
            "record_handle": "--record-handle",
            "application_id": "--application-id",
            "campaign_name": "--campaign",
            "calling_list": "--calling-list",
            "device_path": "--device-path",
            "phone_number": "--phone",
            "chain_attribute": "--chain",
            "reference_id": "--reference-id",
        }
        problems = "; ".join(
            f"{options.get(name, name)} {problem}" for name, problem in error.errors.items()
        )
        raise _UsageError(f"invalid cancel request: {problems}") from None


async def _close_plugins(pm: pluggy.PluginManager) -> None:
    # Plugins that hold resources (queues, files, connections) may offer ``async def
    # aclose()``, as the reference plugins do: the CLI gives them the chance to finish.
    for name, plugin in pm.list_name_plugin():
        closer = getattr(plugin, "aclose", None)
        if inspect.isclass(plugin) or not inspect.iscoroutinefunction(closer):
            continue
        try:
            with anyio.fail_after(_PLUGIN_CLOSE_TIMEOUT):
                await closer()
        except Exception:
            logger.exception("plugin_close_failed", plugin=name)


async def _run_cancel(args: argparse.Namespace, ctx: _Context) -> int:
    request = _build_request(args)
    config = load_config(ctx.environ, stdin=ctx.stdin)
    # Installed plugins that fail to load are logged by name and skipped.
    pm = make_plugin_manager(load_entrypoints=not args.no_plugins, environ=ctx.environ)
    try:
        async with OutboundPlugin(pm, config) as plugin:
            if args.device_path is None:
                request = dataclasses.replace(request, device_path=await plugin.device_path())
            try:
                ack = await plugin.cancel(request)
            except CancelFailed as failed:
                ctx.out(
                    hook_line("on_cancel_failed", failed.failure)
                    if args.json
                    else describe_failure(failed.failure)
                )
                return EXIT_FAILED
            ctx.out(
                hook_line("on_record_cancel_acknowledged", ack) if args.json else describe_ack(ack)
            )
            return EXIT_OK
    except GWSAuthenticationError:
        ctx.err(f"error: GWS refused the credentials of {config.username!r} at {config.base_url}")
        return EXIT_FAILED
    except GWSOutboundError as error:
        ctx.err(f"error: {error}")
        return EXIT_FAILED
    finally:
        await _close_plugins(pm)


def _run_plugins(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        pm = make_plugin_manager(strict=args.strict, environ=ctx.environ)
    except PluginLoadError as error:
        ctx.err(f"error: {error}")
        return EXIT_FAILED
    infos = describe_plugins(pm)
    if args.json:
        ctx.out(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return EXIT_OK
    if not infos:
        ctx.out(f"no plugin installed under the {PROJECT_NAME!r} entry-point group")
    filters = [
        f"{key}={ctx.environ[key]}" for key in (ENV_ALLOW, ENV_DISABLE) if ctx.environ.get(key)
    ]
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "(no distribution)"
        ctx.out(f"{info.name}  [{origin}]")
        for hook in info.hooks:
            ctx.out(f"    {hook}")
    if filters:
        ctx.out("(filtered by " + ", ".join(filters) + ")")
    return EXIT_OK


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


async def _run_tail(args: argparse.Namespace, ctx: _Context) -> int:
    config = load_config(ctx.environ, stdin=ctx.stdin)
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
    parser = build_parser()
    args = parser.parse_args(arguments)
    configure_logging(args.log_level, json_logs=args.log_json)
    ctx = _Context(sys.stdout, sys.stderr, sys.stdin, os.environ)
    try:
        if args.command == "plugins":
            return _run_plugins(args, ctx)
        if args.command == "cancel":
            return anyio.run(_run_cancel, args, ctx, backend="asyncio")
        if args.command == "tail":
            return anyio.run(_run_tail, args, ctx, backend="asyncio")
    except _UsageError as error:
        with contextlib.suppress(BrokenPipeError, ValueError):
            ctx.err(f"{PROG} {args.command}: error: {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        with contextlib.suppress(BrokenPipeError, ValueError):
            ctx.err("interrupted")
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
