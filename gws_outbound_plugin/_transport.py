"""The HTTP transport under the GWS session: httpcore's connection pool on an asyncio network
backend, plugged into httpx the supported way (``transport=`` and ``mounts=``).

Why a transport of our own (measured in BENCHMARKS.md): under httpx's default transport every
read and write goes through anyio stream wrappers (a timeout scope, locks and events each
time); this backend does one future and one loop timer per read and writes straight to the
asyncio transport. What users of httpx rely on is kept:

* **proxies from the environment**: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
  ``NO_PROXY`` (read with httpx's rules, see :func:`environment_mounts`). Passing
  ``transport=`` to an httpx client turns them off; :func:`client_transports` restores them
  as ``mounts``;
* **TLS**: verification on unless ``verify_tls=False``; a custom CA from ``SSL_CERT_FILE`` or
  ``SSL_CERT_DIR`` as httpx reads them; one SSL context per process per setting (loading the
  CA bundle costs 12-15 ms of CPU, see :func:`ssl_context`);
* **timeouts** (connect, read, write, pool: httpx's request extension) and HTTP/1.1
  keep-alive (httpcore's pool);
* **"certainly not sent"**: httpcore drops an idle pooled connection that is readable (the
  server closed it) before reusing it. "Readable" is a buffered-data/EOF flag and, when
  neither is set, one ``poll()`` of that socket: the loop may not have seen a close that the
  kernel already has, and a request written on such a connection would fail *after* being
  written (never resent) instead of failing to connect (resent).

:class:`GWSTransport` is also what the session POSTs through without building an
``httpx.Request`` (:meth:`GWSTransport.post`), under the session's ``post_operation`` (the
operation seam, :class:`~gws_outbound_plugin._seam.OperationPoster`).
"""

from __future__ import annotations

import asyncio
import collections
import os
import select
import socket
import ssl
import threading
import typing
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import Any, Final, TypeVar

import httpcore
import httpx

__all__ = [
    "AsyncioBackend",
    "GWSTransport",
    "Progress",
    "client_transports",
    "environment_mounts",
    "ssl_context",
]

#: Stop reading from a socket while this much is buffered and unread.
_READ_HIGH_WATER: Final = 256 * 1024
_READ_LOW_WATER: Final = 64 * 1024

# -- TLS ---------------------------------------------------------------------------------------

_ssl_lock = threading.Lock()
_ssl_contexts: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def ssl_context(verify: bool) -> ssl.SSLContext:
    """The SSL context for ``verify`` (httpx's: certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` from the environment), made once per process per setting."""
    key = (bool(verify), os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _ssl_contexts.get(key)
    if context is None:
        with _ssl_lock:
            context = _ssl_contexts.get(key)
            if context is None:
                context = httpx.create_ssl_context(verify=bool(verify))
                _ssl_contexts[key] = context
    return context


# -- proxies from the environment ------------------------------------------------------------------


def _is_ip(host: str, family: int) -> bool:
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


def environment_mounts(
    proxies: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """The proxy mounts httpx derives from the environment (``trust_env``), as
    ``{url pattern: proxy URL, or None for "no proxy"}``: the same rules as httpx's own
    ``get_environment_proxies`` (``NO_PROXY=*`` turns every proxy off; a host in ``NO_PROXY``
    matches it and its subdomains, a leading dot only subdomains).

    ``proxies`` defaults to :func:`urllib.request.getproxies` (the environment, and the
    system settings on Windows and macOS)."""
    info = urllib.request.getproxies() if proxies is None else proxies
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = info.get(scheme)
        if url:
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (entry.strip() for entry in info.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            mounts[host] = None
        elif _is_ip(host, socket.AF_INET) or host.lower() == "localhost":
            mounts[f"all://{host}"] = None
        elif _is_ip(host, socket.AF_INET6):
            mounts[f"all://[{host}]"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def client_transports(
    make: Callable[[str | None], httpx.AsyncBaseTransport],
    proxies: Mapping[str, str] | None = None,
) -> tuple[httpx.AsyncBaseTransport, dict[str, httpx.AsyncBaseTransport | None]]:
    """``(transport, mounts)`` for ``httpx.AsyncClient``: ``make(None)`` for direct
    connections and ``make(proxy_url)`` for every proxy the environment names, mounted where
    httpx would have mounted them (``None`` keeps the direct transport for ``NO_PROXY``)."""
    made: dict[str, httpx.AsyncBaseTransport] = {}
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, proxy in environment_mounts(proxies).items():
        if proxy is None:
            mounts[pattern] = None
        else:
            if proxy not in made:
                made[proxy] = make(proxy)
            mounts[pattern] = made[proxy]
    return make(None), mounts


# -- the asyncio network backend -----------------------------------------------------------


class _Protocol(asyncio.Protocol):
    """Buffers what the socket delivers; wakes the one reader waiting, if any."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.paused_writing = False
        self.paused_reading = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER and not self.paused_reading and self.transport:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake_reader()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        self.error = exc
        self._wake_reader()
        writer, self.writer = self.writer, None
        if writer is not None and not writer.done():
            writer.set_result(None)

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        writer, self.writer = self.writer, None
        if writer is not None and not writer.done():
            writer.set_result(None)

    def _wake_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)


def _expire(future: asyncio.Future[None], error: type[Exception]) -> None:
    if not future.done():
        future.set_exception(error())


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: reads from the protocol's buffer, writes to the asyncio transport."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        protocol: _Protocol,
    ) -> None:
        self._loop = loop
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks:
            if protocol.eof:
                return b""
            waiter = self._loop.create_future()
            protocol.reader = waiter
            timer = (
                None
                if timeout is None
                else self._loop.call_later(timeout, _expire, waiter, httpcore.ReadTimeout)
            )
            try:
                await waiter
            finally:
                protocol.reader = None
                if timer is not None:
                    timer.cancel()
            if not protocol.chunks:
                if protocol.error is not None:
                    raise httpcore.ReadError(str(protocol.error)) from protocol.error
                return b""
        chunk = protocol.chunks.popleft()
        if len(chunk) > max_bytes:
            protocol.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        protocol.buffered -= len(chunk)
        if protocol.paused_reading and protocol.buffered < _READ_LOW_WATER:
            protocol.paused_reading = False
            self._transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if not protocol.paused_writing:
            return
        waiter = self._loop.create_future()
        protocol.writer = waiter
        timer = (
            None
            if timeout is None
            else self._loop.call_later(timeout, _expire, waiter, httpcore.WriteTimeout)
        )
        try:
            await waiter
        finally:
            protocol.writer = None
            if timer is not None:
                timer.cancel()
        if protocol.lost:
            raise httpcore.WriteError("the connection was closed while writing")

    async def aclose(self) -> None:
        # As anyio's streams do: the loop closes the socket in a callback, which must run
        # before the loop may stop (or the socket is left to the garbage collector).
        self._transport.close()
        try:
            await asyncio.sleep(0)
        finally:
            self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            transport = await _within(
                timeout,
                self._loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                ),
            )
        except TimeoutError as error:
            self._transport.abort()
            raise httpcore.ConnectTimeout(str(error)) from error
        except (OSError, ssl.SSLError, ConnectionError) as error:
            self._transport.abort()
            raise httpcore.ConnectError(str(error)) from error
        if transport is None:  # pragma: no cover - only for a closed transport
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        return AsyncioStream(self._loop, transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":
            protocol = self._protocol
            if protocol.chunks or protocol.eof:
                return True
            return _poll_readable(transport.get_extra_info("socket"))
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


def _poll_readable(sock: Any) -> bool:
    """Whether the kernel has something (data or the peer's close) for ``sock``."""
    fileno = -1 if sock is None else sock.fileno()
    if fileno < 0:
        return True  # gone: the next read returns b""
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        readable, _, _ = select.select([fileno], [], [], 0)
        return bool(readable)
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))


_T = TypeVar("_T")


async def _within(timeout: float | None, step: Coroutine[Any, Any, _T]) -> _T:
    """``await step`` in the calling task, ``TimeoutError`` after ``timeout`` seconds.

    Not ``asyncio.wait_for``: on Python 3.11 it runs the step in a task of its own, and a
    cancellation of the caller that comes as that task ends (a host's ``asyncio.timeout``
    around entering the plugin, a ``task.cancel()`` at Ctrl-C, as the connection is made)
    is lost: ``wait_for`` returns the connection, and the caller goes on as if never
    cancelled. Here the step is cancelled itself and closes what it opened."""
    async with asyncio.timeout(timeout):
        return await step


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop (anyio's asyncio backend and
    plain asyncio; the CometD client needs asyncio anyway)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        # The addresses are tried in turn: asyncio's happy eyeballs (happy_eyeballs_delay)
        # leaks a connected socket when cancelled at the wrong moment on Python 3.11.
        try:
            transport, protocol = await _within(
                timeout,
                loop.create_connection(
                    _Protocol,
                    host,
                    port,
                    local_addr=None if local_address is None else (local_address, 0),
                ),
            )
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(str(error)) from error
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(loop, transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await _within(
                timeout, loop.create_unix_connection(_Protocol, path)
            )
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(str(error)) from error
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        return AsyncioStream(loop, transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- the transport ---------------------------------------------------------------------------

#: httpcore's errors as httpx's, the most specific first (what httpx's own transport raises).
_ERRORS: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def as_httpx_error(error: Exception) -> Exception:
    """httpcore's ``error`` as the httpx exception httpx's own transport would raise;
    anything else unchanged."""
    for source, target in _ERRORS:
        if isinstance(error, source):
            return target(str(error))
    return error


def _reraise(error: Exception) -> typing.NoReturn:
    mapped = as_httpx_error(error)
    if mapped is error:
        raise error
    raise mapped from error


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as error:
            _reraise(error)

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class Progress:
    """How far one HTTP exchange to GWS got: whether its request began to be written
    (``written``), which tells an exchange given up for taking too long that GWS may have
    received (and processed) it from one that certainly never reached GWS.

    Told by the exchange itself: a POST through :meth:`GWSTransport.post` as its body begins
    to be written (its headers went first; GWS cannot act on a request whose body it never
    got), one through httpx as its headers do (:meth:`trace`, httpcore's trace extension,
    told of every step: dearer, for the rarer exchanges)."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written = False

    async def trace(self, name: str, info: Mapping[str, Any]) -> None:
        # Not a proxy's CONNECT (opening the tunnel to GWS): GWS gets nothing of it.
        if name.endswith("send_request_headers.started") and (
            getattr(info.get("request"), "method", None) != b"CONNECT"
        ):
            self.written = True


class _Body:
    """A POST's body as httpcore writes it (as its own ``ByteStream`` would), telling
    ``progress`` when its writing begins."""

    __slots__ = ("_content", "_progress")

    def __init__(self, content: bytes, progress: Progress) -> None:
        self._content = content
        self._progress = progress

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._progress.written = True
        yield self._content


class GWSTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` over ``httpcore.AsyncConnectionPool`` (or httpcore's
    HTTP/SOCKS proxy pools for ``proxy``) on :class:`AsyncioBackend`, HTTP/1.1 with
    keep-alive, TLS from :func:`ssl_context`."""

    def __init__(
        self,
        *,
        verify: bool = True,
        limits: httpx.Limits | None = None,
        proxy: str | None = None,
        on_request: Callable[[GWSTransport, httpx.URL], None] | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        context = ssl_context(verify)
        backend = AsyncioBackend()
        common: dict[str, Any] = {
            "ssl_context": context,
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "http1": True,
            "http2": False,
            "network_backend": backend,
        }
        self._on_request = on_request
        self.proxy = proxy
        self._pool: httpcore.AsyncConnectionPool
        if proxy is None:
            self._pool = httpcore.AsyncConnectionPool(**common)
            return
        parsed = httpx.Proxy(proxy)
        proxy_url = httpcore.URL(
            scheme=parsed.url.raw_scheme,
            host=parsed.url.raw_host,
            port=parsed.url.port,
            target=parsed.url.raw_path,
        )
        if parsed.url.scheme in ("http", "https"):
            self._pool = httpcore.AsyncHTTPProxy(
                proxy_url=proxy_url,
                proxy_auth=parsed.raw_auth,
                proxy_headers=parsed.headers.raw,
                proxy_ssl_context=context if parsed.url.scheme == "https" else None,
                **common,
            )
        elif parsed.url.scheme in ("socks5", "socks5h"):
            common.pop("keepalive_expiry")
            self._pool = httpcore.AsyncSOCKSProxy(
                proxy_url=proxy_url, proxy_auth=parsed.raw_auth, **common
            )
        else:
            raise ValueError(
                f"unsupported proxy scheme {parsed.url.scheme!r}: use http, https or socks5"
            )

    def __repr__(self) -> str:
        via = "direct" if self.proxy is None else "via a proxy"
        return f"<GWSTransport {via}>"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        if self._on_request is not None:
            self._on_request(self, url)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except Exception as error:
            _reraise(error)
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def post(
        self,
        url: httpcore.URL,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
        timeouts: Mapping[str, float | None],
        progress: Progress | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """POST ``content`` to ``url`` with exactly ``headers``; ``(status, headers, body)``.
        ``progress`` is told when the body begins to be written.

        Raises httpx's transport errors, as :meth:`handle_async_request` does."""
        request = httpcore.Request(
            b"POST",
            url,
            headers=headers,
            content=content if progress is None else _Body(content, progress),
            extensions={"timeout": timeouts},
        )
        try:
            response = await self._pool.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except Exception as error:
            _reraise(error)
        return response.status, response.headers, body

    async def aclose(self) -> None:
        await self._pool.aclose()
