"""The engine suites: the plugin's behaviour (the promise, lifecycle, hook isolation) where
the wire adds nothing, on ``FakeGWS`` and the virtual clock: no socket, and no wall time spent
in the timeouts they wait for. ``request_for`` / ``handles`` of ``tests.faults.support`` read
the fake's records as they read the simulator's; the wire is tested in tests/faults,
tests/integration, tests/simulator and tests/interop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import GWSConfig, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop
from tests.faults.conftest import fast_config
from tests.helpers import Recorder
from tests.integration.conftest import pm, recorder
from tests.integration.test_operations import OperationRecorder

__all__ = [
    "anyio_backend",
    "cancels",
    "config",
    "device_path",
    "fake",
    "fake_config",
    "ops",
    "plugin",
    "pm",
    "recorder",
]

#: The fake's URLs are never used; a GWSConfig still needs one.
FAKE_URL = "https://gws.example"


def fake_config(**changes: Any) -> GWSConfig:
    """The fault suite's short timeouts (``fast_config``), for the fake."""
    return fast_config(FAKE_URL, **changes)


def cancels(fake: FakeGWS) -> list[dict[str, Any]]:
    """The bodies of the ``CancelRecord`` POSTs the fake received, in order."""
    return [body for _, body in fake.posts if body.get("operationName") == "CancelRecord"]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


@pytest.fixture
def fake() -> FakeGWS:
    return FakeGWS()


@pytest.fixture
def ops(pm: pluggy.PluginManager) -> OperationRecorder:
    """An ``OperationRecorder`` (the generic operation hooks) registered in ``pm``."""
    recorder = OperationRecorder()
    pm.register(recorder, name="operations")
    return recorder


@pytest.fixture
def device_path(fake: FakeGWS) -> str:
    return fake.device_path()


@pytest.fixture
def config() -> GWSConfig:
    return fake_config()


@pytest.fixture
async def plugin(
    pm: pluggy.PluginManager, config: GWSConfig, fake: FakeGWS, recorder: Recorder
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, config, transport=fake) as started:
        yield started
