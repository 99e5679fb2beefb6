"""Tests of the webhook forwarder: real acknowledgements from the GWS simulator of
gws_outbound_plugin.testing, POSTed to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web
from gws_outbound_webhook import WebhookForwarder
from structlog.testing import capture_logs

from gws_outbound_plugin import CancelFailed, describe_plugins, make_plugin_manager

pytestmark = pytest.mark.anyio


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook endpoint: records each POST and answers the scripted statuses, then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    release: anyio.Event | None = None
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.json()))
        self.arrived.set()
        if self.release is not None:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": self.retry_after} if self.retry_after and status >= 400 else {}
        return web.Response(status=status, text="ok" if status < 400 else "no", headers=headers)

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.received if event is None or r.body["event"] == event]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{secret}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook/s3cr3t-path"
    try:
        yield receiver
    finally:
        if receiver.release is not None:
            receiver.release.set()
        await runner.cleanup()


@pytest.fixture
async def forwarder(receiver, gws_plugin_manager) -> AsyncIterator[WebhookForwarder]:
    forwarder = WebhookForwarder(receiver.url, backoff=0.01, timeout=2.0)
    gws_plugin_manager.register(forwarder, name="webhook")
    yield forwarder
    await forwarder.aclose(timeout=2.0)


async def test_acknowledgement_is_posted(
    forwarder, receiver, gws_outbound, gws_request_factory, gws_simulator
):
    request = gws_request_factory(phone_number="3001")

    ack = await gws_outbound.cancel(request)
    assert await forwarder.flush()

    (delivery,) = receiver.received
    body = delivery.body
    assert body["event"] == "record_cancel_acknowledged"
    assert body["reference_id"] == ack.reference_id == request.reference_id
    assert body["record_handle"] == request.record_handle
    assert body["application_id"] == 134
    assert body["campaign_name"] == "Campaign1"
    assert body["calling_list"] == "CallingList1"
    assert body["device_id"] == gws_simulator.device_id("agent1")
    assert body["requested_here"] is True
    assert "phone_number" not in body
    assert "3001" not in str(body)
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["Idempotency-Key"] == body["delivery_id"]
    assert delivery.headers["User-Agent"].startswith("gws-outbound-webhook/")
    assert "Authorization" not in delivery.headers
    assert forwarder.delivered == 1
    assert forwarder.outstanding == 0


async def test_retries_with_the_same_idempotency_key(
    forwarder, receiver, gws_outbound, gws_request_factory
):
    receiver.statuses = [503, 502]

    with capture_logs() as logs:
        await gws_outbound.cancel(gws_request_factory())
        assert await forwarder.flush()

    assert len(receiver.received) == 3
    keys = {r.headers["Idempotency-Key"] for r in receiver.received}
    assert len(keys) == 1
    assert [e["attempt"] for e in logs if e["event"] == "webhook_retrying"] == [1, 2]
    assert forwarder.delivered == 1
    assert forwarder.failed == 0


async def test_retry_after_is_honoured(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    receiver.statuses = [429]
    receiver.retry_after = "0.3"
    forwarder = WebhookForwarder(receiver.url, backoff=0.0)
    gws_plugin_manager.register(forwarder, name="webhook")
    try:
        with capture_logs() as logs:
            await gws_outbound.cancel(gws_request_factory())
            started = anyio.current_time()
            assert await forwarder.flush()
            waited = anyio.current_time() - started
    finally:
        await forwarder.aclose()
    assert len(receiver.received) == 2
    (retrying,) = [e for e in logs if e["event"] == "webhook_retrying"]
    assert retrying["delay"] == 0.3
    assert waited >= 0.25


async def test_gives_up_after_the_retries(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    receiver.statuses = [500, 500, 500]
    forwarder = WebhookForwarder(receiver.url, retries=2, backoff=0.01)
    gws_plugin_manager.register(forwarder, name="webhook")
    try:
        with capture_logs() as logs:
            await gws_outbound.cancel(gws_request_factory())
            assert await forwarder.flush()
    finally:
        await forwarder.aclose()
    assert len(receiver.received) == 3
    (failed,) = [e for e in logs if e["event"] == "webhook_delivery_failed"]
    assert failed["log_level"] == "error"
    assert failed["attempts"] == 3
    assert failed["error"] == "HTTP 500"
    assert "s3cr3t-path" not in str(logs)  # the URL's secret path is never logged
    assert forwarder.failed == 1
    assert forwarder.delivered == 0


async def test_a_refusal_is_not_retried(forwarder, receiver, gws_outbound, gws_request_factory):
    receiver.statuses = [400]
    with capture_logs() as logs:
        await gws_outbound.cancel(gws_request_factory())
        assert await forwarder.flush()
    assert len(receiver.received) == 1
    assert [e["status"] for e in logs if e["event"] == "webhook_rejected"] == [400]
    assert forwarder.failed == 1


async def test_an_unreachable_webhook_is_retried_then_reported(
    gws_plugin_manager, gws_outbound, gws_request_factory
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forwarder = WebhookForwarder(f"http://127.0.0.1:{port}/hook", retries=1, backoff=0.01)
    gws_plugin_manager.register(forwarder, name="webhook")
    try:
        with capture_logs() as logs:
            await gws_outbound.cancel(gws_request_factory())
            assert await forwarder.flush()
    finally:
        await forwarder.aclose()
    (failed,) = [e for e in logs if e["event"] == "webhook_delivery_failed"]
    assert failed["error"].startswith("ConnectError")
    assert forwarder.failed == 1


async def test_a_full_queue_drops_with_a_warning_and_never_blocks(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    receiver.release = anyio.Event()  # the webhook hangs until released
    forwarder = WebhookForwarder(receiver.url, queue_size=1)
    gws_plugin_manager.register(forwarder, name="webhook")
    try:
        with capture_logs() as logs:
            with anyio.fail_after(5):
                await gws_outbound.cancel(gws_request_factory())
                await receiver.arrived.wait()  # the first one is being sent (and hangs)
                for _ in range(3):  # one more fits in the queue, the next two do not
                    await gws_outbound.cancel(gws_request_factory())
        full = [e for e in logs if e["event"] == "webhook_queue_full"]
        assert len(full) == 2
        assert all(e["log_level"] == "warning" for e in full)
        assert forwarder.dropped == 2
        receiver.release.set()
        assert await forwarder.flush()
    finally:
        await forwarder.aclose()
    assert forwarder.delivered == 2
    assert len(receiver.received) == 2


async def test_aclose_sends_what_is_queued_then_drops(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory, wait_for_hook
):
    forwarder = WebhookForwarder(receiver.url)
    gws_plugin_manager.register(forwarder, name="webhook")
    await gws_outbound.cancel(gws_request_factory())
    await gws_outbound.cancel(gws_request_factory())

    await forwarder.aclose()
    assert forwarder.delivered == 2
    assert len(receiver.received) == 2

    with capture_logs() as logs:
        await gws_outbound.cancel(gws_request_factory())
    assert [e["reason"] for e in logs if e["event"] == "webhook_event_dropped"] == ["closed"]
    assert forwarder.dropped == 1
    await forwarder.aclose()  # idempotent


async def test_aclose_gives_up_on_a_hanging_webhook(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    receiver.release = anyio.Event()
    forwarder = WebhookForwarder(receiver.url, timeout=30)
    gws_plugin_manager.register(forwarder, name="webhook")
    await gws_outbound.cancel(gws_request_factory())
    await gws_outbound.cancel(gws_request_factory())
    with anyio.fail_after(5):
        await receiver.arrived.wait()
    with capture_logs() as logs:
        with anyio.fail_after(5):
            await forwarder.aclose(timeout=0.2)
    assert [e["count"] for e in logs if e["event"] == "webhook_events_dropped_at_shutdown"] == [2]
    assert forwarder.dropped == 2
    assert forwarder.delivered == 0


async def test_failures_are_forwarded_when_asked(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    forwarder = WebhookForwarder(receiver.url, forward_failures=True, include_phone_number=True)
    gws_plugin_manager.register(forwarder, name="webhook")
    request = gws_request_factory.unknown_record(phone_number="3999")
    try:
        with pytest.raises(CancelFailed):
            await gws_outbound.cancel(request)
        assert await forwarder.flush()
    finally:
        await forwarder.aclose()
    (body,) = receiver.bodies("cancel_failed")
    assert body["reference_id"] == request.reference_id
    assert body["reason"] == "ocs_error"
    assert body["error_number"] == 101
    assert body["message"] == "Record not found"
    assert body["phone_number"] == "3999"


async def test_failures_are_not_forwarded_by_default(
    forwarder, receiver, gws_outbound, gws_request_factory, wait_for_hook
):
    with pytest.raises(CancelFailed):
        await gws_outbound.cancel(gws_request_factory.unknown_record())
    await wait_for_hook("on_cancel_failed")
    assert await forwarder.flush()
    assert receiver.received == []


async def test_bearer_token_is_sent_and_never_shown(
    gws_plugin_manager, receiver, gws_outbound, gws_request_factory
):
    forwarder = WebhookForwarder(receiver.url, token="tok-123")
    gws_plugin_manager.register(forwarder, name="webhook")
    try:
        await gws_outbound.cancel(gws_request_factory())
        assert await forwarder.flush()
    finally:
        await forwarder.aclose()
    assert receiver.received[0].headers["Authorization"] == "Bearer tok-123"
    assert "tok-123" not in repr(forwarder)
    assert "s3cr3t-path" not in repr(forwarder)


def test_configuration_from_the_environment():
    forwarder = WebhookForwarder.from_env(
        {
            "GWS_OUTBOUND_WEBHOOK_URL": "https://hooks.example.com/gws",
            "GWS_OUTBOUND_WEBHOOK_TOKEN": "t",
            "GWS_OUTBOUND_WEBHOOK_FAILURES": "1",
            "GWS_OUTBOUND_WEBHOOK_PHONE_NUMBERS": "yes",
            "GWS_OUTBOUND_WEBHOOK_QUEUE_SIZE": "7",
            "GWS_OUTBOUND_WEBHOOK_RETRIES": "0",
            "GWS_OUTBOUND_WEBHOOK_TIMEOUT": "1.5",
        }
    )
    assert forwarder.enabled
    assert forwarder.url == "https://hooks.example.com/gws"
    assert forwarder.forward_failures
    assert forwarder.include_phone_number
    assert (forwarder.queue_size, forwarder.retries, forwarder.timeout) == (7, 0, 1.5)

    assert not WebhookForwarder.from_env({}).enabled


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"GWS_OUTBOUND_WEBHOOK_URL": "ftp://example.com/x"}, "http:// or https://"),
        ({"GWS_OUTBOUND_WEBHOOK_URL": "https://user:pw@example.com/x"}, "credentials"),
        ({"GWS_OUTBOUND_WEBHOOK_RETRIES": "x"}, "GWS_OUTBOUND_WEBHOOK_RETRIES"),
        ({"GWS_OUTBOUND_WEBHOOK_QUEUE_SIZE": "0"}, "queue_size"),
        ({"GWS_OUTBOUND_WEBHOOK_FAILURES": "?"}, "GWS_OUTBOUND_WEBHOOK_FAILURES"),
    ],
)
def test_invalid_configuration_is_refused(environ, problem):
    with pytest.raises(ValueError, match=problem):
        WebhookForwarder.from_env({"GWS_OUTBOUND_WEBHOOK_URL": "https://example.com", **environ})


def test_a_misspelt_setting_is_refused_with_the_one_meant():
    """GWS_OUTBOUND_WEBHOOK_TOKN was ignored: every event went out without the token."""
    with pytest.raises(ValueError, match="is not a setting") as caught:
        WebhookForwarder.from_env(
            {"GWS_OUTBOUND_WEBHOOK_URL": "https://example.com", "GWS_OUTBOUND_WEBHOOK_TOKN": "t"}
        )

    assert str(caught.value) == (
        "GWS_OUTBOUND_WEBHOOK_TOKN is not a setting of the webhook plugin (did you mean "
        "GWS_OUTBOUND_WEBHOOK_TOKEN?)"
    )
    assert "t'" not in str(caught.value)  # the value (a token) is never shown


def test_another_plugins_settings_under_a_longer_prefix_are_not_refused(tmp_path, monkeypatch):
    """A plugin announced as ``webhook_teams`` reads GWS_OUTBOUND_WEBHOOK_TEAMS_*: those were
    taken for misspelt settings of this one, which then failed to load wherever both were
    installed."""
    site = tmp_path / "site"
    info = site / "gwsx_webhook_teams-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gwsx-webhook-teams\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[gws_outbound]\nwebhook_teams = gwsx_teams:plugin\n")
    monkeypatch.syspath_prepend(str(site))
    environ = {
        "GWS_OUTBOUND_WEBHOOK_URL": "https://example.com",
        "GWS_OUTBOUND_WEBHOOK_TEAMS_URL": "https://teams.example.com",
    }
    assert WebhookForwarder.from_env(environ).enabled

    with pytest.raises(ValueError, match="GWS_OUTBOUND_WEBHOOK_TEAM_URL is not a setting"):
        WebhookForwarder.from_env({**environ, "GWS_OUTBOUND_WEBHOOK_TEAM_URL": "https://x"})


async def test_unconfigured_forwarder_sends_nothing_and_says_so_once(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    forwarder = WebhookForwarder.from_env({})
    gws_plugin_manager.register(forwarder, name="webhook")
    with capture_logs() as logs:
        await gws_outbound.cancel(gws_request_factory())
        await gws_outbound.cancel(gws_request_factory())
    assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("webhook")] == [
        ("webhook_disabled", "info")
    ]
    await forwarder.aclose()


def test_installed_under_the_gws_outbound_entry_point():
    pm = make_plugin_manager(plugins=["webhook"], strict=True)
    (info,) = describe_plugins(pm)
    assert info.name == "webhook"
    assert info.distribution == "gws-outbound-webhook"
    assert info.hooks == (
        "on_cancel_failed",
        "on_operation_acknowledged",
        "on_operation_failed",
        "on_record_cancel_acknowledged",
    )
    assert isinstance(pm.get_plugin("webhook"), WebhookForwarder)


async def test_every_operations_acknowledgement_is_posted_once(
    forwarder, receiver, gws_outbound, gws_request_factory
):
    from gws_outbound_plugin import OperationFailed

    await gws_outbound.perform(gws_request_factory.reject(13))
    await gws_outbound.perform(gws_request_factory.complete(14, call_result="Answer"))
    await gws_outbound.cancel(gws_request_factory(15))
    with pytest.raises(OperationFailed):  # failures are not forwarded unless asked
        await gws_outbound.perform(gws_request_factory.unknown_record("RejectRecord"))
    await gws_outbound.wait_hooks_idle(5)
    assert await forwarder.flush()

    bodies = [delivery.body for delivery in receiver.received]
    assert [(body["event"], body.get("operation"), body["record_handle"]) for body in bodies] == [
        ("operation_acknowledged", "RejectRecord", 13),
        ("operation_acknowledged", "CompleteRecord", 14),
        ("record_cancel_acknowledged", None, 15),  # a cancel once, with its own event
    ]
    assert bodies[1]["call_result"] == "Answer"
    assert bodies[0]["requested_here"] is True
    assert all("phone_number" not in body for body in bodies)


async def test_operation_failures_are_posted_when_asked(
    receiver, gws_plugin_manager, gws_outbound, gws_request_factory
):
    from gws_outbound_plugin import OperationFailed

    forwarder = WebhookForwarder(receiver.url, forward_failures=True, backoff=0.01, timeout=2.0)
    gws_plugin_manager.register(forwarder, name="webhook")
    request = gws_request_factory.unknown_record("RejectRecord")
    with pytest.raises(OperationFailed):
        await gws_outbound.perform(request)
    await gws_outbound.wait_hooks_idle(5)
    assert await forwarder.flush()
    await forwarder.aclose(timeout=2.0)

    (delivery,) = receiver.received
    assert delivery.body["event"] == "operation_failed"
    assert delivery.body["operation"] == "RejectRecord"
    assert delivery.body["reason"] == "ocs_error"
    assert delivery.body["reference_id"] == request.reference_id


def test_an_unconfigured_forwarder_says_what_to_set():
    assert WebhookForwarder.from_env({}).setup_hint == "set GWS_OUTBOUND_WEBHOOK_URL to a URL"
    assert WebhookForwarder("https://example.com/hook").setup_hint is None
