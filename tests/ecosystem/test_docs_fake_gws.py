"""docs/writing-a-plugin.md's example of a hook implementation tested on ``FakeGWS`` and the
virtual clock passes as it is, under the testing kit, with warnings as errors."""

from __future__ import annotations

from .test_docs import run_doc_example


def test_the_fake_gws_example_passes(tmp_path):
    section = "Without sockets: `FakeGWS` on a virtual clock"
    assert run_doc_example(tmp_path, section, "test_failure_counter.py").startswith("2 passed")
