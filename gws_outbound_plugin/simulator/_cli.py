"""``python -m gws_outbound_plugin.simulator``: run the GWS simulator from a shell.

The first stdout line is ``GWS simulator listening on <base_url>``; then come the users'
devices, the seeded records and campaigns, then one line per request, each starting with
an ISO 8601 UTC timestamp (unless ``--quiet``). A ``--host`` that is not a loopback address
gets a warning on stderr. SIGINT and SIGTERM stop it cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import inspect
import ipaddress
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ._faults import ARMABLE_FAULTS, Faults
from ._outbound import operation_summary
from ._recording import RecordedRequest
from ._records import (
    DEFAULT_RECORDS,
    PHONE_TYPES,
    CampaignState,
    OCSModel,
    SeedRecord,
    load_records,
)
from ._server import (
    DEFAULT_COMETD_SESSION_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_SESSION_IDLE_TIMEOUT,
    DEFAULT_USERS,
    GWSSimulator,
)

__all__ = ["main", "parse_fault_spec"]

_FAULTS = ARMABLE_FAULTS


def records_table(records: Sequence[SeedRecord]) -> str:
    """A plain-text table of records, as printed by ``--help`` and at start-up."""
    header = ("handle", "appId", "campaign", "callingList", "phone", "chain")
    rows = [
        (
            str(r.record_handle),
            str(r.application_id),
            r.campaign_name,
            r.calling_list,
            r.phone_number,
            str(r.chain_id),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def campaigns_table(campaigns: Iterable[CampaignState]) -> str:
    """A plain-text table of campaigns, as printed by ``--help`` and at start-up."""
    header = ("campaign", "appId", "callingLists", "group", "mode", "state")
    rows = [
        (
            c.name,
            str(c.application_id),
            ",".join(c.calling_lists),
            c.group_name,
            c.dialing_mode,
            c.state,
        )
        for c in campaigns
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    )


def operations_text() -> str:
    """Every operation with its parameters, as printed by ``--help``."""
    lines: list[str] = []
    current = ""
    for path, operation, required, optional in operation_summary():
        if path != current:
            lines.append(f"  {path}")
            current = path
        words = [*required, *(f"[{name}]" for name in optional)]
        line = f"    {operation:<20}"
        for word in words:
            if len(line) + 1 + len(word) > 86:
                lines.append(line)
                line = " " * 24
            line += " " + word
        lines.append(line.rstrip())
    lines.append(
        "  values: chainAttribute AllChain|RecordOnly; callbackType Personal|Campaign;\n"
        "  timestamp: seconds since the epoch; from/until: seconds after midnight;\n"
        "  phoneType: " + "|".join(PHONE_TYPES[:5]) + "|\n    " + "|".join(PHONE_TYPES[5:])
    )
    return "\n".join(lines)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_fault_spec(spec: str) -> tuple[str, dict[str, object]]:
    """Parse ``name[:key=value,key=value...]`` into the fault name and its arguments.

    Values become ``int``, ``float``, ``True``/``False``, ``None`` (``none``/``null``) or
    stay strings. ``drop_notifications:which=both,count=3`` gives
    ``("drop_notifications", {"which": "both", "count": 3})``.

    :raises ValueError: for an unknown fault name or a malformed argument.
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in _FAULTS:
        raise ValueError(f"unknown fault {name!r}; choose from {', '.join(_FAULTS)}")
    arguments: dict[str, object] = {}
    if rest.strip():
        for part in rest.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier():
                raise ValueError(f"fault argument {part!r} is not key=value")
            arguments[key] = _parse_value(value.strip())
    return name, arguments


def _without_password(argument: str) -> str:
    """``argument`` as an error may show it: what follows its first ``':'`` left out (in a
    ``NAME:PASSWORD`` given to a misspelt ``--user``, the password)."""
    before, sep, _ = argument.partition(":")
    return f"{before}:<not shown>" if sep else argument


def _user(text: str) -> tuple[str, str]:
    # The value is never echoed: what is wrong with it may be that it is (or holds) only
    # the password.
    name, sep, password = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD, got a value without ':'")
    if not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD, got an empty NAME before ':'")
    return name, password


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return value


def _check_fault_arguments(name: str, arguments: Mapping[str, object]) -> None:
    """A missing or unknown argument said with the fault's arguments and an example, rather
    than as Python's ``TypeError`` about a method call."""
    parameters = [
        p for p in inspect.signature(getattr(Faults, name)).parameters.values() if p.name != "self"
    ]
    known = {p.name for p in parameters}
    unknown = [key for key in arguments if key not in known]
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    missing = [key for key in required if key not in arguments]
    if not unknown and not missing:
        return
    if not parameters:
        raise ValueError(f"{name} takes no arguments (--fault {name})")
    problem = (
        f"{', '.join(map(repr, unknown))} {'is not one' if len(unknown) == 1 else 'are not'} "
        "of them"
        if unknown
        else f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required"
    )
    example = ",".join(f"{key}=1" for key in required)
    raise ValueError(
        f"its arguments are {_fault_usage(name)}: {problem}"
        + (f" (e.g. --fault {name}:{example})" if example else "")
    )


def _fault_usage(name: str) -> str:
    parameters = inspect.signature(getattr(Faults, name)).parameters.values()
    shown = [
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in parameters
        if p.name != "self"
    ]
    return f"{name}({', '.join(shown)})"


def build_parser(prog: str = "python -m gws_outbound_plugin.simulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run the embedded Genesys Web Services (GWS v2) simulator: every outbound record\n"
            "and preview operation against a small OCS model, CometD long-polling at\n"
            "/api/v2/notifications, unsolicited OCS events, a controllable clock, faults."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_server_options(parser)
    _add_behaviour_options(parser)
    return parser


#: The end of ``--help``: the admin endpoints and OCS's rules in short.
_HELP_END = (
    "other admin endpoints (loopback clients only):\n"
    "  POST /_simulator/rotate-csrf       give every session a new CSRF token\n"
    '  POST /_simulator/users             {"user": NAME, "password": NEW} changes a '
    "password\n"
    "  POST /_simulator/expire-sessions   expire every GWS session\n"
    "  POST /_simulator/forget-clients    forget every CometD client\n"
    '  POST /_simulator/forbidden-channels {"channels": ["/me/internal"]} refuses those\n'
    "                                     subscriptions ([] allows all again)\n"
    '  POST /_simulator/clock             {"advance": SECONDS} or {"set": ISO-8601}; due\n'
    "                                     rescheduled records come as ScheduledCall\n"
    "  GET  /_simulator/clock             the simulated time\n"
    '  POST /_simulator/events            {"event": "RecordCancel", "recordHandle": N}\n'
    '                                     {"event": "PreviewRecord", "campaignName": C}\n'
    '                                     {"event": "CampaignStarted", "campaignName": C}\n'
    "                                     (also CampaignLoaded, CampaignStopped,\n"
    '                                     CampaignUnloaded, CampaignModeChanged + "mode")\n'
    "  GET  /_simulator/stats             counters, record states and armed faults\n\n"
    "OCS in short: a completed, rejected, cancelled or do-not-call record cannot be\n"
    "cancelled, completed or rejected (OCS error user event); GetPreviewRecord needs a\n"
    "StartPreviewSession and answers GSW_ERROR 'No Records Available' when the campaign\n"
    "has no ready record; a rescheduled record comes back as a ScheduledCall user event\n"
    "when the simulator's clock reaches its timestamp."
)


def _epilog() -> str:
    """The ``--help`` text after the options: records, campaigns, operations, faults."""
    example_user = next(iter(DEFAULT_USERS))
    example_device = GWSSimulator(DEFAULT_USERS).device_path(example_user)
    campaigns = OCSModel(DEFAULT_RECORDS).campaign_view.values()
    return (
        "seeded OCS records (the default; --records FILE replaces them):\n"
        f"{records_table(DEFAULT_RECORDS)}\n\n"
        "campaigns (made from the records' campaign names; preview records are handed out\n"
        "list by list, lowest handle first):\n"
        f"{campaigns_table(campaigns)}\n\n"
        f"The default user {example_user} has devicePath {example_device}\n"
        "(device ids are uuid5 of the user name, so they never change).\n\n"
        "operations (POST, JSON body with operationName, applicationId, devicePath and an\n"
        "optional referenceId, plus these; [optional] ones in brackets):\n"
        f"{operations_text()}\n"
        'Each is answered {"statusCode": 0} at once, then its acknowledgement comes on the\n'
        "CometD channel /v2/me/outbound and OCS's user event on /me/internal. Example:\n"
        "  POST /api/v2/me/outbound-records/11\n"
        '  {"operationName": "CancelRecord", "applicationId": 134, "campaignName": '
        '"Campaign1",\n   "callingList": "CallingList1", "chainAttribute": "RecordOnly", '
        f'"referenceId": "r-1",\n   "devicePath": "{example_device}"}}\n'
        "after a GET /api/v2/me with Basic auth (keep the JSESSIONID cookie and send its\n"
        "X-CSRF-TOKEN header back).\n\n"
        "faults (--fault NAME[:key=value,...]; also POST /_simulator/faults); operation=NAME\n"
        "(one of the operations above) limits a fault to that operation:\n  "
        + "\n  ".join(_fault_usage(name) for name in _FAULTS)
        + "\n\nexample: --fault drop_notifications:which=both,count=3 "
        "--fault status_code:code=4\n"
        "         --fault http_error:status=503,gws_body=false "
        "--fault ocs_error:operation=RejectRecord\n"
        "         --fault 'cometd_error:code=50,message=Record locked' "
        "--fault hold_connects:seconds=60,count=none\n\n" + _HELP_END
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    """Where the simulator listens, who may log in, and its records."""
    default_users = ", ".join(f"{name}:{password}" for name, password in DEFAULT_USERS.items())
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}); anything but loopback exposes the "
        "simulator and its test passwords to the network (a warning is printed)",
    )
    parser.add_argument(
        "--port", type=_port, default=8090, help="TCP port, 0 picks a free one (default: 8090)"
    )
    parser.add_argument(
        "--user",
        action="append",
        type=_user,
        metavar="NAME:PASSWORD",
        help=f"a user accepted by Basic auth; repeatable (default: {default_users})",
    )
    parser.add_argument(
        "--no-csrf", action="store_true", help="turn GWS CSRF protection off (default: on)"
    )
    parser.add_argument(
        "--records",
        type=Path,
        metavar="FILE",
        help="JSON list of records (keys recordHandle, applicationId, "
        "campaignName, callingList, phoneNumber, chainId; optional timeZone, phoneType, "
        "from, until, otherFields) replacing the seeded ones",
    )


def _add_behaviour_options(parser: argparse.ArgumentParser) -> None:
    """Timeouts, forbidden channels, faults and output."""
    parser.add_argument(
        "--session-timeout",
        type=_positive,
        default=DEFAULT_SESSION_IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"GWS HTTP session idle timeout (default: {DEFAULT_SESSION_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"longest hold of a Bayeux /meta/connect (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--cometd-session-timeout",
        type=_positive,
        default=DEFAULT_COMETD_SESSION_TIMEOUT,
        metavar="SECONDS",
        help="forget a CometD client that has not polled for this long "
        f"(default: {DEFAULT_COMETD_SESSION_TIMEOUT:g})",
    )
    parser.add_argument(
        "--forbid-channel",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="refuse CometD subscriptions to CHANNEL with 403::Forbidden channel, as a GWS "
        "might for /me/internal; repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="arm a fault at start, e.g. delay_notifications:seconds=2,count=5; repeatable",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the first line (no listing, no request log)",
    )


def _request_line(record: RecordedRequest, when: datetime | None = None) -> str:
    """``<ISO 8601 UTC time> METHOD PATH STATUS DURATION [user=...] [channels]``."""
    stamp = (when or datetime.now(UTC)).isoformat(timespec="milliseconds")
    status = str(record.status) if record.status else "reset"
    parts = [stamp, record.method, record.path, status, f"{record.duration_ms:.1f}ms"]
    if record.username:
        parts.append(f"user={record.username}")
    if record.bayeux_channels:
        parts.append(",".join(record.bayeux_channels))
    return " ".join(parts)


def _emit(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


async def _serve(args: argparse.Namespace, records: Sequence[SeedRecord] | None, prog: str) -> int:
    out = sys.stdout
    users = dict(args.user) if args.user else dict(DEFAULT_USERS)

    def log_request(record: RecordedRequest) -> None:
        _emit(out, _request_line(record))

    simulator = GWSSimulator(
        users,
        csrf=not args.no_csrf,
        host=args.host,
        port=args.port,
        records=records,
        session_idle_timeout=args.session_timeout,
        connect_timeout=args.connect_timeout,
        cometd_session_timeout=args.cometd_session_timeout,
        request_log=None if args.quiet else log_request,
        forbidden_channels=args.forbid_channel,
    )
    for spec in args.fault:
        name, arguments = parse_fault_spec(spec)
        getattr(simulator.faults, name)(**arguments)
    if not is_loopback(args.host):
        _emit(
            sys.stderr,
            f"warning: --host {args.host} is not a loopback address: anyone who can reach this "
            "machine can use the simulator and its test users and passwords (plain HTTP); "
            "its /_simulator/ admin endpoints still answer loopback clients only",
        )
    try:
        await simulator.start()
    except OSError as exc:
        hint = (
            " (a simulator may already run there: pick another --port, or --port 0 for a free one)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        _emit(sys.stderr, f"{prog}: error: cannot listen on {args.host}:{args.port}: {exc}{hint}")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        _emit(out, f"GWS simulator listening on {simulator.base_url}")
        if not args.quiet:
            _print_listing(out, simulator, csrf=not args.no_csrf)
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await simulator.stop()
    if not args.quiet:
        _emit(out, "GWS simulator stopped")
    return 0


def _print_listing(out: TextIO, simulator: GWSSimulator, *, csrf: bool) -> None:
    """What the simulator serves: endpoints, users and devices, records, campaigns, faults."""
    _emit(out, f"CometD endpoint: {simulator.cometd_url} (long-polling)")
    _emit(out, f"CSRF protection: {'on' if csrf else 'off'}")
    _emit(out, "users and devices:")
    for name in simulator.users:
        _emit(
            out,
            f"  {name}  devicePath={simulator.device_path(name)}  "
            f"phoneNumber={simulator.phone_number(name)}",
        )
    _emit(out, "records:")
    _emit(out, records_table(list(r.record for r in simulator.records.values())))
    _emit(out, "campaigns:")
    _emit(out, campaigns_table(simulator.campaigns.values()))
    for channel in sorted(simulator.forbidden_channels):
        _emit(out, f"forbidden CometD channel: {channel}")
    for line in simulator.faults.active:
        _emit(out, f"fault armed: {line}")


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM; return the exit status.

    ``prog`` names the command in ``--help`` (``gws-outbound simulate`` passes its own).
    """
    parser = build_parser(prog) if prog else build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse's own message would echo them, a misspelt --user's password too
        parser.error("unrecognized arguments: " + " ".join(_without_password(a) for a in unknown))
    records: tuple[SeedRecord, ...] | None = None
    if args.records is not None:
        try:
            records = load_records(args.records)
        except (OSError, ValueError) as exc:
            parser.error(f"--records: {exc}")
    for spec in args.fault:
        try:
            name, arguments = parse_fault_spec(spec)
            _check_fault_arguments(name, arguments)
            # Check the arguments against a throw-away control set before starting.
            getattr(Faults(), name)(**arguments)
        except (TypeError, ValueError) as exc:
            parser.error(f"--fault {spec!r}: {exc}")
    try:
        GWSSimulator(forbidden_channels=args.forbid_channel)
    except ValueError as exc:
        parser.error(f"--forbid-channel: {exc}")
    try:
        return asyncio.run(_serve(args, records, parser.prog))
    except KeyboardInterrupt:
        return 0
