"""Example host: an agent desktop's message bus with the GWS outbound plugin loaded.

    python examples/host.py            # cancel a few sample records, show each hook as it fires
    python examples/host.py --stdin    # bus events as JSON lines in, one JSON line per hook out

It runs on the embedded GWS simulator unless GWS_BASE_URL, GWS_USERNAME and GWS_PASSWORD point
at a real GWS node. Plugins announced under the ``gws_outbound`` entry-point group (the
reference plugins in hooks/ once installed) are loaded; ``--plugin module`` adds more.
Logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import structlog

from gws_outbound_plugin import (
    CancelFailed,
    CancelFailure,
    CancelRequest,
    CancelTicket,
    ChainAttribute,
    GWSConfig,
    InvalidCancelRequest,
    OutboundPlugin,
    RecordCancelAck,
    UserEvent,
    close_plugins,
    hookimpl,
    make_plugin_manager,
    to_jsonable,
)

SIMULATOR_USER = ("agent1", "secret")


class MessageBus:
    """A minimal in-process publish/subscribe bus, as an agent desktop has."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        self._subscribers[topic].append(handler)

    def publish(self, topic: str, payload: Any) -> None:
        for handler in self._subscribers[topic]:
            handler(payload)


class ReadablePrinter:
    """Shows each hook as it fires, for people watching the demo."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        chain = request.chain_attribute.value if request.chain_attribute else "default chain"
        self._write(
            f"-> on_cancel_requested          record {request.record_handle} "
            f"({request.campaign_name}/{request.calling_list}, {chain}) "
            f"ref {request.reference_id}"
        )

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        handle = event.user_data.get("GSW_RECORD_HANDLE")
        error = f" GSW_ERROR={event.user_data['GSW_ERROR']!r}" if event.is_error else ""
        self._write(
            f"<- on_user_event                {event.user_event} record {handle} "
            f"device {event.device_id}{error}"
        )

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        ours = "ours" if ack.request is not None else "another client's"
        self._write(
            f"<- on_record_cancel_acknowledged record {ack.record_handle} "
            f"({ack.campaign_name}/{ack.calling_list}) ref {ack.reference_id} [{ours}]"
        )

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._write(
            f"<- on_cancel_failed             record {failure.request.record_handle} "
            f"reason {failure.reason.value}: {failure.message}"
        )


class JsonLinePrinter:
    """Writes one JSON line per hook call (``--stdin`` mode)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def _emit(self, hook: str, payload: Any) -> None:
        line = {"hook": hook, **to_jsonable(payload)}
        self._write(json.dumps(line, sort_keys=False, default=str))

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        self._emit("on_cancel_requested", request)

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._emit("on_user_event", event)

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._emit("on_record_cancel_acknowledged", ack)

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._emit("on_cancel_failed", failure)


def configure_logging(verbose: bool) -> None:
    """The host (not the library) decides where logs go: stderr, human-readable."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s %(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


@contextlib.asynccontextmanager
async def gws_connection(use_simulator: bool) -> AsyncIterator[GWSConfig]:
    """The GWS to talk to: the embedded simulator, or the one in the environment."""
    if not use_simulator:
        yield GWSConfig.from_env()
        return
    from gws_outbound_plugin.simulator import GWSSimulator

    user, password = SIMULATOR_USER
    async with GWSSimulator(users={user: password}) as sim:
        print(f"embedded GWS simulator on {sim.base_url}", file=sys.stderr)
        yield GWSConfig(base_url=sim.base_url, username=user, password=password, ack_timeout=5.0)


def sample_requests(device_path: str) -> list[CancelRequest]:
    def request(handle: int, **extra: Any) -> CancelRequest:
        return CancelRequest(
            record_handle=handle,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            device_path=device_path,
            **extra,
        )

    return [
        request(11, chain_attribute=ChainAttribute.RECORD_ONLY),
        request(14, phone_number="3004", chain_attribute=ChainAttribute.ALL_CHAIN),
        # Cancelled a moment ago: OCS refuses to cancel it twice.
        request(11, chain_attribute=ChainAttribute.RECORD_ONLY),
        # No such record in the calling list: OCS answers with an error.
        request(999, chain_attribute=ChainAttribute.RECORD_ONLY),
    ]


async def run_demo(plugin: OutboundPlugin, bus: MessageBus) -> int:
    device_path = await plugin.device_path()
    print(f"agent device {device_path}\n", file=sys.stderr)
    tickets: list[CancelTicket] = []
    bus.subscribe("cancel-ticket", tickets.append)
    for request in sample_requests(device_path):
        bus.publish("outbound.cancel", request)
        # One at a time, so the output reads as a story; hosts need not wait.
        with contextlib.suppress(CancelFailed):
            await tickets[-1]
    acked = sum(isinstance(t.outcome, RecordCancelAck) for t in tickets)
    print(f"\n{acked} acknowledged, {len(tickets) - acked} failed", file=sys.stderr)
    return 0


async def run_stdin(plugin: OutboundPlugin, bus: MessageBus, write: Callable[[str], None]) -> int:
    tickets: list[CancelTicket] = []
    bus.subscribe("cancel-ticket", tickets.append)
    stdin = anyio.wrap_file(sys.stdin)
    async for line in stdin:
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except ValueError as error:
            write(json.dumps({"error": f"invalid JSON: {error}", "fields": []}))
            continue
        try:
            request = CancelRequest.from_bus(event)
        except InvalidCancelRequest as error:
            write(
                json.dumps(
                    {"error": str(error), "fields": list(error.fields), "errors": error.errors}
                )
            )
            continue
        bus.publish("outbound.cancel", request)
    for ticket in tickets:
        with contextlib.suppress(CancelFailed):
            await ticket
    return 0


def load_extra_plugins(pm: Any, modules: list[str]) -> None:
    for name in modules:
        pm.register(importlib.import_module(name), name=name)


@contextlib.asynccontextmanager
async def demo_receivers(enabled: bool) -> AsyncIterator[list[Any]]:
    """For the demo: an audit file and a local webhook receiver for the reference plugins.

    The plugins read their settings from the environment when they are loaded, so this runs
    before the plugin manager is made; settings the user gave are left alone.
    """
    received: list[Any] = []
    if not enabled:
        yield received
        return
    from aiohttp import web

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("GWS_OUTBOUND_AUDIT_FILE", str(Path(folder) / "audit.jsonl"))
        os.environ.setdefault("GWS_OUTBOUND_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
        try:
            yield received
        finally:
            await runner.cleanup()


def report_demo_receivers(received: list[Any]) -> None:
    audit = os.environ.get("GWS_OUTBOUND_AUDIT_FILE")
    if audit and Path(audit).exists():
        lines = Path(audit).read_text().splitlines()
        print(f"\naudit plugin wrote {len(lines)} JSON lines to {audit}, e.g.:", file=sys.stderr)
        for line in lines[:2]:
            print(f"  {line}", file=sys.stderr)
    if received:
        print(f"webhook plugin delivered {len(received)} acknowledgement(s)", file=sys.stderr)


async def main_async(args: argparse.Namespace) -> int:
    use_simulator = not os.environ.get("GWS_BASE_URL")

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    demo = use_simulator and not args.stdin and not args.no_entrypoints
    async with demo_receivers(demo) as received:
        pm = make_plugin_manager(load_entrypoints=not args.no_entrypoints)
        load_extra_plugins(pm, args.plugin)
        printer = JsonLinePrinter(write) if args.stdin else ReadablePrinter(write)
        pm.register(printer, name="printer")
        bus = MessageBus()

        def on_cancel(request: CancelRequest) -> None:
            # The bridge from the bus to pluggy: the core's ticket is among the results.
            for result in pm.hook.on_cancel_requested(request=request):
                if isinstance(result, CancelTicket):
                    bus.publish("cancel-ticket", result)

        bus.subscribe("outbound.cancel", on_cancel)
        try:
            async with (
                gws_connection(use_simulator) as config,
                OutboundPlugin(pm, config) as plugin,
            ):
                if args.stdin:
                    code = await run_stdin(plugin, bus, write)
                else:
                    code = await run_demo(plugin, bus)
        finally:
            # Plugins holding resources (queues, files) offer `async def aclose()`.
            await close_plugins(pm)
        if demo:
            report_demo_receivers(received)
    return code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read bus events as JSON lines from stdin; write one JSON line per hook call",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="also register this importable module as a plugin (repeatable)",
    )
    parser.add_argument(
        "--no-entrypoints",
        action="store_true",
        help="do not load plugins from the gws_outbound entry-point group",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        return anyio.run(main_async, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
