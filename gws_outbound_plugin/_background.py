"""The plugin's background tasks, and closing steps that a cancellation cannot cut short."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio

from ._dispatcher import (
    TAKEN_BACK_WATCH,
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
    plain cancellation received meanwhile is raised once it is done; so is its error.

    A host cancelling every task of its loop reaches that task too, maybe before it ran (a
    shutdown routine cancelling everything again at each loop iteration): it is started
    again, as often as it takes, until it ran to its end (each start costs the host one more
    round of cancelling everything)."""
    cancelled = False
    loop = asyncio.get_running_loop()
    attempts = 0
    while True:
        attempts += 1
        coroutine = make()
        closer = loop.create_task(coroutine)
        while not closer.done():
            try:
                await asyncio.wait((closer,))
            except asyncio.CancelledError:
                cancelled = True  # the host's: raised below, after the close
        if not closer.cancelled():
            break
        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
            coroutine.close()  # cancelled before it ran: no "never awaited" warning
        if attempts == 3:
            safe_log(logger.warning, "plugin_close_cancelled_repeatedly", attempts=attempts)
    error = closer.exception()
    if error is not None:
        raise error
    if cancelled:
        raise asyncio.CancelledError


class BackgroundTasks:
    """The plugin's tasks, tied to the task that entered the plugin: each runs in a shielded
    scope of its own (:meth:`spawn`), the plugin stops them (:meth:`stop`) and the entering
    task waits for them on leaving (:meth:`exit`, structured concurrency). Each task is
    named ``<function> in <owner_name>._guarded``.

    They are plain asyncio tasks, not an anyio task group's: a task cancelled before it took
    its first step (a host cancelling every task of its loop right after the plugin started
    one) never runs its body, so it cannot take the cancellation back; in an anyio task
    group, such a child ending cancelled cancels the group's scope, the host's ``async
    with`` body with it. Here it is started again instead."""

    def __init__(
        self, owner_name: str, *, orphaned: Callable[[], asyncio.Event | None] | None = None
    ) -> None:
        self._owner_name = owner_name
        self._entered = False
        self._owner: asyncio.Task[Any] | None = None
        self._scopes: list[anyio.CancelScope] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._orphaned = orphaned
        """Called when a task of :meth:`spawn` takes back a plain ``task.cancel()`` while
        the task that entered has ended: nothing is left to stop the tasks (see
        :meth:`_taken_back`). Returns the event the stopped tasks wait for before they end,
        or None."""
        self._linger: asyncio.Event | None = None

    @property
    def entered(self) -> bool:
        return self._entered

    async def enter(self) -> None:
        self._owner = asyncio.current_task()
        self._entered = True

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start a plain task (one that ends by itself), waited for by :meth:`exit`."""
        assert self._entered
        name = getattr(function, "__qualname__", repr(function))
        self._launch(lambda: function(*args), name, None)

    def spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a background task in a scope of its own. A task that raises is logged and
        does not take the host's task down; one cancelled from outside before it even ran (a
        POST worker added for a request, the tasks started with the plugin) is started
        again."""
        assert self._entered
        # Shielded: an anyio cancellation of the host's scopes does not reach the plugin's
        # tasks; they stop when the plugin stops them (aclose), after the last outcome.
        scope = anyio.CancelScope(shield=True)
        self._scopes.append(scope)
        name = getattr(function, "__qualname__", repr(function))
        self._launch(lambda: self._guarded(name, scope, function, *args), name, scope)

    def start_orphan_close(self, function: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start ``function()`` in a task of its own that nothing waits for (started again
        if cancelled before its first step), even once stopped: the close of a plugin whose
        entering task ended (see :meth:`_taken_back`)."""
        self._launch(function, getattr(function, "__qualname__", "close"), None, force=True)

    def _launch(
        self,
        make: Callable[[], Coroutine[Any, Any, Any]],
        name: str,
        scope: anyio.CancelScope | None,
        *,
        force: bool = False,
    ) -> None:
        if not force and (not self._entered or (scope is not None and scope.cancel_called)):
            return  # stopped meanwhile
        started: list[bool] = []
        task = asyncio.get_running_loop().create_task(
            self._first_step(make, started, lingers=scope is not None),
            name=f"{name} in {self._owner_name}._guarded",
        )
        self._tasks.add(task)
        if scope is not None and self._orphaned is not None:
            TAKEN_BACK_WATCH[task] = self._taken_back

        def ended(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                if not started:  # cancelled before it ran its first step
                    safe_log(logger.info, "plugin_task_cancellation_contained", task=name)
                    self._launch(make, name, scope, force=force)
                return
            error = task.exception()  # asked for: never "Task exception was never retrieved"
            if error is not None and not isinstance(error, KeyboardInterrupt | SystemExit):
                safe_log(  # pragma: no cover - _guarded logs every other error itself
                    logger.error,
                    "background_task_crashed",
                    task=name,
                    exc_info=(type(error), error, error.__traceback__),
                )
            # A KeyboardInterrupt / SystemExit went through the event loop to the host
            # when the task raised it (as asyncio does); nothing to log here.

        task.add_done_callback(ended)

    async def _first_step(
        self, make: Callable[[], Awaitable[Any]], started: list[bool], *, lingers: bool
    ) -> None:
        started.append(True)
        try:
            await make()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            if lingers:
                await self._wait_for_orphan_close()
            raise
        if lingers:
            await self._wait_for_orphan_close()

    def _taken_back(self) -> None:
        """A task of :meth:`spawn` took back a plain ``task.cancel()``. Its tasks run until
        the plugin stops them, which the task that entered does when it leaves (or another
        task calling ``aclose()``). Once that task ended without doing so, a cancellation
        of every task (``asyncio.run`` returning, a host's shutdown) would be taken back for
        good: the host would wait for ever for tasks that stop only when a close nobody is
        left to make comes. The owner is told (once): it closes."""
        owner, orphaned = self._owner, self._orphaned
        if owner is None or orphaned is None or not owner.done() or self._linger is not None:
            return
        self._linger = orphaned()

    async def _wait_for_orphan_close(self) -> None:
        """A task stopped by the close of a plugin whose entering task ended waits until
        that close is done: the host waiting for the tasks it cancelled (``asyncio.run``'s
        last gather) then waits for the close too, and does not close the loop under it."""
        linger = self._linger
        if linger is None:
            return
        with anyio.CancelScope(shield=True):
            while not linger.is_set():
                try:
                    await linger.wait()
                except asyncio.CancelledError:
                    take_back_cancellation("waiting for the close", quiet=True)

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
        """From the task that entered: stop the tasks and wait until every one ended (a
        plain ``task.cancel()`` of the waiting task meanwhile is raised once they have);
        from another task, nothing."""
        if not self._entered or self._owner is not asyncio.current_task():
            return
        self.stop()
        cancelled = False
        with anyio.CancelScope(shield=True):
            while self._tasks:
                try:
                    await asyncio.wait(set(self._tasks))
                except asyncio.CancelledError:
                    cancelled = True
                    self.stop()
        self._entered = False
        if cancelled:
            raise asyncio.CancelledError
