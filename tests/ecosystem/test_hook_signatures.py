"""Hook implementations whose parameters a hook call never fills: pluggy passes a hook's
arguments by position to the parameters named like them, so a keyword-only ``failure``
made every call raise ``TypeError`` (a hook failure, every time) and ``**kwargs`` received
nothing; both registered without a word. Refused at registration, saying what to write,
where the hook cannot do without them; a warning where they do no harm."""

from __future__ import annotations

import pluggy
import pytest

from gws_outbound_plugin import describe_plugins, hookimpl, make_plugin_manager


class KeywordOnly:
    @hookimpl
    def on_cancel_failed(self, *, failure):
        pass


class KeywordOnlyWithDefault:
    @hookimpl
    def on_record_cancel_acknowledged(self, *, ack=None):
        pass


class OnlyCatchall:
    @hookimpl
    def on_user_event(self, **kwargs):
        pass


def varargs_hook(*args):
    pass


varargs_hook = hookimpl(specname="on_operation_failed")(varargs_hook)


class Varargs:
    on_operation_failed = staticmethod(varargs_hook)


class CatchallBeside:
    @hookimpl
    def on_user_event(self, event, **kwargs):
        pass


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (
            KeywordOnly(),
            "on_cancel_failed takes the keyword-only failure, which pluggy never fills (it "
            "passes the hook's arguments, failure, each to the parameter of that name): write "
            "def on_cancel_failed(self, failure)",
        ),
        (OnlyCatchall(), "on_user_event takes **kwargs, which pluggy never fills"),
        (Varargs(), "on_operation_failed takes *args, which pluggy never fills"),
    ],
)
def test_a_parameter_the_hook_cannot_do_without_is_refused(plugin, expected):
    pm = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(pluggy.PluginValidationError) as caught:
        pm.register(plugin, name="mine")

    assert str(caught.value).startswith(f"plugin 'mine': {expected}")
    assert __file__ in str(caught.value)  # where it is defined
    assert not pm.has_plugin("mine")


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (
            KeywordOnlyWithDefault(),
            "on_record_cancel_acknowledged takes the keyword-only ack, which pluggy never fills",
        ),
        (CatchallBeside(), "on_user_event takes **kwargs, which pluggy never fills"),
    ],
)
def test_a_harmless_unfilled_parameter_is_registered_with_a_warning(plugin, expected):
    """``**kwargs`` beside the hook's arguments (written for later ones) or a keyword-only
    parameter with a default does no harm: refusing it refused working plugins."""
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="mine")

    assert pm.has_plugin("mine")
    (info,) = [info for info in describe_plugins(pm) if info.name == "mine"]
    (warning,) = info.warnings
    assert warning.startswith(expected)
    assert "harmless" in warning
    assert __file__ in warning


def test_defaults_and_a_subset_of_the_arguments_are_fine():
    class Fine:
        @hookimpl
        def on_cancel_failed(self, failure=None):
            pass

        @hookimpl
        def on_connection_state_changed(self, state):
            pass

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Fine(), name="fine")

    assert pm.has_plugin("fine")


def test_a_hook_marked_by_another_projects_marker_says_which_marker():
    """HookimplMarker("gws_outbound_plugin") (the package's name, not the project's) was
    reported as "has no @hookimpl" next to the decorator the author can see."""
    wrong = pluggy.HookimplMarker("gws_outbound_plugin")

    class Mismarked:
        @wrong
        def on_cancel_failed(self, failure):
            pass

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Mismarked(), name="mine")

    (info,) = [info for info in describe_plugins(pm) if info.name == "mine"]
    (warning,) = info.warnings
    assert warning.startswith(
        "on_cancel_failed is named like the hook but is marked by "
        "pluggy.HookimplMarker('gws_outbound_plugin'), not this project's ('gws_outbound'): it "
        "is never called; use gws_outbound_plugin.hookimpl (at "
    )
