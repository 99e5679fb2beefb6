"""The outcome pump: hook calls, one at a time, in the order the engine decided them.

After the hook calls of an outcome the engine queues the release of its ticket, so in the
normal case the host hears of an outcome after the plugins did. The engine also arms a timer
that releases the ticket ``hook_timeout`` after the decision, whatever the pump is doing: no
plugin, however slow or broken, holds an outcome back from the host for longer. A hook that
awaits a ticket gets the decided outcome at once (its task is a hook task, see ``_ticket``).

No cancellation but the plugin's own stops the pump: it runs in a shielded scope (an anyio
cancellation of the host's scopes does not reach it), takes back a plain asyncio
``task.cancel()`` from outside (a host cancelling every task at shutdown, a hook's stray
timer) and goes on, and each ``async def`` hook call runs in a task of its own (see
``_dispatcher``). It is stopped by :meth:`OutcomePump.close`, which first makes the calls
still queued.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Any, Final

import anyio

from ._dispatcher import (
    HookDispatcher,
    cancelled_from_outside,
    safe_log,
    steadfast,
    take_back_cancellation,
)
from ._log import get_logger

__all__ = ["OutcomePump"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

# (hook name, arguments), or (None, {"call": function}) for a step between hook calls.
_HookCall = tuple[str | None, dict[str, Any]]
#: After the close budget, the rest of the queue is still called, but ``async def``
#: implementations get this long each.
_SHUTDOWN_HOOK_TIMEOUT: Final = 0.05
_LAZY: Final = "\x00lazy"


class OutcomePump:
    def __init__(self, dispatcher: HookDispatcher) -> None:
        self._dispatcher = dispatcher
        self._queue: collections.deque[_HookCall] = collections.deque()
        # asyncio events (the engine is asyncio-only): they can be made outside the loop, so a
        # plugin can be constructed in one thread and entered on another's loop.
        self._wake = asyncio.Event()
        self._woken = False  # whether _wake is set (read without a call per hook call queued)
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._idle_now = True  # whether _idle is set
        self._busy = False
        self._progress = asyncio.Event()
        self._progress_wanted = False  # whether wait_below waits for _progress

    @property
    def queued(self) -> int:
        return len(self._queue) + (1 if self._busy else 0)

    def emit(self, hook: str, **kwargs: Any) -> None:
        """Queue a hook call (no checkpoint, never blocks, never raises)."""
        self._push((hook, kwargs))

    def emit_lazy(self, hook: str, argument: str, build: Callable[[], Any]) -> None:
        """Queue a hook call whose payload is built only if the hook has implementations
        when its turn comes (most hosts implement the cancel hooks, not the generic ones)."""
        self._push((hook, {_LAZY: (argument, build)}))

    def emit_call(self, call: Callable[[], None]) -> None:
        """Run ``call()`` once every hook call queued before it was made."""
        self._push((None, {"call": call}))

    def _push(self, item: _HookCall) -> None:
        """Queue ``item`` and wake the pump."""
        self._queue.append(item)
        if self._idle_now:  # each event set or cleared only when it changes: most calls
            self._idle_now = False  # are queued while the pump is awake already
            self._idle.clear()
        if not self._woken:
            self._woken = True
            self._wake.set()

    async def run(self) -> None:
        self._scope = anyio.CancelScope(shield=True)
        if self._cancelled:
            self._scope.cancel()
        with self._scope:
            while True:
                while self._queue:
                    hook, kwargs = self._queue.popleft()
                    if hook is None:
                        try:
                            kwargs["call"]()
                        except Exception:
                            safe_log(logger.exception, "outcome_step_failed")
                        continue
                    lazy = kwargs.get(_LAZY)
                    if lazy is not None:
                        if not self._dispatcher.has_implementations(hook):
                            continue
                        try:
                            kwargs = {lazy[0]: lazy[1]()}
                        except Exception:
                            safe_log(logger.exception, "hook_payload_failed", hook=hook)
                            continue
                    self._busy = True
                    try:
                        await self._dispatcher.dispatch(hook, **kwargs)
                    except asyncio.CancelledError:
                        if not cancelled_from_outside():
                            raise  # the plugin stops the pump
                        take_back_cancellation("outcome pump")
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException:  # the dispatcher isolates plugins; this is our bug
                        safe_log(logger.exception, "hook_dispatch_crashed", hook=hook)
                    finally:
                        self._busy = False
                    if self._progress_wanted:
                        self._progress_wanted = False
                        self._progress.set()
                self._idle_now = True
                self._idle.set()
                if self._progress_wanted:  # the last calls were skipped (lazy) or steps
                    self._progress_wanted = False
                    self._progress.set()
                if self._closing:
                    return
                await steadfast(self._wake.wait, "outcome pump")
                self._woken = False
                self._wake.clear()

    async def wait_idle(self, timeout: float | None = None, *, own_task: bool = False) -> bool:
        """Wait until every queued hook call was made; False on timeout. ``own_task``: in
        the plugin's own closing task, a plain ``task.cancel()`` does not cut the wait."""
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            if own_task:
                await steadfast(self._idle.wait, "closing")
            else:
                await self._idle.wait()
            return True
        return False

    async def wait_below(self, limit: int) -> None:
        """Wait until at most ``limit`` hook calls are queued (or the pump is closing)."""
        while self.queued > limit and not self._closing:
            self._progress.clear()
            self._progress_wanted = True
            await self._progress.wait()

    async def close(self, budget: float) -> None:
        """Deliver what is queued within ``budget`` seconds; after that the rest is still
        called, each ``async def`` implementation bounded by a token timeout, then stop."""
        self._closing = True
        self._woken = True
        self._wake.set()
        self._progress.set()
        if await self.wait_idle(budget, own_task=True):
            return
        left = len(self._queue)
        safe_log(
            logger.warning,
            "hook_calls_hurried_at_close",
            queued=left,
            budget=budget,
            hook_timeout=_SHUTDOWN_HOOK_TIMEOUT,
        )
        current_timeout = self._dispatcher.hook_timeout
        self._dispatcher.hook_timeout = _SHUTDOWN_HOOK_TIMEOUT
        # The current call keeps its own deadline (at most hook_timeout); the rest is quick.
        # A hook that shields itself from its timeout is not waited for beyond that.
        left_after = current_timeout + _SHUTDOWN_HOOK_TIMEOUT * (len(self._queue) + 1)
        if await self.wait_idle(left_after, own_task=True):
            return
        dropped = len(self._queue)
        self._queue.clear()
        safe_log(logger.error, "hook_calls_dropped_at_close", dropped=dropped)
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()
