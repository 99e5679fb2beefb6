"""Helpers of the interop tests: Node processes and a recording plugin."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from gws_outbound_plugin import RecordCancelAck, UserEvent, hookimpl

INTEROP_DIR = Path(__file__).resolve().parent
NODE_MODULES = INTEROP_DIR / "node_modules"
REQUIRED_PACKAGES = ("cometd", "cometd-nodejs-client", "cometd-nodejs-server")
#: Upper bound for a Node process to print its ready line.
STARTUP_TIMEOUT = 15.0


def node_executable() -> str:
    node = shutil.which("node")
    assert node is not None
    return node


# -- Node processes ---------------------------------------------------------------------------


class NodeProcess:
    """A Node script started on loopback; stdout is read line by line, stderr kept in a file."""

    def __init__(
        self,
        script: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.script = script
        self.args = list(args)
        self.log_path = log_path
        self.env = dict(env or {})
        self.process: Process | None = None
        self._lines: TextReceiveStream | None = None
        self._buffer = ""
        self._log_file: Any = None

    async def start(self) -> None:
        self._log_file = self.log_path.open("a", encoding="utf-8")
        self.process = await anyio.open_process(
            [node_executable(), str(INTEROP_DIR / self.script), *self.args],
            cwd=INTEROP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env={**os.environ, **self.env},
        )
        assert self.process.stdout is not None
        self._lines = TextReceiveStream(self.process.stdout)
        self._buffer = ""

    async def readline(self, timeout: float) -> str:
        """The next stdout line (without the newline); fails after ``timeout`` or at EOF."""
        assert self._lines is not None
        with anyio.fail_after(timeout):
            while "\n" not in self._buffer:
                try:
                    self._buffer += await self._lines.receive()
                except anyio.EndOfStream:
                    raise AssertionError(
                        f"{self.script} exited before printing a line; stderr:\n{self.stderr()}"
                    ) from None
        line, self._buffer = self._buffer.split("\n", 1)
        return line

    async def write(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.send((line + "\n").encode())

    async def wait(self, timeout: float = 5.0) -> int:
        """Wait for the process to exit; its return code."""
        assert self.process is not None
        with anyio.fail_after(timeout):
            return await self.process.wait()

    def stderr(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(encoding="utf-8")[-4000:]
        except OSError:
            return ""

    async def stop(self, *, kill: bool = False) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                if kill:
                    process.kill()
                else:
                    process.send_signal(signal.SIGTERM)
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return process.returncode


class StandIn:
    """The Node GWS stand-in (``gws_standin.cjs``) on top of cometd-nodejs-server."""

    def __init__(
        self,
        log_path: Path,
        *,
        users: Sequence[str] = ("agent1:secret",),
        server_options: Sequence[str] = (),
    ) -> None:
        self._log_path = log_path
        self._users = list(users)
        self._server_options = list(server_options)
        self._node: NodeProcess | None = None
        self.port = 0
        self.url = ""
        self.starts = 0

    async def start(self) -> None:
        args = ["--port", str(self.port), "--verbose", *self._server_options]
        for user in self._users:
            args += ["--user", user]
        node = NodeProcess("gws_standin.cjs", args, self._log_path)
        await node.start()
        try:
            line = await node.readline(STARTUP_TIMEOUT)
        except BaseException:
            await node.stop(kill=True)
            raise
        prefix = "GWS stand-in listening on "
        assert line.startswith(prefix), line
        self.url = line[len(prefix) :]
        self.port = int(self.url.rsplit(":", 1)[1])
        self._node = node
        self.starts += 1

    async def stop(self, *, kill: bool = False) -> None:
        node, self._node = self._node, None
        if node is not None:
            await node.stop(kill=kill)

    async def restart(self) -> None:
        """Kill the process (no goodbye to anyone) and start a new one on the same port."""
        await self.stop(kill=True)
        await self.start()

    def base_url(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    async def _control(self, method: str, path: str, body: object = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as client:
            response = await client.request(method, "/_control/" + path, json=body)
        response.raise_for_status()
        return response.json()

    async def publish(self, *messages: tuple[str, dict[str, Any]], batch: bool = True) -> Any:
        payload = [{"channel": channel, "data": data} for channel, data in messages]
        return await self._control("POST", "publish", {"messages": payload, "batch": batch})

    async def drop_sessions(self, how: str) -> Any:
        return await self._control("POST", "drop-sessions", {"how": how})

    async def drop_http_sessions(self) -> Any:
        return await self._control("POST", "drop-http-sessions", {})

    async def set_password(self, user: str, password: str) -> Any:
        return await self._control("POST", "passwords", {user: password})

    async def refuse_channels(self, *channels: str) -> Any:
        """Deny subscriptions to ``channels`` from now on (none: accept every channel)."""
        return await self._control("POST", "refuse-channels", {"channels": list(channels)})

    async def state(self) -> Any:
        return await self._control("GET", "state")

    def stderr(self) -> str:
        try:
            return self._log_path.read_text(encoding="utf-8")[-4000:]
        except OSError:
            return ""


# -- observing the dispatcher -----------------------------------------------------------------


class Recorder:
    """A third-party-style plugin that records what the dispatcher fans out."""

    def __init__(self) -> None:
        self.acks: list[RecordCancelAck] = []
        self.events: list[UserEvent] = []
        self._changed = anyio.Event()

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self.events.append(event)
        self._poke()

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self.acks.append(ack)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                await self._changed.wait()
