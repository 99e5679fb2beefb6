"""Transport security: TLS verification on by default (REST and CometD), plain http:// only
for loopback unless allowed, and a record handle that can never alter the request path."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pluggy
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from gws_outbound_plugin import (
    CancelFailed,
    CancelRequest,
    ConfigError,
    FailureReason,
    GWSAuthenticationError,
    GWSConfig,
    GWSTransportError,
    InvalidCancelRequest,
    OutboundPlugin,
)
from gws_outbound_plugin._cometd import CometDListener
from gws_outbound_plugin._session import (
    GWSSession,
    _is_operation_path,
    _is_operation_path_in_full,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.helpers import Recorder, make_request

pytestmark = pytest.mark.anyio

TLS = Path(__file__).parent / "tls"


class TLSServer:
    """An HTTPS server with a self-signed certificate: ``/api/v2/me`` answers as GWS would
    (``ok``) or refuses the credentials; everything else is counted and refused."""

    def __init__(self, me_ok: bool) -> None:
        self.me_ok = me_ok
        self.paths: list[str] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.path == "/api/v2/me" and self.me_ok:
            return web.json_response(
                {"statusCode": 0, "user": {"userName": "agent1"}},
                headers={"X-CSRF-HEADER": "X-CSRF-TOKEN", "X-CSRF-TOKEN": "t"},
            )
        return web.json_response({"statusCode": 20, "statusMessage": "no"}, status=401)


@pytest.fixture
async def tls_server(request: pytest.FixtureRequest) -> AsyncIterator[TLSServer]:
    server = TLSServer(me_ok=getattr(request, "param", False))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "self-signed-127.0.0.1.crt", TLS / "self-signed-127.0.0.1.key")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def tls_config(server: TLSServer, **changes: Any) -> GWSConfig:
    return fast_config(f"https://127.0.0.1:{server.port}", **changes)


def test_tls_verification_is_on_by_default() -> None:
    config = GWSConfig(base_url="https://gws.example.com", username="a", password="b")
    assert config.verify_tls is True
    assert (
        GWSConfig.from_env(
            {"GWS_BASE_URL": "https://gws", "GWS_USERNAME": "a", "GWS_PASSWORD": "b"}
        ).verify_tls
        is True
    )


async def test_rest_refuses_an_untrusted_certificate(
    tls_server: TLSServer, pm: pluggy.PluginManager
) -> None:
    with pytest.raises(GWSTransportError) as info:
        async with OutboundPlugin(pm, tls_config(tls_server)):
            raise AssertionError("connected to a server with an untrusted certificate")
    assert "ConnectError" in str(info.value)
    assert tls_server.paths == []  # no request got through the TLS handshake
    # Turning verification off (tests only) reaches the server: here it refuses the login.
    with pytest.raises(GWSAuthenticationError):
        async with OutboundPlugin(pm, tls_config(tls_server, verify_tls=False)):
            raise AssertionError("logged in on a refusing server")
    assert tls_server.paths == ["/api/v2/me"]


@pytest.mark.parametrize("tls_server", [True], indirect=True)
async def test_cometd_refuses_an_untrusted_certificate(tls_server: TLSServer) -> None:
    # The REST session may log in (verification off), the CometD client must still verify.
    session = GWSSession(tls_config(tls_server, verify_tls=False))
    await session.open()
    try:
        listener = CometDListener(
            tls_config(tls_server),
            session,
            ["/v2/me/outbound"],
            on_lost=lambda why: None,
            on_restored=lambda: None,
        )
        with anyio.fail_after(10), pytest.raises(GWSTransportError) as info:
            await listener.open()
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        assert "/api/v2/notifications" not in tls_server.paths
        insecure = CometDListener(
            tls_config(tls_server, verify_tls=False),
            session,
            ["/v2/me/outbound"],
            on_lost=lambda why: None,
            on_restored=lambda: None,
        )
        # Past TLS, this server is no Bayeux server: the open fails for that reason instead.
        with anyio.fail_after(10), pytest.raises(GWSTransportError) as info:
            await insecure.open()
        assert "CERTIFICATE_VERIFY_FAILED" not in str(info.value)
        assert "/api/v2/notifications" in tls_server.paths  # got through TLS this time
    finally:
        await session.close()


@pytest.mark.parametrize(
    "base_url",
    [
        "http://gws.example.com",
        "http://10.0.0.5:8090",
        "http://[2001:db8::1]:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_is_refused_for_other_hosts(base_url: str) -> None:
    with pytest.raises(ConfigError, match="plain http://"):
        GWSConfig(base_url=base_url, username="a", password="b")
    allowed = GWSConfig(base_url=base_url, username="a", password="b", allow_insecure_http=True)
    assert allowed.base_url == base_url
    from_env = GWSConfig.from_env(
        {
            "GWS_BASE_URL": base_url,
            "GWS_USERNAME": "a",
            "GWS_PASSWORD": "b",
            "GWS_ALLOW_INSECURE_HTTP": "1",
        }
    )
    assert from_env.allow_insecure_http


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8090",
        "http://127.5.6.7",
        "http://localhost:1",
        "http://[::1]:80",
        "https://gws.example.com",
        "https://10.0.0.5:8443/gws",
    ],
)
def test_https_and_loopback_http_are_accepted(base_url: str) -> None:
    assert GWSConfig(base_url=base_url, username="a", password="b").base_url == base_url


@pytest.mark.parametrize(
    "base_url",
    ["https://agent1:secret@gws.example.com", "ftp://gws", "gws.example.com", "https://gws?x=1"],
)
def test_malformed_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        GWSConfig(base_url=base_url, username="a", password="b")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "handle",
    [
        "11/../../me",
        "11?x=1",
        "11#x",
        "%2e%2e",
        "../11",
        " 11",
        "11 ",
        "0x11",
        "1e3",
        "\u0661\u0661",
        11.0,
        True,
        -11,
        0,
        2**53,
        None,
        [11],
        b"11",
    ],
)
def test_the_record_handle_is_a_plain_positive_integer(handle: Any) -> None:
    with pytest.raises(InvalidCancelRequest) as info:
        CancelRequest.from_bus(
            {
                "recordHandle": handle,
                "applicationId": 134,
                "campaignName": "Campaign1",
                "callingList": "CallingList1",
                "devicePath": "/devices/d1",
            }
        )
    assert info.value.fields == ("recordHandle",)


@given(
    st.one_of(
        st.text(),
        st.text().map(lambda tail: "/me/outbound-records/" + tail),
        st.text(alphabet="0123456789./%-\u0661\u00b2x", min_size=1).map(
            lambda tail: "/me/outbound-records/" + tail
        ),
    )
)
def test_the_quick_check_of_a_record_path_agrees_with_the_whole_check(path: str) -> None:
    """A plain record handle is answered without the regex: never otherwise than in full."""
    assert _is_operation_path(path) == _is_operation_path_in_full(path)


async def test_a_forged_handle_never_reaches_the_network(
    plugin: OutboundPlugin, sim: GWSSimulator, recorder: Recorder, device_path: str
) -> None:
    """Even a request whose validated handle was swapped afterwards (the dataclass is frozen;
    this takes ``object.__setattr__``) is refused before any byte is sent."""
    request = make_request(device_path)
    object.__setattr__(request, "record_handle", "11/../../../api/v2/me")
    with pytest.raises(CancelFailed) as info:
        await plugin.cancel(request)
    assert info.value.failure.reason is FailureReason.TRANSPORT_FAILURE
    assert sim.cancels == []
    assert all(r.path.startswith(("/api/v2/me", "/api/v2/notifications")) for r in sim.requests)
    assert [r.path for r in sim.requests if r.method == "POST" and "notif" not in r.path] == []
    with pytest.raises(TypeError):
        await plugin._session.post_record_operation("11/../x", {})  # type: ignore[arg-type]
    assert sim.cancels == []


async def test_the_request_path_is_exactly_the_handle(
    plugin: OutboundPlugin, sim: GWSSimulator, device_path: str
) -> None:
    await plugin.cancel(make_request(device_path, handle=12))
    [sent] = sim.cancels
    assert sent.path == "/api/v2/me/outbound-records/12" and sent.query == {}


class TLSFront:
    """TLS in front of the simulator: each connection, its TLS ended here with the
    self-signed certificate, is piped to the simulator's plain HTTP port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0

    async def handle(self, reader: Any, writer: Any) -> None:
        import asyncio

        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )

        async def pipe(source: Any, sink: Any) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_rest_and_cometd_trust_the_same_ca_file(
    sim: GWSSimulator,
    pm: pluggy.PluginManager,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GWS behind a certificate of the company's own CA, named by SSL_CERT_FILE (set by the
    # host, or a .env loader, once the libraries were imported): REST trusted it, but the
    # CometD handshake used aiohttp's context, made when aiohttp was imported from the
    # system's store, and refused it: the plugin could not start.
    import asyncio

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "self-signed-127.0.0.1.crt", TLS / "self-signed-127.0.0.1.key")
    front = TLSFront(int(sim.base_url.rsplit(":", 1)[1]))
    server = await asyncio.start_server(front.handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "self-signed-127.0.0.1.crt"))
    try:
        config = fast_config(f"https://127.0.0.1:{port}")
        assert config.verify_tls
        async with OutboundPlugin(pm, config) as plugin:
            handle = sorted(sim.records)[0]
            record = sim.records[handle].record
            request = CancelRequest(
                record_handle=handle,
                application_id=record.application_id,
                campaign_name=record.campaign_name,
                calling_list=record.calling_list,
                device_path=sim.device_path("agent1"),
            )
            with anyio.fail_after(10):
                ack = await plugin.cancel(request)  # its outcome came through the CometD side
        assert ack.request == request
        assert [call.hook for call in recorder.calls].count("on_record_cancel_acknowledged") == 1
        assert front.connections >= 2  # REST and CometD both came through TLS
    finally:
        server.close()
        await server.wait_closed()
