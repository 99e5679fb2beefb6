"""A request's lifecycle in the correlator: its phases, the one table of moves between them
(:data:`TRANSITIONS`), and :class:`Entry`, what the correlator knows of one pending request.

``docs/design-notes.md`` ("A request's lifecycle") lists the outcomes possible in each phase;
every outcome takes the entry out of the table through
:meth:`~._pending.PendingRequests.finish`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ._effects import Failed
from ._payloads import UserEvent
from ._spec import CorrelationKey, Operation, OperationSpec

if TYPE_CHECKING:
    from ._inbound import UserEventNotice

__all__ = ["TRANSITIONS", "Entry", "Phase", "move"]


class Phase(enum.Enum):
    HELD = "held"
    """Accepted; waits until the request before it on the same key has its outcome."""
    READY = "ready"
    """``Send`` emitted; not being written yet (or again: every attempt so far certainly did
    not reach GWS, and the transport waits to write it again)."""
    SENDING = "sending"
    """Being written (:meth:`~._correlator.Correlator.sending` said yes); GWS may act on it
    from now on."""
    AWAITING = "awaiting"
    """GWS accepted it (or may have): its answer comes over CometD."""
    ANSWERING = "answering"
    """Part of its answer arrived; the rest may follow within ``merge_window``."""

    # A member is one object, equal only to itself: hashed as such, without the Python-level
    # call Enum's own __hash__ makes on every look-up (``TRANSITIONS``, ``Entry.sent``).
    __hash__ = object.__hash__


#: (phase, what happened) -> next phase. Anything else leaves the phase as it is; every outcome
#: leaves the table altogether through ``PendingRequests.finish`` (the outcomes per phase are
#: listed in ``docs/design-notes.md``, "A request's lifecycle").
_MOVES: Final[dict[tuple[Phase, str], Phase]] = {
    (Phase.HELD, "released"): Phase.READY,
    (Phase.READY, "sending"): Phase.SENDING,
    (Phase.SENDING, "posted"): Phase.AWAITING,
    (Phase.SENDING, "answer"): Phase.ANSWERING,
    (Phase.AWAITING, "answer"): Phase.ANSWERING,
    # The POST is written again (the last attempt certainly did not reach GWS): what was
    # matched by key meanwhile is forgotten (M10), and it waits for its answer again.
    (Phase.ANSWERING, "resent"): Phase.SENDING,
    # An attempt certainly did not reach GWS, and it waits to be written again (a retry,
    # a re-login): nothing of it may have been processed until then.
    (Phase.SENDING, "unsent"): Phase.READY,
    (Phase.ANSWERING, "unsent"): Phase.READY,
    # Back at ``ready`` after an attempt the transport was told did not reach GWS, a message
    # with its reference id arrives: GWS got an attempt after all (a node in front of GWS
    # passed it on and answered as if not): sent, and never written again.
    (Phase.READY, "reached"): Phase.SENDING,
}
TRANSITIONS: Final[Mapping[tuple[Phase, str], Phase]] = MappingProxyType(_MOVES)
_SENT: Final = frozenset({Phase.SENDING, Phase.AWAITING, Phase.ANSWERING})


def move(entry: Entry, what: str) -> bool:
    """Move ``entry`` on as :data:`TRANSITIONS` says; False (and no move) if it says nothing."""
    phase = _MOVES.get((entry.phase, what))  # TRANSITIONS, without the read-only proxy's call
    if phase is None:
        return False
    entry.phase = phase
    return True


class Entry:
    """One pending request, as the correlator tracks it."""

    __slots__ = (
        "after_post",
        "chain",
        "confirmed",
        "empty",
        "event_parts",
        "key",
        "lost",
        "maybe",
        "merging",
        "outbound",
        "paired",
        "parts",
        "phase",
        "post_answered",
        "post_status",
        "refusing",
        "request",
        "sent_seq",
        "spec",
        "token",
        "tried",
        "unanswered",
        "user_content",
        "user_event",
        "withheld",
    )

    def __init__(self, token: int, request: Operation) -> None:
        self.token = token
        self.request = request
        self.spec: OperationSpec = request.spec
        self.key: CorrelationKey | None = request.correlation_key
        self.phase = Phase.HELD
        # Written before, and back to ``ready`` because GWS certainly got none of it.
        self.tried = False
        self.unanswered = False
        self.post_status: tuple[int, str | None] | None = None
        # GWS answered its POST (accepted, or may have: not refused).
        self.post_answered = False
        # A message with its reference id arrived (M1): its answer is its own whatever the POST.
        self.confirmed = False
        # What messages matched by key alone decided while GWS had not answered its POST
        # (True: acknowledged; a ``Failed``: OCS refused it), applied once GWS accepts it.
        self.after_post: Failed | bool | None = None
        # OCS's refusal (in ``after_post``) waits ``merge_window`` for the request's
        # acknowledgement by reference before it decides (M9): the window is open.
        self.refusing = False
        # The last CometD session loss (numbered from 1) it was sent before; 0: none.
        self.lost = 0
        self.merging = False
        self.empty = False
        self.sent_seq = 0
        self.chain: tuple[int, str, int] | None = None
        # M5: the record handle under which it waits in ``PendingRequests.pairing``, if any.
        self.paired: int | None = None
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None
        self.user_content: bytes | None = None
        # M8: a user event that may be its answer or a copy of an earlier request's.
        self.maybe: tuple[UserEvent, bytes | None] | None = None
        # M11: answers matched by key alone withheld for merge_window (an earlier request on
        # its key that ended unconfirmed may prove, by its late notification, the first its own).
        self.withheld: list[UserEventNotice] = []
        self.parts: list[Mapping[str, Any]] = []
        self.event_parts: list[tuple[int, UserEvent, bytes | None]] = []

    @property
    def sent(self) -> bool:
        return self.phase in _SENT

    @property
    def answered(self) -> bool:
        """Part of its own answer arrived (a ``maybe`` does not count: M8)."""
        return self.outbound is not None or self.user_event is not None
