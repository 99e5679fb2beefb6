"""Section 3: memory with 10,000 cancels pending, and RSS drift over completed cancels.

Runs in a fresh worker process per side (see ``bench._worker``) so that RSS deltas are not
blurred by what earlier sections allocated and freed.

Pending: the simulator holds every outcome back (``hold_notifications``); the side submits
``pending`` cancels at once (the plugin with ``OutboundPlugin.submit``, raw through a queue
served by workers, as the plugin's own), waits until GWS accepted every POST, and the RSS
delta is taken with every cancel pending; a second pass does the same with tracemalloc on.

Drift: ``high`` cancels complete at concurrency 10 with the default configuration (as a host
runs it); RSS is sampled after ``low`` and after ``high`` completions.
Drift = (RSS@high - RSS@low) / RSS@low.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

from bench._common import MB, Handles, rss_bytes
from bench._e2e import run_once
from bench._sides import PluginSide, make_side
from bench._sim import Admin

# While outcomes are held back: long enough for nothing to time out. Both sides POST with 10
# at a time: httpx's pool costs about twice the CPU per request at 100 connections, and the
# figure wanted is what the pending cancels hold once every POST is answered.
PENDING_CONFIG: dict[str, Any] = {
    "ack_timeout": 600.0,
    "drain_timeout": 1.0,
    "max_concurrent_requests": 10,
}


def _top_lines(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[str]:
    stats = after.compare_to(before, "lineno")
    lines = []
    for stat in stats[:10]:
        frame = stat.traceback[0]
        name = frame.filename.split("site-packages/")[-1].replace(str(_root()), "")
        lines.append(
            f"{stat.size_diff / 1024:9.1f} KiB {stat.count_diff:+7d} blocks  "
            f"{name.lstrip('/')}:{frame.lineno}"
        )
    return lines


def _root() -> str:
    from bench._common import ROOT

    return str(ROOT)


async def _pending_pass(
    kind: str, base_url: str, user: str, handles: Handles, pending: int, traced: bool
) -> dict[str, Any]:
    admin = Admin(base_url)
    side = make_side(kind, base_url, user, **PENDING_CONFIG)
    await side.start()
    await side.load_device()
    await run_once(side, handles, 300, 10)  # warm every path and the connection pool
    held_before = (await admin.stats())["held_notifications"]
    gc.collect()
    before_snapshot = None
    if traced:
        tracemalloc.start()
        before_snapshot = tracemalloc.take_snapshot()
    rss_before = rss_bytes()
    await admin.fault("hold_notifications")
    started = time.perf_counter()
    outstanding = [side.submit(handles.take()) for _ in range(pending)]
    submit_seconds = time.perf_counter() - started
    await admin.wait_held(held_before + pending, timeout=600)
    accepted_seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)  # the last answers reach the client
    result: dict[str, Any] = {
        "pending": pending,
        "submit_seconds": submit_seconds,
        "all_accepted_seconds": accepted_seconds,
    }
    if before_snapshot is not None:
        after_snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        diff = after_snapshot.compare_to(before_snapshot, "filename")
        result["traced_mb"] = sum(stat.size_diff for stat in diff) / MB
        result["traced_top"] = _top_lines(before_snapshot, after_snapshot)
    else:
        result["rss_mb"] = (rss_bytes() - rss_before) / MB
    if isinstance(side, PluginSide):
        result["plugin_pending_count"] = side.plugin.pending_count
    # Close first: the held outcomes are then published to nobody when released.
    await side.aclose(drain=False)
    await admin.fault("release_notifications")
    await admin.aclose()
    del outstanding
    return result


async def pending(
    kind: str, base_url: str, user: str, first_handle: int, count: int, pending: int
) -> dict[str, Any]:
    """RSS, then traced allocations, each with ``pending`` cancels pending.

    Two passes in one fresh process: RSS first, without tracemalloc (whose own tables and
    effect on the allocator would blur it), then the same again with tracemalloc on.
    """
    handles = Handles(first_handle, count)
    untraced = await _pending_pass(kind, base_url, user, handles, pending, traced=False)
    traced = await _pending_pass(kind, base_url, user, handles, pending, traced=True)
    return {**untraced, **{key: value for key, value in traced.items() if "traced" in key}}


async def drift(
    kind: str,
    base_url: str,
    user: str,
    first_handle: int,
    count: int,
    low: int,
    high: int,
    step: int,
    plugin_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """RSS every ``step`` completed cancels; the drift from ``low`` to ``high``.

    ``plugin_config`` (GWSConfig fields) changes the plugin's settings: a shorter
    ``ack_timeout``/``request_timeout`` shortens the window in which the plugin keeps what it
    knows of finished requests (``late_window``, the outcome bound), to tell that window
    filling up from a leak."""
    handles = Handles(first_handle, count)
    side = make_side(kind, base_url, user, **(plugin_config or {}))
    await side.start()
    await side.load_device()
    samples: list[tuple[int, float]] = [(0, rss_bytes() / MB)]
    done = 0
    started = time.perf_counter()
    while done < high:
        chunk = min(step, high - done)
        await run_once(side, handles, chunk, 10)
        done += chunk
        samples.append((done, rss_bytes() / MB))
    elapsed = time.perf_counter() - started
    await side.aclose()
    rss = dict(samples)
    if low not in rss:
        raise ValueError("low must be a multiple of step")
    return {
        "low": low,
        "high": high,
        "rss_low_mb": rss[low],
        "rss_high_mb": rss[high],
        "drift_pct": (rss[high] - rss[low]) / rss[low] * 100,
        "samples": samples,
        "cancels_per_s": high / elapsed,
    }
