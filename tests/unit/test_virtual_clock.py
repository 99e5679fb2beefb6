"""``testing.virtual_clock_loop``: the loop's clock jumps to the next timer when idle."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

from gws_outbound_plugin._virtual_clock import VirtualClockLoop
from gws_outbound_plugin.testing import virtual_clock_loop

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


async def test_sleeping_moves_the_virtual_clock_by_exactly_the_delay() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    start = loop.time()
    await anyio.sleep(3600)
    assert loop.time() - start == pytest.approx(3600)
    with anyio.move_on_after(90) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert loop.time() - start == pytest.approx(3690)


async def test_timers_fire_in_order_of_their_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    loop.call_later(30, fired.append, "late")
    loop.call_later(10, fired.append, "early")
    await anyio.sleep(60)
    assert fired == ["early", "late"]


async def test_a_thread_still_wakes_the_loop() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    threading.Thread(target=lambda: loop.call_soon_threadsafe(future.set_result, 7)).start()
    assert await future == 7


def test_the_clock_only_moves_forward() -> None:
    loop = VirtualClockLoop()
    try:
        with pytest.raises(ValueError, match="forward"):
            loop.advance(-1)
        with pytest.raises(ValueError, match="autojump_threshold"):
            VirtualClockLoop(autojump_threshold=-1)
    finally:
        loop.close()
