"""Expiries with one delay per kind, in a queue with one loop timer for its head.

The engine's per-request timers (deadline, acknowledgement, merge window) and each ticket's
latest release have one length per kind; a queue per kind costs one loop timer for all of them
instead of one each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any, Final

from ._log import get_logger

__all__ = ["DeadlineQueue"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


class DeadlineQueue:
    """Expiries that all have the same delay, in the order they were added (so in order of
    expiry), with one loop timer for the first. Each item fires ``expire(item)`` once, unless
    it was discarded (or added again) before: each request's deadline, acknowledgement and
    merge timers, each ticket's latest release. Cheaper than one loop timer per item, which
    every request would otherwise pay. Discarded items leave the queue at once from its head,
    else all at once when they are most of it (so it holds about what is live).
    """

    _COMPACT_AT: Final = 256

    def __init__(self, expire: Callable[[Any], None]) -> None:
        self._expire = expire
        self._queue: collections.deque[tuple[float, Any]] = collections.deque()
        self._due: dict[Any, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Entries held, discarded ones not yet dropped included."""
        return len(self._queue)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add(self, item: Any, delay: float) -> None:
        assert self._loop is not None
        when = self._loop.time() + delay
        if self._queue and when < self._queue[-1][0]:
            when = self._queue[-1][0]  # the same delay: never earlier than the last one
        self._queue.append((when, item))
        self._due[item] = when
        if self._handle is None:
            self._handle = self._loop.call_at(when, self._fire)

    def discard(self, item: Any) -> None:
        due, queue = self._due, self._queue
        if due.pop(item, None) is None:
            return
        while queue:
            when, head = queue[0]
            if due.get(head) == when:
                break
            queue.popleft()  # discarded at the head (the usual case: first in, first out)
        held = len(queue)
        if held > self._COMPACT_AT and held > 2 * len(due):
            live = [entry for entry in queue if due.get(entry[1]) == entry[0]]
            queue.clear()  # in place: _fire may be iterating over it (an expiry discards)
            queue.extend(live)

    def clear(self) -> None:
        self._queue.clear()
        self._due.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        assert self._loop is not None
        self._handle = None
        now = self._loop.time()
        queue, due = self._queue, self._due
        while queue and queue[0][0] <= now:
            when, item = queue.popleft()
            if due.get(item) == when:
                del due[item]
                try:
                    self._expire(item)
                except Exception:  # one failing expiry must not stop the others
                    with contextlib.suppress(Exception):  # a host's log pipeline may raise
                        logger.exception("deadline_expiry_failed")
        while queue and due.get(queue[0][1]) != queue[0][0]:
            queue.popleft()  # discarded
        if self._handle is not None:  # an expiry added to this queue: one timer, for the head
            self._handle.cancel()
            self._handle = None
        if queue:
            self._handle = self._loop.call_at(queue[0][0], self._fire)
