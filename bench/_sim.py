"""The GWS simulator in its own process, and its admin endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx

from bench._common import PASSWORD, ROOT, write_records

_BANNER = "GWS simulator listening on "


class SimulatorProcess:
    """``python -m gws_outbound_plugin.simulator`` on a free loopback port.

    ``records`` distinct records are seeded (handles 1..records); ``users`` all share the
    benchmark password. The process is stopped with SIGTERM on exit.
    """

    def __init__(self, users: Iterable[str], records: int) -> None:
        self.users = list(users)
        self.records = records
        self.base_url = ""
        self._tmp = tempfile.TemporaryDirectory(prefix="gws-bench-")
        self._process: subprocess.Popen[str] | None = None
        self._stderr_path = Path(self._tmp.name) / "stderr.txt"
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> SimulatorProcess:
        records_path = Path(self._tmp.name) / "records.json"
        write_records(records_path, self.records)
        command = [
            sys.executable,
            "-m",
            "gws_outbound_plugin.simulator",
            "--port",
            "0",
            "--quiet",
            "--records",
            str(records_path),
        ]
        for user in self.users:
            command += ["--user", f"{user}:{PASSWORD}"]
        stderr = self._stderr_path.open("w", encoding="utf-8")
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stderr.close()
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith(_BANNER):
            self._stop()
            raise RuntimeError(f"the simulator did not start: {line!r} {self._stderr_tail()}")
        self.base_url = line[len(_BANNER) :].strip()
        stdout = self._process.stdout
        # Nothing more is expected with --quiet, but never let a full pipe block it.
        self._drain = threading.Thread(target=lambda: [None for _ in stdout], daemon=True)
        self._drain.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self._tmp.cleanup()

    def _stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _stderr_tail(self) -> str:
        try:
            return self._stderr_path.read_text(encoding="utf-8")[-2000:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User + system CPU time the simulator process used so far."""
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)


class Admin:
    """``/_simulator/faults`` and ``/_simulator/stats`` over a client of its own."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=30.0)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fault(self, name: str, **arguments: Any) -> None:
        response = await self._client.post("/_simulator/faults", json={"fault": name, **arguments})
        response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        response = await self._client.get("/_simulator/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def wait_held(self, count: int, timeout: float = 120.0) -> float:
        """Wait until ``count`` outcomes are parked by ``hold_notifications``.

        Polled once a second: the stats endpoint walks every recorded request and record,
        which gets expensive for the simulator as a run goes on.
        """
        started = time.monotonic()
        with anyio.fail_after(timeout):
            while (await self.stats())["held_notifications"] < count:
                await anyio.sleep(1.0)
        return time.monotonic() - started
