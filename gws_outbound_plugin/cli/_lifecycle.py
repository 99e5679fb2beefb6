"""What the operation commands and ``tail`` share around the plugin: start errors, signals, ending
the GWS session.
"""

from __future__ import annotations

import signal

import anyio

from .._exceptions import GWSOutboundError
from .._log import get_logger
from .._plugin import OutboundPlugin

logger = get_logger(__name__)


def _start_error(error: GWSOutboundError) -> str:
    """The one line for an error that stopped the run (GWS unreachable, credentials
    refused, ...): the exception's own text, which carries the detail (HTTP status, GWS
    ``statusCode``, the address) and never a secret."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


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
