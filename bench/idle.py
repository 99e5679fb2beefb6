"""What an idle session costs its host's event loop (a measuring aid).

    python -m bench.idle                     # 100 plugin sessions, idle for 40 s
    python -m bench.idle --kind raw -n 1000 --seconds 20

``n`` sessions of one side (``bench/_sides.py``) in this process against the simulator in
its own process, all started, then left alone: after ``--settle`` seconds, for
``--seconds``, the process's CPU time and every callback the loop runs (``Handle._run``,
timers included) are counted, and the callbacks attributed (a task's step by its coroutine
and where it waits, anything else by its function). The simulator holds each long poll for
its ``connect_timeout`` (30 s by default): a window shorter than that may see no re-poll.

Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from asyncio import events
from typing import Any

from bench._sides import make_side
from bench._sim import SimulatorProcess


def _where(callback: Any) -> str:
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro: Any = owner.get_coro()
        name = getattr(coro, "__qualname__", repr(coro))
        while getattr(getattr(coro, "cr_await", None), "__qualname__", None) is not None:
            coro = coro.cr_await
        return f"task {name} @ {coro.__qualname__}"
    if isinstance(owner, asyncio.Future):
        return f"future callback {getattr(callback, '__name__', '?')}"
    return str(getattr(callback, "__qualname__", repr(callback)))[:90]


class _Counter:
    """Counts the callbacks the loop runs while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.calls: collections.Counter[str] = collections.Counter()
        self.timers = 0

    def install(self) -> None:
        run = events.Handle._run
        counter = self

        def counted(handle: events.Handle) -> None:
            if counter.on:
                counter.calls[_where(handle._callback)] += 1  # type: ignore[attr-defined]
                counter.timers += isinstance(handle, events.TimerHandle)
            run(handle)

        events.Handle._run = counted  # type: ignore[method-assign]


async def _measure(
    kind: str, base_url: str, users: list[str], settle: float, seconds: float
) -> None:
    counter = _Counter()
    counter.install()
    sides = [make_side(kind, base_url, user) for user in users]
    stop = asyncio.Event()
    ready = 0

    async def hold(side: Any) -> None:
        nonlocal ready
        await side.start()
        ready += 1
        await stop.wait()
        await side.aclose()

    started = time.perf_counter()
    holders = [asyncio.create_task(hold(side)) for side in sides]
    while ready < len(sides):
        await asyncio.sleep(0.1)
        if any(h.done() for h in holders):
            raise RuntimeError("a session failed to start")
    print(f"{len(sides)} {kind} sessions ready in {time.perf_counter() - started:.1f} s")
    await asyncio.sleep(settle)
    cpu, wall = time.process_time(), time.perf_counter()
    counter.on = True
    await asyncio.sleep(seconds)
    counter.on = False
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(sides)
    total = sum(counter.calls.values())
    print(
        f"idle for {wall:.1f} s: CPU {cpu * 1e6 / wall / n:.1f} us per session per second; "
        f"callbacks {total / wall / n:.3f} per session per second "
        f"({counter.timers / wall / n:.3f} of them timers)"
    )
    for where, count in counter.calls.most_common(12):
        print(f"  {count / wall / n:8.3f}  {where}")
    stop.set()
    await asyncio.gather(*holders, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--kind", choices=("plugin", "raw"), default="plugin")
    parser.add_argument("-n", type=int, default=100, help="sessions (default 100)")
    parser.add_argument("--seconds", type=float, default=40.0, help="the window (default 40)")
    parser.add_argument("--settle", type=float, default=3.0, help="idle before it (default 3)")
    args = parser.parse_args()
    users = [f"idle{index:04d}" for index in range(args.n)]
    with SimulatorProcess(users, 10) as sim:
        asyncio.run(_measure(args.kind, sim.base_url, users, args.settle, args.seconds))


if __name__ == "__main__":
    main()
