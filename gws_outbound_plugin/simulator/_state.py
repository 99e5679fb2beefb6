"""What the simulator's parts share: the users, the OCS model and its clock, the faults, the
GWS sessions and the Bayeux server (the last two made anew at each start)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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

    ``sessions`` and ``bayeux`` are replaced at each start, so parts read them here each time
    rather than keeping them.
    """

    users: dict[str, User]
    csrf: bool
    ocs: OCSModel
    clock: SimulatorClock
    actions: OCSActions
    faults: Faults
    sessions: SessionStore
    bayeux: BayeuxServer
    forbidden: frozenset[str]


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
