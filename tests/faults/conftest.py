"""Fixtures of the fault suite: the shared ones (:mod:`tests.fixtures`) with short timeouts.
The options of the soak (``--soak-cancels``, ``--soak-concurrency``, ``--soak-report``) are
in the top-level conftest."""

from __future__ import annotations

from tests.fixtures import config, device_path, fake, fast_config, plugin, pm, recorder, sim

__all__ = ["config", "device_path", "fake", "fast_config", "plugin", "pm", "recorder", "sim"]
