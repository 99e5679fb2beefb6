"""Two plugins on one event loop (two agents, each with its own plugin manager): what one
plugin's hooks do to the other is what they would do from any other task."""

from __future__ import annotations

from typing import Any

import pytest

from gws_outbound_plugin import (
    CancelFailed,
    FailureReason,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


class ClosesTheOther:
    """A plugin of agent A that closes agent B's plugin when A's cancel is acknowledged
    (a failover, a supervisor logging B out), and notes what it found once that returned."""

    def __init__(self) -> None:
        self.other: OutboundPlugin | None = None
        self.after_close: dict[str, Any] = {}

    @hookimpl
    async def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        other = self.other
        assert other is not None
        await other.aclose()
        self.after_close = {"running": other.running, "pending": other.pending_count}


async def test_a_hook_of_one_plugin_closing_another_returns_once_the_other_is_closed() -> None:
    fake_a, fake_b = FakeGWS(), FakeGWS()
    pm_a, pm_b = (
        make_plugin_manager(load_entrypoints=False),
        make_plugin_manager(load_entrypoints=False),
    )
    closer = ClosesTheOther()
    pm_a.register(closer, name="closer")
    recorder_b = Recorder()
    pm_b.register(recorder_b, name="recorder")
    fake_b.faults.hold_notifications()  # B's cancel is pending when A's hook closes B
    config = fake_config(hook_timeout=5.0, drain_timeout=0.2)
    async with (
        OutboundPlugin(pm_a, config, transport=fake_a) as plugin_a,
        OutboundPlugin(pm_b, config, transport=fake_b) as plugin_b,
    ):
        closer.other = plugin_b
        ticket_b = plugin_b.submit(request_for(fake_b, handles(fake_b, 1)[0]))
        await plugin_a.cancel(request_for(fake_a, handles(fake_a, 1)[0]))
        assert await plugin_a.wait_hooks_idle(10)
        # aclose() from A's hook returned once B was closed, as from any other task: B
        # decided its pending cancel and stopped.
        assert closer.after_close == {"running": False, "pending": 0}
        assert ticket_b.done()
        with pytest.raises(CancelFailed) as info:
            await ticket_b
        assert info.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
        assert [f.request.reference_id for f in recorder_b.failures] == [ticket_b.reference_id]
        assert plugin_a.running  # A itself goes on
