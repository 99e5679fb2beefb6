"""The plugin's background tasks, and closing steps that a cancellation cannot cut short."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ._dispatcher import (
    cancelled_by_plugin,
    cancelled_from_outside,
    safe_log,
    take_back_cancellation,
)
from ._log import get_logger

__all__ = ["BackgroundTasks", "run_to_the_end", "to_the_end"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


async def to_the_end(close: Callable[[], Awaitable[None]], what: str) -> None:
    """One step of the close: a plain ``task.cancel()`` from outside that cuts it short (or
    a cancelled task of the CometD client it awaits) does not stop the steps after it."""
    try:
        await close()
    except asyncio.CancelledError:
        if cancelled_by_plugin():
            raise
        take_back_cancellation(what)


async def run_to_the_end(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``make()`` in a task of its own and wait for it: no cancellation of the calling
    task (anyio's, if shielded, or a plain asyncio ``task.cancel()``) can cut it short. A
    plain cancellation received meanwhile is raised once it is done; so is its error."""
    cancelled = False
    loop = asyncio.get_running_loop()
    for _ in range(3):  # a task cancelled from outside before it ran is started again
        closer = loop.create_task(make())
        while not closer.done():
            try:
                await asyncio.wait((closer,))
            except asyncio.CancelledError:
                cancelled = True  # the host's: raised below, after the close
        if not closer.cancelled():
            break
    if closer.cancelled():
        safe_log(logger.error, "plugin_close_cut_short", attempts=3)
    error = None if closer.cancelled() else closer.exception()
    if error is not None:
        raise error
    if cancelled:
        raise asyncio.CancelledError


class BackgroundTasks:
    """A task group entered by one task, whose tasks each run in a shielded scope of their
    own: the host's ``async with`` body runs inside the group's scope, so the plugin never
    cancels that scope, only its tasks' (:meth:`stop`). Each task is named
    ``<function> in <owner_name>._guarded``."""

    def __init__(self, owner_name: str) -> None:
        self._owner_name = owner_name
        self._tg: TaskGroup | None = None
        self._owner: int | None = None
        self._scopes: list[anyio.CancelScope] = []

    @property
    def entered(self) -> bool:
        return self._tg is not None

    async def enter(self) -> None:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._owner = anyio.get_current_task().id

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start a plain task in the group (one that ends by itself)."""
        assert self._tg is not None
        self._tg.start_soon(function, *args)

    def spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a background task in a scope of its own. A task that raises is logged and
        does not take the host's task down."""
        assert self._tg is not None
        # Shielded: an anyio cancellation of the host's scopes does not reach the plugin's
        # tasks; they stop when the plugin stops them (aclose), after the last outcome.
        scope = anyio.CancelScope(shield=True)
        self._scopes.append(scope)
        name = getattr(function, "__qualname__", repr(function))
        self._tg.start_soon(
            self._guarded,
            name,
            scope,
            function,
            *args,
            name=f"{name} in {self._owner_name}._guarded",
        )

    async def _guarded(
        self,
        name: str,
        scope: anyio.CancelScope,
        function: Callable[..., Awaitable[Any]],
        *args: Any,
    ) -> None:
        with scope:
            while True:
                try:
                    await function(*args)
                    return
                except asyncio.CancelledError:
                    if cancelled_by_plugin():
                        raise  # the plugin stops it
                    if not cancelled_from_outside():
                        # Raised by something it awaited, not a cancellation of this task.
                        safe_log(logger.exception, "background_task_crashed", task=name)
                        return
                    # A plain task.cancel() from outside (a host cancelling every task):
                    # the plugin's tasks stop when the plugin stops them. Start it again.
                    take_back_cancellation(name)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:  # never into the task group: its scope is the host's
                    safe_log(logger.exception, "background_task_crashed", task=name)
                    return

    def stop(self) -> None:
        """Cancel every task started with :meth:`spawn`."""
        for scope in self._scopes:
            scope.cancel()

    async def exit(self) -> None:
        """Exit the task group from the task that entered it, once its tasks are stopped
        (the host's own cancellation, if any, is raised here); from another task, nothing."""
        tg = self._tg
        if tg is None or self._owner != anyio.get_current_task().id:
            return
        self._tg = None
        self.stop()
        await tg.__aexit__(None, None, None)
