"""The default transport: GWS's REST API over httpx and its notifications over CometD."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio

from ._cometd import CometDListener, CometDState
from ._config import GWSConfig
from ._retry import RetryPolicy
from ._seam import Deliver, SessionEvents
from ._session import GWSSession

__all__ = ["DEFAULT_CHANNELS", "HTTPCometDTransport"]

#: The CometD channels the plugin subscribes to.
DEFAULT_CHANNELS: Final = ("/v2/me/outbound", "/me/internal")


class HTTPCometDTransport:
    """An :class:`~gws_outbound_plugin.OutboundTransport` to a real GWS: one
    :class:`GWSSession` (login, CSRF, retries, POSTs over httpx) and the
    :class:`CometDListener` on the same HTTP session (``channels`` subscribed, reconnecting
    after a loss). ``OutboundPlugin(pm, config)`` makes one; make it yourself only to pass
    it as ``transport=`` (to wrap or observe it)."""

    def __init__(self, config: GWSConfig, channels: Sequence[str] = DEFAULT_CHANNELS) -> None:
        self.config = config
        self.channels = tuple(channels)
        self.session = GWSSession(config)
        self._events: SessionEvents | None = None
        self.listener = CometDListener(
            config,
            self.session,
            self.channels,
            on_lost=self._lost,
            on_restored=self._restored,
            on_state=self._state_changed,
        )

    def __repr__(self) -> str:
        return f"<HTTPCometDTransport {self.config.username}@{self.config.base_url}>"

    # -- the session events, once opened -----------------------------------------------------

    def _lost(self, why: str) -> None:
        if self._events is not None:
            self._events.session_lost(why)

    def _restored(self) -> None:
        if self._events is not None:
            self._events.session_restored()

    def _state_changed(self, state: CometDState, previous: CometDState) -> None:
        if self._events is not None:
            self._events.state_changed(state, previous)

    # -- NotificationSource ------------------------------------------------------------------

    @property
    def state(self) -> CometDState:
        return self.listener.state

    @property
    def refused_channels(self) -> tuple[str, ...]:
        return self.listener.refused_channels

    async def open(self, events: SessionEvents) -> None:
        """Log in (``GET /api/v2/me``), then handshake, connect and subscribe."""
        self._events = events
        await self.session.open()
        await self.listener.open()

    async def run(self, deliver: Deliver) -> None:
        await self.listener.run(deliver)

    async def wait_connected(self) -> None:
        await self.listener.wait_connected()

    async def close(self) -> None:
        """Disconnect the CometD session, then close the HTTP session (also when the first
        step is cut short by a cancellation)."""
        with anyio.CancelScope(shield=True):
            try:
                await self.listener.close()
            finally:
                await self.session.close()

    # -- OperationPoster and the agent's session ---------------------------------------------

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return await self.session.post_operation(path, body)

    @property
    def user(self) -> Mapping[str, Any]:
        return self.session.user

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.session.retry_policy

    async def devices(self) -> list[Mapping[str, Any]]:
        return await self.session.devices()

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        return await self.session.end_contact_center_session()
