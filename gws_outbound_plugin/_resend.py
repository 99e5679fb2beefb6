"""A POST written again after an attempt GWS certainly did not get (a re-login, a retry).

The transport makes the retries itself (``GWSSession``: after a 401 / ``statusCode`` 20 and a
fresh login, or a 503 with GWS's ``statusCode``, or a connection that could not be made), so
the sender learns of them only through this: right before writing a POST again, the transport
calls :func:`announce_resend` (public: a transport of a host's own does the same), which tells
whoever is awaiting the POST in this task (the sender, between :func:`announce` and
:func:`stop_announcing`). The correlator then forgets what it had matched to the request by key
alone (M10): GWS had not got the request, so that was another client's answer.

Before that, right after the attempt that failed, ``GWSSession`` calls
:func:`announce_not_received` (internal: a transport that does not call it leaves the request
counted as possibly processed until its POST ends, the cautious side): until the POST is
written again nothing of the request may have been processed, so the correlator puts it back
to "not sent" (a deadline, a close or an interrupted sender meanwhile treat it as never
written).

A context variable, not an argument of ``post_operation``: the transport seam
(``OperationPoster``) keeps its signature, and a transport that makes no retries of its own, or
does not announce them, behaves as before. Set and reset around every POST, so both are plain
calls (no context manager, no closure made per POST).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Final

__all__ = [
    "Carry",
    "announce",
    "announce_not_received",
    "announce_resend",
    "note_backoff",
    "resumed",
    "stop_announcing",
]


class Carry:
    """Where a POST's retries stood when its sender was interrupted between two attempts
    GWS certainly did not get (a plain ``task.cancel()`` during the backoff, or during the
    re-login): the sender writes it again no sooner than ``not_before`` (the rest of the
    backoff), and the session goes on from there (the retry count and the re-login carry
    over) instead of starting again, so that a host cancelling tasks again and again cannot
    make more attempts than the retry policy allows."""

    __slots__ = ("attempts", "generation", "not_before", "relogged", "waited")

    def __init__(
        self,
        attempts: int,
        relogged: bool,
        generation: int,
        not_before: float,
        waited: float | None = None,
    ) -> None:
        self.attempts = attempts
        """Attempts made in the current round (before the re-login, or after it)."""
        self.relogged = relogged
        """The round after the re-login (the re-login started)."""
        self.generation = generation
        """The login generation the re-login renews (the session's own count)."""
        self.not_before = not_before
        """``anyio.current_time()`` before which it is not written again."""
        self.waited = waited
        """The seconds the round's waits add up to, the one under way included (a
        ``Retry-After`` lengthens them past the retry policy's own); None: unknown."""


# (what to call, what to call, their argument, where to keep a Carry): the sender's
# ``Engine.resending`` and ``Engine.not_received``, the request's token, the sender's carries.
_Target = tuple[Callable[[int], bool], Callable[[int], object] | None, int, dict[int, Carry] | None]
_ANNOUNCE: Final[ContextVar[_Target | None]] = ContextVar("gws_outbound_resend", default=None)


def announce(
    callback: Callable[[int], bool],
    token: int,
    not_received: Callable[[int], object] | None = None,
    carried: dict[int, Carry] | None = None,
) -> Token[_Target | None]:
    """From now on (in this task), :func:`announce_resend` calls ``callback(token)`` and
    :func:`announce_not_received` ``not_received(token)``, and :func:`note_backoff` keeps
    where the retries stand in ``carried[token]`` (:func:`resumed` reads it); undo with
    :func:`stop_announcing` and what this returned."""
    return _ANNOUNCE.set((callback, not_received, token, carried))


def note_backoff(
    attempts: int,
    relogged: bool,
    generation: int,
    not_before: float,
    waited: float | None = None,
) -> None:
    """The session's POST waits (a backoff or a re-login) after ``attempts`` attempts of its
    round GWS certainly did not get, its waits adding up to ``waited``: kept for the sender
    (see :class:`Carry`). Nothing outside a POST of the plugin."""
    target = _ANNOUNCE.get()
    if target is not None and target[3] is not None:
        target[3][target[2]] = Carry(attempts, relogged, generation, not_before, waited)


def resumed() -> Carry | None:
    """Where the retries of the POST being made stood when an earlier sender of it was
    interrupted, if one was (the session goes on from there); ``None`` for a fresh POST."""
    target = _ANNOUNCE.get()
    if target is None or not target[3]:
        return None
    return target[3].get(target[2])


def stop_announcing(previous: Token[_Target | None]) -> None:
    _ANNOUNCE.reset(previous)


def announce_resend() -> bool:
    """Tell the plugin that the POST being made is about to be written again because the last
    attempt certainly did not reach GWS (or GWS refused it unread): what was matched to the
    request by key meanwhile was another client's answer (matching rule M10) and is
    forgotten. For an ``OperationPoster`` that retries on its own, called inside
    ``post_operation`` right before each new attempt; elsewhere it does nothing.

    Returns whether to write it: ``False`` when its request has an outcome already (its
    deadline passed during the retries, the plugin is closing), or when a message with its
    referenceId arrived meanwhile (GWS got an earlier attempt after all): the transport then
    gives up without writing it (``GWSTransportError``), as the sender never writes a request
    that has its outcome or that GWS got. ``True`` outside a POST of the plugin."""
    target = _ANNOUNCE.get()
    if target is None:
        return True
    return target[0](target[2])


def announce_not_received() -> None:
    """Tell the plugin that the attempt of the POST being made just failed without reaching
    GWS (no connection, or GWS refused it unread: a 503 with GWS's ``statusCode``, a 401, a
    CSRF 403, ``statusCode`` 20), and that it is written again, if at all, only after
    :func:`announce_resend`: until then nothing of the request may have been processed.
    Its deadline, or the plugin's close, meanwhile ends it as not sent (``may_have_acted``
    false), a plain ``task.cancel()`` of the worker has it sent again, and what was matched
    to it by key was another client's answer (M10). ``GWSSession`` calls it; a transport
    that does not, leaves the request counted as possibly processed until the POST ends (the
    cautious side). Nothing outside a POST of the plugin."""
    target = _ANNOUNCE.get()
    if target is not None and target[1] is not None:
        target[1](target[2])
