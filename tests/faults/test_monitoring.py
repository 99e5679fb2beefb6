"""pluggy's own tooling sees the hooks the plugin fires (issue 17): the dispatcher calls each
implementation through pluggy's hook execution, so ``pm.add_hookcall_monitoring()`` and
``pm.enable_tracing()`` see every call, while each implementation stays isolated and
``async def`` ones stay bounded by ``hook_timeout``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailed,
    CancelRequest,
    OperationAck,
    OperationFailure,
    OutboundPlugin,
    RecordCancelAck,
    hookimpl,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import captured_logs, events_named, handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


class Generic:
    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        """Nothing to do: the monitors count the call."""

    @hookimpl
    async def on_operation_failed(self, failure: OperationFailure) -> None:
        await anyio.lowlevel.checkpoint()


class Broken:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        raise RuntimeError("broken plugin")


async def test_hookcall_monitoring_sees_every_hook_the_plugin_fires(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    pm.register(Generic(), name="generic")
    pm.register(Broken(), name="broken")
    before: list[tuple[str, list[str]]] = []
    after: list[tuple[str, BaseException | None]] = []

    def on_before(
        hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        before.append((hook_name, sorted(impl.plugin_name for impl in impls)))

    def on_after(
        outcome: pluggy.Result[Any],
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        after.append((hook_name, outcome.exception))

    undo = pm.add_hookcall_monitoring(on_before, on_after)
    first, second = handles(sim, 2)
    with captured_logs() as logs:
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            await plugin.cancel(request_for(sim, first))
            sim.faults.status_code(6, "record not found")
            with pytest.raises(CancelFailed):
                await plugin.cancel(request_for(sim, second))
            assert await plugin.wait_hooks_idle(5)
    undo()
    # Every implementation call of every hook the plugin fired, each seen on its own.
    fired_by_the_host = [call for call in before if call[0] == "on_cancel_requested"]
    assert len(fired_by_the_host) == 2
    assert sorted(call for call in before if call not in fired_by_the_host) == sorted(
        [
            ("on_user_event", ["recorder"]),
            ("on_record_cancel_acknowledged", ["broken"]),
            ("on_record_cancel_acknowledged", ["recorder"]),
            ("on_operation_acknowledged", ["generic"]),
            ("on_cancel_failed", ["recorder"]),
            ("on_operation_failed", ["generic"]),
        ]
    )
    assert len(after) == len(before)
    raised = [(hook, type(error).__name__) for hook, error in after if error is not None]
    assert raised == [("on_record_cancel_acknowledged", "RuntimeError")]
    # Isolation is kept: the broken plugin's exception went no further.
    assert [a.record_handle for a in recorder.acks] == [first]
    assert [f.request.record_handle for f in recorder.failures] == [second]
    assert [e["plugin"] for e in events_named(logs, "plugin_hook_failed")] == ["broken"]


async def test_enable_tracing_writes_the_dispatched_hooks(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    lines: list[str] = []
    pm.trace.root.setwriter(lines.append)
    undo = pm.enable_tracing()
    try:
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
            assert await plugin.wait_hooks_idle(5)
    finally:
        undo()
    text = "".join(lines)
    for hook in ("on_cancel_requested", "on_user_event", "on_record_cancel_acknowledged"):
        assert f"{hook} [hook]" in text, text


class Observer:
    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        self.seen.append(request.record_handle)


async def test_monitoring_sees_the_request_hooks_whenever_it_is_in_force(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    # The core is the only implementation of on_cancel_requested here: submit() may then
    # accept the request without pluggy's call, but only while nothing monitors the manager.
    # Monitoring, tracing and an observer added while the plugin runs see every request
    # made while they are in force, and the tickets are the same whichever way they came.
    seen: list[str] = []

    def on_before(
        hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        if hook_name == "on_cancel_requested":
            seen.append(f"monitor {kwargs['request'].record_handle}")

    def on_after(
        outcome: pluggy.Result[Any],
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        if hook_name == "on_cancel_requested":
            tickets = outcome.get_result()
            seen.append(f"ticket {tickets[0].request.record_handle}")

    lines: list[str] = []
    pm.trace.root.setwriter(lines.append)
    observer = Observer()
    h = handles(sim, 6)
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        acks = [await plugin.cancel(request_for(sim, h[0]))]
        undo = pm.add_hookcall_monitoring(on_before, on_after)
        acks.append(await plugin.cancel(request_for(sim, h[1])))
        undo()
        acks.append(await plugin.cancel(request_for(sim, h[2])))
        untrace = pm.enable_tracing()
        acks.append(await plugin.cancel(request_for(sim, h[3])))
        untrace()
        pm.register(observer, name="observer")
        acks.append(await plugin.cancel(request_for(sim, h[4])))
        pm.unregister(name="observer")
        acks.append(await plugin.cancel(request_for(sim, h[5])))
        assert await plugin.wait_hooks_idle(5)
    assert seen == [f"monitor {h[1]}", f"ticket {h[1]}"]
    traced = "".join(lines)
    assert traced.count("on_cancel_requested [hook]") == 1, traced
    assert f"record_handle={h[3]}" in traced, traced
    assert observer.seen == [h[4]]
    assert [ack.record_handle for ack in acks] == h
    assert [ack.record_handle for ack in recorder.acks] == h
