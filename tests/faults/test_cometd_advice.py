"""The server's CometD advice changing mid-flight, with requests waiting: ``interval`` (how long
to wait before the next ``/meta/connect``) and ``reconnect`` on a successful connect reply
(the simulator's ``advise_connects`` fault)."""

from __future__ import annotations

import math

import anyio
import pluggy
import pytest

from gws_outbound_plugin import CancelFailed, CometDState, OutboundPlugin
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import (
    ConnectAnsweredWith,
    StallingProxy,
    captured_logs,
    events_named,
    handles,
    request_for,
    until,
)
from tests.helpers import AGENT, PASSWORD, Recorder

pytestmark = pytest.mark.anyio


async def test_a_huge_interval_advice_does_not_make_the_plugin_deaf(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """One connect reply advising ``interval: 3600000`` (an hour, in Bayeux's milliseconds; a
    misconfigured or hostile server) made the CometD client sleep an hour before its next
    long poll: for that hour no outcome could be heard while ``connection_state`` said
    ``connected``, and every request, which GWS acted on, ended ``timed_out`` ("may have
    acted"). The advised wait is now capped at half of ``ack_timeout``, logged once as
    ``cometd_interval_capped``."""
    first, *others = [request_for(sim, handle) for handle in handles(sim, 4)]
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=2.0)) as plugin:
            sim.faults.advise_connects(interval=3_600_000, count=None)
            # Its outcome comes back on the long poll whose reply advises the hour.
            await plugin.cancel(first)
            for request in others:
                try:
                    await plugin.cancel(request)
                except CancelFailed as error:  # before the fix: timed_out, GWS had acted
                    pytest.fail(f"{error.failure.reason.value}: {error.failure.message}")
            assert plugin.connection_state is CometDState.CONNECTED
    assert len(recorder.acks) == 4
    [capped] = events_named(logs, "cometd_interval_capped")
    assert (capped["advised_ms"], capped["seconds"]) == (3_600_000, 1.0)


async def test_a_small_interval_advice_is_followed(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """A CometD server's ``multiple-clients`` advice (``interval: 2000``) is below the cap:
    followed as advised, nothing logged."""
    requests = [request_for(sim, handle) for handle in handles(sim, 2)]
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=5.0)) as plugin:
            sim.faults.advise_connects(interval=2000)
            for request in requests:
                await plugin.cancel(request)
    assert len(recorder.acks) == 2
    assert events_named(logs, "cometd_interval_capped") == []


@pytest.mark.parametrize("reconnect", ["none", "handshake"])
async def test_reconnect_advice_on_a_successful_connect_loses_nothing(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, reconnect: str
) -> None:
    """``reconnect: none`` / ``handshake`` in a *successful* connect reply (Bayeux sends them
    with failed ones): the client goes on polling, and every request waiting gets its own
    acknowledgement."""
    requests = [request_for(sim, handle) for handle in handles(sim, 3)]
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=2.0)) as plugin:
        sim.faults.advise_connects(reconnect=reconnect, count=None)
        tickets = [plugin.submit(request) for request in requests]
        for ticket in tickets:
            await ticket
        await plugin.cancel(request_for(sim, handles(sim, 4)[3]))
    assert len(recorder.acks) == 4


@pytest.mark.parametrize(
    "timeout",
    [math.inf, math.nan, -1, True, 1],
    ids=["Infinity", "NaN", "negative", "true", "1ms"],
)
async def test_an_unusable_timeout_advice_does_not_break_the_listener(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, timeout: float
) -> None:
    """One connect reply advising ``timeout: Infinity`` (not JSON, but Python's parser reads
    it): aiocometd sends every later request with 1.5 x that timeout, which aiohttp refused
    (``OverflowError``) before anything was sent, so no reply ever replaced the advice. The
    listener counted the server unreachable, and every later request failed
    ``transport_failure`` ("the CometD session is down"), for as long as the plugin ran. Such
    a timeout is now replaced by the last usable one.

    ``timeout: true`` (JSON's, which aiocometd reads as 1 ms) and ``timeout: 1`` did the same
    another way: every later request was given up after 1.2 ms, before any answer could come,
    so no answer ever brought another advice. ``true`` is no number of milliseconds (the last
    usable timeout is kept), and a timeout under a second is waited for as a second."""
    first, *others = [request_for(sim, handle) for handle in handles(sim, 3)]
    async with OutboundPlugin(pm, fast_config(sim.base_url, ack_timeout=2.0)) as plugin:
        sim.faults.advise_connects(timeout=timeout)
        await plugin.cancel(first)  # acknowledged on the reply carrying the advice
        for request in others:
            try:
                await plugin.cancel(request)
            except CancelFailed as error:  # before the fix: timed_out, then transport_failure
                pytest.fail(f"{error.failure.reason.value}: {error.failure.message}")
        assert plugin.connection_state is CometDState.CONNECTED
    assert len(recorder.acks) == 3


@pytest.mark.parametrize("timeout", [math.inf, 1e12], ids=["Infinity", "31-years"])
async def test_an_unusable_timeout_advice_keeps_the_long_polls_bounded(
    pm: pluggy.PluginManager, timeout: float
) -> None:
    """After a connect reply advising ``timeout: Infinity``, a server that holds its long
    polls past the timeout it advised before (1 s) is still noticed: the client gives up on
    such a poll and reconnects, as without that advice (``cometd-long-poll-timeout``).
    Before, the unusable timeout was dropped from the advice, and aiocometd, finding none,
    sent every later long poll with no timeout at all (``timeout=None`` to aiohttp): a poll
    held forever (a server or a network that stopped answering) left the client waiting,
    "connected" and deaf, for as long as it ran. The last usable timeout is kept instead.

    A finite timeout of 31 years (``1e12`` ms) did the same: aiocometd waited 1.2 x that for
    each long poll. A timeout over ten minutes is not usable either."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        config = fast_config(sim.base_url, cometd_connection_timeout=1.0, ack_timeout=2.0)
        async with OutboundPlugin(pm, config) as plugin:
            sim.faults.advise_connects(timeout=timeout, count=None)
            sim.faults.hold_connects(60.0, count=None)
            with anyio.fail_after(8):
                while plugin.cometd_state is not CometDState.RECONNECTING:
                    await anyio.sleep(0.05)
            sim.faults.clear()


async def test_a_rehandshake_that_goes_unanswered_is_given_up_and_tried_again(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The server forgets the client (``402::Unknown client``, advice ``reconnect:
    handshake`` without a ``timeout``, as CometD servers send it), and the network loses the
    re-handshake: its answer never comes. aiocometd stored that advice whole and sent the
    handshake without any timeout (``timeout=None`` to aiohttp): it waited forever, and the
    plugin stayed deaf ("reconnecting") for as long as it ran, although GWS answered the
    next handshake at once. The last usable timeout is now kept in an advice without one:
    the lost handshake is given up after 1.2 x that, and the next one restores the session."""
    handshake = "/meta/handshake"
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        proxy = StallingProxy(sim.port, (handshake,), only={handshake: {2}})
        async with proxy:
            config = fast_config(proxy.base_url, cometd_connection_timeout=1.0, ack_timeout=2.0)
            async with OutboundPlugin(pm, config) as plugin:
                assert sim.forget_cometd_clients() == 1
                with anyio.fail_after(5):
                    await proxy.stalled.wait()
                try:
                    await plugin.wait_connected(timeout=8)
                except TimeoutError:  # before the fix
                    pytest.fail(f"still {plugin.connection_state.value} 8 s after the 402")
                request = request_for(sim, handles(sim, 1)[0])
                await plugin.cancel(request)
    assert [a.reference_id for a in recorder.acks] == [request.reference_id]


@pytest.mark.parametrize("advice", [b"null", b'"retry"', b"[]"])
async def test_an_advice_that_is_no_object_does_not_stop_the_polling(
    pm: pluggy.PluginManager, recorder: Recorder, advice: bytes
) -> None:
    """A connect reply whose ``advice`` is no JSON object (``null``, a string, a list):
    aiocometd stored it and read its ``interval`` with ``.get()`` in the callback that
    schedules the next long poll, which failed (``AttributeError``): no poll came again,
    ``connection_state`` said ``connected`` and every request, which GWS acted on, ended
    ``timed_out``. Such an advice is taken as ``{}`` (with the last usable timeout)."""
    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=1.0) as sim:
        # The third connect: the first two are the start's and the first long poll's.
        answer = ConnectAnsweredWith(3, advice=advice)
        async with StallingProxy(sim.port, answer=answer) as proxy:
            requests = [request_for(sim, handle) for handle in handles(sim, 2)]
            config = fast_config(proxy.base_url, ack_timeout=2.0)
            async with OutboundPlugin(pm, config) as plugin:
                try:  # before: no long poll after that reply
                    await until(lambda: answer.seen >= 4, timeout=5)
                except TimeoutError:
                    pytest.fail(f"no long poll after the advice {advice!r}")
                for request in requests:
                    try:
                        await plugin.cancel(request)
                    except CancelFailed as error:  # before: timed_out, "connected"
                        pytest.fail(f"{error.failure.reason.value}: {error.failure.message}")
    assert len(recorder.acks) == 2
