"""What the transport reports while the plugin runs, carried to the engine and the hooks."""

from __future__ import annotations

import asyncio
import collections
from typing import Final

from ._cometd import CometDState
from ._dispatcher import HookDispatcher
from ._engine import Engine

__all__ = ["TransportEvents"]

#: Connection state changes waiting for their hook call at most (a few per loss).
_STATE_CHANGES_BUFFER: Final = 64


class TransportEvents:
    """The plugin's :class:`~gws_outbound_plugin._seam.SessionEvents`: a lost or restored
    session goes to the engine at once; every state change fires
    ``on_connection_state_changed`` in order, from :meth:`run` (the changes while starting
    are delivered once it runs; beyond a buffer of 64 the oldest are dropped)."""

    def __init__(self, engine: Engine, hooks: HookDispatcher) -> None:
        self._engine = engine
        self._hooks = hooks
        self._changes: collections.deque[tuple[CometDState, CometDState]] = collections.deque(
            maxlen=_STATE_CHANGES_BUFFER
        )
        self._changed = asyncio.Event()  # asyncio's can be made outside an event loop

    def session_lost(self, why: str) -> None:
        self._engine.session_lost(why)

    def session_restored(self) -> None:
        self._engine.session_restored()

    def state_changed(self, state: CometDState, previous: CometDState) -> None:
        self._changes.append((state, previous))
        self._changed.set()

    async def run(self) -> None:
        """Fire ``on_connection_state_changed`` for every change, forever."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            while self._changes:
                state, previous = self._changes.popleft()
                await self._hooks.dispatch(
                    "on_connection_state_changed", state=state.value, previous=previous.value
                )
