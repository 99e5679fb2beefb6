"""docs/writing-a-plugin.md's example of a hook implementation tested on ``FakeGWS`` and the
virtual clock passes as it is, under the testing kit, with warnings as errors."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT
from .test_cli import base_env
from .test_docs import sections


def test_the_fake_gws_example_passes(tmp_path):
    markdown = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    section = sections(markdown)["Without sockets: `FakeGWS` on a virtual clock"]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["gws_outbound_plugin.testing"]\n')
    (tmp_path / "test_failure_counter.py").write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("2 passed")
