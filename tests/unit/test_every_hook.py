"""The hook implementations made from the hook specifications (``_every_hook.EveryHook``), as
pluggy sees them, and the recorders built on them: the testing kit's ``HookRecorder`` and the
CLI's ``tail`` printer."""

from __future__ import annotations

import inspect
import io
import json
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import hookspecs
from gws_outbound_plugin._every_hook import HOOK_ARGUMENTS, EveryHook, hook_specs
from gws_outbound_plugin.cli._common import _Context
from gws_outbound_plugin.cli._tail import _TailPrinter
from gws_outbound_plugin.testing import HookRecorder

SPECIFIED = {
    name
    for name, value in vars(hookspecs).items()
    if hasattr(value, hookspecs.PROJECT_NAME + "_spec")
}


class Everything(EveryHook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((hook, kwargs))


def manager_with(plugin: object) -> pluggy.PluginManager:
    """The specifications and ``plugin`` alone (no plugin core answering the host's hooks)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="under_test")
    return pm


def test_every_specified_hook_is_implemented_with_the_specifications_arguments():
    assert set(HOOK_ARGUMENTS) == SPECIFIED
    pm = manager_with(Everything())
    for name, spec in hook_specs():
        (impl,) = getattr(pm.hook, name).get_hookimpls()
        assert impl.argnames == tuple(inspect.signature(spec).parameters)
        assert impl.argnames == HOOK_ARGUMENTS[name]


def test_each_call_reaches_the_subclass_with_its_arguments_by_name():
    plugin = Everything()
    pm = manager_with(plugin)
    pm.hook.on_connection_state_changed(state="reconnecting", previous="connected")
    pm.hook.on_user_event(event="an event")
    assert plugin.calls == [
        ("on_connection_state_changed", {"state": "reconnecting", "previous": "connected"}),
        ("on_user_event", {"event": "an event"}),
    ]


def test_a_subclass_overrides_one_hook_and_keeps_the_others():
    class Quiet(Everything):
        @hookspecs.hookimpl
        def on_user_event(self, event: object) -> None:
            self.calls.append(("quiet", {}))

    plugin = Quiet()
    pm = manager_with(plugin)
    pm.hook.on_user_event(event="x")
    pm.hook.on_campaign_status(event="y")
    assert plugin.calls == [("quiet", {}), ("on_campaign_status", {"event": "y"})]


def test_a_base_without_a_receiver_cannot_be_made():
    with pytest.raises(TypeError, match=r"abstract method '?_hook_called"):
        EveryHook()  # type: ignore[abstract]


def test_the_hook_recorder_records_every_hook_by_its_arguments():
    recorder = HookRecorder()
    pm = manager_with(recorder)
    for name, arguments in HOOK_ARGUMENTS.items():
        getattr(pm.hook, name)(**{argument: f"{name}.{argument}" for argument in arguments})
    recorded = [call.name for call in recorder.calls]
    assert recorded == [name for name in HOOK_ARGUMENTS if name != "on_connection_state_changed"]
    (change,) = recorder.calls_of("on_connection_state_changed")
    assert change.state == "on_connection_state_changed.state"
    assert change.previous == "on_connection_state_changed.previous"


def tail_lines(*calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = io.StringIO()
    printer = _TailPrinter(
        _Context(out, io.StringIO(), io.StringIO(), {}), as_json=True, stop=lambda: None
    )
    pm = manager_with(printer)
    for hook, kwargs in calls:
        getattr(pm.hook, hook)(**kwargs)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_tail_prints_a_lost_and_a_regained_connection_but_not_the_start():
    assert tail_lines(
        ("on_connection_state_changed", {"state": "connecting", "previous": "disconnected"}),
        ("on_connection_state_changed", {"state": "connected", "previous": "connecting"}),
        ("on_connection_state_changed", {"state": "reconnecting", "previous": "connected"}),
        ("on_connection_state_changed", {"state": "connected", "previous": "reconnecting"}),
    ) == [
        {"hook": "on_connection_state_changed", "state": "reconnecting", "previous": "connected"},
        {"hook": "on_connection_state_changed", "state": "connected", "previous": "reconnecting"},
    ]


def test_tail_does_not_print_the_requests_a_host_makes():
    printer = _TailPrinter(
        _Context(io.StringIO(), io.StringIO(), io.StringIO(), {}), as_json=True, stop=lambda: None
    )
    for hook in hookspecs.HOST_FIRED_HOOKS:
        printer._hook_called(hook, {"request": object()})
    assert printer._ctx.stdout.getvalue() == ""
