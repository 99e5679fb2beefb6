"""The fixtures the integration, fault, fuzz and security suites share, in one module: each
suite's conftest imports the ones it uses from here (no conftest imports another).

``sim`` (the simulator, one agent), ``pm`` (a plugin manager without installed plugins),
``recorder`` (a :class:`tests.helpers.Recorder` registered in ``pm``), ``device_path`` (the
agent's device), ``config`` (the short timeouts of :data:`FAST`; the integration suite
overrides it with :func:`config_for`'s) and ``plugin`` (an :class:`OutboundPlugin` started
with ``pm`` and ``config``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import GWSConfig, OutboundPlugin, make_plugin_manager
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.testing import FakeGWS
from tests.helpers import AGENT, PASSWORD, Recorder

__all__ = [
    "FAST",
    "config",
    "config_for",
    "device_path",
    "fast_config",
    "plugin",
    "pm",
    "recorder",
    "sim",
]


@pytest.fixture
async def sim() -> AsyncIterator[GWSSimulator]:
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=5.0) as simulator:
        yield simulator


@pytest.fixture
def pm() -> pluggy.PluginManager:
    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def recorder(pm: pluggy.PluginManager) -> Recorder:
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    return recorder


def config_for(base_url: str, **changes: object) -> GWSConfig:
    values: dict[str, object] = {
        "base_url": base_url,
        "username": AGENT,
        "password": PASSWORD,
        "ack_timeout": 2.0,
        "retry_backoff": 0.01,
        "merge_window": 0.1,
        "hook_timeout": 0.5,
        "drain_timeout": 1.0,
        "request_timeout": 2.0,
    }
    values.update(changes)
    return GWSConfig(**values)  # type: ignore[arg-type]


#: Short timeouts keep the suites fast; each test changes what its row needs.
FAST: dict[str, Any] = {
    "ack_timeout": 1.0,
    "request_timeout": 1.0,
    "hook_timeout": 0.3,
    "drain_timeout": 0.5,
    "merge_window": 0.1,
    "retry_backoff": 0.01,
}


def fast_config(base_url: str, **changes: Any) -> GWSConfig:
    return config_for(base_url, **{**FAST, **changes})


@pytest.fixture
def config(sim: GWSSimulator) -> GWSConfig:
    return fast_config(sim.base_url)


@pytest.fixture
async def plugin(
    pm: pluggy.PluginManager, config: GWSConfig, recorder: Recorder
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, config) as started:
        yield started


@pytest.fixture
def device_path(sim: GWSSimulator) -> str:
    return sim.device_path(AGENT)


@pytest.fixture
def fake() -> FakeGWS:
    """GWS and OCS in memory (for tests marked ``virtual_clock``)."""
    return FakeGWS()
