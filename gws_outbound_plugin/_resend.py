"""A POST written again after an attempt GWS certainly did not get (a re-login, a retry).

The transport makes the retries itself (``GWSSession``: after a 401 / ``statusCode`` 20 and a
fresh login, or a 503 with GWS's ``statusCode``, or a connection that could not be made), so
the sender learns of them only through this: right before writing a POST again, the transport
calls :func:`announce_resend` (public: a transport of a host's own does the same), which tells
whoever is awaiting the POST in this task (the sender, between :func:`announce` and
:func:`stop_announcing`). The correlator then forgets what it had matched to the request by key
alone (M10): GWS had not got the request, so that was another client's answer.

A context variable, not an argument of ``post_operation``: the transport seam
(``OperationPoster``) keeps its signature, and a transport that makes no retries of its own, or
does not announce them, behaves as before. Set and reset around every POST, so both are plain
calls (no context manager, no closure made per POST).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Final

__all__ = ["announce", "announce_resend", "stop_announcing"]

# (what to call, its argument): the sender's ``Engine.resending`` and the request's token.
_Target = tuple[Callable[[int], bool], int]
_ANNOUNCE: Final[ContextVar[_Target | None]] = ContextVar("gws_outbound_resend", default=None)


def announce(callback: Callable[[int], bool], token: int) -> Token[_Target | None]:
    """From now on (in this task), :func:`announce_resend` calls ``callback(token)``; undo with
    :func:`stop_announcing` and what this returned."""
    return _ANNOUNCE.set((callback, token))


def stop_announcing(previous: Token[_Target | None]) -> None:
    _ANNOUNCE.reset(previous)


def announce_resend() -> bool:
    """Tell the plugin that the POST being made is about to be written again because the last
    attempt certainly did not reach GWS (or GWS refused it unread): what was matched to the
    request by key meanwhile was another client's answer (matching rule M10) and is
    forgotten. For an ``OperationPoster`` that retries on its own, called inside
    ``post_operation`` right before each new attempt; elsewhere it does nothing.

    Returns whether to write it: ``False`` when its request has an outcome already (its
    deadline passed during the retries, the plugin is closing): the transport then gives up
    without writing it (``GWSTransportError``, nothing sent), as the sender never writes a
    request that has its outcome. ``True`` outside a POST of the plugin."""
    target = _ANNOUNCE.get()
    if target is None:
        return True
    return target[0](target[1])
