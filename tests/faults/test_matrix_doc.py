"""docs/reliability.md and the fault tests (tests/faults, tests/engine) agree with
tests/faults/matrix.py, row by row."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tests.engine
import tests.faults
from tests.faults.matrix import COVERED, DOC, ROWS, documented_table, render_table


def _import_fault_tests() -> list[str]:
    """The fault suite's test modules, on the simulator (tests/faults) and on FakeGWS
    (tests/engine)."""
    names = [
        f"{package.__name__}.{info.name}"
        for package in (tests.faults, tests.engine)
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("test_")
    ]
    for name in names:
        importlib.import_module(name)
    return names


def test_every_row_has_exactly_one_test() -> None:
    modules = _import_fault_tests()
    assert set(COVERED) == {row.id for row in ROWS}, (
        "rows without a test: "
        + ", ".join(sorted({row.id for row in ROWS} - set(COVERED)))
        + "; covered ids that are not rows: "
        + ", ".join(sorted(set(COVERED) - {row.id for row in ROWS}))
    )
    for row_id, owner in COVERED.items():
        module_name, _, function_name = owner.rpartition(".")
        assert module_name in modules, (row_id, owner)
        function = getattr(importlib.import_module(module_name), function_name)
        assert function_name.startswith("test_") and inspect.iscoroutinefunction(function), owner


def test_reliability_doc_lists_the_matrix() -> None:
    documented = documented_table(DOC.read_text(encoding="utf-8"))
    assert documented == render_table(), (
        "docs/reliability.md is out of date with tests/faults/matrix.py; run "
        "`.venv/bin/python -m tests.faults.matrix --write`"
    )
