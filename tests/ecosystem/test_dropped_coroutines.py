"""A hook that calls an ``async def`` function without ``await``: the call only makes a
coroutine, which Python drops unrun, warning "coroutine ... was never awaited" later and
naming no hook. Registering such a plugin is refused, naming the hook, the call and its
``file:line``; what is awaited, scheduled or unknown until the call is left alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pluggy
import pytest

from gws_outbound_plugin import make_plugin_manager

from .conftest import ROOT, base_env

Load = Callable[[str], ModuleType]


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Load]:
    """``load(source)``: the source written to a file of its own and imported as a module."""
    names: list[str] = []

    def load_one(source: str) -> ModuleType:
        name = f"gwsx_dropped_{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.append(name)
        spec.loader.exec_module(module)
        return module

    yield load_one
    for name in names:
        sys.modules.pop(name, None)


def refusal(plugin: object, name: str = "mine") -> str:
    pm = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(pluggy.PluginValidationError) as caught:
        pm.register(plugin, name=name)
    assert not pm.has_plugin(name)
    pm.check_pending()  # nothing half-registered
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_plain_hook_calling_a_module_coroutine_function_is_refused(load):
    module = load(
        """
        from gws_outbound_plugin import hookimpl

        async def notify(text):
            print(text)

        @hookimpl
        def on_cancel_failed(failure):
            notify(failure.message)
        """
    )
    message = refusal(module)

    assert message == (
        "plugin 'mine': on_cancel_failed calls the coroutine function notify(...) without "
        f"await (at {module.__file__}:9), so it never runs (the call only makes a coroutine, "
        "which is dropped): make on_cancel_failed async def and write await notify(...)"
    )


def test_methods_of_self_and_of_its_attributes_are_seen(load):
    module = load(
        """
        from gws_outbound_plugin import hookimpl

        class Client:
            async def post(self, url, json):
                pass

        class Forwarder:
            def __init__(self):
                self.client = Client()

            async def send(self, ack):
                pass

            @hookimpl
            def on_operation_acknowledged(self, ack):
                self.send(ack)
                self.client.post("https://example.com", json={})
        """
    )
    message = refusal(module.Forwarder())

    assert f"self.send(...) without await (at {module.__file__}:17)" in message
    assert f"self.client.post(...) without await (at {module.__file__}:18)" in message


def test_an_async_hook_that_forgot_await_is_told_to_await(load):
    module = load(
        """
        import asyncio
        from gws_outbound_plugin import hookimpl

        @hookimpl
        async def on_user_event(event):
            asyncio.sleep(0.1)
        """
    )
    message = refusal(module)

    assert "on_user_event calls the coroutine function asyncio.sleep(...) without await" in message
    assert message.endswith(": write await asyncio.sleep(...)")


def test_the_hosts_hook_is_told_where_async_work_goes(load):
    module = load(
        """
        from gws_outbound_plugin import hookimpl

        async def audit(request):
            pass

        @hookimpl
        def on_cancel_requested(request):
            audit(request)
        """
    )
    message = refusal(module)

    assert "on_cancel_requested calls the coroutine function audit(...) without await" in message
    assert "on_cancel_requested stays a plain function" in message
    assert "do that work in an async def hook" in message


def test_awaited_scheduled_and_unknown_calls_are_accepted(load):
    module = load(
        """
        import asyncio
        from gws_outbound_plugin import hookimpl

        async def notify(text):
            pass

        def log(text):
            pass

        class Plugin:
            def __init__(self):
                self.tasks = set()

            @hookimpl
            async def on_cancel_failed(self, failure):
                await notify(failure.message)
                await asyncio.wait_for(notify("x"), 1)
                log(failure.message)

            @hookimpl
            def on_operation_failed(self, failure):
                task = asyncio.get_running_loop().create_task(notify(failure.message))
                self.tasks.add(task)
                sender = notify  # a local name: not known before the call
                sender("late")

            @hookimpl
            def on_user_event(self, event):
                async def later():
                    notify("in a function the hook defines: not this hook's statement")

                return later()

        plugin = Plugin()
        """
    )
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(module.plugin, name="mine")

    assert pm.get_plugin("mine") is module.plugin


KIT_PROJECT_TEST = """
import pytest
from gws_outbound_plugin import hookimpl

pytestmark = pytest.mark.anyio


async def notify(ack):
    pass


class Forwarder:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack):
        send = notify  # a local name: registration cannot tell what it calls
        send(ack)


async def test_forwards(gws_plugin_manager, gws_outbound, gws_request_factory):
    gws_plugin_manager.register(Forwarder(), name="forwarder")
    await gws_outbound.cancel(gws_request_factory())
"""


def test_under_the_testing_kit_the_never_awaited_warning_names_the_hook(tmp_path):
    """What registration cannot see, Python's warning shows, and under the kit it says where
    the coroutine was made: it named only the coroutine ('notify') before."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["gws_outbound_plugin.testing"]\n')
    (tmp_path / "test_forwarder.py").write_text(KIT_PROJECT_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly"],
        cwd=tmp_path,
        env=base_env({"PYTHONPATH": str(ROOT)}),  # this tree's package, whatever is installed
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout

    assert "RuntimeWarning: coroutine 'notify' was never awaited" in out, out
    assert (
        f'File "{tmp_path / "test_forwarder.py"}", line 16, in on_record_cancel_acknowledged'
        in (out)
    )


def test_a_plugin_whose_file_changed_since_its_import_is_registered(load):
    """Registration reads a hook's source to find dropped coroutines. The file on disk may
    no longer be the one imported (a deploy replacing it under a running host that makes
    a plugin manager for each agent it logs in): where the hook's line now opens a string
    left unclosed, reading it raised ``tokenize.TokenError`` out of ``pm.register()`` and
    the plugin could not be registered at all. What cannot be read is not checked."""
    module = load(
        """
        from gws_outbound_plugin import hookimpl

        class Plugin:
            @hookimpl
            def on_operation_acknowledged(self, ack):
                pass

        plugin = Plugin()
        """
    )
    Path(module.__file__).write_text('X = 1\n\n\nY = 2\nZ = ("""\n', encoding="utf-8")
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(module.plugin, name="mine")

    assert pm.get_plugin("mine") is module.plugin
