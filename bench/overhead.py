"""The plugin's own CPU per cancel, with the network taken out (a profiling aid).

    python -m bench.overhead            # CPU per cancel at concurrency 1, 10 and 100
    python -m bench.overhead --profile  # and a cProfile listing of the plugin's share

The real ``OutboundPlugin`` (validation, pluggy, engine, correlation, dispatcher, ticket)
runs on a transport (``transport=``) that answers every POST at once and hands over both
notifications of each cancel. The raw counterpart does the same
bookkeeping as the raw baseline of ``python -m bench`` (a uuid, a body, a future per
cancel, a receive loop matching by referenceId and record handle). Without httpx, aiohttp
and the simulator's noise, what is left is the plugin's layers, measured to a few percent.

Not part of ``make bench``: the end-to-end figures do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import pstats
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bench._common import APPLICATION_ID, CALLING_LIST, CAMPAIGN, configure_logging
from bench._sides import AckClock
from gws_outbound_plugin import (
    CancelRequest,
    CometDState,
    GWSConfig,
    OutboundPlugin,
    RetryPolicy,
    SessionEvents,
    make_plugin_manager,
)

_HANDLES = itertools.count(1)
DEVICE_ID = "bench-device"
DEVICE_PATH = "/devices/" + DEVICE_ID
Message = dict[str, Any]


def notifications(handle: int, body: dict[str, Any]) -> tuple[Message, Message]:
    """The two CometD messages GWS publishes for an accepted cancel (as the simulator)."""
    outbound = {
        "channel": "/v2/me/outbound",
        "data": {
            "messageType": "OutboundRecordMessage",
            "notificationType": "RecordCancelAcknowledge",
            "referenceId": body["referenceId"],
            "record": {
                "devicePath": DEVICE_PATH,
                "callingList": body["callingList"],
                "applicationId": body["applicationId"],
                "recordHandle": handle,
                "campaignName": body["campaignName"],
            },
        },
    }
    user_event = {
        "channel": "/me/internal",
        "data": {
            "messageType": "DeviceUserEventMessage",
            "deviceId": DEVICE_ID,
            "userData": {
                "GSW_USER_EVENT": "RecordCancelAcknowledge",
                "GSW_APPLICATION_ID": body["applicationId"],
                "GSW_RECORD_HANDLE": handle,
                "GSW_CALLING_LIST": body["callingList"],
                "GSW_CAMPAIGN_NAME": body["campaignName"],
            },
            "metrics": {
                "eventProcessing": {
                    "serverGenerationTimestamp": 1,
                    "nodeProcessingTimeNanos": 2,
                    "serverProcessingTimeTotalMs": 1,
                }
            },
        },
    }
    return outbound, user_event


class _InstantTransport:
    """An ``OutboundTransport`` that answers every POST at once and hands over both
    notifications of each cancel on a later turn of the loop."""

    state = CometDState.CONNECTED
    refused_channels: tuple[str, ...] = ()
    user: dict[str, Any] = {}  # noqa: RUF012 - never changed
    retry_policy = RetryPolicy(retries=0)

    def __init__(self, queue: asyncio.Queue[Message]) -> None:
        self._queue = queue

    async def open(self, events: SessionEvents) -> None:
        pass

    async def close(self) -> None:
        pass

    async def wait_connected(self) -> None:
        pass

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        await asyncio.sleep(0)  # the answer arrives on a later turn of the loop
        for message in notifications(int(path.rsplit("/", 1)[1]), dict(body)):
            self._queue.put_nowait(message)
        return {"statusCode": 0}

    async def run(self, deliver: Callable[[Message], Awaitable[None]]) -> None:
        while True:
            await deliver(await self._queue.get())

    async def devices(self) -> list[Mapping[str, Any]]:
        return [{"id": DEVICE_ID}]

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        return {"statusCode": 0}


async def _cpu_per_cancel(
    cancel: Callable[[int], Awaitable[None]], count: int, concurrency: int
) -> float:
    handles = _HANDLES  # never reused: a repeated user event would be dropped as a duplicate

    async def worker(share: int) -> None:
        for _ in range(share):
            await cancel(next(handles))

    started = time.process_time()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / count * 1e6


async def plugin_us(count: int, concurrency: int, repeats: int) -> list[float]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    pm = make_plugin_manager(load_entrypoints=False)
    clock = AckClock()
    pm.register(clock)
    config = GWSConfig(base_url="http://127.0.0.1:1", username="u", password="p")
    plugin = OutboundPlugin(pm, config, transport=_InstantTransport(queue))
    await plugin.__aenter__()

    async def cancel(handle: int) -> None:
        request = CancelRequest(
            record_handle=handle,
            application_id=APPLICATION_ID,
            campaign_name=CAMPAIGN,
            calling_list=CALLING_LIST,
            device_path=DEVICE_PATH,
        )
        await plugin.submit(request)
        clock.acked.pop(request.reference_id)

    try:
        await _cpu_per_cancel(cancel, 2000, concurrency)  # warm-up
        return [await _cpu_per_cancel(cancel, count, concurrency) for _ in range(repeats)]
    finally:
        await plugin.aclose()


async def raw_us(count: int, concurrency: int, repeats: int) -> list[float]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    waiting: dict[Any, list[Any]] = {}
    by_handle: dict[Any, str] = {}
    loop = asyncio.get_running_loop()

    async def receive_loop() -> None:
        while True:
            message = await queue.get()
            data = message["data"]
            if message["channel"] == "/v2/me/outbound":
                reference_id = data.get("referenceId")
            else:
                reference_id = by_handle.pop(data["userData"].get("GSW_RECORD_HANDLE"), None)
            entry = waiting.get(reference_id)
            if entry is None:
                continue
            entry[1] += 1
            if entry[1] == 2:
                del waiting[reference_id]
                entry[0].set_result(time.perf_counter())

    async def cancel(handle: int) -> None:
        reference_id = uuid.uuid4().hex
        body = {
            "operationName": "CancelRecord",
            "applicationId": APPLICATION_ID,
            "campaignName": CAMPAIGN,
            "callingList": CALLING_LIST,
            "devicePath": DEVICE_PATH,
            "referenceId": reference_id,
        }
        future: asyncio.Future[float] = loop.create_future()
        waiting[reference_id] = [future, 0]
        by_handle[handle] = reference_id
        await asyncio.sleep(0)  # the POST's answer, as the fake session gives it
        for message in notifications(handle, body):
            queue.put_nowait(message)
        await future

    receiver = asyncio.create_task(receive_loop())
    try:
        await _cpu_per_cancel(cancel, 2000, concurrency)
        return [await _cpu_per_cancel(cancel, count, concurrency) for _ in range(repeats)]
    finally:
        receiver.cancel()


async def main(count: int, repeats: int, profile: bool) -> None:
    print("CPU per cancel, network taken out (median of runs):")
    for concurrency in (1, 10, 100):
        plugin = statistics.median(await plugin_us(count, concurrency, repeats))
        raw = statistics.median(await raw_us(count, concurrency, repeats))
        print(
            f"  concurrency {concurrency:3d}: plugin {plugin:6.1f} us, raw {raw:5.1f} us, "
            f"the plugin's layers {plugin - raw:6.1f} us"
        )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await plugin_us(count, 10, 1)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats("gws_outbound_plugin|anyio|pluggy", 40)
        print(out.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="cancels per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    arguments = parser.parse_args()
    configure_logging()
    asyncio.run(main(arguments.count, arguments.repeats, arguments.profile))
