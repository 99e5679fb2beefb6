"""A POST written again after an attempt GWS certainly did not get (a re-login, a retry).

The transport makes the retries itself (``GWSSession``: after a 401 / ``statusCode`` 20 and a
fresh login, or a 503 with GWS's ``statusCode``, or a connection that could not be made), so
the sender learns of them only through this: right before writing a POST again, the transport
calls :func:`resending`, which tells whoever is awaiting the POST in this task (the sender,
through :func:`announcing_resends`). The correlator then forgets what it had matched to the
request by key alone (M10): GWS had not got the request, so that was another client's answer.

A context variable, not an argument of ``post_operation``: the transport seam
(``OperationPoster``) stays as it is, and a transport that makes no retries of its own, or
does not announce them, behaves as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

__all__ = ["announcing_resends", "resending"]

_ANNOUNCE: Final[ContextVar[Callable[[], None] | None]] = ContextVar(
    "gws_outbound_resend", default=None
)


@contextmanager
def announcing_resends(callback: Callable[[], None]) -> Iterator[None]:
    """Within this block (in this task), :func:`resending` calls ``callback``."""
    token = _ANNOUNCE.set(callback)
    try:
        yield
    finally:
        _ANNOUNCE.reset(token)


def resending() -> None:
    """A POST is about to be written again: the previous attempt certainly did not reach GWS
    (or GWS refused it unread)."""
    callback = _ANNOUNCE.get()
    if callback is not None:
        callback()
