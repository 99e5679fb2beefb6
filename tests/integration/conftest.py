"""Fixtures of the integration suite: the shared ones (:mod:`tests.fixtures`), with the
longer timeouts of :func:`config_for`."""

from __future__ import annotations

import pytest

from gws_outbound_plugin import GWSConfig
from gws_outbound_plugin.simulator import GWSSimulator
from tests.fixtures import config_for, device_path, plugin, pm, recorder, sim

__all__ = ["config", "config_for", "device_path", "plugin", "pm", "recorder", "sim"]


@pytest.fixture
def config(sim: GWSSimulator) -> GWSConfig:
    return config_for(sim.base_url)
