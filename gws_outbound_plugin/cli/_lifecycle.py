"""What the operation commands and ``tail`` share around the plugin: start errors, signals, ending
the GWS session.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TextIO

import anyio

from .._config import GWSConfig
from .._exceptions import GWSOutboundError
from .._log import get_logger
from .._plugin import OutboundPlugin
from ._common import _PROGRESS_AFTER, _PROGRESS_EVERY, _isatty

logger = get_logger(__name__)


def _start_error(error: GWSOutboundError) -> str:
    """The one line for an error that stopped the run (GWS unreachable, credentials
    refused, ...): the exception's own text, which carries the detail (HTTP status, GWS
    ``statusCode``, the address) and never a secret."""
    text = " ".join(str(error).split())
    return (text + _what_to_check(text)) or type(error).__name__


def _what_to_check(text: str) -> str:
    """For the two start-up errors a wrong GWS_BASE_URL gives, which part of it to check."""
    if "https://" in text and "TLS error: WRONG_VERSION_NUMBER" in text:
        return (
            " (the server at that address does not speak TLS: is it an http:// address, "
            "such as the simulator's?)"
        )
    if "/api/v2/me:" in text and "answered HTTP 404" in text:
        return (
            " (no GWS API at that path: GWS_BASE_URL or --base-url is the address /api/v2 "
            "hangs from, usually the node's root, e.g. https://gws.example.com)"
        )
    return ""


async def _end_gws_session(plugin: OutboundPlugin) -> None:
    """``POST /api/v2/me {"operationName": "EndContactCenterSession"}`` on the plugin's own
    session (reference §5.1: logs the agent out, restores the default devices and
    invalidates the HTTP session)."""
    try:
        await plugin.end_contact_center_session()
    except GWSOutboundError as error:
        logger.warning("gws_end_session_failed", error=str(error))
    else:
        logger.info("gws_session_ended", user=plugin.config.username)


async def _stop_on_signal(stopped: anyio.Event) -> None:
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stopped.set()
                return
    except NotImplementedError:  # no signal handling on this platform: Ctrl-C raises instead
        await anyio.sleep_forever()


class _Connecting:
    """On a terminal, a line while the plugin starts (login, CometD handshake), so that a GWS
    that accepts the connection and never answers is not a silent wait of ``retries + 1``
    times ``request_timeout``: ``connecting to GWS at URL as USER (2.5 s; Ctrl-C to stop)``.
    :meth:`stop` clears it; nothing is shown when the start takes less than a moment."""

    def __init__(self, stream: TextIO, config: GWSConfig) -> None:
        self._stream = stream
        self._text = f"connecting to GWS at {config.base_url} as {config.username}"
        self._task: asyncio.Task[None] | None = None
        self._shown = False

    def start(self) -> None:
        if _isatty(self._stream):
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    async def _run(self) -> None:
        started = time.monotonic()
        await asyncio.sleep(_PROGRESS_AFTER)
        while True:
            seconds = time.monotonic() - started
            self._write(f"\r\x1b[K{self._text} ({seconds:.1f} s; Ctrl-C to stop)")
            self._shown = True
            await asyncio.sleep(_PROGRESS_EVERY)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()
