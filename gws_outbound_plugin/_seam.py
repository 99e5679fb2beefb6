"""The transport seam: what ``OutboundPlugin`` needs from GWS, as small protocols.

The plugin posts operations and listens to notifications; it knows nothing of HTTP or
CometD. What sits under it is an :class:`OutboundTransport`, as an ``httpx.AsyncClient``
sits on an ``httpx.AsyncBaseTransport``:

* :class:`OperationPoster` - post one operation (the sender's workers call it);
* :class:`NotificationSource` - notifications in, session state out: open, run (every
  CometD message handed to the engine), close, the session's state and refused channels,
  and the :class:`SessionEvents` it reports to (session lost, restored, state changed);
* :class:`OutboundTransport` - both, plus what the plugin shows of the agent's session
  (``user``, ``devices()``, the retry policy its POSTs are sent with, and ending the
  contact-center session).

``OutboundPlugin(pm, config)`` uses :class:`~gws_outbound_plugin.HTTPCometDTransport`
(GWS over httpx, CometD over aiocometd); ``OutboundPlugin(pm, config, transport=...)``
takes any other, such as the in-memory :class:`gws_outbound_plugin.testing.FakeGWS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from ._cometd import CometDState
from ._retry import RetryPolicy

__all__ = [
    "Deliver",
    "NotificationSource",
    "OperationPoster",
    "OutboundTransport",
    "SessionEvents",
]

#: What a notification source hands every message to (the engine's ``deliver``): awaited,
#: so a busy hook queue slows the source down (backpressure).
Deliver = Callable[[Mapping[str, Any]], Awaitable[None]]


class OperationPoster(Protocol):
    """Post one outbound operation (``GWSSession`` over HTTP by default).

    ``post_operation`` returns GWS's answer on ``statusCode`` 0 and otherwise raises:
    ``GWSStatusError`` (GWS answered another ``statusCode``), ``GWSAuthenticationError``,
    ``GWSNoAnswerError`` (no answer: GWS may have processed it) or ``GWSTransportError``
    (GWS certainly did not process it).

    A poster that writes a POST again itself, because the last attempt certainly did not
    reach GWS (``GWSSession``: a re-login, a retry), calls
    :func:`gws_outbound_plugin.announce_resend` inside ``post_operation`` right before the new
    attempt: what the plugin matched to the request by key meanwhile was another client's
    answer (matching rule M10). When it returns ``False`` the request has its outcome
    already, or GWS answered it by its referenceId (an earlier attempt reached GWS after
    all): the poster gives up without writing it (``GWSTransportError``)."""

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``POST /api/v2<path>`` with ``body`` (GWS camelCase keys)."""
        ...


class SessionEvents(Protocol):
    """What a notification source reports, on the event loop thread (``OutboundPlugin``
    implements it; the calls must not block)."""

    def session_lost(self, why: str) -> None:
        """The notification session was lost: messages published from now on may be missed."""
        ...

    def session_restored(self) -> None:
        """The session is back and subscribed again (what was published meanwhile is lost)."""
        ...

    def state_changed(self, state: CometDState, previous: CometDState) -> None:
        """Every change of :attr:`NotificationSource.state`, in order."""
        ...


class NotificationSource(Protocol):
    """Notifications in, session state out."""

    @property
    def state(self) -> CometDState:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        ...

    @property
    def refused_channels(self) -> tuple[str, ...]:
        """The channels the server refuses to subscribe right now."""
        ...

    async def open(self, events: SessionEvents) -> None:
        """Log in, open the notification session and subscribe; report to ``events`` from
        now on. Raises ``GWSError`` when the session cannot be opened (after which
        :meth:`close` is still called)."""
        ...

    async def run(self, deliver: Deliver) -> None:
        """Receive until cancelled, awaiting ``deliver(message)`` for every notification;
        losses and reconnections are reported to the events, not raised."""
        ...

    async def wait_connected(self) -> None:
        """Return once the session is connected and subscribed."""
        ...

    async def close(self) -> None:
        """Close everything ``open`` opened (also after a failed or no ``open``);
        idempotent, bounded in time."""
        ...


@runtime_checkable
class OutboundTransport(OperationPoster, NotificationSource, Protocol):
    """What ``OutboundPlugin(..., transport=...)`` takes: GWS and its notifications."""

    @property
    def user(self) -> Mapping[str, Any]:
        """The ``user`` object of ``GET /api/v2/me`` (empty before :meth:`open`)."""
        ...

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retries :meth:`post_operation` makes (a finite number of attempts): part of
        ``OutboundPlugin.outcome_bound``."""
        ...

    async def devices(self) -> list[Mapping[str, Any]]:
        """The agent's devices (``GET /api/v2/me/devices``): ``id``, ``phoneNumber``, ..."""
        ...

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        """``POST /api/v2/me {"operationName": "EndContactCenterSession"}`` (logs the agent
        out on every desktop); raises ``GWSError`` like :meth:`post_operation`."""
        ...
