"""The Bayeux long-polling endpoint (``POST /api/v2/notifications``): GWS's authentication
on the handshake, the ``BAYEUX_BROWSER`` cookie, and the batch handed to the Bayeux server."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from ._app import Route
from ._auth import SESSION_COOKIE, Auth, Authenticator
from ._bayeux import ServerStopping
from ._http import NOTIFICATIONS_PATH, json_response, request_info, reset_connection
from ._state import SimulatorState

__all__ = ["BayeuxEndpoint"]

BAYEUX_COOKIE = "BAYEUX_BROWSER"


class BayeuxEndpoint:
    """The HTTP side of the simulator's CometD server."""

    def __init__(self, state: SimulatorState, auth: Authenticator) -> None:
        self._state = state
        self._auth = auth

    def routes(self) -> list[Route]:
        return [
            ("POST", NOTIFICATIONS_PATH, self.notifications),
            ("POST", NOTIFICATIONS_PATH + "/{tail:.*}", self.notifications),
        ]

    async def notifications(self, request: web.Request) -> web.StreamResponse:
        info = request_info(request)
        decoded = info.body.value if info.body.is_json else None
        if isinstance(decoded, dict):
            messages: list[Any] = [decoded]
        elif isinstance(decoded, list) and decoded:
            messages = decoded
        else:
            body = [{"successful": False, "error": "400::Malformed Bayeux message"}]
            return json_response(body, 400)
        auth: Auth | None = None
        if "/meta/handshake" in info.bayeux_channels:
            checked = self._auth.authenticate(request)
            if isinstance(checked, web.Response):
                return checked
            auth = checked
        else:
            _sent, basic = self._auth.basic_user(request)
            session = self._state.sessions.peek(request.cookies.get(SESSION_COOKIE))
            info.username = basic or (session.username if session else None)
        try:
            result = await self._state.bayeux.handle(messages, auth.user if auth else None)
        except ServerStopping:
            return reset_connection(request)
        info.username = info.username or result.username
        response = json_response(result.replies)
        if auth is not None:
            self._auth.decorate(response, auth, read=False)
        if result.handshake_succeeded and BAYEUX_COOKIE not in request.cookies:
            response.set_cookie(BAYEUX_COOKIE, secrets.token_hex(12), path="/", httponly=True)
        return response
