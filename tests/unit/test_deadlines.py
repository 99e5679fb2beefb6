"""DeadlineQueue: expiries of one length with one loop timer, on a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from gws_outbound_plugin._deadlines import DeadlineQueue


class _Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The two calls a DeadlineQueue makes of its loop, on a clock moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(when, callback)
        self.handles.append(handle)
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while True:
            due = [h for h in self.handles if not h.cancelled and h.when <= self.now]
            if not due:
                return
            for handle in due:
                self.handles.remove(handle)
                handle.callback()


def make(expire: Callable[[Any], None]) -> tuple[DeadlineQueue, FakeLoop]:
    loop = FakeLoop()
    queue = DeadlineQueue(expire)
    queue.start(cast(asyncio.AbstractEventLoop, loop))
    return queue, loop


def test_each_item_fires_once_in_order_unless_discarded_or_added_again() -> None:
    fired: list[str] = []
    queue, loop = make(fired.append)
    for item in ("a", "b", "c", "d"):
        queue.add(item, 10.0)
        loop.advance(1.0)
    queue.discard("b")
    queue.add("c", 10.0)  # again: only its new expiry counts
    loop.advance(8.0)  # t=12: a (10) is due
    assert fired == ["a"]
    loop.advance(10.0)  # t=22: d (13) and c (14)
    assert fired == ["a", "d", "c"]
    assert len(queue) == 0
    assert [h for h in loop.handles if not h.cancelled] == []  # no timer left behind


def test_discarded_items_do_not_pile_up() -> None:
    """Items finished before their expiry (the usual case: a request answered before its
    deadline) leave the queue, in order or not, so it holds about what is live."""
    queue, loop = make(lambda item: None)
    live: list[int] = []
    for i in range(10_000):
        queue.add(i, 60.0)
        live.append(i)
        if i % 3 != 0:  # out of order: every third one is kept a while longer
            queue.discard(live.pop())
        if len(live) > 50:
            queue.discard(live.pop(0))
        loop.advance(0.001)
    assert len(live) <= 51
    assert len(queue) <= 2 * 256


def test_an_expiry_may_discard_others_in_the_same_queue() -> None:
    """An expiry that discards other items (a request's outcome cancels its other timers)
    while the queue fires, even when that compacts the queue."""
    fired: list[int] = []

    def expire(item: int) -> None:
        fired.append(item)
        if item == 0:
            for other in range(1, 600, 2):  # odd ones: enough to compact the queue
                queue.discard(other)

    queue, loop = make(expire)
    for i in range(600):
        queue.add(i, 5.0)
    loop.advance(10.0)
    assert fired == [0, *range(2, 600, 2)]
    assert len(queue) == 0


def test_an_expiry_that_adds_to_its_own_queue_leaves_one_timer() -> None:
    """An expiry that adds an item to the queue that is firing (a timer started again from
    its own expiry) must not leave a second loop timer running beside the queue's own."""
    fired: list[str] = []

    def expire(item: str) -> None:
        fired.append(item)
        if item == "a":
            queue.add("again", 10.0)

    queue, loop = make(expire)
    queue.add("a", 10.0)
    loop.advance(1.0)
    queue.add("b", 10.0)
    loop.advance(9.0)  # t=10: a fires and adds "again" (t=20); b is due at 11
    assert fired == ["a"]
    live = [h for h in loop.handles if not h.cancelled]
    assert [h.when for h in live] == [11.0]
    loop.advance(10.0)
    assert fired == ["a", "b", "again"]
    assert [h for h in loop.handles if not h.cancelled] == []
