"""The fuzz suites run against the shared fixtures (simulator, plugin manager, a started plugin
with short timeouts) of :mod:`tests.fixtures`."""

from __future__ import annotations

from tests.fixtures import config, device_path, plugin, pm, recorder, sim

__all__ = ["config", "device_path", "plugin", "pm", "recorder", "sim"]
