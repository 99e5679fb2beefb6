"""Section 1: end-to-end cancel -> acknowledgement, plugin against raw, alternating runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import Handles, median, percentile, quartiles
from bench._sides import CarefulRawSide, PluginSide, RawSide, Side
from bench._sim import SimulatorProcess

USERS = ("bench-plugin", "bench-raw", "bench-careful")


async def run_once(side: Side, handles: Handles, count: int, concurrency: int) -> dict[str, float]:
    """``count`` cancels by ``concurrency`` closed-loop workers; throughput and latency."""
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await side.cancel(handles.take()))

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "cancels_per_s": count / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_us_per_cancel": cpu / count * 1e6,
    }


def records_needed(counts: dict[int, tuple[int, int]], warmup: int) -> int:
    return sum(len(USERS) * (repeats * n + warmup) for n, repeats in counts.values()) + 100


async def run(
    sim: SimulatorProcess, handles: Handles, counts: dict[int, tuple[int, int]], warmup: int
) -> dict[str, Any]:
    """``counts``: concurrency -> (cancels per run, A/B/C rounds).

    Three sides in turn: the plugin, the naive raw client and the careful raw client, in
    that order in even rounds and in the reverse order in odd ones (A B C, C B A, ...: each
    side runs first, and right after the naive client, equally often; with the plugin
    always first, a c=1 section gave it 0.77x-0.83x the careful client's throughput against
    0.85x-0.96x with the order reversed). Each side's figures are the medians over its
    runs. Each ratio is the median of the per-round ratios (the plugin's run over the other
    side's run in the same round), which cancels the slow drifts of a shared machine better
    than a ratio of medians; its quartiles are kept too.
    """
    plugin = PluginSide(sim.base_url, USERS[0])
    raw = RawSide(sim.base_url, USERS[1])
    careful = CarefulRawSide(sim.base_url, USERS[2])
    sides: tuple[Side, ...] = (plugin, raw, careful)
    for side in sides:
        await side.start()
        await side.load_device()
    results: dict[str, Any] = {}
    try:
        for concurrency, (count, repeats) in counts.items():
            for side in sides:
                await run_once(side, handles, warmup, concurrency)
            runs: dict[str, list[dict[str, float]]] = {side.name: [] for side in sides}
            sim_cpu: dict[str, float] = dict.fromkeys(runs, 0.0)
            for round_ in range(repeats):  # A B C, C B A, A B C, ...
                for side in sides if round_ % 2 == 0 else sides[::-1]:
                    before = sim.cpu_seconds()
                    runs[side.name].append(await run_once(side, handles, count, concurrency))
                    sim_cpu[side.name] += sim.cpu_seconds() - before
            entry: dict[str, Any] = {"n": count, "repeats": repeats, "runs": runs}
            for name, side_runs in runs.items():
                entry[name] = {key: median([run[key] for run in side_runs]) for key in side_runs[0]}
                entry[name]["sim_cpu_us_per_cancel"] = sim_cpu[name] / (count * repeats) * 1e6
            for label, other in (("paired_ratio", "raw"), ("paired_ratio_careful", "careful")):
                entry[label] = {}
                for key in runs["plugin"][0]:
                    pairs = [
                        a[key] / b[key] for a, b in zip(runs["plugin"], runs[other], strict=True)
                    ]
                    q1, q3 = quartiles(pairs)
                    entry[label][key] = {"median": median(pairs), "q1": q1, "q3": q3}
            results[str(concurrency)] = entry
    finally:
        for side in sides:
            await side.aclose()
    if plugin.clock.failures:
        raise RuntimeError(f"{len(plugin.clock.failures)} plugin cancels failed")
    return results
