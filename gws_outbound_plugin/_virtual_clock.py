"""An asyncio event loop on virtual time: waiting costs no wall time.

The loop's :meth:`~asyncio.AbstractEventLoop.time` is a number of its own. Whenever the loop
would sleep until its next timer with nothing ready to run, the clock jumps to that timer
instead (like trio's ``MockClock`` with ``autojump_threshold=0``): ``anyio.sleep(60)``,
``move_on_after``, ``loop.call_later`` and every timeout of the plugin (``ack_timeout``,
``merge_window``, ``hook_timeout``, ...) take as long as the work around them. Real file
descriptors still work (the loop's self-pipe, so ``call_soon_threadsafe`` from another thread
wakes it), but a loop that waits on a real socket or thread while a timer is pending jumps to
the timer first: use it with in-memory transports such as ``testing.FakeGWS``, not with a
server on a socket.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any

__all__ = ["VirtualClockLoop", "virtual_clock_loop"]


class _AutojumpSelector(selectors.BaseSelector):
    """The platform's selector, whose ``select(timeout)`` moves the loop's clock by
    ``timeout`` instead of waiting, when nothing is ready within ``threshold`` real seconds."""

    def __init__(self, loop: VirtualClockLoop, threshold: float) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop
        self._threshold = threshold

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer: only a file descriptor (or a thread) can wake it
            return self._inner.select(None)
        ready = self._inner.select(min(timeout, self._threshold))
        if not ready and timeout > 0:
            self._loop.advance(timeout)
        return ready

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock jumps to the next timer when the loop is idle.

    :param autojump_threshold: real seconds the loop waits for a file descriptor before
        jumping (``0``: jump at once, the default).
    """

    def __init__(self, autojump_threshold: float = 0.0) -> None:
        self._virtual_now = 0.0
        super().__init__(_AutojumpSelector(self, autojump_threshold))
        if autojump_threshold < 0:
            self.close()
            raise ValueError("autojump_threshold must be >= 0")

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (the timers now due run at the next
        iteration of the loop)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._virtual_now += seconds


def virtual_clock_loop() -> VirtualClockLoop:
    """A new :class:`VirtualClockLoop` (an event loop factory: for ``asyncio.Runner``,
    ``asyncio.run(..., loop_factory=...)`` on Python 3.12+, or anyio's pytest plugin:
    ``@pytest.fixture def anyio_backend(): return ("asyncio", {"loop_factory":
    virtual_clock_loop})``)."""
    return VirtualClockLoop()
