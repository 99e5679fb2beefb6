"""The security suites use the fault suite's fixtures (simulator, plugin manager, recorder);
shared, not copied."""

from __future__ import annotations

from tests.faults.conftest import config, plugin
from tests.integration.conftest import device_path, pm, recorder, sim

__all__ = ["config", "device_path", "plugin", "pm", "recorder", "sim"]
