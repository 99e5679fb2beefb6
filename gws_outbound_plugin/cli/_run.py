"""Running operation requests on one GWS session: outcomes, progress, interruption."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, TextIO

import anyio
from anyio.abc import TaskGroup

from .._config import GWSConfig
from .._exceptions import GWSOutboundError, InvalidOperationRequest
from .._manager import close_plugins, make_plugin_manager
from .._models import CancelFailure, RecordCancelAck
from .._operations import OperationAck, OperationFailure, OperationRequest
from .._plugin import OutboundPlugin
from .._ticket import OperationTicket
from ._arguments import _given, _option_event
from ._commands import _PREVIEW, _Command
from ._common import (
    _PLACEHOLDER_DEVICE,
    _PLUGIN_CLOSE_TIMEOUT,
    _PROGRESS_AFTER,
    _PROGRESS_EVERY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    _Context,
    _isatty,
)
from ._format import hook_line, hook_text
from ._lifecycle import _Connecting, _end_gws_session, _start_error, _stop_on_signal
from ._plugins import _load_one_off_plugins, _report_load_failures, _warn_of_hook_failures


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = _isatty(stream)
        self._shown = False
        self.submitted = 0
        self.acknowledged = 0
        self.failed = 0
        self._started = time.monotonic()

    @property
    def waiting(self) -> int:
        return self.submitted - self.acknowledged - self.failed

    def clear(self) -> None:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def draw(self) -> None:
        if not self.enabled or self.waiting <= 0:
            return
        seconds = time.monotonic() - self._started
        failed = f", {self.failed} failed" if self.failed else ""
        self._write(
            f"\r\x1b[Kwaiting for {self.waiting} outcome(s): {self.acknowledged} "
            f"acknowledged{failed} ({seconds:.1f} s; Ctrl-C to stop)"
        )
        self._shown = True

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()

    async def run(self) -> None:
        if not self.enabled:
            return
        await anyio.sleep(_PROGRESS_AFTER)
        while True:
            self.draw()
            await anyio.sleep(_PROGRESS_EVERY)


#: The hook an outcome is reported as, by its type.
_OUTCOME_HOOKS: Final = (
    (RecordCancelAck, "on_record_cancel_acknowledged"),
    (OperationAck, "on_operation_acknowledged"),
    (CancelFailure, "on_cancel_failed"),
    (OperationFailure, "on_operation_failed"),
)


class _OperationRun:
    """Submits the requests, prints each outcome as it arrives, and on Ctrl-C the outcome of
    each unfinished one."""

    def __init__(
        self,
        args: argparse.Namespace,
        ctx: _Context,
        plugin: OutboundPlugin,
        command: _Command,
    ) -> None:
        self._args = args
        self._ctx = ctx
        self._plugin = plugin
        self._command = command
        self._device: str | None = _given(args, "device_path")
        self._pending: dict[int, OperationTicket[Any]] = {}
        self.progress = _Progress(ctx.stderr)
        self.invalid = 0
        self.interrupted = False

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.progress.failed == 0

    async def device_path(self) -> str:
        if self._device is None:
            self._device = await self._plugin.device_path()
        return self._device

    def _print(self, line: str) -> None:
        self.progress.clear()
        self._ctx.out(line)
        self.progress.draw()

    def report(self, ticket: OperationTicket[Any], *, interrupted: bool = False) -> None:
        outcome = ticket.outcome
        self._pending.pop(id(ticket), None)
        hook = next((hook for kind, hook in _OUTCOME_HOOKS if isinstance(outcome, kind)), None)
        if hook is None:
            return
        failed = isinstance(outcome, CancelFailure | OperationFailure)
        if failed:
            self.progress.failed += 1
        else:
            self.progress.acknowledged += 1
        # Only a failure can be one an interruption decided.
        interrupted = interrupted and failed
        if self._args.json:
            line = hook_line(hook, outcome, **({"interrupted": True} if interrupted else {}))
        else:
            line = hook_text(hook, outcome) + (" (interrupted)" if interrupted else "")
        self._print(line)

    def invalid_line(self, number: int, problem: str, fields: Sequence[str]) -> None:
        self.invalid += 1
        if self._args.json:
            self._print(json.dumps({"error": problem, "fields": list(fields), "line": number}))
        else:
            self._print(f"invalid        line={number} {problem}")

    async def submit(self, tg: TaskGroup, request: OperationRequest, *, wait: bool) -> None:
        """Send ``request``; with ``wait``, return once its outcome is printed."""
        if request.device_path == _PLACEHOLDER_DEVICE:
            request = dataclasses.replace(request, device_path=await self.device_path())
        ticket: OperationTicket[Any] = self._plugin.submit(request)
        self._pending[id(ticket)] = ticket
        self.progress.submitted += 1
        if wait:
            await self._await(ticket)
        else:
            tg.start_soon(self._await, ticket)

    async def _await(self, ticket: OperationTicket[Any]) -> None:
        with contextlib.suppress(Exception):
            await ticket
        self.report(ticket)

    async def from_stdin(self, tg: TaskGroup, *, wait: bool) -> None:
        defaults = _option_event(self._command, self._args)
        number = 0
        async for line in _stdin_lines(self._ctx.stdin):
            number += 1
            text = line.strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except ValueError as error:
                self.invalid_line(number, f"invalid JSON: {error}", [])
                continue
            if not isinstance(event, dict):
                self.invalid_line(number, "expected a JSON object of GWS camelCase keys", [])
                continue
            merged = {**defaults, **event}
            if merged.get("devicePath") is None:
                merged["devicePath"] = await self.device_path()
            try:
                request = self._command.build(merged)
            except InvalidOperationRequest as error:
                self.invalid_line(number, str(error), error.fields)
                continue
            await self.submit(tg, request, wait=wait)

    def unfinished(self) -> list[OperationTicket[Any]]:
        return list(self._pending.values())


async def _stdin_lines(stream: TextIO) -> AsyncIterator[str]:
    """The lines of ``stream``, read by a daemon thread: a Ctrl-C never waits for input, and
    a read still blocked at exit does not keep the process alive."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)

    def read() -> None:
        # Stops when the loop is gone (interrupted) or stdin ends or breaks.
        with contextlib.suppress(Exception):
            for line in stream:
                asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(queue.put(None), loop)

    threading.Thread(target=read, name="gws-outbound stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def _run_operations(
    command: _Command,
    requests: list[OperationRequest],
    args: argparse.Namespace,
    ctx: _Context,
    config: GWSConfig,
) -> int:
    # One at a time where the order matters: preview actions, and `request --sequential`.
    wait = command is _PREVIEW or bool(getattr(args, "sequential", False))
    # Installed plugins that fail to load are logged by name and skipped.
    pm = make_plugin_manager(load_entrypoints=not args.no_plugins, environ=ctx.environ)
    _report_load_failures(pm, ctx)
    _load_one_off_plugins(pm, args.one_off_plugins, ctx)
    _warn_of_hook_failures(pm, ctx, args.log_level)
    run: _OperationRun | None = None
    unfinished = 0
    connecting = _Connecting(ctx.stderr, config)
    connecting.start()
    try:
        async with OutboundPlugin(pm, config) as plugin:
            connecting.stop()
            run = _OperationRun(args, ctx, plugin, command)
            async with anyio.create_task_group() as outer:
                outer.start_soon(_on_signal, run, outer.cancel_scope)
                outer.start_soon(run.progress.run)
                async with anyio.create_task_group() as tg:
                    for request in requests:
                        await run.submit(tg, request, wait=wait)
                    if getattr(args, "stdin", False):
                        if _isatty(ctx.stdin):
                            ctx.note(
                                f"reading the {command.what} as JSON lines from the terminal, "
                                "one per line; end with Ctrl-D (Ctrl-C stops)"
                            )
                        await run.from_stdin(tg, wait=wait)
                outer.cancel_scope.cancel()  # every outcome is in
            if run.interrupted:
                # Fail what is still pending (reason shut_down) without waiting, and say so.
                await plugin.aclose(drain=False)
                for ticket in run.unfinished():
                    unfinished += 1
                    run.report(ticket, interrupted=True)
            elif args.end_session:
                await _end_gws_session(plugin)
    except GWSOutboundError as error:
        connecting.stop()
        ctx.error(_start_error(error))
        return EXIT_FAILED
    finally:
        connecting.stop()
        if run is not None:
            run.progress.clear()
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
    if run is not None and run.interrupted:
        if unfinished:
            ctx.note(
                f"interrupted: the {command.what} still waiting were reported above (outcome "
                "unknown: sent, GWS may have acted; shut_down: never sent)"
            )
        else:
            ctx.note("interrupted: no request was waiting for its outcome")
        return EXIT_INTERRUPTED
    return EXIT_OK if run is not None and run.ok else EXIT_FAILED


async def _on_signal(run: _OperationRun, scope: anyio.CancelScope) -> None:
    stopped = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, stopped)
        await stopped.wait()
        tg.cancel_scope.cancel()
    run.interrupted = True
    run.progress.clear()  # what is left is reported at once: no more "Ctrl-C to stop"
    run.progress.enabled = False
    scope.cancel()
