"""Fault matrix, third-party plugins: raising, hanging, blocking, late and leaving plugins (on
FakeGWS and the virtual clock: a hang costs ``hook_timeout`` of the loop's time)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelTicket,
    GWSOutboundError,
    OutboundPlugin,
    RecordCancelAck,
    UserEvent,
    hookimpl,
    hookspecs,
)
from gws_outbound_plugin._every_hook import EveryHook
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.faults.matrix import Row, fault
from tests.faults.support import (
    assert_nothing_else,
    assert_outcome,
    captured_logs,
    events_named,
)
from tests.helpers import Recorder, make_request

pytestmark = pytest.mark.anyio


class Raising:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        raise RuntimeError("bug in on_record_cancel_acknowledged")

    @hookimpl
    async def on_user_event(self, event: UserEvent) -> None:
        raise KeyError("bug in on_user_event")

    @hookimpl
    def on_cancel_failed(self) -> None:
        raise ValueError("bug in on_cancel_failed")


class RaisingObserver:
    @hookimpl
    def on_cancel_requested(self) -> None:
        raise RuntimeError("observer bug")


class Hanging:
    @hookimpl
    async def on_record_cancel_acknowledged(self) -> None:
        await anyio.sleep_forever()


class Blocking:
    def __init__(self) -> None:
        self.blocked = 0

    @hookimpl
    def on_record_cancel_acknowledged(self) -> None:
        if not self.blocked:
            self.blocked += 1
            time.sleep(1)  # a plugin doing blocking I/O on the event loop thread


class Leaving:
    """Unregisters itself from inside its third acknowledgement."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.calls: list[str] = []
        self.left = False

    def _seen(self, hook: str) -> None:
        assert not self.left, f"{hook} reached a plugin that had unregistered"
        self.calls.append(hook)

    @hookimpl
    def on_record_cancel_acknowledged(self) -> None:
        self._seen("ack")
        if self.calls.count("ack") == 3:
            self.pm.unregister(self)
            self.left = True

    @hookimpl
    def on_user_event(self) -> None:
        self._seen("user_event")


async def cancel_many(plugin: OutboundPlugin, device_path: str, handles: range) -> list[Any]:
    requests = [make_request(device_path, handle=h) for h in handles]
    tickets = [plugin.submit(request) for request in requests]
    with anyio.fail_after(10):
        for ticket in tickets:
            await ticket
    return requests


@fault("plugins-raises")
async def test_raising_plugin(
    row: Row,
    pm: pluggy.PluginManager,
    config: Any,
    fake: FakeGWS,
    recorder: Recorder,
    device_path: str,
) -> None:
    pm.register(Raising(), name="raising")  # registered last: pluggy calls it first
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            requests = await cancel_many(plugin, device_path, range(11, 14))
    for request in requests:
        assert_outcome(recorder, request, row)
    failed = events_named(logs, "plugin_hook_failed")
    assert (
        sorted(e["hook"] for e in failed)
        == ["on_record_cancel_acknowledged"] * 3 + ["on_user_event"] * 3
    )
    assert {e["plugin"] for e in failed} == {"raising"}
    assert all(e["log_level"] == "error" and e.get("exc_info") for e in failed)
    assert_nothing_else(recorder, requests, user_events=3)


@fault("plugins-observer-raises")
async def test_raising_observer_of_on_cancel_requested(
    row: Row,
    pm: pluggy.PluginManager,
    plugin: OutboundPlugin,
    recorder: Recorder,
    device_path: str,
) -> None:
    pm.register(RaisingObserver(), name="raising-observer")
    request = make_request(device_path)
    with captured_logs() as logs:
        [ticket] = pm.hook.on_cancel_requested(request=request)
        assert isinstance(ticket, CancelTicket)
        await ticket
    assert_outcome(recorder, request, row)
    [failed] = events_named(logs, "plugin_hook_failed")
    assert failed["plugin"] == "raising-observer" and failed["hook"] == "on_cancel_requested"
    assert_nothing_else(recorder, [request], user_events=1)


async def test_the_raising_one_of_two_generated_observers_is_blamed(
    pm: pluggy.PluginManager,
    plugin: OutboundPlugin,
    recorder: Recorder,
    device_path: str,
) -> None:
    """Implementations generated from the hook specs share one code object: the blame goes
    by the instance that raised, not by whichever of them registered last."""

    class Quiet(EveryHook):
        def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
            pass

    class Loud(EveryHook):
        def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
            if hook == "on_cancel_requested":
                raise RuntimeError("observer bug")

    pm.register(Quiet(), name="quiet-before")
    pm.register(Loud(), name="loud")
    pm.register(Quiet(), name="quiet-after")
    with captured_logs() as logs:
        [ticket] = pm.hook.on_cancel_requested(request=make_request(device_path))
        await ticket
    [failed] = events_named(logs, "plugin_hook_failed")
    assert failed["plugin"] == "loud"


@fault("plugins-hangs")
async def test_hanging_plugin(
    row: Row,
    pm: pluggy.PluginManager,
    config: Any,
    fake: FakeGWS,
    recorder: Recorder,
    device_path: str,
) -> None:
    pm.register(Hanging(), name="hanging")
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            started = anyio.current_time()
            requests = await cancel_many(plugin, device_path, range(11, 14))
            elapsed = anyio.current_time() - started
    for request in requests:
        assert_outcome(recorder, request, row)
    timed_out = events_named(logs, "plugin_hook_timed_out")
    assert [(e["plugin"], e["hook"]) for e in timed_out] == [
        ("hanging", "on_record_cancel_acknowledged")
    ] * 3
    # Each hang costs hook_timeout (0.3 s, on the loop's clock) once, not forever.
    assert elapsed < 3 * config.hook_timeout + 1.5
    assert_nothing_else(recorder, requests, user_events=3)


@fault("plugins-blocks")
async def test_plugin_blocking_the_thread(
    row: Row,
    pm: pluggy.PluginManager,
    fake: FakeGWS,
    recorder: Recorder,
    device_path: str,
) -> None:
    blocking = Blocking()
    pm.register(blocking, name="blocking")
    # The ack timeout is above the stall: what is asserted is that nothing is lost.
    config = fake_config(ack_timeout=3.0)
    with captured_logs() as logs:
        async with OutboundPlugin(pm, config, transport=fake) as plugin:
            requests = await cancel_many(plugin, device_path, range(11, 19))
    assert blocking.blocked == 1
    for request in requests:
        assert_outcome(recorder, request, row)
    [blocked] = events_named(logs, "plugin_hook_blocked_loop")
    assert blocked["plugin"] == "blocking" and blocked["seconds"] >= 1.0
    assert blocked["hook"] == "on_record_cancel_acknowledged"
    assert_nothing_else(recorder, requests, user_events=8)


@fault("plugins-late")
async def test_plugin_registered_while_running(
    row: Row,
    pm: pluggy.PluginManager,
    plugin: OutboundPlugin,
    recorder: Recorder,
    device_path: str,
) -> None:
    before = make_request(device_path, handle=11)
    await plugin.cancel(before)
    late = Recorder()
    pm.register(late, name="late")
    after = make_request(device_path, handle=12)
    await plugin.cancel(after)
    assert late.outcomes_for(before.reference_id) == []
    assert_outcome(late, after, row)
    assert_outcome(recorder, before, row)
    assert_outcome(recorder, after, row)
    assert len(late.user_events) == 1
    assert_nothing_else(recorder, [before, after], user_events=2)


@fault("plugins-unregisters")
async def test_plugin_unregistering_while_events_flow(
    row: Row,
    pm: pluggy.PluginManager,
    plugin: OutboundPlugin,
    recorder: Recorder,
    device_path: str,
) -> None:
    leaving = Leaving(pm)
    pm.register(leaving, name="leaving")
    with captured_logs() as logs:
        requests = await cancel_many(plugin, device_path, range(11, 20))
        await anyio.sleep(0.2)
    assert leaving.left and not pm.has_plugin("leaving")
    assert leaving.calls.count("ack") == 3
    for request in requests:
        assert_outcome(recorder, request, row)
    assert events_named(logs, "plugin_hook_failed") == []
    # The dispatcher goes on working after the registrations changed under it.
    after = make_request(device_path, handle=20)
    await plugin.cancel(after)
    assert_nothing_else(recorder, [*requests, after], user_events=10)


# -- a host's plugin manager or configuration of the wrong kind --------------------------------


async def test_a_plugin_manager_without_the_hook_specifications_is_named_at_start(
    fake: FakeGWS,
) -> None:
    """A host author's ``pluggy.PluginManager("gws_outbound")`` without ``add_hookspecs``:
    the start failed with ``AttributeError: 'HookRelay' object has no attribute
    'on_cancel_requested'``."""
    bare = pluggy.PluginManager("gws_outbound")
    plugin = OutboundPlugin(bare, fake_config(), transport=fake)
    with pytest.raises(GWSOutboundError) as caught:
        async with plugin:
            pass
    assert str(caught.value) == (
        "the plugin manager has no gws_outbound hook specifications: make it with "
        "make_plugin_manager(), or call pm.add_hookspecs(gws_outbound_plugin.hookspecs) on a "
        "pluggy.PluginManager"
    )
    assert fake.posts == []


def test_a_configuration_that_is_not_a_gws_config_is_a_type_error() -> None:
    """``OutboundPlugin(pm, {"base_url": ...})`` failed with ``AttributeError: 'dict' object
    has no attribute ...`` from inside the transport."""
    settings: Any = {"base_url": "https://gws.example", "username": "agent1"}
    with pytest.raises(TypeError, match=r"^config must be a GWSConfig, not dict \("):
        OutboundPlugin(pluggy.PluginManager("gws_outbound"), settings)


async def test_a_wrapper_of_a_dispatched_hook_on_a_bare_manager_says_what_to_do(
    fake: FakeGWS,
) -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def on_operation_acknowledged(self, ack: Any) -> Any:
            return (yield)

    bare = pluggy.PluginManager("gws_outbound")
    bare.add_hookspecs(hookspecs)
    bare.register(Wrapping(), name="wrapping")  # a bare manager does not validate
    with pytest.raises(GWSOutboundError) as caught:
        async with OutboundPlugin(bare, fake_config(), transport=fake):
            pass
    message = str(caught.value)
    assert message.startswith("plugin 'wrapping' wraps on_operation_acknowledged: ")
    assert "implement it as a plain or async def function" in message
