"""The GWS HTTP session (httpx): Basic auth, JSESSIONID, CSRF token, retries.

The same cookie jar also serves the CometD client (see ``_cometd.py``): GWS binds the Bayeux
session to the HTTP session, so both HTTP stacks must present the same ``JSESSIONID``.

Requests go through :class:`~gws_outbound_plugin._transport.GWSTransport` (the httpx client's
``transport=``, the environment's proxies as its ``mounts=``). GETs (login, devices) go
through the httpx client; POSTs (operations) go straight to the transport httpx chose for GWS,
with the headers the client would send: one list kept per CSRF token and jar version (with the
``Cookie`` header the jar gives), cookies taken from an answer only when it sets some. An
operation's first attempt is made straight from :meth:`GWSSession.post_operation`; only an
answer other than a GWS success (or a transport error) goes on to the retry and re-login logic
below, as that attempt's outcome.

What is retried (with :func:`request_retry_policy`: ``GWSConfig.retries`` further attempts,
``retry_backoff`` doubled per attempt, at most 5 s apart):

* a ``GET`` (idempotent: login, devices): connection errors, timeouts, HTTP 5xx;
* a ``POST`` (an operation) only when it certainly did not reach GWS: the connection could
  not be made (refused, name lookup, TLS, connect timeout), no pooled connection came free
  (pool timeout), or GWS answered HTTP 503 with a GWS ``statusCode`` (back end not available:
  GWS changed nothing, gws-outbound.md §4.7, §10.1) other than 7 or 9 (partial success,
  processing incomplete: GWS may still act). A read timeout, a connection reset or a
  protocol error after the request was written, or a 5xx without a GWS answer is never resent:
  :class:`GWSNoAnswerError` (the operation may have been processed; its outcome may still
  arrive over CometD);
* both: a 429 (too many requests: refused unread); its ``Retry-After``, and a 503's, is
  honoured within the retry policy (no wait past its ``max_delay``, the waits in all no
  longer than its own, which ``outcome_bound`` counts: a server asking for more is not
  tried again);
* both: a 401, a 403 without a GWS answer (CSRF token or session lost: a text body) or
  ``statusCode`` 20 triggers one fresh login and one more attempt (GWS refused the request
  without processing it).

Around a POST's retries the session tells the plugin what GWS can have got (``_resend``):
right after an attempt that certainly did not reach GWS, :func:`announce_not_received` (until
it is written again, nothing of the request may have been processed: a deadline or a close
meanwhile ends it as not sent), right before writing it again, :func:`announce_resend`. A
body JSON cannot carry (NaN, a set, a lone surrogate) is refused before anything is written
(:class:`GWSTransportError`).

A 4xx/5xx whose body is a GWS answer (``{"statusCode": n, "statusMessage": ...}``) is a GWS
answer: :class:`GWSStatusError` with that ``statusCode`` (after the 503 retries).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
import httpcore
import httpx

from ._config import GWSConfig
from ._effects import UNFINISHED_STATUS_CODES
from ._exceptions import (
    GWSAuthenticationError,
    GWSError,
    GWSStatusError,
    GWSTransportError,
)
from ._failures import MAX_ERROR_TEXT, describe_failure, one_line, target_of
from ._headers import CountingJar, SessionHeaders, UnwritableHeader
from ._log import get_logger
from ._redact import PLUGIN_SECRETS, guard_library_logs
from ._requests import has_dot_segment
from ._resend import Carry, announce_not_received, announce_resend, note_backoff, resumed
from ._retry import RetryPolicy
from ._transport import GWSTransport, Progress, client_transports

__all__ = [
    "NOT_JSON",
    "GWSNoAnswerError",
    "GWSSession",
    "encode_json",
    "request_retry_policy",
]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog
_T = TypeVar("_T")

#: After a refused login, requests fail at once for this long instead of trying again.
AUTH_FAILURE_HOLD: Final = 5.0
#: The longest wait between two attempts of one request.
MAX_REQUEST_RETRY_DELAY: Final = 5.0
#: One encoder for every body: what httpx's ``json=`` sends (compact, UTF-8, no NaN).
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


#: What :func:`encode_json` raises for a body JSON cannot carry.
NOT_JSON: Final = (TypeError, ValueError, RecursionError)


def encode_json(body: object) -> bytes:
    """``body`` as the JSON (UTF-8) a POST carries; ``TypeError`` / ``ValueError`` when JSON
    cannot carry it (NaN or infinity, a set, a lone surrogate), ``RecursionError`` when it is
    nested too deep to encode (see :data:`NOT_JSON`)."""
    return _JSON.encode(body).encode()


class _Answer:
    """What the session reads from an HTTP answer: status, content type, body."""

    __slots__ = ("body", "content_type", "headers", "retry_after", "status_code")

    def __init__(
        self,
        status_code: int,
        content_type: str,
        body: bytes,
        headers: httpx.Headers | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.content_type = content_type
        self.body = body
        self.headers = headers
        """All the headers, for answers through httpx (GETs: the CSRF token)."""
        self.retry_after = retry_after
        """The ``Retry-After`` header, if any (see :func:`retry_after_seconds`)."""


#: The longest ``Retry-After`` read (a day): past it, the answer counts as asking too much.
_RETRY_AFTER_CAP: Final = 86_400.0


def retry_after_seconds(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for: delta-seconds (``120``) or an HTTP date
    (``Fri, 31 Dec 2027 23:59:59 GMT``, counted from now; a past date is ``0``); ``None``
    when absent or unreadable (then the retry policy's own delay applies)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        return min(float(text[:12]), _RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=datetime.UTC)
    seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP)


class GWSNoAnswerError(GWSTransportError):
    """An operation (``POST``) may have reached GWS and been processed, but no usable answer
    came back: a read timeout, the connection closed or reset after the request was written,
    an HTTP 5xx without a GWS answer. It was not resent (a second copy could be processed
    twice); its outcome may still arrive over CometD.

    A plain :class:`GWSTransportError` from an operation means GWS certainly did not process
    it (no connection, or GWS refused it unread).
    """


class _Transient(Exception):
    """Raised inside one attempt: worth another; ``error`` is raised when none is left.
    ``retry_after``: the seconds the answer's ``Retry-After`` asked to wait, if it did."""

    def __init__(self, error: GWSError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _SessionRefused(Exception):
    """GWS refused the request unprocessed: 401, 403 or ``statusCode`` 20."""

    def __init__(self, http_status: int, status_code: int | None) -> None:
        super().__init__(http_status)
        self.http_status = http_status
        self.status_code = status_code
        self.attempts = 1
        """The attempts of the round it ended, this one included (set by ``_retrying``)."""
        self.waited = 0.0
        """The seconds that round waited between its attempts (set by ``_retrying``)."""

    def describe(self) -> str:
        suffix = ", statusCode 20" if self.status_code == 20 else ""
        return f"HTTP {self.http_status}{suffix}"


def request_retry_policy(config: GWSConfig) -> RetryPolicy:
    """The retry policy of requests to GWS: ``config.retries`` further attempts,
    ``config.retry_backoff`` first, doubled per attempt, at most 5 s apart."""
    return RetryPolicy(
        retries=config.retries,
        first_delay=config.retry_backoff,
        max_delay=max(config.retry_backoff, MAX_REQUEST_RETRY_DELAY),
    )


#: HTTP statuses whose GWS answer (or, for 429, any answer) says nothing was processed and is
#: worth another attempt: 503 service unavailable, 429 too many requests. Their
#: ``Retry-After`` is honoured within the retry policy.
_UNAVAILABLE: Final = frozenset({429, 503})

#: httpx errors raised before anything was written: the request cannot have reached GWS.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
#: httpx errors that no retry can cure (also raised before anything was written).
_NOT_SENDABLE: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


#: ``/me/outbound-records``, ``/me/outbound-records/<handle>``,
#: ``/me/outbound-campaigns/<percent-encoded name>``: one segment of unreserved characters
#: and percent escapes at most.
_OPERATION_PATH: Final = re.compile(r"/me/outbound-(?:records|campaigns)(?:/[A-Za-z0-9._~%-]+)?")


#: The common operation path: a record handle, ASCII digits only (checked without the regex).
_RECORD_PATH: Final = "/me/outbound-records/"


def _is_operation_path(path: object) -> bool:
    if type(path) is str and path.startswith(_RECORD_PATH):
        handle = path[len(_RECORD_PATH) :]
        if handle.isdigit() and handle.isascii():
            return True
    return _is_operation_path_in_full(path)


def _is_operation_path_in_full(path: object) -> bool:
    """The whole check of :func:`_is_operation_path` (which answers a plain record handle
    without it)."""
    if not isinstance(path, str) or _OPERATION_PATH.fullmatch(path) is None:
        return False
    segment = path.split("/")[3] if path.count("/") == 3 else ""
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return False
    # A server decoding escapes before routing must not see a "." or ".." segment either.
    return not has_dot_segment(decoded)


def _status_of(body: object) -> tuple[int | None, str]:
    if isinstance(body, Mapping):
        code = body.get("statusCode")
        message = body.get("statusMessage")
        if isinstance(code, int) and not isinstance(code, bool):
            return code, message[:MAX_ERROR_TEXT] if isinstance(message, str) else ""
    return None, ""


class GWSSession(SessionHeaders):
    """One authenticated GWS session for one agent.

    ``open()`` logs in (``GET /api/v2/me`` with Basic credentials), which sets the
    ``JSESSIONID`` cookie and yields the CSRF token; every POST carries both. What is retried
    is described in the module docstring.
    """

    def __init__(self, config: GWSConfig) -> None:
        self._config = config
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        self._authorization = "Basic " + token
        self._csrf: tuple[str, str] | None = None
        self._generation = 0
        self._login_lock = anyio.Lock()
        # Logins ended so far, and how the last one failed (None: it succeeded): a request
        # that waited for another's re-login takes its result instead of logging in again.
        self._logins_ended = 0
        self._login_failure: GWSError | None = None
        self._auth_failed_at: float | None = None
        self._client: httpx.AsyncClient | None = None
        # Secret values registered with the library-log guard while the session is open.
        self._guarded: list[str] = []
        self._jar = CountingJar()
        # Cookie headers made from the jar at version _cookie_version: by URL (CometD) and,
        # for POSTs, by which of the jar's cookie paths match the request path.
        self._cookie_version = -1
        self._cookie_paths: tuple[str, ...] = ()
        self._cookie_cacheable = False
        self._cookies_by_url: dict[str, str | None] = {}
        self._cookies_by_paths: dict[tuple[bool, ...], str | None] = {}
        # The transport httpx chose for GWS (direct or the environment's proxy): POSTs go
        # straight through it, with a header list kept per CSRF token and jar version.
        self._post_transport: GWSTransport | None = None
        self._cookie_key_under_api: tuple[bool, ...] | None = None
        self._post_headers: tuple[tuple[str, str] | None, int, list[tuple[bytes, bytes]]] | None = (
            None
        )
        self._api_path = urlsplit(config.api_url).path
        api = httpx.URL(config.api_url)
        self._origin = (api.raw_scheme, api.raw_host, api.port)
        self._host_header = api.netloc
        self._timeouts: dict[str, float | None] = dict.fromkeys(
            ("connect", "read", "write", "pool"), config.request_timeout
        )
        self.target = target_of(config.base_url)
        """``scheme://host:port`` of GWS, for messages."""
        self.retry_policy = request_retry_policy(config)
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

        def make(proxy: str | None) -> GWSTransport:
            return GWSTransport(
                verify=self._config.verify_tls,
                limits=limits,
                proxy=proxy,
                on_request=self._used_transport,
            )

        # Our transport, with the environment's proxies mounted where httpx puts them.
        transport, mounts = client_transports(make)
        self._jar = CountingJar()  # a fresh session: no cookie of an earlier one
        self._cookie_version = -1
        self._post_headers = None
        self._client = httpx.AsyncClient(
            base_url=self._config.api_url,
            timeout=timeout,
            transport=transport,
            mounts=mounts,
            cookies=self._jar,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        try:
            await self.login()
        except BaseException:
            await self.close()
            raise

    def _used_transport(self, transport: GWSTransport, url: httpx.URL) -> None:
        if (url.raw_scheme, url.raw_host, url.port) == self._origin:
            self._post_transport = transport

    async def close(self) -> None:
        client, self._client = self._client, None
        self._post_transport = None
        try:
            if client is not None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
        finally:
            # Even when a plain task.cancel() cuts the close short (the shield stops only
            # anyio's): else each such close left its CSRF token registered for good.
            guarded, self._guarded = self._guarded, []
            for value in guarded:
                PLUGIN_SECRETS.discard_secret(value)

    def _guard(self, value: str) -> None:
        PLUGIN_SECRETS.add_secret(value)
        self._guarded.append(value)

    # -- requests ----------------------------------------------------------------------------

    async def login(self, *, retry: bool = True) -> None:
        """``GET /api/v2/me`` with Basic credentials: new session cookie and CSRF token.
        ``retry=False``: one attempt (a re-login, which ``outcome_bound`` counts as one).

        :raises GWSAuthenticationError: GWS refused the credentials (401, 403, statusCode 20),
            or did so less than ``AUTH_FAILURE_HOLD`` seconds ago.
        :raises GWSTransportError: no answer from GWS, after the retries.
        :raises GWSStatusError: GWS answered another ``statusCode``.
        """
        user = self._config.username
        if self._auth_failed_at is not None:
            waited = time.monotonic() - self._auth_failed_at
            if waited < AUTH_FAILURE_HOLD:
                raise GWSAuthenticationError(
                    f"GWS refused the credentials of {user!r} at {self.target} "
                    f"{waited:.1f}s ago; not trying again for {AUTH_FAILURE_HOLD:.0f}s"
                )

        async def attempt() -> tuple[Mapping[str, Any], _Answer]:
            response = await self._exchange(
                "GET", "/me", None, headers={"Authorization": self._authorization}
            )
            return self._interpret("GET", "/me", response), response

        try:
            if retry:
                body, response = await self._retrying("GET", "/me", attempt)
            else:
                try:
                    body, response = await attempt()
                except _Transient as transient:
                    raise transient.error from None
        except _SessionRefused as refused:
            self._auth_failed_at = time.monotonic()
            logger.warning("gws_login_refused", user=user, http_status=refused.http_status)
            failure = GWSAuthenticationError(
                f"GWS refused the credentials of {user!r} at {self.target} ({refused.describe()})"
            )
            self._login_ended(failure)
            raise _again(failure) from None
        except GWSError as error:
            self._login_ended(error)
            raise
        self._login_ended(None)
        self._auth_failed_at = None
        found = body.get("user")
        self.user = dict(found) if isinstance(found, Mapping) else {}
        self._remember_csrf(response)
        self._generation += 1
        logger.info(
            "gws_logged_in",
            user=user,
            base_url=self._config.base_url,
            csrf=self._csrf is not None,
        )

    async def get(self, path: str) -> Mapping[str, Any]:
        """GET ``/api/v2<path>`` on the session; refreshes the CSRF token."""
        return await self._with_relogin("GET", path, None)

    async def post_record_operation(
        self, record_handle: int, body: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``POST /api/v2/me/outbound-records/<record_handle>``; returns the JSON on
        ``statusCode`` 0.

        :raises GWSStatusError: GWS answered another ``statusCode`` (also on a 4xx/5xx).
        :raises GWSAuthenticationError: refused also after a fresh login.
        :raises GWSNoAnswerError: it may have been processed; no answer (not resent).
        :raises GWSTransportError: GWS certainly did not process it (after the retries).
        """
        if isinstance(record_handle, bool) or not isinstance(record_handle, int):
            raise TypeError("record_handle must be an int")
        return await self.post_operation(f"/me/outbound-records/{int(record_handle)}", body)

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``POST /api/v2<path>`` (an outbound operation; ``path`` from the request's
        ``gws_path()``); same answers and exceptions as :meth:`post_record_operation`.

        :raises GWSTransportError: ``path`` is not an outbound operation path (checked before
            anything is sent: no ``..``, query, fragment or stray character can move it).
        """
        if not _is_operation_path(path):
            raise GWSTransportError(
                f"refused to send an operation to {one_line(repr(path), 80)}: not an "
                "outbound operation path; nothing was sent"
            )
        carry = resumed()
        if carry is not None:  # an earlier sender of it was interrupted between attempts
            return await self._with_relogin("POST", path, body, resume=carry)
        transport = self._post_transport
        if transport is None:
            return await self._with_relogin("POST", path, body)
        # The first attempt straight through the transport (the frames of the re-login and
        # retry logic are resumed at every checkpoint of the POST); anything but a GWS
        # success hands its outcome to that logic, as if it had made this attempt itself.
        generation = self._generation
        url, headers, content = self._post_parts(path, body)
        try:
            status, answer_headers, answer = await self._bounded(
                lambda progress: transport.post(url, headers, content, self._timeouts, progress)
            )
        except httpx.TransportError as error:
            return await self._with_relogin("POST", path, body, generation, error)
        response = self._post_answer(path, status, answer_headers, answer)
        accepted = _accepted(response)
        if accepted is not None:
            return accepted
        return await self._with_relogin("POST", path, body, generation, response)

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        """``POST /api/v2/me {"operationName": "EndContactCenterSession"}``: logs the agent
        out on every desktop, restores the default devices and ends the HTTP session
        (gws-outbound.md §5.1). Resent only when GWS certainly did not get it."""
        return await self._with_relogin("POST", "/me", {"operationName": "EndContactCenterSession"})

    async def devices(self) -> list[Mapping[str, Any]]:
        """The agent's devices (``GET /api/v2/me/devices?fields=*``)."""
        body = await self.get("/me/devices?fields=*")
        devices = body.get("devices")
        return [d for d in devices if isinstance(d, Mapping)] if isinstance(devices, list) else []

    async def _with_relogin(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        generation: int | None = None,
        first: _Answer | httpx.TransportError | None = None,
        *,
        resume: Carry | None = None,
    ) -> Mapping[str, Any]:
        """The request with retries and one re-login. ``first``: the outcome of a first
        attempt already made (by :meth:`post_operation`) at login ``generation``.
        ``resume``: where the retries of this POST stood when an earlier sender of it was
        interrupted (the sender waited the rest of the backoff): they go on from there."""

        made = first is not None  # an attempt was made already

        async def attempt() -> Mapping[str, Any]:
            try:
                return await one_attempt()
            except (_Transient, _SessionRefused):
                if method == "POST":
                    # Refused unread, or no connection: GWS did not get this attempt, and
                    # the POST is written again only after ``announce_resend``.
                    announce_not_received()
                raise

        async def one_attempt() -> Mapping[str, Any]:
            nonlocal first, made
            if first is None:
                # The last attempt certainly did not reach GWS (M10); and not written again
                # for a request that has its outcome meanwhile.
                if made and method == "POST" and not announce_resend():
                    raise GWSTransportError(
                        f"{method} {path} was not written again: its request has its outcome "
                        "already, or GWS answered it over CometD; nothing more was sent"
                    )
                made = True
                response = await self._exchange(method, path, body)
            elif isinstance(first, _Answer):
                response, first = first, None
            else:
                error, first = first, None
                self._raise_transport_error(method, path, error)
            parsed = self._interpret(method, path, response)
            if method == "GET":
                self._remember_csrf(response)
            return parsed

        if generation is None:
            generation = self._generation
        waited_before: float | None
        if resume is None or not resume.relogged:
            try:
                return await self._retrying(
                    method,
                    path,
                    attempt,
                    generation,
                    made=resume.attempts if resume else 0,
                    waited=resume.waited if resume else None,
                )
            except _SessionRefused as refused:
                logger.info(
                    "gws_session_renewing",
                    http_status=refused.http_status,
                    status_code=refused.status_code,
                    path=path,
                )
                first_refusal = refused.describe()
                made_before, waited_before = refused.attempts, refused.waited
            if method == "POST":  # interrupted during the re-login: it goes on from here
                note_backoff(made_before, True, generation, 0.0, waited_before)
        else:
            generation = resume.generation
            first_refusal = "before its sender was interrupted"
            made_before, waited_before = resume.attempts, resume.waited
        # GWS refused it unread: log in again (once for concurrent requests) and resend, the
        # retries going on where they stood (the attempt after the login always made): one
        # round of retries and one login in all, as ``outcome_bound`` counts them.
        try:
            await self._relogin(generation)
        except GWSStatusError as error:
            # The login's statusCode, not the request's: GWS refused the request unread and
            # the session could not be renewed (nothing of the request was processed).
            detail = one_line(error.status_message, 120) if error.status_message else ""
            raise GWSAuthenticationError(
                f"GWS at {self.target} refused {method} {self._api_path}{path} unread "
                f"({first_refusal}) and logging in again failed: the login (GET "
                f"{self._api_path}/me) was answered HTTP {error.http_status}, statusCode "
                f"{error.status_code}" + (f" ({detail})" if detail else "")
            ) from None
        except GWSTransportError as error:
            # No answer to the login: the request itself was refused unread (not sent).
            raise GWSTransportError(
                f"GWS at {self.target} refused {method} {self._api_path}{path} unread "
                f"({first_refusal}) and logging in again failed: {error}; nothing of the "
                f"{method} was processed"
            ) from None
        try:
            return await self._retrying(
                method,
                path,
                attempt,
                generation,
                relogged=True,
                made=made_before,
                waited=waited_before,
            )
        except _SessionRefused as refused:
            raise GWSAuthenticationError(
                f"GWS at {self.target} refused the session after a fresh login "
                f"({refused.describe()})"
            ) from None

    def _login_ended(self, failure: GWSError | None) -> None:
        self._logins_ended += 1
        self._login_failure = failure

    async def _relogin(self, generation: int) -> None:
        """Log in again (one attempt), unless another request did since ``generation``; a
        login another request made while this one waited for it decides for both (its
        failure is raised again): a request waits for one login at most, as
        ``outcome_bound`` counts."""
        ended = self._logins_ended
        async with self._login_lock:
            if self._generation != generation:
                return  # another request already logged in again
            failure = self._login_failure
            if self._logins_ended != ended and failure is not None:
                raise _again(failure)
            await self.login(retry=False)

    async def _retrying(
        self,
        method: str,
        path: str,
        attempt: Callable[[], Awaitable[_T]],
        generation: int = 0,
        *,
        relogged: bool = False,
        made: int = 0,
        waited: float | None = None,
    ) -> _T:
        """``attempt`` with the retry policy; ``made``: attempts of this round already made
        (by an interrupted sender of the same POST, or before the re-login), and ``waited``
        the waits after them, when known (else the policy's own). A POST's backoffs are noted
        for its sender (``note_backoff``), with ``generation`` and ``relogged`` (which
        round)."""
        attempts = made + 1
        policy = self.retry_policy
        # What the waits of this round may add up to: the policy's own longest total (the
        # part of ``outcome_bound`` they use). A server's Retry-After lengthens a wait within
        # it, never beyond; the waits before a re-login or an interrupted sender's
        # resumption count as they were (a Retry-After made them longer than the policy's).
        budget = policy.longest_total_delay()
        if waited is None:
            waited = math.fsum(
                policy.backoff(n) for n in range(1, min(made, policy.retries or 0) + 1)
            )
        asked_too_long: float | None = None

        def worth_another(error: Exception) -> bool:
            nonlocal asked_too_long
            if not isinstance(error, _Transient):
                return False
            asked = error.retry_after
            retries_left = policy.attempts is None or attempts < policy.attempts
            if (
                asked is not None
                and retries_left
                and asked > min(policy.max_delay, budget - waited)
            ):
                asked_too_long = asked  # later than the policy can wait: not tried again
                return False
            return True

        def on_retry(error: Exception, number: int, delay: float) -> float:
            nonlocal attempts, waited
            attempts = number + 1
            asked = error.retry_after if isinstance(error, _Transient) else None
            if asked is not None:
                delay = max(delay, asked)
            delay = max(min(delay, budget - waited), 0.0)
            waited += delay
            if method == "POST":
                note_backoff(number, relogged, generation, anyio.current_time() + delay, waited)
            logger.warning(
                "gws_request_retry",
                method=method,
                path=path,
                attempt=number,
                delay=round(delay, 3),
                retry_after=asked,
                error=str(error),
            )
            return delay

        try:
            return await policy.retrying(
                attempt, retry_if=worth_another, on_retry=on_retry, made=made
            )
        except _SessionRefused as refused:
            refused.attempts, refused.waited = attempts, waited
            raise
        except _Transient as transient:
            error = transient.error
            if asked_too_long is not None:
                error = _asked_too_long(error, asked_too_long, policy, attempts)
            elif attempts > 1 and type(error) in (GWSTransportError, GWSNoAnswerError):
                error = type(error)(f"{error}; {attempts} attempts")
            raise error from None

    async def _exchange(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        """One HTTP request; a failure becomes the GWS error saying whether it may have been
        processed (see the module docstring)."""
        transport = self._post_transport
        try:
            if method == "POST" and transport is not None and body is not None and not headers:
                url, post_headers, content = self._post_parts(path, body)
                status, answer_headers, answer = await self._bounded(
                    lambda progress: transport.post(
                        url, post_headers, content, self._timeouts, progress
                    )
                )
                return self._post_answer(path, status, answer_headers, answer)
            request_headers = {"Authorization": self._authorization}
            if method != "GET" and self._csrf is not None:
                name, token = self._csrf
                request_headers[name] = token
            if headers:
                request_headers.update(headers)
            encoded: bytes | None = None
            if body is not None:  # as httpx's json= would, with the same check as POSTs
                encoded = self._encode(path, body)
                request_headers["Content-Type"] = "application/json"
            client = self.client
            try:
                response = await self._bounded(
                    lambda progress: client.request(
                        method,
                        path,
                        content=encoded,
                        headers=request_headers,
                        extensions={"trace": progress.trace},
                    )
                )
            except UnicodeEncodeError:  # httpx writes headers as ASCII: raised before sending
                unwritable = True
            else:
                unwritable = False
            if unwritable:  # raised outside the handler: no __context__ holding the value
                # What cannot be written is dropped (kept, it failed every later request).
                if self._csrf is not None and not "".join(self._csrf).isascii():
                    self._csrf = None
                    logger.warning("gws_csrf_token_dropped")
                self.drop_unwritable_cookies()
                raise self._unwritable(
                    method, path, "the CSRF token or a cookie GWS gave this session"
                )
        except httpx.TransportError as error:
            self._raise_transport_error(method, path, error)
        return _Answer(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            response.headers,
            response.headers.get("retry-after"),
        )

    async def _bounded(self, send: Callable[[Progress], Awaitable[_T]]) -> _T:
        """``await send(progress)``, one HTTP exchange, within ``request_timeout`` in all.

        httpx's timeouts bound each step (connect, each write, each read) on its own: a GWS or
        proxy that answers a byte at a time, or sends the headers and then trickles the body,
        would hold the exchange (and a POST worker, or entering the plugin) for ever. Past
        ``request_timeout`` the exchange is given up as a timeout of its own step: a read
        timeout (may have been processed: never resent) once the request began to be written
        (``progress`` says so, see :class:`~._transport.Progress`), else a connect timeout
        (certainly not sent: still connecting, waiting for a pooled connection or for a proxy
        to open the tunnel)."""
        progress = Progress()
        deadline = asyncio.timeout(self._config.request_timeout)
        try:
            async with deadline:
                return await send(progress)
        except TimeoutError:
            if not deadline.expired():
                raise
            step = httpx.ReadTimeout if progress.written else httpx.ConnectTimeout
            raise step(
                f"the exchange took longer than {self._config.request_timeout:g}s in all"
            ) from None

    def _post_parts(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[httpcore.URL, list[tuple[bytes, bytes]], bytes]:
        """URL, headers and content of a POST straight through the transport (what httpx's
        client would send): the header list kept per CSRF token and jar version (see
        :meth:`_post_header_list`), the body from one shared JSON encoder."""
        content = self._encode(path, body)
        try:
            headers = self._post_header_list(path)
        except UnwritableHeader as error:
            raise self._unwritable("POST", path, str(error)) from None
        headers.append((b"Content-Length", str(len(content)).encode()))
        scheme, host, port = self._origin
        url = httpcore.URL(
            scheme=scheme, host=host, port=port, target=(self._api_path + path).encode("ascii")
        )
        return url, headers, content

    def _unwritable(self, method: str, path: str, what: str) -> GWSTransportError:
        """What a request raises when ``what`` (a CSRF token or a cookie GWS or a proxy gave
        the session) cannot be written in a header: refused before anything is written,
        certainly not sent (a plain :class:`GWSTransportError`), naming which, never its
        value."""
        logger.warning("gws_header_unwritable", method=method, path=path, what=what)
        return GWSTransportError(
            f"refused to send {method} {self._api_path}{path} to GWS at {self.target}: {what} "
            "cannot be written in an HTTP header (a character outside Latin-1); nothing was "
            "sent"
        )

    def _encode(self, path: str, body: Mapping[str, Any]) -> bytes:
        """The body of a POST as JSON (UTF-8), or :class:`GWSTransportError` (certainly not
        sent: raised before anything is written) when JSON cannot carry it (NaN, a set, a
        lone surrogate, nesting too deep), naming the error's type only (its text may hold
        the values)."""
        try:
            return encode_json(body)
        except NOT_JSON as error:  # UnicodeEncodeError is a ValueError
            raise GWSTransportError(
                f"refused to send POST {self._api_path}{path} to GWS at {self.target}: its "
                f"body cannot be written as JSON ({type(error).__name__}); nothing was sent"
            ) from None

    def _post_answer(
        self, path: str, status: int, headers: list[tuple[bytes, bytes]], content: bytes
    ) -> _Answer:
        """What the session reads from the answer to a POST; its cookies go to the jar only
        when it sets some."""
        content_type = ""
        cookies: list[str] = []
        encoded = False
        retry_after: str | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.decode("latin-1")
            elif lowered == b"set-cookie":
                cookies.append(value.decode("latin-1"))
            elif lowered == b"content-encoding" and value.lower() != b"identity":
                encoded = True
            elif lowered == b"retry-after":
                retry_after = value.decode("latin-1")
        if cookies:
            self.store_cookies(self._config.api_url + path, cookies)
        if encoded:  # not asked for (no Accept-Encoding), but decoded as httpx would
            content = httpx.Response(status, headers=headers, content=content).read()
        return _Answer(status, content_type, content, retry_after=retry_after)

    def _raise_transport_error(self, method: str, path: str, error: Exception) -> NoReturn:
        what = (
            f"{method} {self._api_path}{path} to GWS at {self.target} failed: "
            f"{describe_failure(error, self._config.request_timeout)}"
        )
        if isinstance(error, _NOT_SENDABLE):
            raise GWSTransportError(what) from None
        if isinstance(error, _NOT_SENT) or method == "GET":
            raise _Transient(GWSTransportError(what)) from None
        raise GWSNoAnswerError(
            what + "; GWS may have processed it, so it was not sent again"
        ) from None

    def _interpret(self, method: str, path: str, response: _Answer) -> Mapping[str, Any]:
        """The GWS answer of a 2xx with ``statusCode`` 0; raises for anything else."""
        http_status = response.status_code
        parsed = _json_or_none(response)
        code, message = _status_of(parsed)
        if http_status == 401 or code == 20 or (http_status == 403 and code is None):
            # Refused unread (credentials, CSRF token or session): log in again.
            raise _SessionRefused(http_status, code)
        if code is not None and code != 0:
            error = GWSStatusError(code, message, http_status=http_status)
            if http_status in _UNAVAILABLE and (
                method == "GET" or code not in UNFINISHED_STATUS_CODES
            ):
                # GWS's "service not available" (statusCode 4, §10.1), or too many requests:
                # nothing was processed. Not so for 7 (partial success) and 9 (processing
                # incomplete): GWS may act on an operation (a read changes nothing: retried
                # whatever the code).
                raise _Transient(error, retry_after_seconds(response.retry_after))
            raise error
        if code == 0 and 200 <= http_status < 300:
            assert isinstance(parsed, Mapping)
            return parsed
        what = (
            f"{method} {self._api_path}{path}: GWS at {self.target} answered HTTP "
            f"{http_status} without a GWS answer "
            f"({one_line(response.content_type or 'no content type', 80)})"
        )
        if (http_status >= 500 and method == "GET") or http_status == 429:
            # A read is retried; a 429 (too many requests) was refused unread.
            raise _Transient(GWSTransportError(what), retry_after_seconds(response.retry_after))
        if http_status >= 500 or 200 <= http_status < 300:
            # A proxy's error page, or a 2xx that is no GWS answer: it may have been processed.
            if method == "GET":
                raise GWSTransportError(what)
            raise GWSNoAnswerError(what + "; GWS may have processed it, so it was not sent again")
        raise GWSTransportError(what)  # 3xx/4xx without a GWS answer: refused unread

    def _remember_csrf(self, response: _Answer) -> None:
        if response.headers is None:
            return
        name = response.headers.get("X-CSRF-HEADER")
        token = response.headers.get("X-CSRF-TOKEN")
        if name and token:
            if self._csrf is None or self._csrf[1] != token:
                if self._csrf is not None and self._csrf[1] in self._guarded:
                    self._guarded.remove(self._csrf[1])
                    PLUGIN_SECRETS.discard_secret(self._csrf[1])
                self._guard(token)
            self._csrf = (name, token)


def _again(error: GWSError) -> GWSError:
    """A new exception saying what ``error`` said (raised in another task)."""
    if isinstance(error, GWSStatusError):
        return GWSStatusError(
            error.status_code, error.status_message, http_status=error.http_status
        )
    return type(error)(str(error))


def _asked_too_long(error: GWSError, asked: float, policy: RetryPolicy, attempts: int) -> GWSError:
    """``error`` saying that GWS asked to be tried again later than the retry policy waits."""
    why = (
        f"GWS asked to be tried again after {asked:g}s (Retry-After), later than the retry "
        f"policy waits (at most {policy.max_delay:g}s at a time, {policy.longest_total_delay():g}s "
        f"in all); not tried again after {attempts} attempt{'s' if attempts > 1 else ''}"
    )
    if isinstance(error, GWSStatusError):
        message = f"{error.status_message}; {why}" if error.status_message else why
        return GWSStatusError(error.status_code, message, http_status=error.http_status)
    return type(error)(f"{error}; {why}")


def _accepted(response: _Answer) -> dict[str, Any] | None:
    """The body of a 2xx JSON answer with ``statusCode`` 0 (what
    :meth:`GWSSession._interpret` returns for it); ``None`` for any other answer, left to
    ``_interpret``."""
    if not 200 <= response.status_code < 300 or "json" not in response.content_type:
        return None
    try:
        parsed = json.loads(response.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    if type(parsed) is dict:
        code = parsed.get("statusCode")
        if code == 0 and type(code) is int:
            return parsed
    return None


def _json_or_none(response: _Answer) -> object:
    if "json" not in response.content_type:
        return None
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError):  # nested too deep: no GWS answer either
        return None
