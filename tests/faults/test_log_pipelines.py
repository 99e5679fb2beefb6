"""Log pipelines that raise against the promise, hunt 18: the host's standard logging raising
in the libraries the plugin runs (the CometD client logs through ``logging`` by itself, out of
reach of the plugin's own guarded log calls). Each test failed before its fix (checked on the
parent commit)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import anyio
import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for, until
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


class _RaisingOnce(logging.Handler):
    """A host's handler whose ``filter`` raises (``Handler.handle`` lets that through to the
    logging call) once on each record whose message template is in ``breaks``."""

    def __init__(self, breaks: set[str]) -> None:
        super().__init__(logging.DEBUG)
        self.breaks = set(breaks)
        self.broken: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.breaks:
            self.breaks.discard(record.msg)
            self.broken.append(record.msg)
            raise RuntimeError(f"the host's logging handler broke on {record.msg!r}")
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Discard the record: this handler breaks in ``filter`` only."""


@contextlib.contextmanager
def cometd_client_logs_raising(breaks: set[str]) -> Iterator[_RaisingOnce]:
    """A raising handler on the CometD client's logger (aiocometd's), at DEBUG."""
    library = logging.getLogger("aiocometd_noloop")
    level, handler = library.level, _RaisingOnce(breaks)
    library.setLevel(logging.DEBUG)
    library.addHandler(handler)
    try:
        yield handler
    finally:
        library.removeHandler(handler)
        library.setLevel(level)


async def test_the_cometd_clients_logging_raising_does_not_deafen_the_plugin(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A host's logging handler raises once in the CometD client's callback of a finished
    long poll (the client stops polling: the listener notices and replaces it), once as that
    client closes ("Closing client...") and once as the new one opens ("Opening client
    ..."). Before, the raise in the close left the listener's task
    (``background_task_crashed``): the plugin stayed ``reconnecting`` for good and every
    later request failed unsent ("the CometD session is down"). Now a failure of the
    client's close is logged, one of a new client's start fails that attempt only, and the
    listener reconnects."""
    first, second = handles(sim, 2)
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        await plugin.cancel(request_for(sim, first))
        polled = "Connect task finished with: %r"
        closing, opening = "Closing client...", "Opening client with connection types %r ..."
        with cometd_client_logs_raising({polled, closing, opening}) as handler:
            assert sim.forget_cometd_clients() == 1  # the long poll held is answered now
            await until(lambda: handler.broken == [polled, closing, opening], timeout=10)
        with anyio.fail_after(10):
            await plugin.wait_connected()
        ack = await plugin.cancel(request_for(sim, second))
    assert ack.record_handle == second
    assert [ack.record_handle for ack in recorder.acks] == [first, second]
