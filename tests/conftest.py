"""Shared test configuration: anyio's pytest plugin on the asyncio backend, and hypothesis
profiles.

Hypothesis runs under one of two profiles:

* ``deterministic`` (the default: ``make test``, CI): derandomized, no example database, no
  deadline, so a run finds the same examples on every machine and a fresh clone cannot fail
  on an example an earlier run happened to find and store (issue 17); a failure prints the
  blob that reproduces it (``@reproduce_failure``). A test runs at most
  ``DETERMINISTIC_EXAMPLES`` examples here (the correlator's state machines ask for 2,000: the
  count ``make fuzz`` scales); the fixed sequences beside them stay;
* ``explore`` (``make fuzz``): random, with the example database in ``.hypothesis/``,
  1,000 examples for a test that does not set its count, and ``GWS_HYPOTHESIS_SCALE``
  (default 10) times its own count for one that does.

Pick one with ``GWS_HYPOTHESIS_PROFILE=explore`` or hypothesis's own ``--hypothesis-profile``.
"""

from __future__ import annotations

import os
import unittest
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings
from hypothesis.database import DirectoryBasedExampleDatabase

EXPLORE = "explore"
# The most examples a test runs under the deterministic profile (``make test``).
DETERMINISTIC_EXAMPLES = 400
_SETTINGS_ATTRIBUTE = "_hypothesis_internal_use_settings"

settings.register_profile(
    "deterministic",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    max_examples=100,
    # Timing-based: on a loaded machine it would fail a run another machine passes.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    EXPLORE,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(
        Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"
    ),
    deadline=None,
    print_blob=True,
    max_examples=1_000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("GWS_HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    # aiocometd and aiohttp run on asyncio only. A test marked ``virtual_clock`` runs on
    # FakeGWS's virtual clock: the timeouts it waits for cost no wall time.
    if request.node.get_closest_marker("virtual_clock") is not None:
        from gws_outbound_plugin.testing import virtual_clock_loop

        return ("asyncio", {"loop_factory": virtual_clock_loop})
    return "asyncio"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak", "gws_outbound reliability soak (tests/faults/test_soak.py)")
    group.addoption(
        "--soak-cancels",
        type=int,
        default=None,
        help="cancels in the soak (default: the short soak of `make test`)",
    )
    group.addoption(
        "--soak-concurrency",
        type=int,
        default=50,
        help="cancels in flight at once during the soak (default 50)",
    )
    group.addoption(
        "--soak-report",
        default=None,
        help="where the soak writes its JSON report (default: build/soak-report.json for a "
        "run with --soak-cancels, a temporary file otherwise)",
    )


def _capped(current: settings) -> settings:
    """``current`` with at most ``DETERMINISTIC_EXAMPLES`` examples."""
    if current.max_examples <= DETERMINISTIC_EXAMPLES:
        return current
    return settings(current, max_examples=DETERMINISTIC_EXAMPLES)


def _scaled(current: settings, scale: int) -> settings:
    """``current`` with ``scale`` times its examples, when it sets its own count (a test that
    takes the profile's count has the explore profile's already)."""
    if current.max_examples == settings().max_examples:
        return current
    return settings(current, max_examples=current.max_examples * scale)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the stateful tests ``hypothesis`` too (``make fuzz`` selects that marker); under
    the explore profile, scale every hypothesis test's examples; under any other, cap them at
    ``DETERMINISTIC_EXAMPLES``."""
    explore = settings.get_current_profile_name() == EXPLORE
    scale = int(os.environ.get("GWS_HYPOTHESIS_SCALE", "10"))

    def adjusted(current: settings) -> settings:
        return _scaled(current, scale) if explore else _capped(current)

    done: set[int] = set()
    for item in items:
        cls = getattr(item, "cls", None)
        stateful = (
            isinstance(cls, type)
            and issubclass(cls, unittest.TestCase)
            and isinstance(getattr(cls, "settings", None), settings)
        )
        if stateful:
            item.add_marker("hypothesis")
            if id(cls) not in done:
                done.add(id(cls))
                cls.settings = adjusted(cls.settings)  # type: ignore[union-attr]
            continue
        function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if is_hypothesis_test(function) and id(function) not in done:
            done.add(id(function))
            current = getattr(function, _SETTINGS_ATTRIBUTE, None)
            if isinstance(current, settings):
                setattr(function, _SETTINGS_ATTRIBUTE, adjusted(current))
