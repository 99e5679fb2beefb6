"""The example host, run as people run it: `make demo`'s command and the --stdin mode."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parents[2] / "examples" / "host.py"
README = Path(__file__).resolve().parents[2] / "README.md"


def run_host(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWS_")}
    return subprocess.run(
        [sys.executable, str(HOST), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """`make demo`'s command, run once for the tests below."""
    return run_host()


def test_demo_shows_every_hook_and_the_refused_cancels(
    demo: subprocess.CompletedProcess[str],
) -> None:
    result = demo
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("on_cancel_requested") == 4
    assert out.count("on_record_cancel_acknowledged") == 2
    assert out.count("on_cancel_failed") == 2
    assert "Record not found" in out
    assert "Record already cancelled" in out
    assert "2 acknowledged, 2 failed" in result.stderr


def test_demo_closes_the_plugins_with_the_librarys_close_plugins(
    demo: subprocess.CompletedProcess[str],
) -> None:
    # The webhook plugin sends what it queued in its aclose(): both acknowledgements arrived.
    assert "webhook plugin delivered 2 acknowledgement(s)" in demo.stderr
    source = HOST.read_text(encoding="utf-8")
    assert "await close_plugins(pm)" in source
    assert "def close_plugins" not in source  # the library's, not a copy


def test_the_readme_describes_the_demo_as_it_runs(demo: subprocess.CompletedProcess[str]) -> None:
    counts = re.search(r"(\d+) acknowledged, (\d+) failed", demo.stderr)
    assert counts is not None, demo.stderr
    requested = demo.stdout.count("-> on_cancel_requested")
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    readme = " ".join(README.read_text(encoding="utf-8").split())
    section = readme.split("## The example host", 1)[1].split("##", 1)[0]
    assert f"cancels {words[requested]} sample records" in section
    assert f"OCS refuses {words[int(counts[2])]}" in section


def test_stdin_mode_answers_one_json_line_per_hook_and_one_per_bad_line() -> None:
    device = "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f"
    good = {
        "recordHandle": 12,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": device,
        "phoneNumber": "3002",
        "chainAttribute": "AllChain",
        "referenceId": "123456789",
    }
    unknown = dict(good, recordHandle=999, referenceId="r-unknown")
    lines = [json.dumps(good), "not json", json.dumps({"recordHandle": "11"}), json.dumps(unknown)]
    result = run_host("--stdin", "--no-entrypoints", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [line for line in out if "error" in line]
    assert len(errors) == 2
    assert errors[0]["fields"] == []
    assert "recordHandle" in errors[1]["fields"]
    assert "applicationId" in errors[1]["fields"]
    hooks = [line["hook"] for line in out if "hook" in line]
    assert hooks.count("on_cancel_requested") == 2
    assert hooks.count("on_user_event") == 2
    [ack] = [line for line in out if line.get("hook") == "on_record_cancel_acknowledged"]
    assert ack["reference_id"] == "123456789"
    assert ack["record_handle"] == 12
    assert ack["user_data"]["GSW_PHONE"] == "3002"
    [failure] = [line for line in out if line.get("hook") == "on_cancel_failed"]
    assert failure["reason"] == "ocs_error"
    assert failure["request"]["reference_id"] == "r-unknown"
    # Logs went to stderr, stdout holds JSON only (checked by json.loads above).


@pytest.mark.parametrize("stdin", ["", "\n\n"])
def test_stdin_mode_with_no_events_exits_cleanly(stdin: str) -> None:
    result = run_host("--stdin", "--no-entrypoints", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
