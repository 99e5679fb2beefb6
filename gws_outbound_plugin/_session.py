"""The GWS HTTP session (httpx): Basic auth, JSESSIONID, CSRF token, retries.

The same cookie jar also serves the CometD client (see ``_cometd.py``): GWS binds the Bayeux
session to the HTTP session, so both HTTP stacks must present the same ``JSESSIONID``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import anyio
import httpx
import structlog

from ._config import GWSConfig
from ._exceptions import (
    GWSAuthenticationError,
    GWSError,
    GWSStatusError,
    GWSTransportError,
)
from ._redact import PLUGIN_SECRETS, guard_library_logs

__all__ = ["GWSSession"]

logger = structlog.get_logger(__name__)

#: After a refused login, requests fail at once for this long instead of trying again.
AUTH_FAILURE_HOLD: Final = 5.0
_MAX_ERROR_TEXT: Final = 200
# (url and the jar's cookies, the Cookie header they give): see GWSSession.cookie_header().
_CookieCache = tuple[tuple[str, tuple[tuple[Any, ...], ...]], str | None]


def _status_of(body: object) -> tuple[int | None, str]:
    if isinstance(body, Mapping):
        code = body.get("statusCode")
        message = body.get("statusMessage")
        if isinstance(code, int) and not isinstance(code, bool):
            return code, message[:_MAX_ERROR_TEXT] if isinstance(message, str) else ""
    return None, ""


class GWSSession:
    """One authenticated GWS session for one agent.

    ``open()`` logs in (``GET /api/v2/me`` with Basic credentials), which sets the
    ``JSESSIONID`` cookie and yields the CSRF token; every POST carries both. A 401, a 403
    (CSRF token or session lost) or ``statusCode`` 20 triggers one fresh login and one retry.
    HTTP 5xx answers and connection errors are retried ``config.retries`` times with
    exponential backoff.
    """

    def __init__(self, config: GWSConfig) -> None:
        self._config = config
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        self._authorization = "Basic " + token
        self._csrf: tuple[str, str] | None = None
        self._generation = 0
        self._login_lock = anyio.Lock()
        self._auth_failed_at: float | None = None
        self._client: httpx.AsyncClient | None = None
        # Secret values registered with the library-log guard while the session is open.
        self._guarded: list[str] = []
        self._cookie_cache: _CookieCache | None = None
        self.user: Mapping[str, Any] = {}

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"<GWSSession {self._config.username}@{self._config.base_url} {state}>"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise GWSError("the GWS session is not open")
        return self._client

    # -- shared with the CometD client ------------------------------------------------------

    @property
    def authorization(self) -> str:
        """The Basic ``Authorization`` header value (for the CometD requests; never log it)."""
        return self._authorization

    def csrf_header(self) -> tuple[str, str] | None:
        return self._csrf

    def cookie_header(self, url: str) -> str | None:
        """The ``Cookie`` header this session's jar sends to ``url``."""
        cookies = self.client.cookies
        # The CometD client asks before every request and the jar's answer costs ~50 us:
        # the last answer is reused while the jar holds the same cookies, unless one of
        # them expires (the answer would then depend on the time).
        key = (
            url,
            tuple(
                (c.version, c.name, c.value, c.port, c.domain, c.path, c.secure, c.expires)
                for c in cookies.jar
            ),
        )
        cached = self._cookie_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        request = httpx.Request("POST", url)
        cookies.set_cookie_header(request)
        cookie: str | None = request.headers.get("cookie")
        if all(entry[7] is None for entry in key[1]):
            self._cookie_cache = (key, cookie)
        return cookie

    def store_cookies(self, url: str, set_cookie_values: Iterable[str]) -> None:
        """Keep cookies that another HTTP stack (the CometD client) received from ``url``."""
        values = list(set_cookie_values)
        if not values:
            return
        response = httpx.Response(
            200,
            headers=[("set-cookie", value) for value in values],
            request=httpx.Request("POST", url),
        )
        self.client.cookies.extract_cookies(response)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        # httpcore logs response headers (Set-Cookie, X-CSRF-TOKEN) at DEBUG: keep ours out.
        guard_library_logs()
        self._guard(self._config.password)
        self._guard(self._authorization.removeprefix("Basic "))
        timeout = httpx.Timeout(self._config.request_timeout)
        limits = httpx.Limits(
            max_connections=self._config.max_concurrent_requests,
            max_keepalive_connections=self._config.max_concurrent_requests,
        )
        self._client = httpx.AsyncClient(
            base_url=self._config.api_url,
            timeout=timeout,
            limits=limits,
            verify=self._config.verify_tls,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        try:
            await self.login()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.aclose()
        guarded, self._guarded = self._guarded, []
        for value in guarded:
            PLUGIN_SECRETS.discard_secret(value)

    def _guard(self, value: str) -> None:
        PLUGIN_SECRETS.add_secret(value)
        self._guarded.append(value)

    # -- requests ----------------------------------------------------------------------------

    async def login(self) -> None:
        """``GET /api/v2/me`` with Basic credentials: new session cookie and CSRF token."""
        if self._auth_failed_at is not None:
            waited = time.monotonic() - self._auth_failed_at
            if waited < AUTH_FAILURE_HOLD:
                raise GWSAuthenticationError(
                    f"GWS refused the credentials of {self._config.username!r} "
                    f"{waited:.1f}s ago; not trying again for {AUTH_FAILURE_HOLD:.0f}s"
                )
        response = await self._send("GET", "/me", headers={"Authorization": self._authorization})
        code, message = _status_of(_json_or_none(response))
        if response.status_code == 401 or code == 20:
            self._auth_failed_at = time.monotonic()
            logger.warning("gws_login_refused", user=self._config.username)
            raise GWSAuthenticationError(
                f"GWS refused the credentials of {self._config.username!r} (HTTP "
                f"{response.status_code}{', statusCode 20' if code == 20 else ''})"
            )
        self._raise_for_answer(response, code, message)
        self._auth_failed_at = None
        body = response.json()
        user = body.get("user") if isinstance(body, Mapping) else None
        self.user = dict(user) if isinstance(user, Mapping) else {}
        self._remember_csrf(response)
        self._generation += 1
        logger.info(
            "gws_logged_in",
            user=self._config.username,
            base_url=self._config.base_url,
            csrf=self._csrf is not None,
        )

    async def get(self, path: str) -> Mapping[str, Any]:
        """GET ``/api/v2<path>`` on the session; refreshes the CSRF token."""
        response = await self._with_relogin("GET", path, None)
        return response

    async def post_record_operation(
        self, record_handle: int, body: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``POST /api/v2/me/outbound-records/<record_handle>``; returns the JSON on
        ``statusCode`` 0, raises a :class:`GWSError` subclass otherwise."""
        if isinstance(record_handle, bool) or not isinstance(record_handle, int):
            raise TypeError("record_handle must be an int")
        return await self._with_relogin("POST", f"/me/outbound-records/{record_handle}", body)

    async def devices(self) -> list[Mapping[str, Any]]:
        """The agent's devices (``GET /api/v2/me/devices?fields=*``)."""
        body = await self.get("/me/devices?fields=*")
        devices = body.get("devices")
        return [d for d in devices if isinstance(d, Mapping)] if isinstance(devices, list) else []

    async def _with_relogin(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> Mapping[str, Any]:
        for attempt in (1, 2):
            generation = self._generation
            response = await self._send_retrying(method, path, body)
            parsed = _json_or_none(response)
            code, message = _status_of(parsed)
            if attempt == 1 and (response.status_code in (401, 403) or code == 20):
                logger.info(
                    "gws_session_renewing",
                    http_status=response.status_code,
                    status_code=code,
                    path=path,
                )
                await self._relogin(generation)
                continue
            if response.status_code in (401, 403) or code == 20:
                raise GWSAuthenticationError(
                    f"GWS refused the session after a fresh login (HTTP {response.status_code}"
                    f"{', statusCode 20' if code == 20 else ''})"
                )
            self._raise_for_answer(response, code, message)
            if method == "GET":
                self._remember_csrf(response)
            assert isinstance(parsed, Mapping)
            return parsed
        raise AssertionError("unreachable")

    async def _relogin(self, generation: int) -> None:
        async with self._login_lock:
            if self._generation != generation:
                return  # another request already logged in again
            await self.login()

    async def _send_retrying(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> httpx.Response:
        attempts = self._config.retries + 1
        delay = self._config.retry_backoff
        for attempt in range(1, attempts + 1):
            try:
                response = await self._send(method, path, body=body)
            except GWSTransportError as error:
                if attempt == attempts:
                    raise
                logger.warning("gws_request_retry", path=path, attempt=attempt, error=str(error))
            else:
                if response.status_code < 500 or attempt == attempts:
                    return response
                logger.warning(
                    "gws_request_retry",
                    path=path,
                    attempt=attempt,
                    http_status=response.status_code,
                )
            await anyio.sleep(min(delay, 5.0))
            delay *= 2
        raise AssertionError("unreachable")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        request_headers = {"Authorization": self._authorization}
        if method != "GET" and self._csrf is not None:
            name, token = self._csrf
            request_headers[name] = token
        if headers:
            request_headers.update(headers)
        try:
            return await self.client.request(
                method, path, json=body if body is not None else None, headers=request_headers
            )
        except httpx.TimeoutException as error:
            raise GWSTransportError(
                f"GWS did not answer {method} {path} within {self._config.request_timeout:g}s "
                f"({type(error).__name__})"
            ) from None
        except httpx.TransportError as error:
            raise GWSTransportError(
                f"{method} {path} to GWS failed: {type(error).__name__}"
            ) from None

    def _raise_for_answer(self, response: httpx.Response, code: int | None, message: str) -> None:
        if response.status_code >= 500:
            suffix = f", statusCode {code}: {message}" if code is not None else ""
            raise GWSTransportError(
                f"GWS answered HTTP {response.status_code} after "
                f"{self._config.retries + 1} attempt(s){suffix}"
            )
        if code is None:
            raise GWSTransportError(
                f"unexpected answer from GWS: HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}"
            )
        if code != 0:
            raise GWSStatusError(code, message, http_status=response.status_code)

    def _remember_csrf(self, response: httpx.Response) -> None:
        name = response.headers.get("X-CSRF-HEADER")
        token = response.headers.get("X-CSRF-TOKEN")
        if name and token:
            if self._csrf is None or self._csrf[1] != token:
                if self._csrf is not None and self._csrf[1] in self._guarded:
                    self._guarded.remove(self._csrf[1])
                    PLUGIN_SECRETS.discard_secret(self._csrf[1])
                self._guard(token)
            self._csrf = (name, token)


def _json_or_none(response: httpx.Response) -> object:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def backoff_delays(first: float, maximum: float) -> Iterable[float]:
    """1, 2, 4, ... times ``first``, capped at ``maximum`` (for reconnection loops)."""
    delay = first
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)
