"""The simulator's users and how GWS checks who is calling: HTTP Basic auth, the
``JSESSIONID`` session cookie and GWS-style CSRF protection (``X-CSRF-HEADER`` /
``X-CSRF-TOKEN``), with the JSON answers GWS gives when they fail."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ._http import json_response, request_info
from ._sessions import Session
from ._state import SimulatorState

__all__ = [
    "ACCESS_DENIED",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Auth",
    "Authenticator",
    "User",
    "csrf_refused",
    "make_users",
    "same",
]

SESSION_COOKIE = "JSESSIONID"
CSRF_HEADER = "X-CSRF-TOKEN"
CSRF_TEXT = "Missing or invalid Csrf token"
#: The ``statusMessage`` of GWS's ``statusCode`` 20 (HTCC "Interpreting a Response").
ACCESS_DENIED = "Access denied"
_REALM = 'Basic realm="Genesys Web Services (simulator)"'
_NOT_AUTHENTICATED = 20

# Namespaces for the deterministic ids derived from user names.
_DEVICE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:device")
_USER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:user")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str = field(repr=False)
    device_id: str
    user_id: str
    phone_number: str


def make_users(user_map: Mapping[str, str]) -> dict[str, User]:
    """The simulator's users from ``name -> password``, in order (ids derived from names).

    :raises ValueError: for no user, a user name that is empty or holds ``:``, or a
        password that is not a string.
    """
    if not user_map:
        raise ValueError("users must name at least one user")
    for name, password in user_map.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"invalid user name {name!r}: non-empty, without ':'")
        if not isinstance(password, str):
            raise ValueError(f"the password of user {name!r} must be a string")
    return {
        name: User(
            name=name,
            password=password,
            device_id=str(uuid.uuid5(_DEVICE_NAMESPACE, name)),
            user_id=str(uuid.uuid5(_USER_NAMESPACE, name)).replace("-", ""),
            phone_number=str(5001 + index),
        )
        for index, (name, password) in enumerate(user_map.items())
    }


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def csrf_refused() -> web.Response:
    """GWS's answer to a write without a live session or its CSRF token."""
    return web.Response(status=403, text=CSRF_TEXT, content_type="text/plain")


@dataclass(frozen=True, slots=True)
class Auth:
    """Who a request was authenticated as, and the session it uses (``new``: just created)."""

    user: str
    session: Session | None
    new_session: bool


class Authenticator:
    """Checks a request's credentials, session and CSRF token as GWS does."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def basic_user(self, request: web.Request) -> tuple[bool, str | None]:
        """(an Authorization header was sent, the user its valid Basic credentials name)."""
        header = request.headers.get("Authorization")
        if header is None:
            return False, None
        try:
            # UTF-8, as the plugin (and RFC 7617's charset="UTF-8") encodes a password
            credentials = aiohttp.BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            return True, None
        user = self._state.users.get(credentials.login)
        if user is None or not same(credentials.password, user.password):
            return True, None
        return True, user.name

    @staticmethod
    def unauthorized() -> web.Response:
        """GWS's 401 (``statusCode`` 20) with its Basic challenge."""
        body = {"statusCode": _NOT_AUTHENTICATED, "statusMessage": ACCESS_DENIED}
        response = json_response(body, 401)
        response.headers["WWW-Authenticate"] = _REALM
        return response

    def authenticate(self, request: web.Request) -> Auth | web.Response:
        """Basic credentials or a live session; Basic without a session creates one."""
        sessions = self._state.sessions
        sent, user = self.basic_user(request)
        if sent and user is None:
            return self.unauthorized()
        session = sessions.use(request.cookies.get(SESSION_COOKIE))
        if user is None:
            if session is None:
                return self.unauthorized()
            return _authenticated(request, session.username, session, new=False)
        if session is None or session.username != user:
            return _authenticated(request, user, sessions.create(user), new=True)
        return _authenticated(request, user, session, new=False)

    def authenticate_write(self, request: web.Request) -> Auth | web.Response:
        """Like :meth:`authenticate`, but with CSRF on a live session and token come first."""
        if not self._state.csrf:
            return self.authenticate(request)
        session = self._state.sessions.use(request.cookies.get(SESSION_COOKIE))
        token = request.headers.get(CSRF_HEADER)
        if session is None or token is None or not same(token, session.csrf_token):
            return csrf_refused()
        sent, user = self.basic_user(request)
        if sent and user is None:
            return self.unauthorized()
        return _authenticated(request, user or session.username, session, new=False)

    def answer(
        self, auth: Auth, body: Any, status: int = 200, *, read: bool = False
    ) -> web.Response:
        """A JSON answer with the session cookie (when new) and, for reads, CSRF headers."""
        response = json_response(body, status)
        self.decorate(response, auth, read=read)
        return response

    def decorate(self, response: web.StreamResponse, auth: Auth, *, read: bool) -> None:
        """Set the session cookie (when new) and, for reads with CSRF on, the CSRF headers."""
        if auth.session is None:
            return
        if auth.new_session:
            response.set_cookie(SESSION_COOKIE, auth.session.session_id, path="/", httponly=True)
        if read and self._state.csrf:
            response.headers["X-CSRF-HEADER"] = CSRF_HEADER
            response.headers[CSRF_HEADER] = auth.session.csrf_token


def _authenticated(request: web.Request, user: str, session: Session | None, *, new: bool) -> Auth:
    request_info(request).username = user
    return Auth(user=user, session=session, new_session=new)
