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

__all__ = ["announce", "announce_not_received", "announce_resend", "stop_announcing"]

# (what to call, what to call, their argument): the sender's ``Engine.resending`` and
# ``Engine.not_received``, and the request's token.
_Target = tuple[Callable[[int], bool], Callable[[int], object] | None, int]
_ANNOUNCE: Final[ContextVar[_Target | None]] = ContextVar("gws_outbound_resend", default=None)


def announce(
    callback: Callable[[int], bool],
    token: int,
    not_received: Callable[[int], object] | None = None,
) -> Token[_Target | None]:
    """From now on (in this task), :func:`announce_resend` calls ``callback(token)`` and
    :func:`announce_not_received` ``not_received(token)``; undo with :func:`stop_announcing`
    and what this returned."""
    return _ANNOUNCE.set((callback, not_received, token))


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
    referenceId arrived meanwhile (GWS got an earlier attempt after all): the transport then gives up
    without writing it (``GWSTransportError``, nothing sent), as the sender never writes a
    request that has its outcome. ``True`` outside a POST of the plugin."""
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
