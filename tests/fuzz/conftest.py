"""The fuzz suites run against the fault suite's fixtures (simulator, plugin manager, a started
plugin with short timeouts); shared, not copied."""

from __future__ import annotations

from tests.faults.conftest import config, plugin
from tests.integration.conftest import device_path, pm, recorder, sim

__all__ = ["config", "device_path", "plugin", "pm", "recorder", "sim"]
