"""Section 2: fan-out cost per event, the isolated dispatcher against a bare pluggy call.

``k`` implementations of ``on_user_event`` (all plain functions, or all ``async def``) are
registered in a fresh plugin manager. Per event:

* bare, sync:  ``pm.hook.on_user_event(event=event)``
* bare, async: the same call, then each returned coroutine awaited in turn (pluggy does not
  await them; without this the implementations would not run at all)
* isolated:    ``await HookDispatcher(pm).dispatch("on_user_event", event=event)``, as the
  plugin fires hooks: each implementation on its own, exceptions contained, ``async def``
  ones awaited within ``hook_timeout``.

Both run in the same event loop; measurements alternate and the median is quoted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Any

import pluggy

from bench._common import median
from gws_outbound_plugin import (
    EventMetrics,
    GWSConfig,
    HookDispatcher,
    UserEvent,
    hookimpl,
    make_plugin_manager,
)

_DEFAULTS = GWSConfig(base_url="http://127.0.0.1:1", username="u", password="p")


class _Sync:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self.calls += 1


class _Async:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    async def on_user_event(self, event: UserEvent) -> None:
        self.calls += 1


def sample_event() -> UserEvent:
    user_data = MappingProxyType(
        {
            "GSW_USER_EVENT": "RecordCancelAcknowledge",
            "GSW_APPLICATION_ID": 700,
            "GSW_RECORD_HANDLE": 1,
            "GSW_CALLING_LIST": "BenchList",
            "GSW_CAMPAIGN_NAME": "BenchCampaign",
        }
    )
    return UserEvent(
        user_event="RecordCancelAcknowledge",
        user_data=user_data,
        device_id="d-1",
        metrics=EventMetrics(1, 2, 3),
        channel="/me/internal",
    )


def _manager(count: int, kind: str) -> tuple[pluggy.PluginManager, list[Any]]:
    pm = make_plugin_manager(load_entrypoints=False)
    plugins: list[Any] = [(_Async if kind == "async" else _Sync)() for _ in range(count)]
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"impl{index}")
    return pm, plugins


async def _time_loop(loop_body: Callable[[int], Awaitable[None]], iterations: int) -> float:
    started = time.perf_counter()
    await loop_body(iterations)
    return (time.perf_counter() - started) / iterations


async def measure(count: int, kind: str, repeats: int, budget: float) -> dict[str, Any]:
    pm, plugins = _manager(count, kind)
    event = sample_event()
    hook = pm.hook.on_user_event
    dispatcher = HookDispatcher(
        pm,
        hook_timeout=_DEFAULTS.hook_timeout,
        slow_hook_warning=_DEFAULTS.slow_hook_warning,
    )

    async def bare_sync(iterations: int) -> None:
        for _ in range(iterations):
            hook(event=event)

    async def bare_async(iterations: int) -> None:
        for _ in range(iterations):
            for coroutine in hook(event=event):
                await coroutine

    async def isolated(iterations: int) -> None:
        dispatch = dispatcher.dispatch
        for _ in range(iterations):
            await dispatch("on_user_event", event=event)

    bare = bare_async if kind == "async" else bare_sync
    # Calibrate the iteration count so one measurement takes about `budget` seconds.
    per_event = await _time_loop(isolated, 200)
    iterations = max(200, int(budget / max(per_event, 1e-7)))
    bare_times: list[float] = []
    isolated_times: list[float] = []
    for _ in range(repeats):  # A B A B ...
        bare_times.append(await _time_loop(bare, iterations))
        isolated_times.append(await _time_loop(isolated, iterations))
    if any(plugin.calls == 0 for plugin in plugins):
        raise RuntimeError("an implementation was never called")
    bare_us = median(bare_times) * 1e6
    isolated_us = median(isolated_times) * 1e6
    return {
        "implementations": count,
        "kind": kind,
        "iterations": iterations,
        "repeats": repeats,
        "bare_us_per_event": bare_us,
        "isolated_us_per_event": isolated_us,
        "bare_us_per_impl": bare_us / count,
        "isolated_us_per_impl": isolated_us / count,
        "ratio": isolated_us / bare_us,
    }


async def run(repeats: int, budget: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in ("sync", "async"):
        for count in (1, 10, 50):
            results[f"{kind}-{count}"] = await measure(count, kind, repeats, budget)
    return results


if __name__ == "__main__":  # quick look: python -m bench._fanout
    import json

    print(json.dumps(asyncio.run(run(21, 0.02)), indent=1))
