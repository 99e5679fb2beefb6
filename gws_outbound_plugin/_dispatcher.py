"""Calling hook implementations one at a time, each isolated from the others."""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import Any, Final

import anyio
import pluggy
import structlog

__all__ = ["DISPATCHED_HOOKS", "HookDispatcher"]

logger = structlog.get_logger(__name__)

#: The hooks the dispatcher fires (``on_cancel_requested`` is fired by the host).
DISPATCHED_HOOKS: Final = ("on_record_cancel_acknowledged", "on_cancel_failed", "on_user_event")


class HookDispatcher:
    """Fires a hook by calling each implementation on its own.

    pluggy stops a hook call at the first exception and does not await coroutines; here every
    implementation is called in pluggy's order, ``async def`` ones are awaited (bounded by
    ``hook_timeout``), and an exception or timeout is logged with the plugin's name and the
    hook, without reaching the other implementations or the caller.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        *,
        hook_timeout: float = 5.0,
        slow_hook_warning: float = 0.1,
    ) -> None:
        self._pm = pm
        self._hook_timeout = hook_timeout
        self._slow_hook_warning = slow_hook_warning

    async def dispatch(self, hook_name: str, **kwargs: Any) -> None:
        caller = getattr(self._pm.hook, hook_name)
        # get_hookimpls() lists in reverse call order; pluggy calls from the end.
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            await self._call_one(hook_name, impl, kwargs)

    async def _call_one(
        self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]
    ) -> None:
        function = impl.function
        try:
            args = [kwargs[name] for name in impl.argnames]
            if inspect.iscoroutinefunction(function):
                await self._bounded(hook_name, impl, function(*args))
                return
            started = time.perf_counter()
            result = function(*args)
            elapsed = time.perf_counter() - started
            if inspect.isawaitable(result):
                await self._bounded(hook_name, impl, result)
            elif elapsed > self._slow_hook_warning:
                logger.warning(
                    "plugin_hook_blocked_loop",
                    plugin=impl.plugin_name,
                    hook=hook_name,
                    seconds=round(elapsed, 3),
                )
        except Exception:  # a plugin's bug must not reach the others; cancellation passes
            logger.exception("plugin_hook_failed", plugin=impl.plugin_name, hook=hook_name)

    async def _bounded(self, hook_name: str, impl: pluggy.HookImpl, awaitable: Any) -> None:
        with anyio.move_on_after(self._hook_timeout) as scope:
            await awaitable
        if scope.cancelled_caught:
            logger.error(
                "plugin_hook_timed_out",
                plugin=impl.plugin_name,
                hook=hook_name,
                timeout=self._hook_timeout,
            )
