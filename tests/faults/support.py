"""Helpers of the fault tests: outcome assertions and log capture. The faults themselves are
the simulator's public API (``sim.faults.*``, ``sim.rotate_csrf_tokens()``,
``sim.set_password()``, ...); nothing here touches its private state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import structlog

from gws_outbound_plugin import CancelFailure, CancelRequest, hookimpl
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS
from tests.faults.matrix import ACK, FAILED, Row
from tests.helpers import Recorder

OUTCOME_HOOKS = (ACK, FAILED)


async def until(
    condition: Callable[[], object], what: str = "", *, timeout: float = 10.0, step: float = 0.005
) -> None:
    """Wait until ``condition()`` holds, checking every ``step`` seconds; fail the test after
    ``timeout`` (``TimeoutError``). On the virtual clock the wait costs no wall time."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(step)
    assert condition(), what


def outcome_calls(recorder: Recorder) -> list[Any]:
    return [call for call in recorder.calls if call.hook in OUTCOME_HOOKS]


def assert_outcome(
    recorder: Recorder,
    request: CancelRequest,
    row: Row,
) -> Any:
    """Exactly one outcome hook call for ``request``: the row's hook, with its reason."""
    calls = recorder.outcomes_for(request.reference_id)
    assert [call.hook for call in calls] == [row.hook], (row.id, calls)
    payload = calls[0].payload
    if row.reason is not None:
        # "a or b": a request sent before the fault ends one way, one never sent the other.
        assert payload.reason.value in row.reason.split(" or "), (row.id, payload)
        # Whether GWS may have acted follows from the reason (issue 16).
        acted = payload.reason.value in ("timed_out", "outcome_unknown")
        assert payload.may_have_acted is acted, (row.id, payload)
    return payload


def assert_nothing_else(
    recorder: Recorder,
    requests: list[CancelRequest],
    *,
    user_events: int,
) -> None:
    """No outcome hook call beyond one per listed request, and ``user_events`` user events."""
    ours = {request.reference_id for request in requests}
    outcomes = outcome_calls(recorder)
    strays = [
        call
        for call in outcomes
        if call.payload.request is None or call.payload.request.reference_id not in ours
    ]
    assert strays == [], strays
    per_request = [call.payload.request.reference_id for call in outcomes]
    assert sorted(per_request) == sorted(ours), outcomes
    assert len(recorder.user_events) == user_events, recorder.user_events


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event emitted inside the block, as event dicts."""
    with structlog.testing.capture_logs() as events:
        yield events


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == name]


def refused_port() -> int:
    """A loopback port on which nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def request_for(sim: GWSSimulator, handle: int, **changes: Any) -> CancelRequest:
    """A cancel of the simulator's seeded record ``handle`` (its own list and campaign)."""
    record = sim.records[handle].record
    values: dict[str, Any] = {
        "record_handle": handle,
        "application_id": record.application_id,
        "campaign_name": record.campaign_name,
        "calling_list": record.calling_list,
        "device_path": sim.device_path("agent1"),
    }
    values.update(changes)
    return CancelRequest(**values)


def plugin_tasks() -> list[asyncio.Task[Any]]:
    """The running plugin's own tasks (the outcome pump, the CometD listener, the POST
    workers started so far): what a host cancelling "every task" reaches."""
    return [
        task for task in asyncio.all_tasks() if task.get_name().endswith("OutboundPlugin._guarded")
    ]


def rebuilt(kind: type[Any], request: CancelRequest) -> Any:
    """``request``'s record as a ``kind`` (a host's subclass of ``CancelRequest``)."""
    return kind(
        record_handle=request.record_handle,
        application_id=request.application_id,
        campaign_name=request.campaign_name,
        calling_list=request.calling_list,
        device_path=request.device_path,
    )


def handles(sim: GWSSimulator, count: int) -> list[int]:
    """The first ``count`` seeded record handles."""
    found = sorted(sim.records)[:count]
    assert len(found) == count, "the simulator's seed has too few records"
    return found


class SlowToHear:
    """An ``async def on_cancel_failed`` that takes a while; says when it first started."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.calls = 0

    @hookimpl
    async def on_cancel_failed(self, failure: CancelFailure) -> None:
        self.calls += 1
        self.started.set()
        await anyio.sleep(0.1)


async def another_desktop_cancels(sim: GWSSimulator, handle: int) -> None:
    """Another desktop of the agent (a GWS session of its own) cancels record ``handle``
    (referenceId ``other-desktop-1``): OCS's answer is a user event on the same key as ours."""
    from gws_outbound_plugin._session import GWSSession
    from tests.faults.conftest import fast_config

    other = GWSSession(fast_config(sim.base_url))
    await other.open()
    try:
        theirs = request_for(sim, handle, reference_id="other-desktop-1")
        await other.post_operation(theirs.gws_path(), theirs.to_gws_body())
    finally:
        await other.close()


def another_desktop_answers(
    fake: FakeGWS,
    handle: int,
    reference_id: str,
    *,
    event: str = "RecordCancelAcknowledge",
    notification: bool = True,
) -> None:
    """Another desktop of the same agent acts on record ``handle`` (``event``: a cancel by
    default) and OCS acknowledges it with two messages: a notification carrying the other
    desktop's referenceId, and a user event carrying none (as OCS sends them).
    ``notification=False``: the user event alone (GWS relaying it again, other metrics)."""
    record = fake.records[handle].record
    if notification:
        fake.publish(
            "/v2/me/outbound",
            {
                "messageType": "OutboundRecordMessage",
                "notificationType": event,
                "referenceId": reference_id,
                "record": {
                    "devicePath": fake.device_path(),
                    "callingList": record.calling_list,
                    "applicationId": record.application_id,
                    "recordHandle": handle,
                    "campaignName": record.campaign_name,
                },
            },
        )
    fake.publish(
        "/me/internal",
        {
            "messageType": "DeviceUserEventMessage",
            "deviceId": fake.device_id(),
            "userData": {
                "GSW_USER_EVENT": event,
                "GSW_APPLICATION_ID": record.application_id,
                "GSW_RECORD_HANDLE": handle,
                "GSW_CALLING_LIST": record.calling_list,
                "GSW_CAMPAIGN_NAME": record.campaign_name,
                "GSW_PHONE": record.phone_number,
            },
            "metrics": {"eventProcessing": {"serverGenerationTimestamp": len(fake.published)}},
        },
    )


class StallingProxy:
    """A loopback HTTP/1.1 proxy in front of the simulator that never answers a POST whose
    body names one of ``stall`` (a GWS node that stops answering mid-start), or only its
    occurrences (counted from 1) that ``only`` lists for it; ``stalled`` is set at the first
    one it holds. ``answer(head, body)``, if given, may answer a request itself (the whole
    HTTP response, as bytes) instead of passing it on (``None``): a GWS answering what the
    simulator never would. ``pass_on(head, body)``, if given, says of a request the proxy
    answers itself whether the simulator gets it too (on a connection of its own, its answer
    discarded, before the proxy answers): a node that got the request to GWS and then
    answered the client something else. ``hold(head, body)``, if given, says how many seconds
    to wait before answering or passing on a request (a slow node). ``twice(head, body)``, if
    given, says of a request it passes on whether GWS gets it twice: first on a connection of
    its own (that answer discarded), then as usual (a node in front of GWS retrying upstream
    what it had already written); ``written`` counts those doubled requests.
    ``trickle(head, body)``, if given, says of a request how many seconds to wait between the
    bytes of its answer: GWS's answer (got on a connection of its own) is passed on one byte
    at a time (a node or a network that drips)."""

    def __init__(
        self,
        target_port: int,
        stall: tuple[str, ...] = (),
        only: dict[str, set[int]] | None = None,
        answer: Callable[[bytes, bytes], bytes | None] | None = None,
        pass_on: Callable[[bytes, bytes], bool] | None = None,
        hold: Callable[[bytes, bytes], float] | None = None,
        twice: Callable[[bytes, bytes], bool] | None = None,
        trickle: Callable[[bytes, bytes], float] | None = None,
    ) -> None:
        self.target_port = target_port
        self.trickle = trickle
        self.answer = answer
        self.pass_on = pass_on
        self.hold = hold
        self.twice = twice
        self.written = 0
        self.stall = tuple(s.encode() for s in stall)
        self.only = {k.encode(): v for k, v in (only or {}).items()}
        self.seen: Counter[bytes] = Counter()
        self.stalled = asyncio.Event()
        self._closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def _holds(self, channel: bytes) -> bool:
        self.seen[channel] += 1
        return channel not in self.only or self.seen[channel] in self.only[channel]

    async def _pass_on_aside(self, request: bytes) -> bytes:
        """``request`` to the simulator on a connection of its own; its answer (read, and
        discarded unless the caller uses it)."""
        aside_reader, aside_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        try:
            aside_writer.write(request)
            await aside_writer.drain()
            head = await aside_reader.readuntil(b"\r\n\r\n")
            body = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    body = await aside_reader.readexactly(int(line.split(b":", 1)[1]))
            return head + body
        finally:
            aside_writer.close()

    async def _trickle(self, writer: asyncio.StreamWriter, answer: bytes, gap: float) -> None:
        """``answer`` written one byte every ``gap`` seconds, until the proxy closes."""
        for byte in answer:
            if self._closing.is_set():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), gap)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def down() -> None:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        downstream = asyncio.ensure_future(down())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                if self.hold is not None and (seconds := self.hold(head, body)) > 0:
                    await asyncio.sleep(seconds)
                if any(self._holds(channel) for channel in self.stall if channel in body):
                    self.stalled.set()
                    await self._closing.wait()  # never answered
                    return
                own = self.answer(head, body) if self.answer is not None else None
                if own is not None:
                    if self.pass_on is not None and self.pass_on(head, body):
                        await self._pass_on_aside(head + body)
                    writer.write(own)
                    await writer.drain()
                    continue
                if self.trickle is not None and (gap := self.trickle(head, body)) > 0:
                    await self._trickle(writer, await self._pass_on_aside(head + body), gap)
                    continue
                if self.twice is not None and self.twice(head, body):
                    self.written += 1
                    await self._pass_on_aside(head + body)
                up_writer.write(head + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            up_writer.close()
            writer.close()
            with contextlib.suppress(OSError):
                await downstream


class ConnectAnsweredWith:
    """A :class:`StallingProxy` answer: the ``nth`` ``/meta/connect`` is answered by the proxy
    itself, successfully, with ``advice`` (raw JSON) as its advice and the ``events`` before
    it, as a broken server sends them; everything else goes to GWS. ``seen``: the connects
    so far."""

    def __init__(
        self, nth: int, *, advice: bytes = b"{}", events: tuple[dict[str, Any], ...] = ()
    ) -> None:
        self.nth = nth
        self.advice = advice
        self.events = events
        self.seen = 0

    def __call__(self, _head: bytes, body: bytes) -> bytes | None:
        if b'"/meta/connect"' not in body:
            return None
        self.seen += 1
        if self.seen != self.nth:
            return None
        [message] = json.loads(body)
        reply = {
            "channel": "/meta/connect",
            "successful": True,
            "id": message["id"],
            "clientId": message["clientId"],
            "advice": "@",
        }
        raw = json.dumps([*self.events, reply]).encode().replace(b'"@"', self.advice)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        return head % len(raw) + b"\r\n" + raw
