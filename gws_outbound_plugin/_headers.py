"""The headers a GWS session sends, made once and kept: the ``Cookie`` headers its jar gives
(kept until the jar changes) and the headers of every POST but its length (kept per CSRF
token and jar version).

:class:`SessionHeaders` is a part of :class:`~gws_outbound_plugin._session.GWSSession`,
which holds the state named in its annotations (set in ``GWSSession.__init__`` and
``open()``); the jar also serves the CometD client (see ``_cometd.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from http.cookiejar import Cookie, CookieJar
from typing import TYPE_CHECKING, Final

import httpx

from ._log import get_logger

if TYPE_CHECKING:
    from ._config import GWSConfig

__all__ = ["CountingJar", "SessionHeaders", "UnwritableHeader"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

_USER_AGENT: Final = f"python-httpx/{httpx.__version__}".encode()


class UnwritableHeader(ValueError):
    """A header of a POST cannot be written: what GWS (or a proxy) gave the session, a CSRF
    token or a cookie, holds a character HTTP/1.1 headers cannot carry (outside Latin-1).
    ``str()`` names which, never its value (a secret). Raised before anything is written."""


def _latin1(value: str, what: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        pass
    # Raised outside the handler: the UnicodeEncodeError (whose ``object`` is the value)
    # is not even kept as a suppressed ``__context__``.
    raise UnwritableHeader(what)


class CountingJar(CookieJar):
    """The session's cookie jar, counting its changes (every change goes through
    ``set_cookie`` or ``clear``), so that the Cookie headers made from it can be kept."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def set_cookie(self, cookie: Cookie) -> None:
        super().set_cookie(cookie)
        self.version += 1

    def clear(
        self, domain: str | None = None, path: str | None = None, name: str | None = None
    ) -> None:
        try:
            super().clear(domain, path, name)
        finally:
            self.version += 1


def _ascii(value: str | None) -> bool:
    return value is None or value.isascii()


def _path_matches(cookie_path: str, request_path: str) -> bool:
    """Whether a cookie of ``cookie_path`` goes with a request for ``request_path``
    (``http.cookiejar.DefaultCookiePolicy.path_return_ok``)."""
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path) : len(cookie_path) + 1] == "/"
    )


class SessionHeaders:
    """The Cookie headers and the POST header list of a :class:`GWSSession`."""

    _config: GWSConfig
    _authorization: str
    _csrf: tuple[str, str] | None
    _api_path: str
    _host_header: bytes
    _jar: CountingJar
    # Cookie headers made from the jar at version _cookie_version: by URL (CometD) and,
    # for POSTs, by which of the jar's cookie paths match the request path.
    _cookie_version: int
    _cookie_paths: tuple[str, ...]
    _cookie_cacheable: bool
    _cookies_by_url: dict[str, str | None]
    _cookies_by_paths: dict[tuple[bool, ...], str | None]
    # Which cookie paths match any request path under "<api path>/", when that is the same
    # for all of them (None: it depends on the path).
    _cookie_key_under_api: tuple[bool, ...] | None
    # The headers of a POST but its Content-Length, as (CSRF header, jar version, headers),
    # kept while neither changes when the Cookie header is the same for every operation.
    _post_headers: tuple[tuple[str, str] | None, int, list[tuple[bytes, bytes]]] | None

    if TYPE_CHECKING:

        @property
        def client(self) -> httpx.AsyncClient:
            """The session's httpx client (raises when the session is not open)."""

    def cookie_header(self, url: str) -> str | None:
        """The ``Cookie`` header this session's jar sends to ``url`` (the CometD client's):
        without a cookie that cannot be written in a header, which is dropped from the jar
        (see :meth:`drop_unwritable_cookies`)."""
        self._check_cookie_version()
        if url in self._cookies_by_url:
            return self._cookies_by_url[url]
        try:
            header = self._jar_header(url)
        except UnwritableHeader:  # dropped from the jar: made again without it
            self._check_cookie_version()
            header = self._jar_header(url)
        if self._cookie_cacheable:
            self._cookies_by_url[url] = header
        return header

    def _check_cookie_version(self) -> None:
        # The jar's answer costs ~50 us: answers are kept until the jar changes, unless a
        # cookie has an expiry time (the answer would then depend on the time).
        jar = self._jar
        if jar.version != self._cookie_version:
            self._cookie_version = jar.version
            cookies = list(jar)
            paths = tuple(sorted({cookie.path for cookie in cookies}))
            self._cookie_paths = paths
            self._cookie_cacheable = all(cookie.expires is None for cookie in cookies)
            self._cookies_by_url.clear()
            self._cookies_by_paths.clear()
            # Which cookie paths match is the same for every request path under
            # "<api path>/" unless a cookie path goes deeper than that.
            under = self._api_path + "/"
            self._cookie_key_under_api = (
                None
                if any(path.startswith(under) and path != under for path in paths)
                else tuple(_path_matches(path, under) for path in paths)
            )

    def _jar_header(self, url: str) -> str | None:
        request = httpx.Request("POST", url)
        try:
            self.client.cookies.set_cookie_header(request)
        except UnicodeEncodeError:  # httpx writes the header as ASCII
            unwritable = True
        else:
            unwritable = False
        if unwritable:  # raised outside the handler: no __context__ holding the value
            self.drop_unwritable_cookies()
            raise UnwritableHeader("a cookie GWS gave this session")
        header: str | None = request.headers.get("cookie")
        return header

    def drop_unwritable_cookies(self) -> None:
        """Drop from the jar every cookie that cannot be written in a header (a name or value
        outside ASCII, as httpx writes it): kept, it failed every later request of the
        session (and the CometD client's) until the plugin was restarted. Logged without
        its name or value."""
        unwritable = [c for c in self._jar if not (_ascii(c.name) and _ascii(c.value))]
        for cookie in unwritable:
            self._jar.clear(cookie.domain, cookie.path, cookie.name)
        if unwritable:
            logger.warning("gws_cookie_dropped", count=len(unwritable))

    def _post_cookie(self, path: str) -> str | None:
        """The Cookie header of a POST to ``/api/v2<path>``: the jar's cookies for GWS's host
        whose path matches (the answer depends on nothing else while the jar is unchanged)."""
        self._check_cookie_version()
        key = self._cookie_key_under_api if path.startswith("/") else None
        if key is None:
            target = self._api_path + path
            key = tuple(_path_matches(cookie_path, target) for cookie_path in self._cookie_paths)
        cached = self._cookies_by_paths
        if key in cached:
            return cached[key]
        header = self._jar_header(self._config.api_url + path)
        if self._cookie_cacheable:
            cached[key] = header
        return header

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

    def _post_header_list(self, path: str) -> list[tuple[bytes, bytes]]:
        """A new list of the headers of a POST to ``/api/v2<path>`` but its Content-Length:
        Host, Accept, User-Agent, Authorization, the CSRF header, Cookie, Content-Type.
        Made again when the CSRF token (a fresh login) or the jar changes, or for every POST
        when the Cookie header depends on the path or on the time.

        :raises UnwritableHeader: the CSRF token or a cookie cannot be written in a header."""
        csrf = self._csrf
        cached = self._post_headers
        if cached is not None and cached[0] is csrf and cached[1] == self._jar.version:
            return cached[2].copy()
        cookie = self._post_cookie(path)
        headers = [
            (b"Host", self._host_header),
            (b"Accept", b"application/json"),
            (b"User-Agent", _USER_AGENT),
            (b"Authorization", self._authorization.encode("ascii")),
        ]
        if csrf is not None:
            try:
                headers.append(
                    (
                        _latin1(csrf[0], "the CSRF header name GWS gave this session"),
                        _latin1(csrf[1], "the CSRF token GWS gave this session"),
                    )
                )
            except UnwritableHeader:
                # Dropped: the next POST goes without it, GWS refuses that one unread (CSRF
                # 403) and the session logs in again, for a new token. Kept, it failed
                # every later POST until the plugin was restarted.
                self._csrf = None
                logger.warning("gws_csrf_token_dropped")
                raise
        if cookie:
            headers.append((b"Cookie", _latin1(cookie, "a cookie GWS gave this session")))
        headers.append((b"Content-Type", b"application/json"))
        if (
            self._cookie_cacheable
            and self._cookie_key_under_api is not None
            and path.startswith("/")
        ):
            self._post_headers = (csrf, self._cookie_version, headers)
        else:
            self._post_headers = None
        return headers.copy()
