"""Tests of the audit trail, against the GWS simulator of gws_outbound_plugin.testing."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pluggy
import pytest
from gws_outbound_audit import AuditTrail
from structlog.testing import capture_logs

from gws_outbound_plugin import (
    PROJECT_NAME,
    CancelFailed,
    CancelRequest,
    ChainAttribute,
    FailureReason,
    describe_plugins,
    hookspecs,
    make_plugin_manager,
)

pytestmark = pytest.mark.anyio


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
async def trail(gws_plugin_manager, audit_file):
    trail = AuditTrail(audit_file)
    gws_plugin_manager.register(trail, name="audit")
    yield trail
    await trail.aclose()


async def test_request_and_acknowledgement_are_written(
    trail, audit_file, gws_outbound, gws_request_factory, gws_simulator
):
    request = gws_request_factory(phone_number="3001", chain_attribute=ChainAttribute.RECORD_ONLY)

    ack = await gws_outbound.cancel(request)
    assert await trail.aflush()

    requested, acknowledged = read_lines(audit_file)
    assert requested["event"] == "cancel_requested"
    assert requested["reference_id"] == request.reference_id
    assert requested["record_handle"] == request.record_handle
    assert requested["application_id"] == 134
    assert requested["campaign_name"] == "Campaign1"
    assert requested["calling_list"] == "CallingList1"
    assert requested["device_path"] == gws_simulator.device_path("agent1")
    assert requested["chain_attribute"] == "RecordOnly"
    assert acknowledged["event"] == "cancel_acknowledged"
    assert acknowledged["reference_id"] == ack.reference_id == request.reference_id
    assert acknowledged["record_handle"] == request.record_handle
    assert acknowledged["device_id"] == gws_simulator.device_id("agent1")
    assert acknowledged["requested_here"] is True
    for line in (requested, acknowledged):
        assert "phone_number" not in line
        assert "3001" not in json.dumps(line)
        assert line["time"].endswith("+00:00")
    assert trail.written == 2
    assert trail.dropped == 0


async def test_failure_is_written_with_its_reason(
    trail, audit_file, gws_outbound, gws_request_factory, wait_for_hook
):
    request = gws_request_factory.unknown_record()

    with pytest.raises(CancelFailed):
        await gws_outbound.cancel(request)
    assert await trail.aflush()

    requested, failed = read_lines(audit_file)
    assert requested["event"] == "cancel_requested"
    assert failed["event"] == "cancel_failed"
    assert failed["reference_id"] == request.reference_id
    assert failed["record_handle"] == request.record_handle
    assert failed["reason"] == FailureReason.OCS_ERROR.value
    assert failed["error_number"] == 101
    assert failed["message"] == "Record not found"
    assert failed["status_code"] is None


async def test_gws_rejection_is_written_with_the_status_code(
    trail, audit_file, gws_outbound, gws_request_factory, gws_simulator
):
    gws_simulator.faults.status_code(code=4, message="Forbidden by test")
    request = gws_request_factory()

    with pytest.raises(CancelFailed):
        await gws_outbound.cancel(request)
    assert await trail.aflush()

    failed = read_lines(audit_file)[-1]
    assert failed["event"] == "cancel_failed"
    assert failed["reason"] == FailureReason.REJECTED.value
    assert failed["status_code"] == 4


async def test_phone_numbers_only_when_configured(
    gws_plugin_manager, gws_outbound, gws_request_factory, audit_file
):
    trail = AuditTrail(audit_file, include_phone_number=True)
    gws_plugin_manager.register(trail, name="audit")
    try:
        await gws_outbound.cancel(gws_request_factory(record_handle=14, phone_number="3004"))
        assert await trail.aflush()
    finally:
        await trail.aclose()

    requested, acknowledged = read_lines(audit_file)
    assert requested["phone_number"] == "3004"
    assert acknowledged["phone_number"] == "3004"


async def test_appends_to_an_existing_file_created_private(audit_file, gws_request_factory):
    audit_file.write_text('{"event": "earlier"}\n', encoding="utf-8")
    trail = AuditTrail(audit_file)
    trail.on_cancel_requested(gws_request_factory())
    await trail.aclose()

    lines = read_lines(audit_file)
    assert [line["event"] for line in lines] == ["earlier", "cancel_requested"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
async def test_new_file_is_readable_by_its_owner_only(audit_file, gws_request_factory):
    trail = AuditTrail(audit_file)
    trail.on_cancel_requested(gws_request_factory())
    await trail.aclose()
    assert audit_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to stall the disk")
async def test_a_stalled_disk_never_blocks_the_event_loop(
    tmp_path, gws_plugin_manager, gws_outbound, gws_request_factory
):
    # Opening a FIFO for writing blocks until someone reads it: the writer thread is stuck,
    # the cancel must still complete, and the lines must arrive once the disk "recovers".
    fifo = tmp_path / "stalled.jsonl"
    os.mkfifo(fifo)
    trail = AuditTrail(fifo)
    gws_plugin_manager.register(trail, name="audit")
    received: list[str] = []

    def read_fifo() -> None:
        with open(fifo, encoding="utf-8") as reader:
            received.extend(reader)

    reader = threading.Thread(target=read_fifo)
    try:
        with anyio.fail_after(5):
            await gws_outbound.cancel(gws_request_factory())
        assert trail.written == 0  # nothing could be written yet
        reader.start()
        assert await trail.aflush(timeout=5)
    finally:
        if not reader.is_alive() and not received:
            reader.start()
        await trail.aclose()
        reader.join(5)
    assert [json.loads(line)["event"] for line in received] == [
        "cancel_requested",
        "cancel_acknowledged",
    ]


def test_lines_from_many_threads_never_interleave(audit_file, tmp_path):
    # on_cancel_requested is fired from any thread (a GUI host fires it from its UI thread).
    # A bare manager with the specs: the audit trail alone, no core to accept the requests.
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    trail = AuditTrail(audit_file)
    pm.register(trail, name="audit")

    def fire(thread_index: int) -> None:
        for index in range(250):
            pm.hook.on_cancel_requested(
                request=CancelRequest(
                    record_handle=thread_index * 1000 + index + 1,
                    application_id=134,
                    campaign_name="Campaign1",
                    calling_list="CallingList1",
                    device_path="/devices/d1",
                )
            )

    threads = [threading.Thread(target=fire, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trail.close()

    lines = read_lines(audit_file)
    assert len(lines) == 1000
    assert len({line["reference_id"] for line in lines}) == 1000
    assert trail.written == 1000


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to stall the disk")
def test_a_full_queue_drops_and_says_so(tmp_path):
    fifo = tmp_path / "stalled.jsonl"
    os.mkfifo(fifo)
    trail = AuditTrail(fifo, max_queued=2)
    request = CancelRequest(
        record_handle=1,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path="/devices/d1",
    )
    received: list[str] = []

    def read_fifo() -> None:
        with open(fifo, encoding="utf-8") as reader:
            received.extend(reader)

    reader = threading.Thread(target=read_fifo)
    try:
        with capture_logs() as logs:
            for _ in range(10):  # the writer is stuck opening the FIFO: the queue fills up
                trail.on_cancel_requested(request)
    finally:
        reader.start()
        trail.close()
        reader.join(5)

    full = [entry for entry in logs if entry["event"] == "audit_queue_full"]
    assert len(full) >= 5
    assert all(entry["log_level"] == "error" for entry in full)
    assert trail.dropped == len(full)
    assert trail.written + trail.dropped == 10
    assert len(received) == trail.written


def test_a_failing_write_is_logged_with_the_path(tmp_path):
    directory = tmp_path / "not-a-file"
    directory.mkdir()
    trail = AuditTrail(directory)
    with capture_logs() as logs:
        trail.on_cancel_requested(
            CancelRequest(
                record_handle=1,
                application_id=134,
                campaign_name="Campaign1",
                calling_list="CallingList1",
                device_path="/devices/d1",
            )
        )
        trail.close()
    failures = [entry for entry in logs if entry["event"] == "audit_write_failed"]
    assert len(failures) == 1
    assert failures[0]["path"] == str(directory)
    assert failures[0]["log_level"] == "error"
    assert trail.dropped == 1


def test_closed_trail_drops_and_close_is_idempotent(audit_file):
    trail = AuditTrail(audit_file)
    trail.close()
    trail.close()
    with capture_logs() as logs:
        trail.on_cancel_requested(
            CancelRequest(
                record_handle=1,
                application_id=134,
                campaign_name="C",
                calling_list="L",
                device_path="/devices/d1",
            )
        )
    assert [entry["event"] for entry in logs] == ["audit_line_dropped"]
    assert not audit_file.exists()


def test_configuration_from_the_environment(tmp_path):
    path = tmp_path / "a.jsonl"
    trail = AuditTrail.from_env(
        {
            "GWS_OUTBOUND_AUDIT_FILE": str(path),
            "GWS_OUTBOUND_AUDIT_PHONE_NUMBERS": "yes",
            "GWS_OUTBOUND_AUDIT_FSYNC": "1",
        }
    )
    assert trail.enabled
    assert trail.path == path
    assert trail.include_phone_number
    assert trail.fsync

    default = AuditTrail.from_env({"GWS_OUTBOUND_AUDIT_FILE": str(path)})
    assert not default.include_phone_number
    assert not default.fsync

    with pytest.raises(ValueError, match="does not exist"):
        AuditTrail.from_env({"GWS_OUTBOUND_AUDIT_FILE": str(tmp_path / "missing" / "a.jsonl")})
    with pytest.raises(ValueError, match="GWS_OUTBOUND_AUDIT_PHONE_NUMBERS"):
        AuditTrail.from_env(
            {"GWS_OUTBOUND_AUDIT_FILE": str(path), "GWS_OUTBOUND_AUDIT_PHONE_NUMBERS": "maybe"}
        )


def test_unconfigured_trail_writes_nothing_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trail = AuditTrail.from_env({})
    assert not trail.enabled
    request = CancelRequest(
        record_handle=1,
        application_id=134,
        campaign_name="C",
        calling_list="L",
        device_path="/devices/d1",
    )
    with capture_logs() as logs:
        trail.on_cancel_requested(request)
        trail.on_cancel_requested(request)
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("audit_trail_disabled", "info")
    ]
    assert list(tmp_path.iterdir()) == []


def test_installed_under_the_gws_outbound_entry_point():
    pm = make_plugin_manager(plugins=["audit"], strict=True)
    (info,) = describe_plugins(pm)
    assert info.name == "audit"
    assert info.distribution == "gws-outbound-audit"
    assert info.hooks == (
        "on_cancel_failed",
        "on_cancel_requested",
        "on_operation_acknowledged",
        "on_operation_failed",
        "on_operation_requested",
        "on_record_cancel_acknowledged",
    )
    assert isinstance(pm.get_plugin("audit"), AuditTrail)


async def test_every_operation_is_written_once_per_request_acknowledgement_and_failure(
    trail, audit_file, gws_outbound, gws_request_factory, wait_for_hook
):
    from gws_outbound_plugin import OperationFailed

    await gws_outbound.perform(gws_request_factory.reject(13))
    await gws_outbound.perform(gws_request_factory.complete(14, call_result="Answer"))
    with pytest.raises(OperationFailed):
        await gws_outbound.perform(gws_request_factory.unknown_record("CompleteRecord"))
    await gws_outbound.cancel(gws_request_factory(15))
    await gws_outbound.wait_hooks_idle(5)
    assert await trail.aflush()
    UNKNOWN = gws_request_factory.unknown_record("CompleteRecord").record_handle

    lines = [
        (line["event"], line.get("operation"), line["record_handle"])
        for line in read_lines(audit_file)
    ]
    assert lines == [
        ("operation_requested", "RejectRecord", 13),
        ("operation_acknowledged", "RejectRecord", 13),
        ("operation_requested", "CompleteRecord", 14),
        ("operation_acknowledged", "CompleteRecord", 14),
        ("operation_requested", "CompleteRecord", UNKNOWN),
        ("operation_failed", "CompleteRecord", UNKNOWN),
        ("cancel_requested", None, 15),  # a cancel once, with its own events
        ("cancel_acknowledged", None, 15),
    ]
    failed = read_lines(audit_file)[5]
    assert failed["reason"] == "ocs_error" and failed["error_number"] is not None
    completed = read_lines(audit_file)[2]
    assert completed["call_result"] == "Answer"
    assert "phone_number" not in completed


def test_an_unconfigured_trail_is_quiet_for_a_host_that_configures_no_logging(capsys):
    trail = AuditTrail.from_env({})
    trail.on_cancel_requested(
        CancelRequest(
            record_handle=1,
            application_id=134,
            campaign_name="C",
            calling_list="L",
            device_path="/devices/d1",
        )
    )
    assert capsys.readouterr().err == ""
    assert trail.setup_hint == "set GWS_OUTBOUND_AUDIT_FILE to a file path"
    assert AuditTrail("x.jsonl").setup_hint is None


def test_a_misspelt_setting_is_refused_with_the_one_meant(tmp_path):
    """GWS_OUTBOUND_AUDIT_PHONE_NUMBER (no S) was ignored: the trail left the numbers out."""
    with pytest.raises(ValueError, match="is not a setting") as caught:
        AuditTrail.from_env(
            {
                "GWS_OUTBOUND_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
                "GWS_OUTBOUND_AUDIT_PHONE_NUMBER": "1",
            }
        )

    assert str(caught.value) == (
        "GWS_OUTBOUND_AUDIT_PHONE_NUMBER is not a setting of the audit plugin (did you mean "
        "GWS_OUTBOUND_AUDIT_PHONE_NUMBERS?)"
    )


def test_another_plugins_settings_under_a_longer_prefix_are_not_refused(tmp_path, monkeypatch):
    """A plugin announced as ``audit-s3`` reads GWS_OUTBOUND_AUDIT_S3_*: those were taken for
    misspelt settings of this one, which then failed to load wherever both were installed."""
    site = tmp_path / "site"
    info = site / "gwsx_audit_s3-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gwsx-audit-s3\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gws_outbound]\naudit-s3 = gwsx_audit_s3:plugin\n")
    monkeypatch.syspath_prepend(str(site))
    environ = {
        "GWS_OUTBOUND_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
        "GWS_OUTBOUND_AUDIT_S3_BUCKET": "trail",
    }
    AuditTrail.from_env(environ).close()

    with pytest.raises(ValueError, match="GWS_OUTBOUND_AUDIT_S4_BUCKET is not a setting"):
        AuditTrail.from_env({**environ, "GWS_OUTBOUND_AUDIT_S4_BUCKET": "trail"})
