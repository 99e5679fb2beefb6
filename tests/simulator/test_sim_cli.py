"""``python -m gws_outbound_plugin.simulator`` as a real subprocess, plus its helpers."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gws_outbound_plugin.simulator import DEFAULT_RECORDS, OPERATIONS, main, parse_fault_spec
from gws_outbound_plugin.simulator._cli import _request_line, is_loopback
from gws_outbound_plugin.simulator._recording import RecordedRequest

REPO = Path(__file__).resolve().parents[2]
FIRST_LINE = re.compile(r"GWS simulator listening on (http://(?:127\.0\.0\.1|0\.0\.0\.0):(\d+))\n")
# Each request line starts with an ISO 8601 UTC timestamp with milliseconds.
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


def _readline(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    """Read one line byte by byte, leaving everything after it in the pipe."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"the simulator printed no full line in time: {line!r}"
        chunk = os.read(fd, 1)
        assert chunk, f"the simulator closed its stdout: {line!r}"
        line += chunk
    return line.decode()


def _finish(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=15)
    return out.decode(), err.decode()


@pytest.fixture
def start_cli() -> Iterator:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gws_outbound_plugin.simulator", "--port", "0", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        procs.append(proc)
        first = _readline(proc)
        match = FIRST_LINE.fullmatch(first)
        assert match, f"unexpected first line {first!r}"
        return proc, match.group(1)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_logs_requests_and_stops_cleanly(start_cli, signum: int):
    proc, base_url = start_cli("--user", "agent1:secret", "--fault", "status_code:code=4")
    with httpx.Client(base_url=base_url, timeout=10) as http:
        me = http.get("/api/v2/me", auth=("agent1", "secret"))
        assert me.status_code == 200
        device_path = "/devices/" + http.get("/api/v2/me/devices").json()["devices"][0]["id"]
        cancel = http.post(
            "/api/v2/me/outbound-records/11",
            headers={"X-CSRF-TOKEN": me.headers["X-CSRF-TOKEN"]},
            json={
                "operationName": "CancelRecord",
                "applicationId": 134,
                "campaignName": "Campaign1",
                "callingList": "CallingList1",
                "devicePath": device_path,
            },
        )
        assert cancel.json()["statusCode"] == 4  # the --fault applied
    proc.send_signal(signum)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"devicePath={device_path}" in out
    assert re.search(rf"^{STAMP} GET /api/v2/me 200 \d+\.\dms user=agent1$", out, re.MULTILINE), out
    assert re.search(rf"^{STAMP} POST /api/v2/me/outbound-records/11 200 ", out, re.MULTILINE)
    assert "warning" not in err  # loopback: no warning
    assert "secret" not in out + err
    assert "fault armed: status_code(code=4" in out


def test_cli_new_faults_and_admin_endpoints(start_cli):
    proc, base_url = start_cli(
        "--user",
        "agent1:secret",
        "--fault",
        "unauthorized",
        "--fault",
        "hold_connects:seconds=30,count=none",
    )
    with httpx.Client(base_url=base_url, timeout=10) as http:
        me = http.get("/api/v2/me", auth=("agent1", "secret"))
        token = me.headers["X-CSRF-TOKEN"]
        cancel = http.post("/api/v2/me/outbound-records/11", headers={"X-CSRF-TOKEN": token})
        assert cancel.status_code == 401  # the --fault unauthorized applied
        assert cancel.json()["statusCode"] == 20
        assert http.post("/_simulator/rotate-csrf").json() == {"ok": True, "rotated": 1}
        stale = http.post("/api/v2/me/outbound-records/11", headers={"X-CSRF-TOKEN": token})
        assert stale.status_code == 403
        changed = http.post("/_simulator/users", json={"user": "agent1", "password": "n3w-pw"})
        assert changed.json() == {"ok": True, "user": "agent1"}
        assert http.get("/api/v2/me", auth=("agent1", "secret")).status_code == 401
        assert http.get("/api/v2/me", auth=("agent1", "n3w-pw")).status_code == 200
        faults = http.get("/_simulator/stats").json()["faults"]
        assert faults == ["hold_connects(seconds=30): until cleared"]
    proc.send_signal(signal.SIGTERM)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert "fault armed: unauthorized(): 1 left" in out
    assert "fault armed: hold_connects(seconds=30): until cleared" in out
    assert re.search(rf"^{STAMP} POST /api/v2/me/outbound-records/11 401 ", out, re.MULTILINE), out
    assert "/_simulator/" not in out  # admin requests are not logged
    assert "n3w-pw" not in out + err


def test_cli_records_file_and_no_csrf(start_cli, tmp_path: Path):
    records = tmp_path / "records.json"
    records.write_text(json.dumps([DEFAULT_RECORDS[0].to_json() | {"recordHandle": 4242}]))
    proc, base_url = start_cli("--no-csrf", "--records", str(records), "--quiet")
    with httpx.Client(base_url=base_url, timeout=10) as http:
        me = http.get("/api/v2/me", auth=("agent1", "secret"))
        assert "X-CSRF-TOKEN" not in me.headers
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert out == ""  # --quiet: nothing after the first line


def test_help_lists_records_and_defaults(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "agent1:secret" in text
    for flag in (
        "--host",
        "--port",
        "--user",
        "--no-csrf",
        "--records",
        "--session-timeout",
        "--connect-timeout",
        "--fault",
        "--quiet",
    ):
        assert flag in text
    for usage in (
        "unauthorized(count=1, operation=None)",
        "csrf_reject(count=1, operation=None)",
        "hold_connects(seconds, count=1)",
        "http_error(status=500, count=1, gws_body=None, operation=None)",
    ):
        assert usage in text
    for endpoint in (
        "/_simulator/rotate-csrf",
        "/_simulator/users",
        "/_simulator/events",
        "/_simulator/clock",
        "/_simulator/forbidden-channels",
    ):
        assert endpoint in text
    for operation in OPERATIONS:
        assert re.search(rf"^    {operation}( |$)", text, re.MULTILINE), operation
    assert "--forbid-channel" in text
    assert "cometd_error(" in text and "operation=None" in text
    assert re.search(r"^  Campaign2\s+134\s+CallingList2,CallingList3\s", text, re.MULTILINE)
    # Everything is in the help itself: no pointer to a docs file the package lacks.
    assert "docs/" not in text and ".md" not in text
    for record in DEFAULT_RECORDS:
        assert re.search(
            rf"^\s+{record.record_handle}\s+{record.application_id}\s+{record.campaign_name}\s+"
            rf"{record.calling_list}\s+{record.phone_number}\s+{record.chain_id}$",
            text,
            re.MULTILINE,
        ), record


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault", "explode"],
        ["--fault", "drop_notifications:which=neither"],
        ["--fault", "delay_notifications:seconds"],
        ["--fault", "hold_connects"],
        ["--fault", "hold_connects:seconds=0"],
        ["--fault", "unauthorized:count=0"],
        ["--fault", "csrf_reject:status=403"],
        ["--user", "nopassword"],
        ["--port", "99999"],
        ["--records", "/nonexistent/records.json"],
        ["--forbid-channel", "/meta/connect"],
        ["--forbid-channel", "/me/*"],
        ["--fault", "ocs_error:operation=Frobnicate"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_parse_fault_spec():
    assert parse_fault_spec("drop_notifications:which=both,count=3") == (
        "drop_notifications",
        {"which": "both", "count": 3},
    )
    assert parse_fault_spec("delay_notifications:seconds=2.5,count=none") == (
        "delay_notifications",
        {"seconds": 2.5, "count": None},
    )
    assert parse_fault_spec("reset_connection") == ("reset_connection", {})
    assert parse_fault_spec("ocs_error:number=7,message=Record locked") == (
        "ocs_error",
        {"number": 7, "message": "Record locked"},
    )
    assert parse_fault_spec("unauthorized:count=2") == ("unauthorized", {"count": 2})
    assert parse_fault_spec("csrf_reject") == ("csrf_reject", {})
    assert parse_fault_spec("hold_connects:seconds=45,count=none") == (
        "hold_connects",
        {"seconds": 45, "count": None},
    )
    assert parse_fault_spec("http_error:status=503,gws_body=false,operation=RejectRecord") == (
        "http_error",
        {"status": 503, "gws_body": False, "operation": "RejectRecord"},
    )
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault_spec("clear_everything")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault_spec("rotate_csrf_tokens")  # an admin action, not a fault


def test_busy_port_exits_1(capsys: pytest.CaptureFixture[str]):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert "cannot listen" in captured.err
    assert "listening on" not in captured.out


def test_request_line_starts_with_an_iso_timestamp():
    record = RecordedRequest(
        method="POST",
        path="/api/v2/notifications",
        username="agent1",
        status=200,
        bayeux_channels=("/meta/connect",),
        duration_ms=12.34,
    )
    when = datetime(2024, 6, 10, 12, 30, 5, 123456, tzinfo=UTC)
    assert _request_line(record, when) == (
        "2024-06-10T12:30:05.123+00:00 POST /api/v2/notifications 200 12.3ms "
        "user=agent1 /meta/connect"
    )
    assert re.fullmatch(rf"{STAMP} GET / reset 0\.0ms", _request_line(RecordedRequest("GET", "/")))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("gws-sim.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_cli_warns_when_listening_beyond_loopback(start_cli):
    proc, _ = start_cli("--host", "0.0.0.0", "--quiet")
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 0, err
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "0.0.0.0 is not a loopback address" in warning
    assert "secret" not in err


def test_cli_forbid_channel(start_cli):
    proc, base_url = start_cli("--forbid-channel", "/me/internal")
    with httpx.Client(base_url=base_url, timeout=10) as http:
        handshake = http.post(
            "/api/v2/notifications",
            json=[
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                }
            ],
            auth=("agent1", "secret"),
        ).json()[0]
        replies = http.post(
            "/api/v2/notifications",
            json=[
                {
                    "channel": "/meta/subscribe",
                    "clientId": handshake["clientId"],
                    "subscription": "/me/internal",
                },
                {
                    "channel": "/meta/subscribe",
                    "clientId": handshake["clientId"],
                    "subscription": "/v2/me/outbound",
                },
            ],
        ).json()
        assert [(r["successful"], r.get("error")) for r in replies] == [
            (False, "403::Forbidden channel"),
            (True, None),
        ]
        assert http.get("/_simulator/stats").json()["forbidden_channels"] == ["/me/internal"]
    proc.send_signal(signal.SIGTERM)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert "forbidden CometD channel: /me/internal" in out


@pytest.mark.parametrize(
    ("value", "problem"),
    [(":hunter2", "an empty NAME"), ("hunter2", "without ':'")],
    ids=["empty-name", "no-colon"],
)
def test_a_bad_user_argument_never_echoes_the_password(
    value: str, problem: str, capsys: pytest.CaptureFixture[str]
):
    """``--user :hunter2`` (a name left out) and ``--user hunter2`` (only the password):
    the usage error says what is wrong without the value (before, it was echoed, password
    and all)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--user", value])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert problem in captured.err
    assert "hunter2" not in captured.err + captured.out


@pytest.mark.parametrize(
    "argv",
    [
        ["--usr", "alice:hunter2"],
        ["--users=alice:hunter2"],
        ["--user", "alice:pw1", "bob:hunter2"],
    ],
    ids=["misspelt-option", "misspelt-option-equals", "a-second-value"],
)
def test_an_unrecognised_argument_never_echoes_the_password(
    argv: list[str], capsys: pytest.CaptureFixture[str]
):
    """A misspelt ``--user`` (``--usr alice:hunter2``) or a value it does not take: argparse
    said "unrecognized arguments: --usr alice:hunter2", password and all (as ``--user``'s
    own error did before); the arguments are named with what follows their ':' left out."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "unrecognized arguments:" in captured.err
    assert "alice" in captured.err or "bob" in captured.err  # still says which
    assert "hunter2" not in captured.err + captured.out
