"""The documentation tells the truth: docs/hooks.md names every hook, argument and payload
field (and nothing else), docs/hosting.md every setting and its example programs run, and
the tutorial in docs/writing-a-plugin.md builds a plugin whose tests pass."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from gws_outbound_plugin import (
    PROJECT_NAME,
    AddRecordRequest,
    CallbackType,
    CampaignStatus,
    CampaignStatusEvent,
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    EventMetrics,
    FailureReason,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    GWSConfig,
    OperationAck,
    OperationFailure,
    PhoneType,
    PreviewRecordEvent,
    RecordCancelAck,
    RecordCancelledEvent,
    RejectRecordRequest,
    RescheduleRecordRequest,
    ScheduledCallEvent,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    UserEvent,
    hookspecs,
)
from gws_outbound_plugin.testing import HookRecorder

from ._tutorial import PROJECT_DIR, code_files
from .conftest import CLI, ROOT, run_pytest

DOCS = ROOT / "docs"
PAYLOADS = (
    CancelRequest,
    RecordCancelAck,
    CancelFailure,
    UserEvent,
    EventMetrics,
    RejectRecordRequest,
    CompleteRecordRequest,
    DoNotCallRecordRequest,
    RescheduleRecordRequest,
    UpdateRecordRequest,
    GetChainedRecordRequest,
    AddRecordRequest,
    DoNotCallPhoneRequest,
    StartPreviewSessionRequest,
    GetPreviewRecordRequest,
    EndPreviewSessionRequest,
    OperationAck,
    OperationFailure,
    RecordCancelledEvent,
    ScheduledCallEvent,
    CampaignStatusEvent,
    PreviewRecordEvent,
)
ENUMS = (FailureReason, ChainAttribute, PhoneType, CallbackType, CampaignStatus)
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$", re.MULTILINE)
_ROW = re.compile(r"^\| `([^`]+)`[^|]*\|([^|\n]*(?:\\\|[^|\n]*)*)\|", re.MULTILINE)


def hook_specs() -> dict[str, list[str]]:
    """Hook name -> argument names, read from the specification module."""
    marker = PROJECT_NAME + "_spec"
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, marker)
    }


def sections(markdown: str) -> dict[str, str]:
    """Heading text -> the text up to the next heading of the same or a higher level."""
    headings = list(_HEADING.finditer(markdown))
    result: dict[str, str] = {}
    for index, heading in enumerate(headings):
        level = len(heading[1])
        end = len(markdown)
        for later in headings[index + 1 :]:
            if len(later[1]) <= level:
                end = later.start()
                break
        result[heading[2]] = markdown[heading.end() : end]
    return result


def table_rows(section: str) -> list[tuple[str, str]]:
    """(first column without backticks, second column) of each table row."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        first = cells[0].strip()
        name = re.match(r"`([^`]+)`", first)
        assert name is not None, line
        second = cells[1].strip().replace("\\|", "|") if len(cells) > 1 else ""
        rows.append((name[1], second))
    return rows


@pytest.fixture(scope="module")
def hooks_md() -> dict[str, str]:
    return sections((DOCS / "hooks.md").read_text(encoding="utf-8"))


def test_the_specs_are_found():
    assert hook_specs() == {
        "on_cancel_requested": ["request"],
        "on_record_cancel_acknowledged": ["ack"],
        "on_cancel_failed": ["failure"],
        "on_user_event": ["event"],
        "on_operation_requested": ["request"],
        "on_operation_acknowledged": ["ack"],
        "on_operation_failed": ["failure"],
        "on_record_cancelled": ["event"],
        "on_scheduled_call": ["event"],
        "on_preview_record": ["event"],
        "on_campaign_status": ["event"],
        "on_connection_state_changed": ["state", "previous"],
    }


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_is_documented(hooks_md, hook):
    arguments = hook_specs()[hook]
    heading = f"`{hook}({', '.join(arguments)})`"
    assert heading in hooks_md, f"docs/hooks.md needs a section '## {heading}'"
    section = hooks_md[heading]
    for label in ("**When:**", "**Arguments:**", "**Async:**", "**Raise / hang:**"):
        assert label in section, f"{hook}: {label} missing"
    for argument in arguments:
        assert f"- `{argument}`:" in section, f"{hook}: argument {argument} undocumented"


def test_no_documented_hook_is_made_up(hooks_md):
    documented = {match[1] for heading in hooks_md if (match := re.match(r"`(on_\w+)\(", heading))}
    assert documented == set(hook_specs())


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda cls: cls.__name__)
def test_every_payload_field_is_documented_with_its_type(hooks_md, payload):
    heading = f"`{payload.__name__}`"
    assert heading in hooks_md, f"docs/hooks.md needs a section '### {heading}'"
    rows = table_rows(hooks_md[heading])
    fields = dataclasses.fields(payload)
    assert [name for name, _ in rows] == [field.name for field in fields], (
        f"{payload.__name__}: the table must list exactly its fields, in order"
    )
    for (name, documented_type), field in zip(rows, fields, strict=True):
        assert documented_type.strip("`") == str(field.type), (
            f"{payload.__name__}.{name}: documented as {documented_type}, is {field.type}"
        )


@pytest.mark.parametrize("enumeration", ENUMS, ids=lambda cls: cls.__name__)
def test_every_enum_value_is_documented(hooks_md, enumeration: type[enum.Enum]):
    rows = table_rows(hooks_md[f"`{enumeration.__name__}`"])
    assert [name for name, _ in rows] == [member.value for member in enumeration]


def test_every_payload_is_linked_from_a_hook(hooks_md):
    hook_text = "".join(text for heading, text in hooks_md.items() if heading.startswith("`on_"))
    linked = (
        RecordCancelAck,
        CancelFailure,
        UserEvent,
        CancelRequest,
        FailureReason,
        OperationAck,
        OperationFailure,
        RecordCancelledEvent,
        ScheduledCallEvent,
        CampaignStatusEvent,
        PreviewRecordEvent,
    )
    for payload in linked:
        assert f"[`{payload.__name__}`](#{payload.__name__.lower()})" in hook_text


def test_the_hook_recorder_of_the_testing_kit_covers_every_hook():
    recorder_hooks = {
        name
        for name, member in inspect.getmembers(HookRecorder)
        if hasattr(member, PROJECT_NAME + "_impl")
    }
    assert recorder_hooks == set(hook_specs())


# -- hosting.md -----------------------------------------------------------------------------------


def test_every_setting_is_documented_in_hosting():
    hosting = sections((DOCS / "hosting.md").read_text(encoding="utf-8"))
    rows = dict(table_rows(hosting["Configuration"]))
    fields = dataclasses.fields(GWSConfig)
    assert list(rows) == [field.name for field in fields]
    for field in fields:
        assert rows[field.name] == f"`GWS_{field.name.upper()}`"


@pytest.fixture(scope="module")
def hosting_examples(tmp_path_factory) -> Path:
    files = code_files((DOCS / "hosting.md").read_text(encoding="utf-8"))
    assert set(files) == {"async_host.py", "thread_host.py"}
    directory = tmp_path_factory.mktemp("hosting")
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
    return directory


def _host_env(base_url: str) -> dict[str, str]:
    from .conftest import base_env

    # Load no installed plugin: the examples' output is what the page shows.
    return base_env(
        {
            "GWS_BASE_URL": base_url,
            "GWS_USERNAME": "agent1",
            "GWS_PASSWORD": "secret",
            "GWS_ACK_TIMEOUT": "3",
            "GWS_OUTBOUND_PLUGINS": "",
        }
    )


async def _run_example(path: Path, base_url: str, *handles: int) -> tuple[int, list[str]]:
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, str(path), *map(str, handles)],
            env=_host_env(base_url),
            check=False,
        )
    stdout = result.stdout.decode()
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    return result.returncode, stdout.splitlines()


@pytest.mark.anyio
async def test_the_async_host_example_runs(hosting_examples, gws_simulator):
    code, lines = await _run_example(
        hosting_examples / "async_host.py", gws_simulator.base_url, 11, 12, 999
    )

    assert code == 1  # one of the three failed
    assert sorted(line for line in lines if line.startswith("hook:")) == [
        "hook: acknowledged record 11",
        "hook: acknowledged record 12",
        "hook: record 999 ocs_error",
    ]
    results = [line for line in lines if line.startswith("result:")]
    assert len(results) == 3
    assert "result: record 11 cancelled" in results
    assert "result: record 12 cancelled" in results
    (failed,) = [line for line in results if "999" in line]
    assert failed.startswith("result: cancel of record 999 failed: ocs_error error_number=101")
    assert gws_simulator.records[11].cancelled and gws_simulator.records[12].cancelled


@pytest.mark.anyio
async def test_the_thread_host_example_runs(hosting_examples, gws_simulator):
    code, lines = await _run_example(
        hosting_examples / "thread_host.py", gws_simulator.base_url, 13, 17
    )

    assert code == 0
    assert sum(line.startswith("ui: sent ") for line in lines) == 2
    assert sorted(line for line in lines if not line.startswith("ui: sent ")) == [
        "ui: record 13 acknowledged",
        "ui: record 17 acknowledged",
    ]

    code, lines = await _run_example(
        hosting_examples / "thread_host.py", gws_simulator.base_url, 13
    )
    assert code == 1  # already cancelled: OCS refuses
    assert "ui: record 13 ocs_error" in lines


# -- writing-a-plugin.md -------------------------------------------------------------------------


def test_the_tutorial_has_every_file_of_its_layout():
    files = code_files((DOCS / "writing-a-plugin.md").read_text(encoding="utf-8"))
    assert sorted(files) == [
        f"{PROJECT_DIR}/pyproject.toml",
        f"{PROJECT_DIR}/src/gws_outbound_tally/__init__.py",
        f"{PROJECT_DIR}/tests/conftest.py",
        f"{PROJECT_DIR}/tests/test_tally.py",
    ]
    assert files[f"{PROJECT_DIR}/tests/conftest.py"] == (
        'pytest_plugins = ["gws_outbound_plugin.testing"]\n'
    )


def test_the_tutorials_plugin_passes_its_own_tests(installed):
    # As the tutorial says: from the plugin's folder, `pytest`, with the plugin installed.
    assert run_pytest(installed.tutorial, env=installed.env()).startswith("4 passed")


def run_doc_example(tmp_path: Path, section: str, test_file: str) -> str:
    """Run the one python block of ``section`` of docs/writing-a-plugin.md as a pytest file
    with the testing kit as a plugin, warnings as errors, as a reader would; return pytest's
    summary line."""
    markdown = (DOCS / "writing-a-plugin.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", sections(markdown)[section], re.DOTALL)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["gws_outbound_plugin.testing"]\n')
    (tmp_path / test_file).write_text(code, encoding="utf-8")
    return run_pytest(tmp_path, "-W", "error", timeout=120)


def test_the_tutorials_example_of_the_other_hooks_passes(tmp_path):
    last = run_doc_example(tmp_path, "The other operations and OCS's own events", "test_planner.py")
    assert last.startswith("2 passed")


def test_the_tutorials_plugin_is_listed_by_the_cli(installed):
    result = subprocess.run(
        [str(CLI), "plugins", "--json"],
        env=installed.env({"GWS_OUTBOUND_PLUGINS": "tally"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "name": "tally",
            "hooks": ["on_cancel_failed", "on_cancel_requested", "on_record_cancel_acknowledged"],
            "distribution": "gws-outbound-tally",
            "version": "0.1.0",
            "warnings": [],
            "error": None,
            "location": None,
            "configured": None,  # the tutorial's plugin needs no settings: it does not say
            "setup_hint": None,
        }
    ]


# -- hosting.md: what starting can raise ---------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.anyio
async def test_the_start_up_errors_are_the_documented_ones(gws_simulator):
    from gws_outbound_plugin import GWSOutboundError, OutboundPlugin, make_plugin_manager

    section = sections((DOCS / "hosting.md").read_text(encoding="utf-8"))["What starting can raise"]
    documented = set(re.findall(r"^\| `(\w+)`", section, re.MULTILINE))
    assert {
        "GWSAuthenticationError",
        "GWSTransportError",
        "GWSStatusError",
        "GWSOutboundError",
    } <= documented

    port = _free_port()  # nothing listens there
    cases = [
        GWSConfig(base_url=gws_simulator.base_url, username="agent1", password="wrong-pw-1"),
        GWSConfig(base_url=f"http://127.0.0.1:{port}", username="a", password="b", retries=0),
    ]
    for config in cases:
        with pytest.raises(GWSOutboundError) as caught:
            async with OutboundPlugin(make_plugin_manager(load_entrypoints=False), config):
                pass
        error = caught.value
        assert type(error).__name__ in documented, repr(error)
        message = str(error)
        assert "\n" not in message
        assert "wrong-pw-1" not in message
        host_port = config.base_url.removeprefix("http://")
        assert host_port in message, message  # the target is named
