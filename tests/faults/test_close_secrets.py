"""A close cut short by the host's cancellation leaves nothing registered with the
library-log guard (hunt14). Before, each such close left the session's CSRF token (and a
count of its password and Basic credentials) in ``PLUGIN_SECRETS`` for good: one more entry
per session, in a host that opens and closes sessions under cancellation, and one more
alternative in the pattern every guarded library log record is matched against."""

from __future__ import annotations

import asyncio

import pluggy
import pytest

from gws_outbound_plugin import OutboundPlugin, make_plugin_manager
from gws_outbound_plugin._redact import PLUGIN_SECRETS
from gws_outbound_plugin._session import GWSSession
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config

pytestmark = pytest.mark.anyio


async def test_a_close_cut_short_by_cancellation_unregisters_the_sessions_secrets(
    sim: GWSSimulator,
) -> None:
    """Sessions closed while every task of the plugin is cancelled at each of the first
    ``rounds`` loop iterations of the close (0 to 30: the cancellation lands on each step of
    the close in turn, the HTTP session's own close included)."""
    left: list[int] = []
    for rounds in range(31):
        pm: pluggy.PluginManager = make_plugin_manager(load_entrypoints=False)
        plugin = OutboundPlugin(pm, fast_config(sim.base_url))
        await plugin.__aenter__()
        session = plugin._session
        assert session is not None
        csrf = session.csrf_header()
        assert csrf is not None
        token = csrf[1]
        assert PLUGIN_SECRETS.redact_text(token) != token  # registered while open
        spared = asyncio.all_tasks()
        closing = asyncio.get_running_loop().create_task(plugin.aclose())
        for _ in range(rounds):
            await asyncio.sleep(0)
            for task in asyncio.all_tasks() - spared - {closing}:
                task.cancel()
        await asyncio.wait((closing,))
        if PLUGIN_SECRETS.redact_text(token) != token:
            left.append(rounds)
    assert left == []


@pytest.mark.parametrize("steps", [1, 2, 3])
async def test_a_session_close_cut_short_unregisters_its_secrets(
    sim: GWSSimulator, steps: int
) -> None:
    """``GWSSession.close()`` itself, cancelled by a plain ``task.cancel()`` once it started,
    after ``steps`` loop iterations (the HTTP client's own close, which the anyio shield does
    not protect from it). Before, the session's CSRF token stayed registered."""
    session = GWSSession(fast_config(sim.base_url))
    await session.open()
    csrf = session.csrf_header()
    assert csrf is not None
    token = csrf[1]
    assert PLUGIN_SECRETS.redact_text(token) != token
    closing = asyncio.get_running_loop().create_task(session.close())
    for _ in range(steps):
        await asyncio.sleep(0)
    closing.cancel()
    await asyncio.wait((closing,))
    assert PLUGIN_SECRETS.redact_text(token) == token
