"""What the simulator's HTTP handlers share: the paths it serves, the middleware's notes about
the request being handled, and the small answers every part gives."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._recording import DecodedBody

__all__ = [
    "ADMIN_PREFIX",
    "CAMPAIGNS_PREFIX",
    "INTERNAL_ERROR",
    "NOTIFICATIONS_PATH",
    "OUTBOUND_PREFIX",
    "RequestInfo",
    "json_response",
    "request_info",
    "reset_connection",
]

NOTIFICATIONS_PATH = "/api/v2/notifications"
OUTBOUND_PREFIX = "/api/v2/me/outbound-records"
CAMPAIGNS_PREFIX = "/api/v2/me/outbound-campaigns"
ADMIN_PREFIX = "/_simulator/"
#: GWS's ``statusCode`` for an internal error.
INTERNAL_ERROR = 4


@dataclass(slots=True)
class RequestInfo:
    """What the middleware and the handlers learn about one request, for its record."""

    body: DecodedBody
    started: float
    started_ns: int
    had_basic_auth: bool
    had_session_cookie: bool
    had_csrf_token: bool
    username: str | None = None
    bayeux_channels: tuple[str, ...] = ()
    reset: bool = False


# The middleware's notes about the request being handled. A context variable rather than a
# request key: typed keys (web.RequestKey) need aiohttp >= 3.12 and plain string keys warn
# there; each request is handled in one task, which has its own context.
CURRENT_INFO: ContextVar[RequestInfo] = ContextVar("gws_simulator_request_info")


def request_info(request: web.Request) -> RequestInfo:
    """The middleware's notes about ``request`` (the request being handled)."""
    info = CURRENT_INFO.get(None)
    if info is None:
        raise RuntimeError(f"{request.path}: request did not pass through the middleware")
    return info


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def reset_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer."""
    request_info(request).reset = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)
