"""docs/simulator.md tells the truth: its example runs, and it names every operation, fault,
OCS error number, admin endpoint and seeded record (and cites no file the repository lacks)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from gws_outbound_plugin.simulator import (
    ACKNOWLEDGEMENTS,
    CAMPAIGN_EVENTS,
    DEFAULT_RECORDS,
    OPERATIONS,
    GWSSimulator,
    OCSError,
)
from gws_outbound_plugin.simulator._faults import ADMIN_FAULTS, ARMABLE_FAULTS

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "simulator.md").read_text(encoding="utf-8")


def test_every_operation_and_acknowledgement_is_documented():
    for operation in OPERATIONS:
        assert f"`{operation}`" in DOC, operation  # in the parameter table
        assert ACKNOWLEDGEMENTS[operation] in DOC, operation
    for event in (*CAMPAIGN_EVENTS, "RecordCancel", "ScheduledCall", "ChainedRecord"):
        assert event in DOC, event


def test_every_fault_is_documented():
    for name in (*ARMABLE_FAULTS, *ADMIN_FAULTS):
        assert re.search(rf"`{name}\(", DOC), name


def test_every_ocs_error_number_is_documented():
    for error in OCSError:
        assert f"| {int(error)} | `{error.text}` |" in DOC, error


def test_every_admin_route_is_documented():
    app = GWSSimulator()._build_app()
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith("/_simulator/")
    }
    assert len(routes) >= 10
    for method, path in routes:
        assert f"{method} {path}" in DOC, (method, path)


def test_the_seeded_records_table_is_right():
    for record in DEFAULT_RECORDS:
        row = (
            f"| {record.record_handle} | {record.application_id} | {record.campaign_name} | "
            f"{record.calling_list} | {record.phone_number} | {record.chain_id} | "
            f"{record.time_zone} | {record.phone_type} | {record.other_fields['customer_name']} |"
        )
        assert row in DOC, row


def test_cited_files_exist():
    # Issue 13: the page once cited a reference file that is not in the repository.
    for path in re.findall(r"`((?:docs|gws_outbound_plugin|reference|tests)/[\w./-]+)`", DOC):
        assert (REPO / path).exists(), path
    assert "reference/gws-outbound.md" not in DOC


pytestmark = pytest.mark.anyio


async def test_the_first_example_runs():
    block = re.search(r"```python\n(.*?)```", DOC, re.DOTALL)
    assert block is not None
    code = "async def example():\n" + textwrap.indent(block.group(1), "    ")
    namespace: dict = {}
    exec(compile(code, "docs/simulator.md", "exec"), namespace)
    await namespace["example"]()
