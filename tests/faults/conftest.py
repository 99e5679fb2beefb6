"""Fixtures of the fault suite: the integration fixtures with short timeouts, and the options
of the soak (``--soak-cancels``, ``--soak-concurrency``, ``--soak-report``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import GWSConfig, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.helpers import Recorder

# The integration suite's fixtures, shared rather than copied.
from tests.integration.conftest import config_for, device_path, pm, recorder, sim

__all__ = ["config", "device_path", "fast_config", "plugin", "pm", "recorder", "sim"]

#: Short timeouts keep the suite fast; each test changes what its row needs.
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
