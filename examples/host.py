"""Example host: an agent desktop's message bus with the GWS outbound plugin loaded.

    python examples/host.py            # a preview-dialing session, each hook shown as it fires
    python examples/host.py --stdin    # bus events as JSON lines in, one JSON line per hook out

It runs on the embedded GWS simulator unless GWS_BASE_URL, GWS_USERNAME and GWS_PASSWORD point
at a real GWS node. Plugins announced under the ``gws_outbound`` entry-point group (the
reference plugins in hooks/ once installed) are loaded; ``--plugin MODULE_OR_FILE`` adds a
one-off plugin for this run (a module on the path, or a .py file, or ``package:plugin`` as in
an entry point).
Logs go to stderr.

The session: start preview dialing on a campaign, get records one by one and complete one
(with a call result), reschedule one (a personal callback in two hours), reject one, mark one
do-not-call and cancel one, try three cancels OCS refuses, end the session. On the simulator,
OCS's clock also moves two hours on right after the reschedule, so the callback comes back
(``on_scheduled_call``), and at the end a supervisor stops the campaign
(``on_campaign_status``).

``--stdin`` reads one request per line: ``{"operationName": "CompleteRecord", ...}`` with GWS
camelCase keys (a line without ``operationName`` is a cancel, as in earlier versions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from gws_outbound_plugin import (
    CallbackType,
    CampaignStatusEvent,
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    CompleteRecordRequest,
    ConfigError,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    GetPreviewRecordRequest,
    GWSConfig,
    GWSOutboundError,
    InvalidOperationRequest,
    OperationAck,
    OperationFailed,
    OperationFailure,
    OperationRequest,
    OperationTicket,
    OutboundPlugin,
    PreviewRecordEvent,
    RecordCancelAck,
    RecordCancelledEvent,
    RejectRecordRequest,
    RescheduleRecordRequest,
    ScheduledCallEvent,
    StartPreviewSessionRequest,
    UserEvent,
    close_plugins,
    hookimpl,
    make_plugin_manager,
    request_from_bus,
    to_jsonable,
)

if TYPE_CHECKING:
    from gws_outbound_plugin.simulator import GWSSimulator

SIMULATOR_USER = ("agent1", "secret")
#: The sample campaign (the values of the GWS documentation pages, seeded in the simulator).
CAMPAIGN = "Campaign1"
APPLICATION_ID = 134
#: How far ahead the demo reschedules its callback.
CALLBACK_IN = datetime.timedelta(hours=2)
#: How long the demo waits for an unsolicited event it triggered on the simulator.
UNSOLICITED_TIMEOUT = 5.0


class MessageBus:
    """A minimal in-process publish/subscribe bus, as an agent desktop has."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        self._subscribers[topic].append(handler)

    def publish(self, topic: str, payload: Any) -> None:
        for handler in self._subscribers[topic]:
            handler(payload)


def _subject(request: Any) -> str:
    """What a request is about, for people: a record, a campaign or a phone number."""
    handle = getattr(request, "record_handle", None)
    if handle is not None:
        return f"record {handle}"
    campaign_operations = (
        StartPreviewSessionRequest,
        GetPreviewRecordRequest,
        EndPreviewSessionRequest,
    )
    if isinstance(request, campaign_operations):
        return f"campaign {request.campaign_name}"
    return f"phone {getattr(request, 'phone_number', '?')} in {request.campaign_name}"


def _result(ack: OperationAck) -> str:
    """The interesting part of an acknowledgement, per operation."""
    if ack.operation == "GetPreviewRecord":
        if ack.empty:
            return "no record available"
        data = ack.record.get("userData", {})
        return (
            f"record {ack.record_handle} ({data.get('GSW_CAMPAIGN_NAME')}/"
            f"{data.get('GSW_CALLING_LIST')}, phone {data.get('GSW_PHONE')})"
        )
    if ack.operation in {"StartPreviewSession", "EndPreviewSession"}:
        name = ack.campaign.get("name") or getattr(ack.request, "campaign_name", "?")
        return f"campaign {name}"
    if ack.operation == "GetChainedRecord":
        return f"record {ack.record_handle}: {len(ack.records)} chained record(s)"
    return f"record {ack.record_handle}"


class ReadablePrinter:
    """Shows each hook as it fires, for people watching the demo."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def _line(self, arrow: str, hook: str, text: str) -> None:
        self._write(f"{arrow} {hook:<30} {text}")

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        chain = request.chain_attribute.value if request.chain_attribute else "default chain"
        self._line(
            "->",
            "on_cancel_requested",
            f"record {request.record_handle} ({request.campaign_name}/{request.calling_list}, "
            f"{chain}) ref {request.reference_id}",
        )

    @hookimpl
    def on_operation_requested(self, request: OperationRequest) -> None:
        self._line(
            "->",
            "on_operation_requested",
            f"{request.operation_name} {_subject(request)} ref {request.reference_id}",
        )

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        handle = event.user_data.get("GSW_RECORD_HANDLE")
        campaign = event.user_data.get("GSW_CAMPAIGN_NAME")
        about = f"record {handle}" if handle is not None else f"campaign {campaign}"
        error = f" GSW_ERROR={event.user_data['GSW_ERROR']!r}" if event.is_error else ""
        self._line("<-", "on_user_event", f"{event.user_event} {about}{error}")

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        ours = "ours" if ack.request is not None else "another client's"
        self._line(
            "<-",
            "on_record_cancel_acknowledged",
            f"record {ack.record_handle} ({ack.campaign_name}/{ack.calling_list}) "
            f"ref {ack.reference_id} [{ours}]",
        )

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._line(
            "<-",
            "on_cancel_failed",
            f"record {failure.request.record_handle} "
            f"reason {failure.reason.value}: {failure.message}",
        )

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        ours = "" if ack.request is not None else " [another client's]"
        self._line("<-", "on_operation_acknowledged", f"{ack.operation} {_result(ack)}{ours}")

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        self._line(
            "<-",
            "on_operation_failed",
            f"{failure.operation} {_subject(failure.request)} "
            f"reason {failure.reason.value}: {failure.message}",
        )

    @hookimpl
    def on_scheduled_call(self, event: ScheduledCallEvent) -> None:
        kind = event.callback_type.value if event.callback_type else "?"
        self._line(
            "<-",
            "on_scheduled_call",
            f"record {event.record_handle} ({event.campaign_name}/{event.calling_list}) "
            f"{kind} callback due",
        )

    @hookimpl
    def on_campaign_status(self, event: CampaignStatusEvent) -> None:
        self._line("<-", "on_campaign_status", f"{event.campaign_name} {event.status.value}")

    @hookimpl
    def on_record_cancelled(self, event: RecordCancelledEvent) -> None:
        self._line(
            "<-", "on_record_cancelled", f"record {event.record_handle} cancelled by someone else"
        )

    @hookimpl
    def on_preview_record(self, event: PreviewRecordEvent) -> None:
        self._line("<-", "on_preview_record", f"record {event.record_handle} pushed by OCS")


class JsonLinePrinter:
    """Writes one JSON line per hook call (``--stdin`` mode): ``{"hook": ..., <payload>}``."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def _emit(self, hook: str, payload: Any, **extra: Any) -> None:
        line = {"hook": hook, **extra, **to_jsonable(payload)}
        self._write(json.dumps(line, sort_keys=False, default=str))

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        self._emit("on_cancel_requested", request)

    @hookimpl
    def on_operation_requested(self, request: OperationRequest) -> None:
        # The request's fields do not say which operation it is: "operation" does.
        self._emit("on_operation_requested", request, operation=request.operation_name)

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._emit("on_user_event", event)

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._emit("on_record_cancel_acknowledged", ack)

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._emit("on_cancel_failed", failure)

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        self._emit("on_operation_acknowledged", ack)

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        self._emit("on_operation_failed", failure)

    @hookimpl
    def on_record_cancelled(self, event: RecordCancelledEvent) -> None:
        self._emit("on_record_cancelled", event)

    @hookimpl
    def on_scheduled_call(self, event: ScheduledCallEvent) -> None:
        self._emit("on_scheduled_call", event)

    @hookimpl
    def on_preview_record(self, event: PreviewRecordEvent) -> None:
        self._emit("on_preview_record", event)

    @hookimpl
    def on_campaign_status(self, event: CampaignStatusEvent) -> None:
        self._emit("on_campaign_status", event)


class Arrivals:
    """Lets the demo wait for the unsolicited events it triggers on the simulator.

    Registered before the printer, so pluggy calls it after the printer has written.
    """

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = defaultdict(anyio.Event)

    async def wait(self, hook: str, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._events[hook].wait()
            return True
        return False

    @hookimpl
    def on_scheduled_call(self) -> None:
        self._events["on_scheduled_call"].set()

    @hookimpl
    def on_campaign_status(self) -> None:
        self._events["on_campaign_status"].set()


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


@dataclass
class Connection:
    config: GWSConfig
    simulator: GWSSimulator | None = None


@contextlib.asynccontextmanager
async def gws_connection(use_simulator: bool) -> AsyncIterator[Connection]:
    """The GWS to talk to: the embedded simulator, or the one in the environment."""
    if not use_simulator:
        yield Connection(GWSConfig.from_env())
        return
    from gws_outbound_plugin.simulator import GWSSimulator

    user, password = SIMULATOR_USER
    async with GWSSimulator(users={user: password}) as sim:
        print(f"embedded GWS simulator on {sim.base_url}", file=sys.stderr)
        config = GWSConfig(base_url=sim.base_url, username=user, password=password, ack_timeout=5)
        yield Connection(config, sim)


@dataclass(frozen=True)
class PreviewedRecord:
    """A record OCS handed out in the preview session, as the next requests need it."""

    record_handle: int
    application_id: int
    campaign_name: str
    calling_list: str
    phone_number: str | None


def previewed(ack: OperationAck, campaign: str, application_id: int) -> PreviewedRecord | None:
    """The record of a ``GetPreviewRecord`` acknowledgement (its keys are in ``userData``)."""
    data: Mapping[str, Any] = ack.record.get("userData", {})
    calling_list = data.get("GSW_CALLING_LIST")
    if ack.empty or ack.record_handle is None or not isinstance(calling_list, str):
        return None
    application = data.get("GSW_APPLICATION_ID")
    phone = data.get("GSW_PHONE")
    return PreviewedRecord(
        record_handle=ack.record_handle,
        application_id=application if isinstance(application, int) else application_id,
        campaign_name=str(data.get("GSW_CAMPAIGN_NAME") or campaign),
        calling_list=calling_list,
        phone_number=phone if isinstance(phone, str) else None,
    )


class PreviewSession:
    """The demo: one preview-dialing session, told step by step."""

    def __init__(
        self,
        plugin: OutboundPlugin,
        bus: MessageBus,
        write: Callable[[str], None],
        connection: Connection,
        arrivals: Arrivals,
        campaign: str,
        application_id: int,
    ) -> None:
        self.plugin = plugin
        self.bus = bus
        self.write = write
        self.sim = connection.simulator
        self.arrivals = arrivals
        self.campaign = campaign
        self.application_id = application_id
        self.device = ""
        self.tickets: list[OperationTicket] = []
        self._steps = 0
        bus.subscribe("outbound.ticket", self.tickets.append)

    def step(self, text: str) -> None:
        if self._steps:
            self.write("")
        self._steps += 1
        self.write(f"== {text}")

    async def send(self, request: OperationRequest) -> Any | None:
        """Publish the request on the bus and wait for its outcome: the ack, or None."""
        sent = len(self.tickets)
        self.bus.publish("outbound.request", request)
        if len(self.tickets) == sent:  # no core took it (the bridge found no ticket)
            return None
        # One at a time, so the output reads as a story; hosts need not wait.
        with contextlib.suppress(OperationFailed):
            return await self.tickets[-1]
        return None

    def _campaign_request(self, kind: type[Any]) -> Any:
        return kind(
            campaign_name=self.campaign, application_id=self.application_id, device_path=self.device
        )

    async def next_record(self, purpose: str) -> PreviewedRecord | None:
        self.step(f"get a preview record to {purpose}")
        ack = await self.send(self._campaign_request(GetPreviewRecordRequest))
        record = previewed(ack, self.campaign, self.application_id) if ack else None
        if record is None:
            self.write("   (no record to work on: this step is skipped)")
        return record

    def _record_fields(self, record: PreviewedRecord) -> dict[str, Any]:
        return {
            "record_handle": record.record_handle,
            "application_id": record.application_id,
            "campaign_name": record.campaign_name,
            "device_path": self.device,
        }

    async def run(self) -> int:
        self.device = await self.plugin.device_path()
        print(f"agent device {self.device}", file=sys.stderr)

        self.step(f"start the preview session on {self.campaign}")
        if await self.send(self._campaign_request(StartPreviewSessionRequest)) is None:
            self.write("   (no preview session: nothing more to do)")
            return self.summary()

        completed = await self.next_record("complete it with a call result")
        if completed:
            fields = self._record_fields(completed)
            await self.send(
                CompleteRecordRequest(
                    **fields, calling_list=completed.calling_list, call_result="Answer"
                )
            )

        await self.reschedule()

        rejected = await self.next_record("reject it")
        if rejected:
            fields = self._record_fields(rejected)
            await self.send(RejectRecordRequest(**fields, calling_list=rejected.calling_list))

        unwanted = await self.next_record("mark it do-not-call")
        if unwanted:
            fields = self._record_fields(unwanted)
            await self.send(DoNotCallRecordRequest(**fields, calling_list=unwanted.calling_list))

        await self.cancels(completed)

        self.step(f"end the preview session on {self.campaign}")
        await self.send(self._campaign_request(EndPreviewSessionRequest))

        if self.sim is not None:
            self.step(f"(simulator) a supervisor stops {self.campaign}")
            self.sim.send_campaign_status(self.campaign, "CampaignStopped")
            await self.arrivals.wait("on_campaign_status", UNSOLICITED_TIMEOUT)
        else:
            self.write(
                "\n(not the embedded simulator: the steps that move OCS's clock and stop the "
                "campaign were skipped; run without GWS_BASE_URL to see them)"
            )
        return self.summary()

    async def reschedule(self) -> None:
        record = await self.next_record("reschedule it as a personal callback in two hours")
        if record is None:
            return
        # Any timezone-aware datetime will do: here the local time zone.
        when = datetime.datetime.now().astimezone() + CALLBACK_IN
        request = RescheduleRecordRequest(
            **self._record_fields(record),
            callback_type=CallbackType.PERSONAL,
            scheduled_time=when,
        )
        if await self.send(request) is None or self.sim is None:
            return
        self.step("(simulator) two hours pass: the callback is due")
        due = (when - self.sim.clock.datetime()).total_seconds() + 1
        self.sim.clock.advance(max(due, 0))
        await self.arrivals.wait("on_scheduled_call", UNSOLICITED_TIMEOUT)

    async def cancels(self, completed: PreviewedRecord | None) -> None:
        record = await self.next_record("cancel it")
        if record is None:
            return

        def cancel(handle: int, calling_list: str) -> CancelRequest:
            return CancelRequest(
                **dict(self._record_fields(record), record_handle=handle),
                calling_list=calling_list,
                chain_attribute=ChainAttribute.RECORD_ONLY,
            )

        await self.send(cancel(record.record_handle, record.calling_list))
        self.step(f"cancel record {record.record_handle} again: OCS refuses")
        await self.send(cancel(record.record_handle, record.calling_list))
        if completed is not None:
            self.step(f"cancel the completed record {completed.record_handle}: OCS refuses")
            await self.send(cancel(completed.record_handle, completed.calling_list))
        self.step("cancel record 999, which OCS does not know: OCS refuses")
        await self.send(cancel(999, record.calling_list))

    def summary(self) -> int:
        acked = sum(isinstance(t.outcome, OperationAck | RecordCancelAck) for t in self.tickets)
        failed = len(self.tickets) - acked
        print(
            f"\n{len(self.tickets)} requests: {acked} acknowledged, {failed} failed",
            file=sys.stderr,
        )
        return 0


def request_of_line(event: object) -> OperationRequest:
    """The request a bus event asks for. Without ``operationName`` it is a cancel, read by
    ``CancelRequest.from_bus`` exactly as before other operations existed."""
    if isinstance(event, dict) and event.get("operationName") is not None:
        return request_from_bus(event)
    return CancelRequest.from_bus(event)


async def run_stdin(plugin: OutboundPlugin, bus: MessageBus, write: Callable[[str], None]) -> int:
    tickets: list[OperationTicket] = []
    bus.subscribe("outbound.ticket", tickets.append)
    # Whoever puts events on the bus need not know the agent's device: a line without
    # devicePath gets the agent's own (the first device GWS lists for the agent).
    device = await plugin.device_path()
    async for line in stdin_lines():
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except ValueError as error:
            write(json.dumps({"error": f"invalid JSON: {error}", "fields": [], "errors": {}}))
            continue
        if isinstance(event, dict) and event.get("devicePath") is None:
            event = {**event, "devicePath": device}
        try:
            request = request_of_line(event)
        except InvalidOperationRequest as error:
            write(
                json.dumps(
                    {"error": str(error), "fields": list(error.fields), "errors": error.errors}
                )
            )
            continue
        bus.publish("outbound.request", request)
    for ticket in tickets:
        with contextlib.suppress(OperationFailed):
            await ticket
    return 0


async def stdin_lines() -> AsyncIterator[str]:
    """The lines of stdin, read by a daemon thread: on Ctrl-C the host exits at once. (Read by
    a worker thread of the event loop, the read still waiting for a line kept the process
    alive after the plugin had closed, until Enter or Ctrl-D.)"""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)

    def hand_over(line: str | None) -> bool:
        """Put ``line`` in the queue, waiting for room; False once the loop is gone."""
        put = lines.put(line)
        try:
            asyncio.run_coroutine_threadsafe(put, loop).result()
        except Exception:  # the loop is closed (Ctrl-C): the line goes nowhere
            put.close()
            return False
        return True

    def read() -> None:
        with contextlib.suppress(Exception):  # stdin broke: as at its end
            for line in sys.stdin:
                if not hand_over(line):
                    return
        hand_over(None)

    threading.Thread(target=read, name="host.py stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        yield line


def load_extra_plugins(pm: Any, specs: list[str]) -> None:
    """Register one-off plugins for this run: an importable module name (``my_plugin``,
    ``package.module``) or the path of a ``.py`` file, no packaging needed, or an object in
    one written as in an entry point (``package:plugin``). A plugin that cannot be loaded
    stops the host with one line saying why, before anything is sent."""
    for spec in specs:
        where, colon, attribute = spec.rpartition(":")
        if not (colon and attribute.isidentifier() and where):
            where, attribute = spec, ""
        try:
            plugin: object = import_plugin_module(where)
            if attribute:
                if not hasattr(plugin, attribute):
                    raise SystemExit(f"--plugin {spec}: {where} has no attribute {attribute!r}")
                plugin = getattr(plugin, attribute)
            if pm.is_registered(plugin):  # the plugin being written, installed with pip -e
                name = pm.get_name(plugin)
                print(
                    f"--plugin {spec} is the installed plugin {name!r}: loaded once",
                    file=sys.stderr,
                )
                continue
            pm.register(plugin, name=spec)
            if not attribute and not pm.get_hookcallers(plugin):
                pm.unregister(plugin)
                raise SystemExit(f"--plugin {spec}: {no_hooks_here(pm, plugin, spec)}")
        except SystemExit:
            raise
        except Exception as error:
            hint = ""
            top = where.split(".", 1)[0]
            if isinstance(error, ModuleNotFoundError) and error.name == top:
                if Path(f"{top}.py").is_file():
                    hint = f" (./{top}.py is here but not on the Python path: --plugin ./{top}.py)"
                elif Path("src", top).is_dir():
                    hint = f" (src/{top} is here but not on the Python path: PYTHONPATH=src)"
            message = " ".join(str(error).split())
            raise SystemExit(
                f"--plugin {spec}: cannot load it: {type(error).__name__}: {message}{hint}"
            ) from None


def no_hooks_here(pm: Any, module: Any, spec: str) -> str:
    """What to say of a module with no @hookimpl function of its own: often its hooks are
    on an object in it (``plugin = Watch()``, as new-plugin writes it), to give as
    ``--plugin FILE:plugin``."""
    hooks = [name for name in vars(pm.hook) if not name.startswith("_")]
    found = [
        (attribute, value)
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and getattr(value if isinstance(value, type) else type(value), "__module__", None)
        == module.__name__
        and any(pm.parse_hookimpl_opts(value, hook) is not None for hook in hooks)
    ]
    for attribute, value in found:  # an instance first: what an entry point names
        if not isinstance(value, type):
            return f"its hooks are on the object {attribute!r}: give --plugin {spec}:{attribute}"
    for _, value in found:
        return (
            f"its hooks are on the class {value.__name__}: add an instance to it "
            f"(plugin = {value.__name__}()) and give --plugin {spec}:plugin"
        )
    return "it has no @hookimpl function (nor an object with one): it would hear nothing"


def import_plugin_module(spec: str) -> Any:
    """A ``.py`` file by its path, or a module on the Python path by its name."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise SystemExit(f"--plugin {spec}: no such file")
        name = path.stem
        loaded = importlib.util.spec_from_file_location(name, path)
        if loaded is None or loaded.loader is None:
            raise SystemExit(f"--plugin {spec}: not a Python file")
        module = importlib.util.module_from_spec(loaded)
        sys.modules[name] = module
        loaded.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


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
        arrivals = Arrivals()
        pm.register(arrivals, name="arrivals")
        printer = JsonLinePrinter(write) if args.stdin else ReadablePrinter(write)
        pm.register(printer, name="printer")
        bus = MessageBus()

        def on_request(request: OperationRequest) -> None:
            # The bridge from the bus to pluggy: a cancel fires on_cancel_requested (as it
            # always did), any other request on_operation_requested. The core's ticket is
            # among the results.
            if isinstance(request, CancelRequest):
                results = pm.hook.on_cancel_requested(request=request)
            else:
                results = pm.hook.on_operation_requested(request=request)
            for result in results:
                if isinstance(result, OperationTicket):
                    bus.publish("outbound.ticket", result)
                    return

        bus.subscribe("outbound.request", on_request)
        try:
            async with (
                gws_connection(use_simulator) as connection,
                OutboundPlugin(pm, connection.config) as plugin,
            ):
                if args.stdin:
                    code = await run_stdin(plugin, bus, write)
                else:
                    session = PreviewSession(
                        plugin, bus, write, connection, arrivals, args.campaign, args.application_id
                    )
                    code = await session.run()
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
        help="read bus events as JSON lines from stdin (any operation, by its operationName; "
        "a cancel without it); write one JSON line per hook call",
    )
    parser.add_argument(
        "--campaign",
        default=CAMPAIGN,
        metavar="NAME",
        help=f"the preview campaign of the demo session (default: {CAMPAIGN})",
    )
    parser.add_argument(
        "--application-id",
        type=int,
        default=APPLICATION_ID,
        metavar="N",
        help=f"its OCS application DBID (default: {APPLICATION_ID})",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="also register this plugin for this run: an importable module (my_plugin) or a "
        ".py file (./my_plugin.py), or an object in one as in an entry point "
        "(package:plugin), no packaging needed (repeatable)",
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
    except ConfigError as error:  # GWS_BASE_URL set, another setting missing or wrong
        print(
            f"host.py: error: {error} (without GWS_BASE_URL the host runs on the embedded "
            "simulator)",
            file=sys.stderr,
        )
        return 2
    except GWSOutboundError as error:  # GWS unreachable, credentials refused, ...: one line
        print(f"host.py: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
