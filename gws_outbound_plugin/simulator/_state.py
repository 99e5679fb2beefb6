"""What the simulator's parts share: the users, the OCS model and its clock, the faults, the
GWS sessions and the Bayeux server (the last two made anew at each start)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._bayeux import BayeuxServer, _valid_subscription
from ._clock import SimulatorClock
from ._faults import Faults
from ._ocs_actions import OCSActions
from ._records import OCSModel
from ._sessions import SessionStore

if TYPE_CHECKING:
    from ._auth import User

__all__ = ["SimulatorState", "channel_set"]


@dataclass(slots=True)
class SimulatorState:
    """The simulator's state, held by the facade and read by its parts.

    ``sessions`` and ``bayeux`` are made anew by :meth:`renew` (at each start), so parts read
    them here each time rather than keeping them.
    """

    users: dict[str, User]
    csrf: bool
    ocs: OCSModel
    clock: SimulatorClock
    actions: OCSActions
    faults: Faults
    forbidden: frozenset[str]
    session_idle_timeout: float
    connect_timeout: float
    cometd_session_timeout: float
    max_queue: int
    sessions: SessionStore = field(init=False)
    bayeux: BayeuxServer = field(init=False)

    def __post_init__(self) -> None:
        self.renew()

    def user(self, name: str) -> User:
        """The user called ``name``.

        :raises KeyError: for an unknown user.
        """
        try:
            return self.users[name]
        except KeyError:
            raise KeyError(f"unknown simulator user {name!r}") from None

    def renew(self) -> None:
        """New, empty GWS sessions and Bayeux server."""
        self.sessions = SessionStore(self.session_idle_timeout)
        self.bayeux = BayeuxServer(
            connect_timeout=self.connect_timeout,
            session_timeout=self.cometd_session_timeout,
            max_queue=self.max_queue,
            hold_fault=self.faults._take_connect_hold,
            advice_fault=self.faults._take_connect_advice,
            refuse_fault=self.faults._take_connect_refusal,
            handshake_fault=self.faults._take_handshake_refusal,
            subscribe_fault=self.faults._take_subscribe_forget,
            forbidden=lambda channel: channel in self.forbidden,
        )

    @property
    def sweep_interval(self) -> float:
        """Seconds between two sweeps of idle sessions and CometD clients."""
        idle = min(self.session_idle_timeout, self.cometd_session_timeout)
        return min(max(idle / 2, 0.05), 5.0)

    def sweep(self) -> None:
        """Forget the idle GWS sessions and CometD clients."""
        self.sessions.sweep()
        self.bayeux.sweep()


def channel_set(channels: Iterable[str]) -> frozenset[str]:
    """The forbidden channels as a set, checked.

    :raises ValueError: for one string, or a name that is not a valid non-meta channel.
    """
    if isinstance(channels, str):
        raise ValueError("forbidden channels must be a list of channel names, not one string")
    result = frozenset(channels)
    for channel in result:
        if not _valid_subscription(channel) or "*" in channel:
            raise ValueError(f"not a channel name: {channel!r}")
    return result
