"""The session's own HTTP transport keeps what httpx users rely on: proxies from the
environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), TLS verification with the CA
from ``SSL_CERT_FILE``, one SSL context per process per setting. On loopback: a forwarding
proxy started by the test and a server with the self-signed certificate in ``tls/``."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gws_outbound_plugin import GWSTransportError
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin._transport import environment_mounts, ssl_context
from tests.integration.test_transport import RECORD_PATH, ScriptedGWS, config, post, serve

pytestmark = pytest.mark.anyio

TLS = Path(__file__).parent / "tls"
CERT = TLS / "self-signed-127.0.0.1.crt"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


class ForwardingProxy:
    """An HTTP proxy: ``CONNECT host:port`` tunnels; an absolute-form request is passed on to
    its host as it is. Records the first request line of every client connection.
    ``stalled``: the numbers (from 1) of the ``CONNECT`` requests it never answers (a proxy
    slow to open a tunnel: it holds them, opening nothing upstream, until it closes)."""

    def __init__(self, stalled: frozenset[int] = frozenset()) -> None:
        self.stalled = stalled
        self.connects = 0
        self.lines: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            self.lines.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                self.connects += 1
                if self.connects in self.stalled:
                    await asyncio.Event().wait()  # until the proxy closes (cancelled)
                host, port = target.rsplit(":", 1)
                upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                host_port = target.split("://", 1)[1].split("/", 1)[0]
                host, port = host_port.rsplit(":", 1)
                upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                upstream_writer.write(head)
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardingProxy]:
    forwarding = ForwardingProxy()
    await forwarding.start()
    try:
        yield forwarding
    finally:
        await forwarding.close()


@pytest.fixture
async def gws() -> AsyncIterator[ScriptedGWS]:
    scripted = ScriptedGWS()
    runner = await serve(scripted)
    try:
        yield scripted
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_gws() -> AsyncIterator[ScriptedGWS]:
    scripted = ScriptedGWS()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, TLS / "self-signed-127.0.0.1.key")
    runner = await serve(scripted, context)
    try:
        yield scripted
    finally:
        await runner.cleanup()


def https_url(gws: ScriptedGWS) -> str:
    return f"https://127.0.0.1:{gws.port}"


async def login_and_post(base_url: str) -> None:
    session = GWSSession(config(base_url, retries=0))
    await session.open()
    try:
        assert await post(session) == {"statusCode": 0}
    finally:
        await session.close()


async def test_http_proxy_from_the_environment_carries_login_and_posts(
    gws: ScriptedGWS, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    gws.keep_alive = False  # each request on a connection of its own: the proxy sees each
    await login_and_post(gws.base_url)
    assert proxy.lines == [
        f"GET {gws.base_url}/api/v2/me HTTP/1.1",
        f"POST {gws.base_url}{RECORD_PATH} HTTP/1.1",
    ]
    assert gws.requests == [("GET", "/api/v2/me"), ("POST", RECORD_PATH)]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "localhost,127.0.0.1"])
async def test_no_proxy_sends_login_and_posts_directly(
    gws: ScriptedGWS, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    gws.keep_alive = False
    await login_and_post(gws.base_url)
    assert proxy.lines == []
    assert gws.requests == [("GET", "/api/v2/me"), ("POST", RECORD_PATH)]


async def test_https_proxy_tunnels_to_a_server_trusted_through_ssl_cert_file(
    tls_gws: ScriptedGWS, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    tls_gws.keep_alive = False
    await login_and_post(https_url(tls_gws))
    assert proxy.lines == [f"CONNECT 127.0.0.1:{tls_gws.port} HTTP/1.1"] * 2
    assert tls_gws.requests == [("GET", "/api/v2/me"), ("POST", RECORD_PATH)]


async def test_an_https_proxy_setting_leaves_plain_http_direct(
    gws: ScriptedGWS, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    gws.keep_alive = False
    await login_and_post(gws.base_url)
    assert proxy.lines == []


async def test_a_custom_ca_is_trusted_and_verification_stays_on_without_it(
    tls_gws: ScriptedGWS, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(GWSTransportError, match="CERTIFICATE_VERIFY_FAILED"):
        await login_and_post(https_url(tls_gws))
    assert tls_gws.requests == []
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    await login_and_post(https_url(tls_gws))
    assert tls_gws.requests == [("GET", "/api/v2/me"), ("POST", RECORD_PATH)]


async def test_verification_off_reaches_an_untrusted_server(tls_gws: ScriptedGWS) -> None:
    session = GWSSession(config(https_url(tls_gws), retries=0, verify_tls=False))
    await session.open()
    try:
        assert await post(session) == {"statusCode": 0}
    finally:
        await session.close()


def test_one_ssl_context_per_process_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    verifying, insecure = ssl_context(True), ssl_context(False)
    assert ssl_context(True) is verifying
    assert ssl_context(False) is insecure
    assert verifying.verify_mode is ssl.CERT_REQUIRED and verifying.check_hostname
    assert insecure.verify_mode is ssl.CERT_NONE
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    custom = ssl_context(True)
    assert custom is not verifying
    assert ssl_context(True) is custom


@pytest.mark.parametrize(
    ("proxies", "mounts"),
    [
        ({}, {}),
        ({"http": "proxy:3128"}, {"http://": "http://proxy:3128"}),
        (
            {"https": "http://p:1", "no": "example.com, .corp,10.0.0.1,::1,localhost"},
            {
                "https://": "http://p:1",
                "all://*example.com": None,
                "all://*.corp": None,
                "all://10.0.0.1": None,
                "all://[::1]": None,
                "all://localhost": None,
            },
        ),
        ({"all": "socks5://s:1080", "no": "*"}, {}),
        (
            {"http": "http://p:1", "no": "http://skip.me"},
            {"http://": "http://p:1", "http://skip.me": None},
        ),
    ],
)
def test_environment_proxies_are_read_with_httpx_rules(
    proxies: dict[str, str], mounts: dict[str, str | None]
) -> None:
    assert environment_mounts(proxies) == mounts


async def test_a_post_whose_tunnel_the_proxy_never_opened_is_sent_again(
    tls_gws: ScriptedGWS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GWS over HTTPS through a proxy that does not answer the POST's ``CONNECT`` within
    ``request_timeout``: nothing of the POST was written (the tunnel was never opened, GWS
    never got a byte), so it is certainly not sent and is sent again, like a connection that
    could not be made. Before, the ``CONNECT`` request's own headers counted as the POST's
    being written: a read timeout, "GWS may have processed it, so it was not sent again"
    (``GWSNoAnswerError``; in the plugin, ``outcome_unknown`` instead of the retry)."""
    proxy = ForwardingProxy(stalled=frozenset({2}))  # 1: the login's; 2: the POST's first
    await proxy.start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
        tls_gws.keep_alive = False  # each request on a tunnel of its own
        session = GWSSession(config(https_url(tls_gws), retries=1))
        await session.open()
        try:
            assert await post(session) == {"statusCode": 0}
        finally:
            await session.close()
    finally:
        await proxy.close()
    assert proxy.connects == 3
    assert tls_gws.requests == [("GET", "/api/v2/me"), ("POST", RECORD_PATH)]
