"""The reference plugins in hooks/: installed with pip, found through their entry points, and
fed real acknowledgements by the simulator; and their own test suites, run as their authors
run them."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gws_outbound_plugin import (
    CancelFailed,
    CancelRequest,
    OutboundPlugin,
    describe_plugins,
    make_plugin_manager,
)
from gws_outbound_plugin.testing import HookRecorder

from .conftest import HOOKS, REFERENCE_PLUGINS, run_pytest

pytestmark = pytest.mark.anyio

_MODULES = ("gws_outbound_audit", "gws_outbound_webhook")


@pytest.mark.parametrize("project", REFERENCE_PLUGINS)
def test_the_plugins_own_test_suite_passes(installed, project):
    # As the plugin's author runs it: from the plugin's folder, with its own pytest settings
    # (filterwarnings = error), against the installed package.
    summary = run_pytest(HOOKS / project, env=installed.env())
    assert " passed" in summary
    assert "failed" not in summary and "error" not in summary


@pytest.fixture
def entry_point_modules(installed, monkeypatch) -> Iterator[None]:
    """Import the reference plugins afresh from the pip-installed copies (their entry-point
    objects read the environment at import time)."""
    monkeypatch.syspath_prepend(str(installed.site))
    for name in _MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in _MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/acks", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/acks", received
    finally:
        await runner.cleanup()


async def test_discovered_plugins_receive_real_acknowledgements(
    installed,
    entry_point_modules,
    monkeypatch,
    tmp_path,
    gws_simulator,
    webhook_receiver,
    gws_config,
):
    url, received = webhook_receiver
    audit_file = tmp_path / "audit.jsonl"
    monkeypatch.setenv("GWS_OUTBOUND_AUDIT_FILE", str(audit_file))
    monkeypatch.setenv("GWS_OUTBOUND_WEBHOOK_URL", url)
    monkeypatch.setenv("GWS_OUTBOUND_WEBHOOK_FAILURES", "1")

    # What a host does: load whatever is installed under the gws_outbound group.
    pm = make_plugin_manager(plugins=["audit", "webhook"], strict=True)
    assert [info.name for info in describe_plugins(pm)] == ["audit", "webhook"]
    audit, webhook = pm.get_plugin("audit"), pm.get_plugin("webhook")
    for plugin_object in (audit, webhook):  # the pip-installed copies, not the sources
        module_file = Path(sys.modules[type(plugin_object).__module__].__file__ or "")
        assert installed.site in module_file.parents
    recorder = HookRecorder()
    pm.register(recorder, name="recorder")
    device = gws_simulator.device_path("agent1")

    requests = [
        CancelRequest(
            record_handle=handle,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            device_path=device,
        )
        for handle in (11, 16)
    ]
    refused = CancelRequest(
        record_handle=999,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path=device,
    )
    try:
        async with OutboundPlugin(pm, gws_config) as plugin:
            acks = [await plugin.cancel(request) for request in requests]
            with pytest.raises(CancelFailed):
                await plugin.cancel(refused)
    finally:
        assert await webhook.flush(timeout=5)
        await webhook.aclose()
        await audit.aclose()

    # The simulator acknowledged exactly these, and both plugins saw exactly these.
    assert [
        call.ack.reference_id for call in recorder.calls_of("on_record_cancel_acknowledged")
    ] == [ack.reference_id for ack in acks]
    assert [body["event"] for body in received] == [
        "record_cancel_acknowledged",
        "record_cancel_acknowledged",
        "cancel_failed",
    ]
    assert [body["reference_id"] for body in received] == [
        *(request.reference_id for request in requests),
        refused.reference_id,
    ]
    assert [body["record_handle"] for body in received] == [11, 16, 999]
    assert received[2]["reason"] == "ocs_error"

    lines = [json.loads(line) for line in audit_file.read_text(encoding="utf-8").splitlines()]
    by_reference: dict[str, list[str]] = {}
    for line in lines:
        by_reference.setdefault(line["reference_id"], []).append(line["event"])
    assert by_reference == {
        requests[0].reference_id: ["cancel_requested", "cancel_acknowledged"],
        requests[1].reference_id: ["cancel_requested", "cancel_acknowledged"],
        refused.reference_id: ["cancel_requested", "cancel_failed"],
    }
    assert all("phone_number" not in line for line in lines)


def test_a_misconfigured_reference_plugin_is_skipped_by_name(
    entry_point_modules, monkeypatch, tmp_path
):
    monkeypatch.setenv("GWS_OUTBOUND_AUDIT_FILE", str(tmp_path / "missing-dir" / "audit.jsonl"))
    monkeypatch.setenv("GWS_OUTBOUND_WEBHOOK_URL", "ftp://example.com/")
    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["audit", "webhook"])
    assert describe_plugins(pm) == []
    failures = {
        entry["plugin"]: entry["error"] for entry in logs if entry["event"] == "plugin_load_failed"
    }
    assert set(failures) == {"audit", "webhook"}
    assert "does not exist" in failures["audit"]
    assert "http:// or https://" in failures["webhook"]


def test_plugins_can_be_blocked_by_the_host(entry_point_modules, monkeypatch):
    monkeypatch.setenv("GWS_OUTBOUND_DISABLE_PLUGINS", "webhook")
    pm = make_plugin_manager(plugins=["audit", "webhook"])
    assert [info.name for info in describe_plugins(pm)] == ["audit"]


def test_the_audit_readme_names_every_event_the_plugin_writes():
    """Its README listed only the cancel events (cancel_requested, cancel_acknowledged,
    cancel_failed) while the plugin writes operation_requested / _acknowledged / _failed for
    every other operation: a reader parsing the trail from the README missed most lines."""
    import re

    audit = HOOKS / "gws-outbound-audit"
    source = (audit / "src" / "gws_outbound_audit" / "__init__.py").read_text(encoding="utf-8")
    written = set(re.findall(r'^\s+(?:self\._submit\(\{)?"event": "(\w+)"', source, re.M))
    assert len(written) == 6, written
    readme = (audit / "README.md").read_text(encoding="utf-8")
    (bullet,) = re.findall(r"^- `event`: (.*?)(?=^- )", readme, re.M | re.S)
    assert set(re.findall(r"`(\w+_\w+)`", bullet)) >= written


def test_the_webhook_readme_names_every_event_the_plugin_sends():
    """Its README named only record_cancel_acknowledged and cancel_failed; the plugin sends
    operation_acknowledged and operation_failed for every other operation too."""
    import re

    webhook = HOOKS / "gws-outbound-webhook"
    package = webhook / "src" / "gws_outbound_webhook"
    source = "".join(path.read_text(encoding="utf-8") for path in package.glob("*.py"))
    sent = set(re.findall(r'"event": "(\w+)"', source.split('"""', 2)[2]))
    assert len(sent) == 4, sent
    readme = (webhook / "README.md").read_text(encoding="utf-8")
    assert {event for event in sent if f'"event": "{event}"' in readme} == sent
