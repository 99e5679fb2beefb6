"""Section 4 (startup) and section 5 (many sessions in one process).

Startup: time to enter the plugin (login, handshake, first connect, two subscriptions)
against the raw stack doing the same, alternating, with no other traffic.

Sessions: ``n`` sessions of one side for ``n`` distinct agents in one fresh worker process,
each with its own GWS session and CometD long-poll, all started concurrently. Measured: RSS
and open TCP sockets per idle session (delta over a process that already opened and closed
one session, so imports and lazy singletons are not counted), the time until all are ready,
and cancel -> acknowledgement latency (concurrency 1, round-robin over the sessions) while
the others are idle-polling.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import Handles, median, percentile, rss_bytes, socket_count
from bench._sides import Side, make_side
from bench._sim import SimulatorProcess


async def startup(sim: SimulatorProcess, user: str, repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"plugin": [], "raw": []}
    for index in range(repeats + 1):  # the first round warms both up and is not counted
        for kind in ("plugin", "raw"):
            side = make_side(kind, sim.base_url, user)
            started = time.perf_counter()
            await side.start()
            elapsed = time.perf_counter() - started
            await side.aclose()
            if index:
                times[kind].append(elapsed)
    return {
        "repeats": repeats,
        "plugin_ms": median(times["plugin"]) * 1000,
        "raw_ms": median(times["raw"]) * 1000,
        "plugin_max_ms": max(times["plugin"]) * 1000,
        "raw_max_ms": max(times["raw"]) * 1000,
    }


async def sessions(
    kind: str,
    base_url: str,
    users: list[str],
    warm_user: str,
    first_handle: int,
    count: int,
    latency_samples: int,
    idle_seconds: float,
) -> dict[str, Any]:
    handles = Handles(first_handle, count)
    n = len(users)
    # Warm up: one session of its own, opened and used, stays open (closed last) so that
    # imports and lazy singletons are paid and no memory it freed is reused by the others.
    warm = make_side(kind, base_url, warm_user)
    await warm.start()
    await warm.load_device()
    await warm.cancel(handles.take())
    await asyncio.sleep(0.5)
    rss_before = rss_bytes()
    sockets_before = socket_count()

    sides: list[Side] = [make_side(kind, base_url, user) for user in users]
    started_all = asyncio.Event()
    stop = asyncio.Event()
    ready = 0
    failures: list[BaseException] = []

    async def hold(side: Side) -> None:
        # Entered and left in one task (the plugin's task group requires it).
        nonlocal ready
        try:
            await side.start()
        except BaseException as error:
            failures.append(error)
            started_all.set()
            raise
        ready += 1
        if ready == n:
            started_all.set()
        await stop.wait()
        await side.aclose()

    started = time.perf_counter()
    holders = [asyncio.create_task(hold(side)) for side in sides]
    await started_all.wait()
    startup_all = time.perf_counter() - started
    if failures:
        stop.set()
        await asyncio.gather(*holders, return_exceptions=True)
        raise RuntimeError(f"{len(failures)} sessions failed to start: {failures[0]!r}")
    await asyncio.sleep(idle_seconds)  # every session is now idle-polling
    rss_idle = rss_bytes()
    sockets_idle = socket_count()

    for side in sides:
        await side.load_device()
    latencies = []
    for index in range(latency_samples):
        latencies.append(await sides[index % n].cancel(handles.take()))
    sockets_after = socket_count()
    stop.set()
    await asyncio.gather(*holders)
    await warm.aclose()
    return {
        "sessions": n,
        "startup_all_ms": startup_all * 1000,
        "rss_per_session_mb": (rss_idle - rss_before) / n / (1024 * 1024),
        "rss_total_mb": (rss_idle - rss_before) / (1024 * 1024),
        "sockets_per_session": (sockets_idle - sockets_before) / n,
        "sockets_per_session_after_cancels": (sockets_after - sockets_before) / n,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "latency_samples": latency_samples,
    }
