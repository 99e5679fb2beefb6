from __future__ import annotations

from collections.abc import AsyncIterator

import pluggy
import pytest

from gws_outbound_plugin import GWSConfig, OutboundPlugin, make_plugin_manager
from gws_outbound_plugin.simulator import GWSSimulator
from tests.helpers import AGENT, PASSWORD, Recorder


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


@pytest.fixture
def config(sim: GWSSimulator) -> GWSConfig:
    return config_for(sim.base_url)


@pytest.fixture
async def plugin(
    pm: pluggy.PluginManager, config: GWSConfig, recorder: Recorder
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, config) as started:
        yield started


@pytest.fixture
def device_path(sim: GWSSimulator) -> str:
    return sim.device_path(AGENT)
