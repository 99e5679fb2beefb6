"""Runs one measurement in a fresh process: ``python -m bench._worker '<json job>'``.

Prints the result as one JSON line prefixed with ``RESULT `` on stdout. Used for the
sections whose figures are process-wide (RSS, sockets), so that each side starts clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from bench._common import ROOT, configure_logging

_PREFIX = "RESULT "


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    section = job.pop("section")
    if section == "pending":
        from bench._memory import pending

        return await pending(**job)
    if section == "drift":
        from bench._memory import drift

        return await drift(**job)
    if section == "sessions":
        from bench._sessions import sessions

        return await sessions(**job)
    raise ValueError(f"unknown section {section!r}")


def main() -> int:
    configure_logging()
    job = json.loads(sys.argv[1])
    result = asyncio.run(_run(job))
    sys.stdout.write(_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def run_job(job: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run ``job`` in a fresh worker process; return its result."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench._worker", json.dumps(job)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(_PREFIX):
            result: dict[str, Any] = json.loads(line[len(_PREFIX) :])
            return result
    tail = completed.stderr[-3000:]
    raise RuntimeError(f"worker {job.get('section')} failed (exit {completed.returncode}):\n{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
