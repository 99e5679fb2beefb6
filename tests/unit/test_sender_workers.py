"""The sender's POST workers start as they are needed, up to ``max_concurrent_requests``:
one at start, one more whenever a worker takes a request and leaves none waiting. Through
the operation seam (``OperationPoster``): a poster that holds every POST until released."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import pytest

from gws_outbound_plugin._effects import PostResult
from gws_outbound_plugin._sender import Sender
from tests.helpers import make_request

pytestmark = pytest.mark.anyio


class HeldPoster:
    """Holds every POST until ``release`` is set; counts how many are in flight."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.paths: list[str] = []

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        self.paths.append(path)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return {"statusCode": 0}


class RecordingEngine:
    """The engine's side of the sender: every request still queued, each result kept."""

    def __init__(self) -> None:
        self.results: dict[int, PostResult] = {}

    def is_queued(self, token: int) -> bool:
        return token not in self.results

    def sending(self, token: int) -> bool:
        return True

    def resending(self, token: int) -> bool:
        """Nothing to forget: these tests make no resends."""
        return True

    def not_received(self, token: int) -> None:
        """These tests make no resends."""

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> None:
        self.results[token] = result


async def connected() -> None:
    return None


async def test_workers_start_as_needed_and_never_beyond_the_limit() -> None:
    poster, engine = HeldPoster(), RecordingEngine()
    sender = Sender(
        engine,
        poster,
        workers=4,
        connect_timeout=1.0,
        is_connected=lambda: True,
        wait_connected=connected,
    )
    started: list[Callable[..., Awaitable[Any]]] = []
    async with anyio.create_task_group() as tasks:

        def spawn(function: Callable[..., Awaitable[Any]], *args: Any) -> None:
            started.append(function)
            tasks.start_soon(function, *args)

        sender.start(spawn)
        await anyio.wait_all_tasks_blocked()
        assert len(started) == 1  # an idle plugin holds one worker, not max_concurrent_requests
        loop = asyncio.get_running_loop()
        for token in range(10):
            # From loop callbacks, as a cancel from another thread arrives.
            loop.call_soon(sender.submit, token, make_request("/devices/d", handle=100 + token))
        with anyio.fail_after(5):
            while poster.in_flight < 4:
                await anyio.wait_all_tasks_blocked()
        await anyio.wait_all_tasks_blocked()
        assert poster.in_flight == 4
        assert len(started) == 4
        poster.release.set()
        with anyio.fail_after(5):
            while len(engine.results) < 10:
                await anyio.sleep(0.01)
        sender.close()
        tasks.cancel_scope.cancel()
    assert poster.most_in_flight == 4
    assert set(engine.results.values()) == {PostResult.ACCEPTED}
    assert len(poster.paths) == 10
