"""Section 3: memory with 10,000 cancels pending, and RSS drift over completed cancels.

Runs in a fresh worker process per side (see ``bench._worker``) so that RSS deltas are not
blurred by what earlier sections allocated and freed.

Pending: the simulator holds every outcome back (``hold_notifications``); the side submits
``pending`` cancels at once (the plugin with ``OutboundPlugin.submit``, raw through a queue
served by workers, as the plugin's own), waits until GWS accepted every POST, and the RSS
delta is taken with every cancel pending; a second pass does the same with tracemalloc on.

Drift: cancels complete at concurrency 10 with the default configuration (as a host runs
it); RSS is sampled every ``step`` completions. Two figures:

* window full (the target): the plugin keeps what it knows of each finished request for
  ``late_window`` (its outcome bound; facts live up to 1.25 times that, dropped a quarter
  window at a time), so its memory grows until that window is full, by how many requests
  finish in it, and then must stay flat. ``low`` is the first sample taken ``settle_s``
  seconds (1.5 times the outcome bound) after the first cancel, ``high`` the sample
  ``span`` completions later. Both sides use the same ``settle_s``. A leak of even 100 bytes
  per request shows at 40,000 requests; the window filling does not.
* by count (for reference): from ``low`` to ``high`` completions, a span that holds the
  window filling up when the run is fast (at 500 cancels/s, 50,000 cancels take 100 s,
  less than 1.25 times the default 71 s bound).

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
    settle_s: float | None = None,
    span: int = 40_000,
) -> dict[str, Any]:
    """RSS every ``step`` completed cancels; the drift from ``low`` to ``high`` and, with
    ``settle_s``, over ``span`` cancels from the first sample ``settle_s`` seconds in.

    ``plugin_config`` (GWSConfig fields) changes the plugin's settings: a shorter
    ``ack_timeout``/``request_timeout`` shortens the window in which the plugin keeps what it
    knows of finished requests (``late_window``, the outcome bound), to tell that window
    filling up from a leak."""
    handles = Handles(first_handle, count)
    side = make_side(kind, base_url, user, **(plugin_config or {}))
    await side.start()
    await side.load_device()
    samples: list[tuple[int, float, float]] = [(0, rss_bytes() / MB, 0.0)]
    done = 0
    settled: int | None = None
    started = time.perf_counter()
    while done < high or (settle_s is not None and (settled is None or done < settled + span)):
        await run_once(side, handles, step, 10)
        done += step
        seconds = time.perf_counter() - started
        samples.append((done, rss_bytes() / MB, round(seconds, 1)))
        if settle_s is not None and settled is None and seconds >= settle_s:
            settled = done
    elapsed = time.perf_counter() - started
    await side.aclose()
    rss = {count: mb for count, mb, _ in samples}
    if low not in rss or high not in rss:
        raise ValueError("low and high must be multiples of step")
    result: dict[str, Any] = {
        "low": low,
        "high": high,
        "rss_low_mb": rss[low],
        "rss_high_mb": rss[high],
        "drift_pct": (rss[high] - rss[low]) / rss[low] * 100,
        "samples": samples,
        "cancels_per_s": done / elapsed,
    }
    if settled is not None:
        result["window_full"] = {
            "settle_s": settle_s,
            "low": settled,
            "high": settled + span,
            "rss_low_mb": rss[settled],
            "rss_high_mb": rss[settled + span],
            "drift_pct": (rss[settled + span] - rss[settled]) / rss[settled] * 100,
        }
    return result
