"""``gws-outbound``: the command line of gws_outbound_plugin.

Commands: ``simulate`` (the embedded GWS simulator); the operations on outbound records and
campaigns against the configured GWS, each from options or JSON lines on stdin, on one GWS
session (``cancel``, ``reject``, ``complete``, ``do-not-call``, ``reschedule``, ``update``,
``chained``, ``add-record``, ``preview``, and ``request`` for any operation as raw JSON);
``plugins`` (installed plugins, their hooks and every load failure); ``tail`` (live events).
Results go to stdout, logs, progress and diagnostics to stderr. This module is an application
entry point, so it is the one place that configures structlog.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import getpass
import importlib
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TextIO

import anyio
import pluggy
import structlog
from anyio.abc import TaskGroup

from ._config import GWSConfig
from ._exceptions import (
    ConfigError,
    GWSOutboundError,
    InvalidOperationRequest,
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
    CancelFailure,
    CancelRequest,
    FailureReason,
    RecordCancelAck,
    UserEvent,
    to_jsonable,
)
from ._operations import (
    AddRecordRequest,
    CampaignStatusEvent,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    OperationAck,
    OperationFailure,
    OperationRequest,
    PreviewRecordEvent,
    RecordCancelledEvent,
    RejectRecordRequest,
    RescheduleRecordRequest,
    ScheduledCallEvent,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    request_from_bus,
)
from ._plugin import OutboundPlugin
from ._requests import REQUEST_FIELDS, SECONDS_PER_DAY, ValueKind, field_from_text
from ._template import TemplateError, write_plugin
from ._ticket import OperationTicket
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
#: Width of the wrapped command descriptions in --help.
_HELP_WIDTH: Final = 88

_ENVIRONMENT_HELP = """\
configuration (every command that talks to GWS) comes from the environment:
  GWS_BASE_URL       the GWS node, e.g. https://gws.example.com (or --base-url)
  GWS_USERNAME       the agent's user name
  GWS_PASSWORD       the agent's password; when unset you are prompted on the terminal,
                     also when stdin is piped (it is never taken from the command line)
  GWS_ACK_TIMEOUT, GWS_REQUEST_TIMEOUT, GWS_VERIFY_TLS, ... any other GWSConfig field
plugins (the operation commands, plugins) are loaded from the 'gws_outbound' entry-point
group:
  GWS_OUTBOUND_PLUGINS           comma-separated names to load (default: all)
  GWS_OUTBOUND_DISABLE_PLUGINS   comma-separated names never to load

exit status: 0 success (operations: every request acknowledged), 1 failure (operations: a
request failed or an input line was invalid; GWS unreachable or credentials refused;
plugins: a plugin failed to load), 2 usage or configuration error, 130 interrupted
(Ctrl-C)."""


class _UsageError(Exception):
    """A problem with the command line or the configuration: exit status 2."""


# -- output helpers -------------------------------------------------------------------------------


def hook_line(hook: str, payload: Any, **extra: Any) -> str:
    """One JSON line: ``{"hook": ..., <payload fields>}`` (the example host's format)."""
    return json.dumps(
        {"hook": hook, **to_jsonable(payload), **extra}, ensure_ascii=False, default=str
    )


def _clock() -> str:
    return dt.datetime.now().astimezone().strftime("%H:%M:%S.%f")[:-3]


def _record_text(handle: Any, application: Any, campaign: Any, calling_list: Any) -> str:
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


def _failure_word(failure: CancelFailure | OperationFailure) -> str:
    """The first word of a failure's line, following its reason: ``outcome unknown`` when
    the request was sent and nobody can say whether GWS acted on it (reason
    ``outcome_unknown``: e.g. interrupted after GWS accepted it), ``failed`` otherwise
    (``shut_down``: it was never sent)."""
    return "outcome unknown" if failure.reason is FailureReason.OUTCOME_UNKNOWN else "failed"


def _failure_head(failure: CancelFailure | OperationFailure) -> str:
    return f"{_failure_word(failure):<14} "


def _failure_text(failure: CancelFailure | OperationFailure) -> str:
    text = f"reason={failure.reason.value}"
    if failure.status_code is not None:
        text += f" statusCode={failure.status_code}"
    if failure.error_number is not None:
        text += f" error={failure.error_number}"
    if failure.message:
        text += f" message={json.dumps(failure.message, ensure_ascii=False)}"
    if getattr(failure, "may_have_acted", False):
        text += " may_have_acted=yes"
    return text


def _failure_line(failure: CancelFailure) -> str:
    request = failure.request
    text = _failure_head(failure) + _failure_text(failure)
    text += " " + _record_text(
        request.record_handle, request.application_id, request.campaign_name, request.calling_list
    )
    return text + f" referenceId={request.reference_id}"


def _request_text(request: Any, record: Mapping[str, Any] | None = None) -> str:
    """What a request is about: its record, phone number or campaign, as ``key=value``."""
    record = record or {}
    application = getattr(request, "application_id", None) or record.get("applicationId")
    campaign = getattr(request, "campaign_name", None) or record.get("campaignName")
    calling_list = getattr(request, "calling_list", None) or record.get("callingList")
    handle = getattr(request, "record_handle", None)
    if handle is not None:
        return _record_text(handle, application, campaign, calling_list)
    if isinstance(request, DoNotCallPhoneRequest):
        text = f"phone={request.phone_number} app={application} campaign={campaign}"
        return text + (f" list={calling_list}" if calling_list else "")
    if isinstance(request, AddRecordRequest):
        return (
            f"phone={request.phone_number} app={application} campaign={campaign} "
            f"list={calling_list}"
        )
    return f"campaign={campaign or '?'} app={application if application is not None else '?'}"


def _chained_text(record: Mapping[str, Any]) -> str:
    """One chained record (an ``OutboundRecordMessage`` record, or a user event's userData)."""

    def get(key: str, user_data_key: str) -> Any:
        value = record.get(key)
        return value if value is not None else record.get(user_data_key)

    return (
        "chained        "
        + _record_text(
            get("recordHandle", "GSW_RECORD_HANDLE"),
            get("applicationId", "GSW_APPLICATION_ID"),
            get("campaignName", "GSW_CAMPAIGN_NAME"),
            get("callingList", "GSW_CALLING_LIST"),
        )
        + f" chain={get('chainId', 'GSW_CHAIN_ID') or '?'}"
        + f" phone={get('phoneNumber', 'GSW_PHONE') or '?'}"
    )


def describe_operation_ack(ack: OperationAck) -> str:
    """The acknowledgement of any operation but a cancel; ``GetChainedRecord`` adds one line
    per chained record."""
    request = ack.request
    lines: list[str] = []
    text = f"acknowledged   {ack.operation} "
    if ack.operation == "GetPreviewRecord":
        data: Mapping[str, Any] = ack.record.get("userData") or {}
        if ack.empty:
            text += _request_text(request) + " empty (no record available)"
        else:
            text += _record_text(
                ack.record_handle,
                data.get("GSW_APPLICATION_ID"),
                data.get("GSW_CAMPAIGN_NAME"),
                data.get("GSW_CALLING_LIST"),
            )
            text += f" chain={data.get('GSW_CHAIN_ID', '?')} phone={data.get('GSW_PHONE', '?')}"
    elif ack.operation == "AddRecord":
        text += (
            _record_text(
                ack.record_handle,
                getattr(request, "application_id", None) or ack.record.get("applicationId"),
                getattr(request, "campaign_name", None) or ack.record.get("campaignName"),
                getattr(request, "calling_list", None) or ack.record.get("callingList"),
            )
            + f" chain={ack.record.get('chainId', '?')}"
        )
    elif request is None:
        text += _record_text(
            ack.record_handle,
            ack.record.get("applicationId"),
            ack.record.get("campaignName"),
            ack.record.get("callingList"),
        )
    else:
        text += _request_text(request, ack.record)
    if isinstance(request, CompleteRecordRequest) and request.call_result is not None:
        text += f" callResult={request.call_result}"
    if isinstance(request, RescheduleRecordRequest):
        text += f" callback={request.callback_type.value} at={request.scheduled_time.isoformat()}"
    if ack.operation == "GetChainedRecord":
        text += f" chained={len(ack.records)}"
    text += f" referenceId={ack.reference_id or '?'}"
    if request is None:
        text += " (requested by another client)"
    lines.append(text)
    if ack.operation == "GetChainedRecord":
        lines += [_chained_text(record) for record in ack.records]
    return "\n".join(lines)


def describe_operation_failure(failure: OperationFailure) -> str:
    request = failure.request
    return (
        f"{_failure_head(failure)}{failure.operation} {_failure_text(failure)} "
        f"{_request_text(request)}"
        f" referenceId={request.reference_id}"
    )


def describe_user_event(event: UserEvent) -> str:
    data = event.user_data

    def get(key: str) -> Any:
        return data.get(key)

    text = f"user_event     {event.user_event or '?'} "
    if get("GSW_RECORD_HANDLE") is None and get("GSW_CALLING_LIST") is None:
        # A campaign's event (CampaignStarted, a preview session...): no record to show.
        application = get("GSW_APPLICATION_ID")
        text += f"campaign={get('GSW_CAMPAIGN_NAME') or '?'} "
        text += f"app={application if application is not None else '?'}"
    else:
        text += _record_text(
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


def describe_unsolicited(
    event: RecordCancelledEvent | ScheduledCallEvent | PreviewRecordEvent | CampaignStatusEvent,
) -> str:
    """An event OCS sent unprompted, on one line."""
    if isinstance(event, CampaignStatusEvent):
        text = f"campaign       {event.status.value} campaign={event.campaign_name or '?'} "
        text += f"app={event.application_id if event.application_id is not None else '?'}"
        if event.dialing_mode:
            text += f" mode={event.dialing_mode}"
        return text
    if isinstance(event, PreviewRecordEvent):
        data = event.user_data
        return (
            "preview_record "
            + _record_text(
                event.record_handle,
                data.get("GSW_APPLICATION_ID"),
                data.get("GSW_CAMPAIGN_NAME"),
                data.get("GSW_CALLING_LIST"),
            )
            + f" phone={data.get('GSW_PHONE', '?')} (pushed by OCS)"
        )
    label = "scheduled_call " if isinstance(event, ScheduledCallEvent) else "record_cancel  "
    text = label + _record_text(
        event.record_handle, event.application_id, event.campaign_name, event.calling_list
    )
    if isinstance(event, ScheduledCallEvent):
        kind = event.callback_type.value if event.callback_type else "?"
        return text + f" callback={kind} phone={event.phone_number or '?'} (callback due)"
    return text + " (cancelled by someone else)"


def describe_connection(state: str) -> str:
    """A loss of the CometD session, or its return, on one line."""
    if state == "reconnecting":
        return "connection     lost: reconnecting (no event can be heard until it is back)"
    return "connection     back: connected and subscribed again (events meanwhile may be missed)"


# -- logging ------------------------------------------------------------------------------------


def _drop_event(_logger: Any, _method: str, _event: Any) -> Any:
    """The only processor when no log level was asked for: every event is dropped."""
    raise structlog.DropEvent


def configure_logging(level: str | None, *, json_logs: bool, stream: TextIO | None = None) -> None:
    """Send structlog's output to stderr (the CLI is an application: it may configure it).

    ``level=None``: no log line at all. By default the CLI prints one line per outcome or
    error itself (with the detail that matters), and logs only when a level is asked for.
    """
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
    ]
    if level is None:
        processors = [_drop_event]
    elif json_logs:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.CRITICAL if level is None else getattr(logging, level.upper())
        ),
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
    has_terminal: Callable[[], bool] | None = None,
) -> GWSConfig:
    """``GWSConfig.from_env`` (``base_url`` overrides ``GWS_BASE_URL``), prompting for the
    password when it is missing and there is a terminal: stdin, or the process's controlling
    terminal when stdin is piped (``getpass`` then reads ``/dev/tty``, as ``ssh`` and
    ``sudo`` do).

    Called before the event loop starts, so Ctrl-C at the prompt interrupts it at once.
    """
    overrides: dict[str, Any] = {}
    if base_url is not None:
        overrides["base_url"] = base_url
    terminal = _isatty(stdin) or (has_terminal or _has_controlling_terminal)()
    if not environ.get("GWS_PASSWORD") and environ.get("GWS_USERNAME") and terminal:
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
            hint = (
                " (set GWS_PASSWORD in the environment: there is no terminal to prompt on, "
                'e.g. GWS_PASSWORD="$(cat ~/.gws-password)" gws-outbound ...)'
            )
        raise _UsageError(f"{error}{hint}") from None


def _has_controlling_terminal() -> bool:
    """Whether the process has a controlling terminal to prompt on (``/dev/tty``)."""
    if os.name != "posix":
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the parser ---------------------------------------------------------------------------------


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


def _read_word(field: str, text: str) -> object:
    """One command-line word of ``field``, read and checked by the request field table."""
    try:
        return field_from_text(field, text)
    except ValueError as error:
        problem = _WORD_PROBLEMS[field].format(text) if field in _WORD_PROBLEMS else str(error)
        raise argparse.ArgumentTypeError(problem) from None


def _read_moment(text: str) -> object:
    """``--at``: an ISO 8601 date-time as the table reads it, or seconds since the epoch as
    the table reads a JSON line's integer ``timestamp``."""
    if text.isascii() and text.isdigit() and len(text) <= _MAX_EPOCH_DIGITS:
        kind = REQUEST_FIELDS["scheduled_time"].kind
        value, problem = kind.decode(int(text))
        problem = problem or kind.check(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value
    try:
        return field_from_text("scheduled_time", text)
    except ValueError as error:
        problem = str(error)
    with contextlib.suppress(ValueError):
        if dt.datetime.fromisoformat(text).tzinfo is None:  # the usual slip: say it plainly
            problem = (
                f"{text!r} has no UTC offset, so it names no instant: add one "
                "(e.g. 2030-01-02T09:30:00+01:00, or Z for UTC)"
            )
    raise argparse.ArgumentTypeError(problem)


#: Longer words of digits are not read as numbers (the table refuses them as text).
_MAX_EPOCH_DIGITS: Final = 20
_TIME_OF_DAY_PROBLEM: Final = (
    f"must be seconds after midnight (0 to {SECONDS_PER_DAY - 1}) or HH:MM[:SS] before "
    "24:00, got {0!r}"
)
#: What the command line says of a word the table refuses, where the table's message would
#: show a value the user did not type (``--from 25:00`` is refused as 90000 seconds):
#: ``{0}`` is the word as typed.
_WORD_PROBLEMS: Final[Mapping[str, str]] = {
    "call_from": _TIME_OF_DAY_PROBLEM,
    "call_until": _TIME_OF_DAY_PROBLEM,
}
#: A kind's ``parse`` where the word is the value as typed (text, a choice).
_AS_TYPED: Final = next(f.default for f in dataclasses.fields(ValueKind) if f.name == "parse")


def _reader(field: str) -> Callable[[str], object] | None:
    """The argparse ``type`` of ``field``'s option: ``None`` where the word is the value
    (text, checked with the whole request so that every problem is reported at once; a
    choice, which argparse checks against ``choices``)."""
    if field == "scheduled_time":
        return _read_moment
    kind = REQUEST_FIELDS[field].kind
    if kind.choices is not None or kind.parse is _AS_TYPED:
        return None
    return functools.partial(_read_word, field)


#: Request field's GWS camelCase key -> its option (what error messages name).
_OPTION_OF_BUS_KEY: Final = {row.bus_key: row.flags[0] for row in REQUEST_FIELDS.values()}


def _build_do_not_call(event: Mapping[str, Any]) -> OperationRequest:
    if event.get("recordHandle") is None:
        return DoNotCallPhoneRequest.from_bus(event)
    return DoNotCallRecordRequest.from_bus(event)


def _build_request(event: Mapping[str, Any]) -> OperationRequest:
    return request_from_bus(event)


@dataclasses.dataclass(frozen=True)
class _Command:
    """An operation command: which options it offers and how its requests are built."""

    name: str
    summary: str
    description: str
    fields: tuple[str, ...]
    """The request fields its options give (``record_handle`` when it takes handles)."""
    required: tuple[str, ...]
    """The fields needed when the requests come from the options (not ``--stdin``)."""
    build: Callable[[Mapping[str, Any]], OperationRequest]
    """A request from a bus event in GWS camelCase keys (raises InvalidOperationRequest)."""
    what: str = "records"
    help: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Option help that differs from the field's in ``REQUEST_FIELDS``."""
    stdin_help: str = "one request per line"
    examples: tuple[str, ...] = ()
    """Command lines shown under "examples:" in ``--help``; each runs as shown against the
    embedded simulator's seeded records (a test runs them all)."""


_RECORD = ("record_handle", "application_id", "campaign_name")
_COMMON_TAIL = ("device_path", "reference_id")

_C1 = '"applicationId": 134, "campaignName": "Campaign1"'
_L1 = _C1 + ', "callingList": "CallingList1"'
_OPTS1 = "--application-id 134 --campaign Campaign1"
_LIST1 = _OPTS1 + " --calling-list CallingList1"


def _piped(line: str, command: str) -> str:
    """An example that pipes one JSON line into ``command``."""
    return f"echo '{line}' | {PROG} {command}"


def _record_description(action: str, operation: str, extra: str = "") -> str:
    return (
        f"{action} through the GWS configured in the environment (GWS_BASE_URL, "
        f"GWS_USERNAME, GWS_PASSWORD) with GWS {operation}, wait for each acknowledgement "
        "from OCS and print one line per request, all on one GWS session. The records are "
        "the --record-handle values (several allowed: they share the other options), or "
        "JSON lines on stdin with --stdin (GWS camelCase keys, one request per line, as in "
        "the examples below; the options give defaults for the keys a line leaves out; "
        "on a terminal, type the lines and end with Ctrl-D). "
        f"{extra}While outcomes are awaited on a terminal, progress is shown on stderr. "
        "Exit status: 0 all acknowledged, 1 a request failed or a line was invalid (the "
        "reason is printed), 2 usage or configuration error, 130 interrupted (each "
        "unfinished request is printed as interrupted). Installed plugins are loaded and "
        "see the requests too, unless --no-plugins."
    )


_COMMANDS: Final[tuple[_Command, ...]] = (
    _Command(
        "cancel",
        "cancel outbound records and print each outcome",
        _record_description("Cancel outbound records", "CancelRecord"),
        (
            *_RECORD,
            "calling_list",
            "phone_number",
            "chain_attribute",
            *_COMMON_TAIL,
        ),
        (*_RECORD, "calling_list"),
        CancelRequest.from_bus,
        help={
            "chain_attribute": "AllChain cancels the record's whole chain, RecordOnly only "
            "this record (default: not sent, GWS decides)",
            "reference_id": "referenceId to send, for a single record (default: a new uuid4 "
            "hex); GWS echoes it in the ack",
        },
        stdin_help="one cancel per line",
        examples=(
            f"{PROG} cancel --record-handle 11 {_LIST1} --chain RecordOnly",
            _piped('{"recordHandle": 14, ' + _L1 + "}", "cancel --stdin"),
            _piped('{"recordHandle": 16}', f"cancel --stdin {_LIST1}"),
        ),
    ),
    _Command(
        "reject",
        "reject outbound records (hand them back to OCS without calling)",
        _record_description("Reject outbound records (hand them back uncalled)", "RejectRecord"),
        (*_RECORD, "calling_list", *_COMMON_TAIL),
        (*_RECORD, "calling_list"),
        RejectRecordRequest.from_bus,
        examples=(
            f"{PROG} reject --record-handle 13 {_LIST1}",
            _piped('{"recordHandle": 17, ' + _L1 + "}", "reject --stdin"),
        ),
    ),
    _Command(
        "complete",
        "complete outbound records, optionally with a call result",
        _record_description(
            "Mark outbound records as processed",
            "CompleteRecord",
            "--call-result is sent as given: the values GWS accepts are UNCONFIRMED. ",
        ),
        (*_RECORD, "calling_list", "call_result", "phone_number", *_COMMON_TAIL),
        (*_RECORD, "calling_list"),
        CompleteRecordRequest.from_bus,
        help={"phone_number": "the number that was dialled (phoneNumber, optional)"},
        examples=(
            f"{PROG} complete --record-handle 13 {_LIST1} --call-result Answer",
            _piped('{"recordHandle": 17, ' + _L1 + ', "callResult": "Answer"}', "complete --stdin"),
        ),
    ),
    _Command(
        "do-not-call",
        "mark outbound records, or a phone number, do-not-call",
        (
            "Mark outbound records do-not-call with GWS DoNotCallRecord: by record "
            "(--record-handle, with --calling-list; --chain AllChain marks the whole chain) "
            "or, without --record-handle, by phone number (--phone: every record of the "
            "campaign with that number, POST /api/v2/me/outbound-records). Requests come "
            "from the options or as JSON lines with --stdin (a line without recordHandle is "
            "by phone number). Output, progress, exit status and plugins as for 'cancel'."
        ),
        (*_RECORD, "calling_list", "phone_number", "chain_attribute", *_COMMON_TAIL),
        ("application_id", "campaign_name"),
        _build_do_not_call,
        help={
            "record_handle": "OCS record handle(s) to mark (leave it out to mark --phone "
            "instead); repeat the option or give several",
            "calling_list": "calling list (callingList): required with --record-handle, "
            "optional by phone number (limits it to that list)",
            "phone_number": "the phone number: without --record-handle every record of the "
            "campaign with it is marked and the number joins the do-not-call list",
        },
        examples=(
            f"{PROG} do-not-call --record-handle 16 {_LIST1} --chain AllChain",
            f"{PROG} do-not-call --phone 4005 --application-id 134 --campaign Campaign2",
            _piped('{"recordHandle": 19, ' + _L1 + "}", "do-not-call --stdin"),
        ),
    ),
    _Command(
        "reschedule",
        "reschedule outbound records as callbacks at a given time",
        _record_description(
            "Reschedule outbound records as callbacks",
            "RescheduleRecord",
            'The time is --at, or "timestamp" in a JSON line: an ISO 8601 date-time with a '
            "UTC offset (a time without one is refused) or seconds since the epoch; no "
            "callingList is sent (as on the GWS page). When the time "
            "comes OCS delivers the record again (a ScheduledCall event: see "
            "'gws-outbound tail'). ",
        ),
        (*_RECORD, "callback_type", "scheduled_time", *_COMMON_TAIL),
        (*_RECORD, "callback_type", "scheduled_time"),
        RescheduleRecordRequest.from_bus,
        help={
            "scheduled_time": "when to call back: an ISO 8601 date-time with a UTC offset, e.g. "
            "2030-01-02T09:30:00+01:00 or 2030-01-02T08:30:00Z, or seconds since the epoch "
            "(e.g. 1893572200); sent as seconds since the epoch"
        },
        examples=(
            f"{PROG} reschedule --record-handle 12 {_OPTS1} --callback-type Personal "
            "--at 2030-01-02T09:30:00+01:00",
            _piped(
                '{"recordHandle": 13, '
                + _C1
                + ', "callbackType": "Campaign", "timestamp": 1893572200}',
                "reschedule --stdin",
            ),
        ),
    ),
    _Command(
        "update",
        "update outbound records: phone number, phone type, time zone, call window",
        _record_description(
            "Update outbound records",
            "UpdateRecord",
            "At least one of --phone, --phone-type, --time-zone, --from, --until must be "
            "given; --calling-list only names the record's list. ",
        ),
        (
            *_RECORD,
            "calling_list",
            "phone_number",
            "phone_type",
            "time_zone",
            "call_from",
            "call_until",
            *_COMMON_TAIL,
        ),
        _RECORD,
        UpdateRecordRequest.from_bus,
        help={
            "phone_number": "the record's new phone number (phoneNumber)",
            "calling_list": "the record's calling list (callingList, optional: it identifies "
            "the record, it does not move it)",
        },
        examples=(
            f"{PROG} update --record-handle 17 {_OPTS1} --phone-type Mobile --from 08:00 "
            "--until 17:30",
            _piped('{"recordHandle": 18, ' + _C1 + ', "timeZone": "EST"}', "update --stdin"),
        ),
    ),
    _Command(
        "chained",
        "print the records chained to outbound records",
        _record_description(
            "Get the records chained to outbound records (same customer)",
            "GetChainedRecord",
            "Each acknowledgement line is followed by one 'chained' line per chained record "
            '(--json: the records are in "records"). ',
        ),
        (*_RECORD, *_COMMON_TAIL),
        _RECORD,
        GetChainedRecordRequest.from_bus,
        examples=(
            f"{PROG} chained --record-handle 11 {_OPTS1}",
            _piped('{"recordHandle": 14, ' + _C1 + "}", "chained --stdin"),
        ),
    ),
    _Command(
        "add-record",
        "add a record to a calling list",
        (
            "Add a record to a calling list with GWS AddRecord (POST "
            "/api/v2/me/outbound-records), wait for the acknowledgement and print the new "
            "record's handle. One record from the options, or many as JSON lines with "
            "--stdin (GWS camelCase keys, as in the examples below; the options give "
            "defaults for the keys a line leaves out). Output, progress, exit status and "
            "plugins as for 'cancel'."
        ),
        (
            "application_id",
            "campaign_name",
            "calling_list",
            "phone_number",
            "time_zone",
            "phone_type",
            "call_from",
            "call_until",
            "chain_id",
            "other_fields",
            *_COMMON_TAIL,
        ),
        (
            "application_id",
            "campaign_name",
            "calling_list",
            "phone_number",
            "time_zone",
            "phone_type",
            "call_from",
            "call_until",
        ),
        AddRecordRequest.from_bus,
        what="records",
        help={"phone_number": "the new record's phone number (phoneNumber)"},
        stdin_help="one record per line",
        examples=(
            f"{PROG} add-record {_LIST1} --phone 5550001 --time-zone PST --phone-type "
            "HomePhone --from 0 --until 86399 --field tier=gold",
            _piped(
                '{"phoneNumber": "5550002", "timeZone": "PST", "phoneType": "HomePhone", '
                '"from": 0, "until": 86399, "otherFields": {"tier": 2}}',
                f"add-record --stdin {_LIST1}",
            ),
        ),
    ),
)

_PREVIEW_ACTIONS: Final[Mapping[str, Callable[[Mapping[str, Any]], OperationRequest]]] = {
    "start": StartPreviewSessionRequest.from_bus,
    "get": GetPreviewRecordRequest.from_bus,
    "end": EndPreviewSessionRequest.from_bus,
}

_PREVIEW = _Command(
    "preview",
    "preview dialing: start a session, get records, end it",
    (
        "Preview dialing on a campaign: each ACTION in turn, one at a time, on one GWS "
        "session: 'start' (StartPreviewSession), 'get' (GetPreviewRecord: OCS hands out the "
        "next record, printed with its handle, list, chain and phone number, or 'empty' when "
        "none is left, which is not a failure) and 'end' (EndPreviewSession). Work on the "
        "records with 'complete', 'reschedule', ... between 'start get' and 'end' (see "
        "the examples). Whether OCS keeps a preview session between runs "
        "(between GWS HTTP sessions) is UNCONFIRMED (the simulator keeps it per agent and "
        "campaign); 'start get ... end' in one run does not depend on it. Exit status as for "
        "'cancel': 0 every action acknowledged."
    ),
    ("application_id", "campaign_name", "device_path"),
    ("application_id", "campaign_name"),
    GetPreviewRecordRequest.from_bus,
    what="actions",
    examples=(
        f"{PROG} preview start get get {_OPTS1}",
        f"{PROG} complete --record-handle 11 {_LIST1} --call-result Answer",
        f"{PROG} preview end {_OPTS1}",
    ),
)

_REQUEST = _Command(
    "request",
    "send any outbound operation given as raw JSON with its operationName",
    (
        "Send any GWS outbound operation: each request is a JSON object in GWS camelCase "
        "keys with its operationName (CancelRecord, RejectRecord, CompleteRecord, "
        "DoNotCallRecord, RescheduleRecord, UpdateRecord, GetChainedRecord, AddRecord, "
        "StartPreviewSession, GetPreviewRecord, EndPreviewSession), given as arguments or "
        "as JSON lines on stdin with --stdin (see the examples). devicePath defaults to "
        "the agent's own device (the first one GWS lists for the agent). "
        "Requests are sent concurrently unless --sequential. Output, progress, exit status "
        "and plugins as for 'cancel'."
    ),
    ("device_path",),
    (),
    _build_request,
    what="requests",
    examples=(
        f"{PROG} request "
        + '\'{"operationName": "RejectRecord", "recordHandle": 12, '
        + _L1
        + "}'",
        _piped(
            '{"operationName": "GetChainedRecord", "recordHandle": 11, ' + _C1 + "}",
            "request --stdin",
        ),
    ),
)

_OPERATION_COMMANDS: Final = {command.name: command for command in (*_COMMANDS, _PREVIEW, _REQUEST)}


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
        description=textwrap.fill(command.description, _HELP_WIDTH),
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
        description=(
            "Work on Genesys outbound records through Genesys Web Services (GWS) and watch "
            "each outcome (cancel, reject, complete, do-not-call, reschedule, update, chained "
            "records, add a record, preview dialing, any operation as JSON), run the embedded "
            "GWS simulator, list the installed plugins, write a new plugin project and tail "
            "live events."
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
    _add_plugin_option(plugins)
    _add_logging_options(plugins, suppress=True)

    new_plugin = commands.add_parser(
        "new-plugin",
        help="write a new plugin project: package, entry point, one hook, a passing test",
        description=(
            "Write a new plugin project into DIRECTORY/gws-outbound-NAME: pyproject.toml with "
            "its gws_outbound entry point (NAME), src/gws_outbound_NAME/__init__.py with one "
            "hook (on_operation_acknowledged), and tests/ that pass on the testing kit "
            "(gws_outbound_plugin.testing). Then: cd gws-outbound-NAME && pip install -e "
            "'.[test]' && pytest. docs/writing-a-plugin.md explains every part."
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
        help="where to create the project's folder (default: the current directory)",
    )
    _add_logging_options(new_plugin, suppress=True)

    tail = commands.add_parser(
        "tail",
        help="print live outbound events and user events until Ctrl-C",
        description=(
            "Connect to the configured GWS as the agent and print, as they arrive, every user "
            "event (on_user_event), acknowledged or failed cancel "
            "(on_record_cancel_acknowledged, on_cancel_failed), acknowledged or failed other "
            "operation (on_operation_acknowledged, on_operation_failed), and what OCS says "
            "unprompted: a record cancelled by someone else (on_record_cancelled), a callback "
            "due (on_scheduled_call), a pushed preview record (on_preview_record), a campaign "
            "status (on_campaign_status); until Ctrl-C or SIGTERM. How a real GWS relays "
            "OCS's unprompted events is UNCONFIRMED. Plugins are loaded only when asked "
            "(--plugins: the installed ones; --plugin: one module or file), and then see "
            "every event too: the way to watch a plugin's unsolicited hooks at work."
        ),
        epilog=_ENVIRONMENT_HELP,
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
        self.prog = PROG
        """``gws-outbound <command>``: the prefix of every diagnostic line (as argparse's)."""

    def out(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, text: str) -> None:
        """One diagnostic line: ``gws-outbound <command>: error: <text>``."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.err(f"{self.prog}: error: {text}")

    def note(self, text: str) -> None:
        """One informative line on stderr: ``gws-outbound <command>: <text>``."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.err(f"{self.prog}: {text}")


def _given(args: argparse.Namespace, field: str) -> Any:
    value = getattr(args, field, None)
    return None if value == [] else value


def _option_event(command: _Command, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the options give (all but the record handles), in GWS camelCase keys."""
    event: dict[str, Any] = {}
    for field in command.fields:
        value = _given(args, field)
        if field != "record_handle" and value is not None:
            kind = REQUEST_FIELDS[field].kind
            event[REQUEST_FIELDS[field].bus_key] = kind.to_bus(kind.normalize(value))
    return event


def _options_of(key: str) -> str:
    """The option(s) of an error's field key (``campaignName``, ``from/until``...)."""
    return "/".join(_OPTION_OF_BUS_KEY.get(part, part) for part in key.split("/"))


#: Field names that a validation message may mention in its text (``must not be before
#: from``): said as their options instead, for requests given as options.
_FIELD_WORDS: Final = re.compile(
    r"(?<![\w-])("
    + "|".join(re.escape(key) for key in sorted(_OPTION_OF_BUS_KEY, key=len, reverse=True))
    + r")(?= \(|$|[;,.])"
)


def _problem_with_options(problem: str) -> str:
    """A validation message with the field names it mentions (``from``) as the options
    (``--from``): only a field name followed by its value in parentheses or ending the
    message counts, so ordinary words are left alone."""
    return _FIELD_WORDS.sub(lambda match: _OPTION_OF_BUS_KEY[match[1]], problem)


def _label(operation: str | None) -> str:
    return "cancel" if operation == "CancelRecord" else (operation or "operation")


def _missing(command: _Command, args: argparse.Namespace) -> list[str]:
    missing = [
        REQUEST_FIELDS[field].flags[0] for field in command.required if _given(args, field) is None
    ]
    if command.name == "do-not-call":
        if _given(args, "record_handle") is not None:
            if _given(args, "calling_list") is None:
                missing.append("--calling-list")
        elif _given(args, "phone_number") is None:
            missing.append("--record-handle or --phone")
    return missing


def _build(
    build: Callable[[Mapping[str, Any]], OperationRequest], event: dict[str, Any]
) -> OperationRequest:
    """A request from the options, validated before any network: a usage error if not."""
    event.setdefault("devicePath", _PLACEHOLDER_DEVICE)
    try:
        return build(event)
    except InvalidOperationRequest as error:
        problems = "; ".join(
            f"{_options_of(key)} {_problem_with_options(problem)}"
            for key, problem in error.errors.items()
        )
        raise _UsageError(f"invalid {_label(error.operation)} request: {problems}") from None


def _check_arguments(command: _Command, args: argparse.Namespace) -> list[OperationRequest]:
    """The requests of the options (none with --stdin), validated before any network."""
    if command is _REQUEST:
        return _requests_of_json(args)
    handles: list[int] = _given(args, "record_handle") or []
    stdin = getattr(args, "stdin", False)
    if stdin:
        if handles:
            raise _UsageError("give the records either as --record-handle or with --stdin")
        if _given(args, "reference_id") is not None:
            raise _UsageError("--reference-id is for a single record (each request needs its own)")
        return []
    missing = _missing(command, args)
    if missing:
        hint = "" if command is _PREVIEW else " (or give the records as JSON lines with --stdin)"
        raise _UsageError("the following arguments are required: " + ", ".join(missing) + hint)
    if _given(args, "reference_id") is not None and len(handles) > 1:
        raise _UsageError("--reference-id is for a single record (each request needs its own)")
    defaults = _option_event(command, args)
    if command is _PREVIEW:
        return [_build(_PREVIEW_ACTIONS[action], dict(defaults)) for action in args.actions]
    if "record_handle" not in command.fields or (command.name == "do-not-call" and not handles):
        return [_build(command.build, dict(defaults))]
    return [_build(command.build, {**defaults, "recordHandle": handle}) for handle in handles]


def _requests_of_json(args: argparse.Namespace) -> list[OperationRequest]:
    texts: list[str] = args.requests
    if args.stdin == bool(texts):
        raise _UsageError(
            "give the requests either as JSON arguments or as JSON lines with --stdin"
            if texts
            else "give the requests as JSON arguments, or as JSON lines with --stdin"
        )
    defaults = _option_event(_REQUEST, args)
    requests = []
    for number, text in enumerate(texts, 1):
        try:
            event = json.loads(text)
        except ValueError as error:
            raise _UsageError(f"request {number} is not valid JSON: {error}") from None
        if not isinstance(event, dict):
            raise _UsageError(f"request {number} must be a JSON object of GWS camelCase keys")
        event = {**defaults, **event}
        event.setdefault("devicePath", _PLACEHOLDER_DEVICE)
        try:
            requests.append(request_from_bus(event))
        except InvalidOperationRequest as error:
            raise _UsageError(f"request {number}: {error}") from None
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


class _OperationRun:
    """Submits the requests, prints each outcome as it arrives, and on Ctrl-C the outcome of
    each unfinished one."""

    def __init__(
        self,
        args: argparse.Namespace,
        ctx: _Context,
        plugin: OutboundPlugin,
        command: _Command,
    ) -> None:
        self._args = args
        self._ctx = ctx
        self._plugin = plugin
        self._command = command
        self._device: str | None = _given(args, "device_path")
        self._pending: dict[int, OperationTicket] = {}
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

    def report(self, ticket: OperationTicket, *, interrupted: bool = False) -> None:
        outcome = ticket.outcome
        self._pending.pop(id(ticket), None)
        as_json = self._args.json
        extra = {"interrupted": True} if interrupted else {}
        suffix = " (interrupted)" if interrupted else ""
        if isinstance(outcome, RecordCancelAck):
            self.progress.acknowledged += 1
            line = (
                hook_line("on_record_cancel_acknowledged", outcome)
                if as_json
                else describe_ack(outcome)
            )
        elif isinstance(outcome, OperationAck):
            self.progress.acknowledged += 1
            line = (
                hook_line("on_operation_acknowledged", outcome)
                if as_json
                else describe_operation_ack(outcome)
            )
        elif isinstance(outcome, CancelFailure):
            self.progress.failed += 1
            line = (
                hook_line("on_cancel_failed", outcome, **extra)
                if as_json
                else _failure_line(outcome) + suffix
            )
        elif isinstance(outcome, OperationFailure):
            self.progress.failed += 1
            line = (
                hook_line("on_operation_failed", outcome, **extra)
                if as_json
                else describe_operation_failure(outcome) + suffix
            )
        else:
            return
        self._print(line)

    def invalid_line(self, number: int, problem: str, fields: Sequence[str]) -> None:
        self.invalid += 1
        if self._args.json:
            self._print(json.dumps({"error": problem, "fields": list(fields), "line": number}))
        else:
            self._print(f"invalid        line={number} {problem}")

    async def submit(self, tg: TaskGroup, request: OperationRequest, *, wait: bool) -> None:
        """Send ``request``; with ``wait``, return once its outcome is printed."""
        if request.device_path == _PLACEHOLDER_DEVICE:
            request = dataclasses.replace(request, device_path=await self.device_path())
        ticket: OperationTicket = self._plugin.submit(request)
        self._pending[id(ticket)] = ticket
        self.progress.submitted += 1
        if wait:
            await self._await(ticket)
        else:
            tg.start_soon(self._await, ticket)

    async def _await(self, ticket: OperationTicket) -> None:
        with contextlib.suppress(Exception):
            await ticket
        self.report(ticket)

    async def from_stdin(self, tg: TaskGroup, *, wait: bool) -> None:
        defaults = _option_event(self._command, self._args)
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
                request = self._command.build(merged)
            except InvalidOperationRequest as error:
                self.invalid_line(number, str(error), error.fields)
                continue
            await self.submit(tg, request, wait=wait)

    def unfinished(self) -> list[OperationTicket]:
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


async def _run_operations(
    command: _Command,
    requests: list[OperationRequest],
    args: argparse.Namespace,
    ctx: _Context,
    config: GWSConfig,
) -> int:
    # One at a time where the order matters: preview actions, and `request --sequential`.
    wait = command is _PREVIEW or bool(getattr(args, "sequential", False))
    # Installed plugins that fail to load are logged by name and skipped.
    pm = make_plugin_manager(load_entrypoints=not args.no_plugins, environ=ctx.environ)
    _report_load_failures(pm, ctx)
    _load_one_off_plugins(pm, args.one_off_plugins)
    run: _OperationRun | None = None
    try:
        async with OutboundPlugin(pm, config) as plugin:
            run = _OperationRun(args, ctx, plugin, command)
            async with anyio.create_task_group() as outer:
                outer.start_soon(_on_signal, run, outer.cancel_scope)
                outer.start_soon(run.progress.run)
                async with anyio.create_task_group() as tg:
                    for request in requests:
                        await run.submit(tg, request, wait=wait)
                    if getattr(args, "stdin", False):
                        if _isatty(ctx.stdin):
                            ctx.note(
                                f"reading the {command.what} as JSON lines from the terminal, "
                                "one per line; end with Ctrl-D (Ctrl-C stops)"
                            )
                        await run.from_stdin(tg, wait=wait)
                outer.cancel_scope.cancel()  # every outcome is in
            if run.interrupted:
                # Fail what is still pending (reason shut_down) without waiting, and say so.
                await plugin.aclose(drain=False)
                for ticket in run.unfinished():
                    run.report(ticket, interrupted=True)
            elif args.end_session:
                await _end_gws_session(plugin)
    except GWSOutboundError as error:
        ctx.error(_start_error(error))
        return EXIT_FAILED
    finally:
        if run is not None:
            run.progress.clear()
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
    if run is not None and run.interrupted:
        ctx.note(
            f"interrupted: the {command.what} still waiting were reported above (outcome "
            "unknown: sent, GWS may have acted; shut_down: never sent)"
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if run is not None and run.ok else EXIT_FAILED


def _import_plugin(spec: str) -> tuple[str, object]:
    """What a ``--plugin`` names: a ``.py`` file (by path) or an importable module, or, with
    ``:ATTR`` as in an entry point, that attribute of it (``package:plugin``)."""
    where, colon, attribute = spec.rpartition(":")
    if colon and attribute.isidentifier() and where and not where.endswith(("\\", "/")):
        name, module = _import_module_or_file(where)
        if not hasattr(module, attribute):
            raise _UsageError(f"--plugin {spec}: {where} has no attribute {attribute!r}")
        return name, getattr(module, attribute)
    return _import_module_or_file(spec)


def _import_module_or_file(spec: str) -> tuple[str, ModuleType]:
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec or path.is_file():
        if not path.is_file():
            raise _UsageError(f"--plugin {spec}: no such file")
        name = path.stem
        found = importlib.util.spec_from_file_location(name, path)
        if found is None or found.loader is None:
            raise _UsageError(f"--plugin {spec}: not a Python module")
        module = importlib.util.module_from_spec(found)
        sys.modules[name] = module  # dataclasses, pickling... look modules up by name
        try:
            found.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return name, module
    return spec, importlib.import_module(spec)


def _load_one_off_plugins(pm: Any, specs: Sequence[str]) -> None:
    """Register each ``--plugin``; any problem is a usage error (exit 2, nothing sent)."""
    for spec in specs:
        try:
            name, module = _import_plugin(spec)
            pm.register(module, name=name)
        except _UsageError:
            raise
        except pluggy.PluginValidationError as error:
            raise _UsageError(f"--plugin {spec}: {' '.join(str(error).split())}") from None
        except Exception as error:
            where = _plugin_error_location(error, spec)
            raise _UsageError(
                f"--plugin {spec}: cannot load it: {type(error).__name__}: "
                f"{' '.join(str(error).split())}{where}"
            ) from None


def _plugin_error_location(error: BaseException, spec: str) -> str:
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f" (at {error.filename}:{error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    own = {str(Path(__file__).resolve())}
    mine = [frame for frame in frames if str(Path(frame.filename).resolve()) not in own]
    if not mine or mine[-1].filename.startswith("<"):
        return ""
    return f" (at {mine[-1].filename}:{mine[-1].lineno})"


def _report_load_failures(pm: Any, ctx: _Context) -> None:
    """One line per installed plugin that failed to load (the run goes on without it)."""
    for failure in sorted(plugin_load_failures(pm), key=lambda failure: failure.name):
        where = f" at {failure.location}" if failure.location else ""
        error = " ".join(failure.error.split())
        ctx.note(f"warning: plugin {failure.name!r} not loaded: {error}{where}")


def _start_error(error: GWSOutboundError) -> str:
    """The one line for an error that stopped the run (GWS unreachable, credentials
    refused, ...): the exception's own text, which carries the detail (HTTP status, GWS
    ``statusCode``, the address) and never a secret."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


async def _on_signal(run: _OperationRun, scope: anyio.CancelScope) -> None:
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
    session = plugin._session  # the CLI is part of the package; no public method yet
    try:
        await session.end_contact_center_session()
    except GWSOutboundError as error:
        logger.warning("gws_end_session_failed", error=str(error))
    else:
        logger.info("gws_session_ended", user=plugin.config.username)


def _run_plugins(args: argparse.Namespace, ctx: _Context) -> int:
    pm = make_plugin_manager(environ=ctx.environ)
    _load_one_off_plugins(pm, args.one_off_plugins)
    infos = describe_plugins(pm)
    failures = sorted(plugin_load_failures(pm), key=lambda failure: failure.name)
    warned = any(info.warnings for info in infos)
    status = EXIT_FAILED if failures or (args.strict and warned) else EXIT_OK
    if args.json:
        entries: list[dict[str, Any]] = [
            {
                **dataclasses.asdict(info),
                "error": None,
                "location": None,
                **dict(zip(("configured", "setup_hint"), _configured(pm, info.name), strict=True)),
            }
            for info in infos
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
                "configured": None,
                "setup_hint": None,
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
        configured, hint = _configured(pm, info.name)
        if configured is False:
            ctx.out(f"    not configured (does nothing): {hint or 'see its documentation'}")
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
        ctx.error(
            f"{len(failures)} plugin(s) failed to load: "
            + ", ".join(failure.name for failure in failures)
        )
    elif args.strict and warned:
        ctx.error("warnings with --strict")
    return status


def _run_new_plugin(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        root = write_plugin(args.name, Path(args.directory), version=_version())
    except TemplateError as error:
        raise _UsageError(str(error)) from None
    ctx.out(f"wrote {root}")
    ctx.note(f"next: cd {root} && pip install -e '.[test]' && pytest")
    return EXIT_OK


def _configured(pm: Any, name: str) -> tuple[bool | None, str | None]:
    """Whether a plugin is configured, as it says through the optional ``enabled`` and
    ``setup_hint`` attributes (docs/writing-a-plugin.md); ``None``: it does not say."""
    plugin = pm.get_plugin(name)
    enabled = getattr(plugin, "enabled", None)
    if not isinstance(enabled, bool):
        return None, None
    hint = getattr(plugin, "setup_hint", None)
    return enabled, hint if isinstance(hint, str) else None


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
        self._print("on_cancel_failed", failure, lambda: _failure_line(failure))

    # A cancel's outcome also fires the on_operation_* hooks: printed once, above.

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        if ack.operation != "CancelRecord":
            self._print("on_operation_acknowledged", ack, lambda: describe_operation_ack(ack))

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        if failure.operation != "CancelRecord":
            self._print("on_operation_failed", failure, lambda: describe_operation_failure(failure))

    @hookimpl
    def on_record_cancelled(self, event: RecordCancelledEvent) -> None:
        self._print("on_record_cancelled", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_scheduled_call(self, event: ScheduledCallEvent) -> None:
        self._print("on_scheduled_call", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_preview_record(self, event: PreviewRecordEvent) -> None:
        self._print("on_preview_record", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_campaign_status(self, event: CampaignStatusEvent) -> None:
        self._print("on_campaign_status", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_connection_state_changed(self, state: str, previous: str) -> None:
        # Starting and closing are said on stderr; a loss and a return are events.
        if state == "reconnecting" or (state == "connected" and previous == "reconnecting"):
            change = {"state": state, "previous": previous}
            self._print("on_connection_state_changed", change, lambda: describe_connection(state))


async def _run_tail(args: argparse.Namespace, ctx: _Context, config: GWSConfig) -> int:
    pm = make_plugin_manager(load_entrypoints=args.plugins, environ=ctx.environ)
    _report_load_failures(pm, ctx)
    _load_one_off_plugins(pm, args.one_off_plugins)
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
    except GWSOutboundError as error:
        ctx.error(_start_error(error))
        return EXIT_FAILED
    finally:
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
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
        named = next((item for item in arguments if not item.startswith("-")), None)
        if named in _OPERATION_COMMANDS or named in ("tail", "plugins"):
            ctx.prog = f"{PROG} {named}"
        ctx.error(str(error))
        return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(arguments)
    ctx.prog = f"{PROG} {args.command}"
    configure_logging(args.log_level, json_logs=args.log_json)
    try:
        if args.command == "plugins":
            return _run_plugins(args, ctx)
        if args.command == "new-plugin":
            return _run_new_plugin(args, ctx)
        command = _OPERATION_COMMANDS.get(args.command)
        if command is not None:
            requests = _check_arguments(command, args)  # usage errors before the prompt
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            return anyio.run(
                _run_operations, command, requests, args, ctx, config, backend="asyncio"
            )
        if args.command == "tail":
            config = load_config(ctx.environ, stdin=ctx.stdin, base_url=args.base_url)
            return anyio.run(_run_tail, args, ctx, config, backend="asyncio")
    except _UsageError as error:
        ctx.error(str(error))
        return EXIT_USAGE
    except _Interrupted as error:
        ctx.note(str(error))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        ctx.note("interrupted")
        return EXIT_INTERRUPTED
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse prevents this


if __name__ == "__main__":
    sys.exit(main())
