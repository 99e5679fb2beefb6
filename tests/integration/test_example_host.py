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
DEVICE = "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f"  # agent1's device in the simulator
WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


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


def hook_lines(out: str) -> list[tuple[str, str]]:
    """(hook, rest of the line) of each hook line of the readable output."""
    found = re.findall(r"^(?:->|<-) (on_\w+) +(.*)$", out, re.MULTILINE)
    return [(hook, rest) for hook, rest in found]


def test_demo_runs_a_preview_dialing_session(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    lines = hook_lines(demo.stdout)
    requested = [rest.split()[0] for hook, rest in lines if hook == "on_operation_requested"]
    assert requested == [
        "StartPreviewSession",
        *["GetPreviewRecord", "CompleteRecord"],
        *["GetPreviewRecord", "RescheduleRecord"],
        *["GetPreviewRecord", "RejectRecord"],
        *["GetPreviewRecord", "DoNotCallRecord"],
        "GetPreviewRecord",
        "EndPreviewSession",
    ]
    acknowledged = [rest.split()[0] for hook, rest in lines if hook == "on_operation_acknowledged"]
    assert acknowledged == [*requested[:-1], "CancelRecord", "EndPreviewSession"]
    # Each record is worked on right after the preview hands it out.
    previewed = re.findall(r"GetPreviewRecord record (\d+) ", demo.stdout)
    worked = re.findall(
        r"^-> on_operation_requested +(?:Complete|Reschedule|Reject|DoNotCall)Record record (\d+)",
        demo.stdout,
        re.MULTILINE,
    )
    assert worked == previewed[:4]
    assert len(set(previewed)) == 5
    assert "CompleteRecord record" in demo.stdout


def test_demo_cancels_and_shows_the_cancels_ocs_refuses(
    demo: subprocess.CompletedProcess[str],
) -> None:
    out = demo.stdout
    hooks = [hook for hook, _ in hook_lines(out)]
    assert hooks.count("on_cancel_requested") == 4
    assert hooks.count("on_record_cancel_acknowledged") == 1
    assert hooks.count("on_cancel_failed") == 3
    assert hooks.count("on_operation_failed") == 3  # a cancel's failure fires both hooks
    assert "Record already cancelled" in out
    assert "Record already completed" in out
    assert "Record not found" in out
    assert "15 requests: 12 acknowledged, 3 failed" in demo.stderr


def test_demo_shows_the_unsolicited_events_of_the_simulator(
    demo: subprocess.CompletedProcess[str],
) -> None:
    lines = hook_lines(demo.stdout)
    (rescheduled,) = re.findall(r"RescheduleRecord record (\d+) ref", demo.stdout)
    (due,) = [rest for hook, rest in lines if hook == "on_scheduled_call"]
    assert due.startswith(f"record {rescheduled} (Campaign1/CallingList1) Personal callback due")
    (status,) = [rest for hook, rest in lines if hook == "on_campaign_status"]
    assert status == "Campaign1 CampaignStopped"
    # Each arrives after the step that causes it, and before the next step starts.
    steps = demo.stdout.split("\n== ")
    assert any(
        s.startswith("(simulator) two hours pass") and "on_scheduled_call" in s for s in steps
    )
    assert steps[-1].startswith("(simulator) a supervisor stops Campaign1")
    assert "on_campaign_status" in steps[-1]


def test_demo_closes_the_plugins_with_the_librarys_close_plugins(
    demo: subprocess.CompletedProcess[str],
) -> None:
    # The webhook plugin sends what it queued in its aclose(): every acknowledgement arrived,
    # and the audit trail has a line per request, acknowledgement and failure (15 + 12 + 3).
    assert "webhook plugin delivered 12 acknowledgement(s)" in demo.stderr
    assert "audit plugin wrote 30 JSON lines" in demo.stderr
    source = HOST.read_text(encoding="utf-8")
    assert "await close_plugins(pm)" in source
    assert "def close_plugins" not in source  # the library's, not a copy


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## The example host", 1)[1].split("\n## ", 1)[0]


def test_the_readme_describes_the_demo_as_it_runs(demo: subprocess.CompletedProcess[str]) -> None:
    counts = re.search(r"(\d+) requests: (\d+) acknowledged, (\d+) failed", demo.stderr)
    assert counts is not None, demo.stderr
    section = " ".join(_readme_section().split())
    assert f"{counts[1]} requests, {counts[2]} acknowledged and {counts[3]} failed" in section
    previews = demo.stdout.count("-> on_operation_requested         GetPreviewRecord")
    assert f"gets {WORDS[previews]} records one by one" in section
    refused = demo.stdout.count("<- on_cancel_failed")
    assert f"tries {WORDS[refused]} cancels OCS refuses" in section


def test_the_readmes_excerpt_of_the_demo_is_what_it_prints(
    demo: subprocess.CompletedProcess[str],
) -> None:
    (excerpt,) = re.findall(r"```text\n(.*?)```", _readme_section(), re.DOTALL)

    def normal(text: str) -> list[str]:
        return [re.sub(r"ref [0-9a-f.]+", "ref ...", line).rstrip() for line in text.splitlines()]

    shown = [line for line in normal(excerpt) if line]
    printed = normal(demo.stdout)
    assert len(shown) >= 5
    start = printed.index(shown[0])
    assert [line for line in printed[start:] if line][: len(shown)] == shown


def test_stdin_mode_answers_one_json_line_per_hook_and_one_per_bad_line() -> None:
    # Lines without operationName: cancels, exactly as before the other operations existed.
    good = {
        "recordHandle": 12,
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": DEVICE,
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
    # Every error line has the same keys, a line that is not JSON too (it had no "errors").
    assert [sorted(error) for error in errors] == [["error", "errors", "fields"]] * 2
    assert errors[0]["fields"] == [] and errors[0]["errors"] == {}
    assert "recordHandle" in errors[1]["fields"]
    assert "applicationId" in errors[1]["fields"]
    assert errors[1]["error"].startswith("invalid cancel request: ")
    hooks = [line["hook"] for line in out if "hook" in line]
    assert hooks.count("on_cancel_requested") == 2
    assert hooks.count("on_operation_requested") == 0
    assert hooks.count("on_user_event") == 2
    [ack] = [line for line in out if line.get("hook") == "on_record_cancel_acknowledged"]
    assert ack["reference_id"] == "123456789"
    assert ack["record_handle"] == 12
    assert ack["user_data"]["GSW_PHONE"] == "3002"
    [failure] = [line for line in out if line.get("hook") == "on_cancel_failed"]
    assert failure["reason"] == "ocs_error"
    assert failure["request"]["reference_id"] == "r-unknown"
    # Logs went to stderr, stdout holds JSON only (checked by json.loads above).


def test_stdin_mode_accepts_every_operation() -> None:
    base = {"applicationId": 134, "campaignName": "Campaign1", "devicePath": DEVICE}
    on_record = dict(base, callingList="CallingList1")
    # Sent as they are read, concurrently: none of these depends on another's outcome.
    requests = [
        dict(base, operationName="StartPreviewSession", referenceId="start"),
        dict(on_record, operationName="CompleteRecord", recordHandle=14, callResult="Answer"),
        dict(
            base,
            operationName="RescheduleRecord",
            recordHandle=15,
            callbackType="Personal",
            timestamp="2030-01-02T09:30:00+01:00",
            referenceId="later",
        ),
        dict(on_record, operationName="RejectRecord", recordHandle=16),
        dict(on_record, operationName="DoNotCallRecord", recordHandle=17),
        dict(base, operationName="DoNotCallRecord", phoneNumber="3009"),
        dict(base, operationName="UpdateRecord", recordHandle=20, phoneType="Mobile"),
        dict(
            base,
            operationName="GetChainedRecord",
            recordHandle=21,
            campaignName="Campaign2",
            referenceId="chain",
        ),
        dict(
            on_record,
            operationName="AddRecord",
            phoneNumber="5550001",
            timeZone="PST",
            phoneType="HomePhone",
            **{"from": 0, "until": 86399},
        ),
        dict(on_record, operationName="CancelRecord", recordHandle=18),
    ]
    invalid = [
        dict(base, operationName="Frobnicate"),
        dict(base, operationName="RescheduleRecord", recordHandle=19, callbackType="Later"),
    ]
    stdin = "\n".join(json.dumps(line) for line in [*requests, *invalid]) + "\n"
    result = run_host("--stdin", "--no-entrypoints", stdin=stdin)

    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [line for line in out if "error" in line]
    assert [sorted(error["fields"]) for error in errors] == [
        ["operationName"],
        ["callbackType", "timestamp"],
    ]
    asked = [line for line in out if line.get("hook") == "on_operation_requested"]
    assert [line["operation"] for line in asked] == [
        request["operationName"] for request in requests[:-1]
    ]  # the cancel fired on_cancel_requested, as cancels always did
    assert [line.get("hook") for line in out].count("on_cancel_requested") == 1
    acks = {
        line["reference_id"]: line
        for line in out
        if line.get("hook") == "on_operation_acknowledged"
    }
    assert len(acks) == len(requests)
    assert not [line for line in out if line.get("hook") == "on_operation_failed"]
    assert acks["later"]["request"]["scheduled_time"] == "2030-01-02T09:30:00+01:00"
    assert [record["recordHandle"] for record in acks["chain"]["records"]] == [22, 23]
    assert acks["start"]["campaign"]["name"] == "Campaign1"


@pytest.mark.parametrize("stdin", ["", "\n\n"])
def test_stdin_mode_with_no_events_exits_cleanly(stdin: str) -> None:
    result = run_host("--stdin", "--no-entrypoints", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
