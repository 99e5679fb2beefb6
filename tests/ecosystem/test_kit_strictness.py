"""The testing kit fails the tests that hide plugin bugs: a hook implementation that raised or
timed out, an async test without the anyio marker. Run as a plugin author runs them: pytest
in a subprocess on a throwaway project whose conftest.py enables the kit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pluggy
import pytest

from gws_outbound_plugin import hookimpl

CONFTEST = 'pytest_plugins = ["gws_outbound_plugin.testing"]\n'

SCENARIOS = """
import time

import anyio
import pytest

from gws_outbound_plugin import GWSConfig, hookimpl
from gws_outbound_plugin.testing import SIMULATOR_PASSWORD, SIMULATOR_USER

pytestmark = pytest.mark.anyio


@pytest.fixture
def gws_config(gws_simulator):
    return GWSConfig(
        base_url=gws_simulator.base_url,
        username=SIMULATOR_USER,
        password=SIMULATOR_PASSWORD,
        ack_timeout=2.0,
        hook_timeout=0.2,
        drain_timeout=0.05,
    )


class Raising:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack):
        raise ValueError(f"boom {ack.record_handle}")


class Hanging:
    @hookimpl
    async def on_record_cancel_acknowledged(self, ack):
        await anyio.sleep(30)


class Shielding:
    @hookimpl
    async def on_record_cancel_acknowledged(self, ack):
        with anyio.CancelScope(shield=True):  # "always finish the audit record"
            await anyio.sleep(0.6)


class Blocking:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack):
        time.sleep(0.3)  # requests.post(...) to a webhook, say


class RaisingObserver:
    @hookimpl
    def on_cancel_requested(self, request):
        raise KeyError("observer-bug")


class RaisingOnFailure:
    @hookimpl
    def on_cancel_failed(self, failure):
        raise RuntimeError(f"failure-bug {failure.reason.value}")


# The ticket resolves before the hooks run; the recorder (registered first, so called last)
# tells when every hook implementation has had its turn.
ACKED = "on_record_cancel_acknowledged"


async def test_raising_hook(gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook):
    gws_plugin_manager.register(Raising(), name="flaky")
    await gws_outbound.cancel(gws_request_factory(record_handle=11))
    await wait_for_hook(ACKED)


async def test_hanging_hook(gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook):
    gws_plugin_manager.register(Hanging(), name="sleepy")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)


async def test_shielding_hook(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    gws_plugin_manager.register(Shielding(), name="stubborn")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)


async def test_blocking_hook(gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook):
    gws_plugin_manager.register(Blocking(), name="blocker")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)


async def test_raising_observer(gws_plugin_manager, gws_outbound, gws_request_factory):
    gws_plugin_manager.register(RaisingObserver(), name="nosy")
    await gws_outbound.cancel(gws_request_factory())


@pytest.mark.gws_allow_hook_failures
async def test_allowed_by_marker(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    gws_plugin_manager.register(Raising(), name="flaky")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)


@pytest.mark.gws_allow_hook_failures("someone-else")
async def test_marker_for_another_plugin(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    gws_plugin_manager.register(Raising(), name="flaky")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)


async def test_allowed_by_fixture(
    gws_plugin_manager, gws_outbound, gws_request_factory, gws_hook_failures, wait_for_hook
):
    gws_hook_failures.allow("flaky")
    gws_plugin_manager.register(Raising(), name="flaky")
    request = gws_request_factory()
    await gws_outbound.cancel(request)
    await wait_for_hook(ACKED)
    (failure,) = gws_hook_failures.failures
    assert (failure.plugin, failure.hook) == ("flaky", "on_record_cancel_acknowledged")
    assert failure.error == f"ValueError: boom {request.record_handle}"
    assert not failure.timed_out


async def test_failure_during_teardown(
    gws_plugin_manager, gws_outbound, gws_request_factory, gws_simulator
):
    # The outcome never comes: the cancel fails (outcome_unknown) while the fixtures close.
    gws_plugin_manager.register(RaisingOnFailure(), name="late")
    gws_simulator.faults.hold_notifications()
    gws_outbound.submit(gws_request_factory())


async def test_a_test_that_fails_anyway(
    gws_plugin_manager, gws_outbound, gws_request_factory, wait_for_hook
):
    gws_plugin_manager.register(Raising(), name="flaky")
    await gws_outbound.cancel(gws_request_factory())
    await wait_for_hook(ACKED)
    assert False, "the test's own failure"


async def test_clean(gws_outbound, gws_request_factory):
    await gws_outbound.cancel(gws_request_factory())


def test_marked_but_not_async(gws_plugin_manager, gws_request_factory):
    gws_plugin_manager.hook.on_cancel_requested(request=gws_request_factory())
"""

NO_MARKER = """
import pytest


async def test_forgot_the_marker(gws_outbound, gws_request_factory):
    await gws_outbound.cancel(gws_request_factory())


def test_sync_test_with_an_async_fixture(gws_simulator):
    assert gws_simulator.running


@pytest.mark.anyio
async def test_the_next_test_is_unaffected(gws_outbound, gws_request_factory):
    await gws_outbound.cancel(gws_request_factory())


def test_a_plain_test_is_unaffected(gws_plugin_manager):
    assert gws_plugin_manager.has_plugin("gws_outbound_core_absent_guard")
"""


@dataclass
class Outcome:
    call: str  # passed, failed, skipped, error (setup)
    teardown_error: str | None
    text: str


def _outcomes(junit: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.attrib["name"]
        failure = case.find("failure")
        errors = case.findall("error")
        teardown = [e for e in errors if "teardown" in e.attrib.get("message", "")]
        setup = [e for e in errors if e not in teardown]
        text = "".join(
            (element.attrib.get("message", "") + "\n" + (element.text or ""))
            for element in [failure, *errors]
            if element is not None
        )
        if setup:
            call = "error"
        elif failure is not None:
            call = "failed"
        elif case.find("skipped") is not None:
            call = "skipped"
        else:
            call = "passed"
        teardown_text = None
        if teardown:
            teardown_text = teardown[0].attrib.get("message", "") + (teardown[0].text or "")
        outcomes[name] = Outcome(call, teardown_text, text)
    return outcomes


@pytest.fixture(scope="module")
def kit_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    project = tmp_path_factory.mktemp("kit")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_scenarios.py").write_text(textwrap.dedent(SCENARIOS))
    (project / "test_no_marker.py").write_text(textwrap.dedent(NO_MARKER))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GWS_", "PYTEST_")) and key != "PYTHONPATH"
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--junitxml",
            str(project / "junit.xml"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (project / "junit.xml").exists(), result.stdout + result.stderr
    outcomes = _outcomes(project / "junit.xml")
    assert len(outcomes) == 16, result.stdout
    return outcomes


def test_a_raising_hook_fails_the_test_naming_plugin_hook_and_exception(kit_run):
    outcome = kit_run["test_raising_hook"]
    assert outcome.call == "failed"
    assert "plugin 'flaky' raised in on_record_cancel_acknowledged: ValueError: boom 11" in (
        outcome.text
    )
    assert "gws_allow_hook_failures" in outcome.text  # how to opt out


def test_a_hook_that_times_out_fails_the_test(kit_run):
    outcome = kit_run["test_hanging_hook"]
    assert outcome.call == "failed"
    assert "plugin 'sleepy' timed out in on_record_cancel_acknowledged" in outcome.text


def test_a_hook_that_shields_itself_past_its_timeout_fails_the_test(kit_run):
    """It could not be cut at hook_timeout and held up every hook call after it; it passed
    unreported (no log line, no failure) before."""
    outcome = kit_run["test_shielding_hook"]
    assert outcome.call == "failed"
    assert "plugin 'stubborn' timed out in on_record_cancel_acknowledged" in outcome.text


def test_a_plain_hook_that_blocks_past_its_timeout_fails_the_test(kit_run):
    """It blocked the loop (and the timers that release tickets) longer than hook_timeout:
    only a warning before (plugin_hook_blocked_loop), and the test passed."""
    outcome = kit_run["test_blocking_hook"]
    assert outcome.call == "failed"
    assert "plugin 'blocker' timed out in on_record_cancel_acknowledged: blocked the event" in (
        outcome.text
    )


def test_a_raising_observer_of_the_hosts_hook_fails_the_test(kit_run):
    outcome = kit_run["test_raising_observer"]
    assert outcome.call == "failed"
    assert "plugin 'nosy' raised in on_cancel_requested: KeyError" in outcome.text


def test_the_marker_opts_out(kit_run):
    assert kit_run["test_allowed_by_marker"].call == "passed"
    assert kit_run["test_allowed_by_marker"].teardown_error is None


def test_the_marker_with_names_opts_out_for_those_plugins_only(kit_run):
    outcome = kit_run["test_marker_for_another_plugin"]
    assert outcome.call == "failed"
    assert "plugin 'flaky' raised" in outcome.text


def test_the_fixture_opts_out_and_shows_the_failures(kit_run):
    outcome = kit_run["test_allowed_by_fixture"]
    assert (outcome.call, outcome.teardown_error) == ("passed", None), outcome.text


def test_a_failure_while_the_fixtures_shut_down_fails_the_teardown(kit_run):
    outcome = kit_run["test_failure_during_teardown"]
    assert outcome.call == "passed"
    assert outcome.teardown_error is not None
    # It was sent and never answered: outcome_unknown (issue 16), while the fixtures closed.
    failure = "plugin 'late' raised in on_cancel_failed: RuntimeError: failure-bug outcome_unknown"
    assert failure in (
        outcome.teardown_error
    )


def test_a_test_failing_anyway_shows_the_hook_failures_too(kit_run):
    outcome = kit_run["test_a_test_that_fails_anyway"]
    assert outcome.call == "failed"
    assert "the test's own failure" in outcome.text
    assert outcome.teardown_error is None


def test_a_clean_test_passes(kit_run):
    assert kit_run["test_clean"].call == "passed"


def test_an_async_test_without_the_marker_is_a_clear_error_in_that_test(kit_run):
    outcome = kit_run["test_forgot_the_marker"]
    assert outcome.call == "error"
    assert "test_forgot_the_marker is an async test using the async fixture(s)" in outcome.text
    assert "pytestmark = pytest.mark.anyio" in outcome.text
    sync = kit_run["test_sync_test_with_an_async_fixture"]
    assert sync.call == "error"
    assert "gws_simulator" in sync.text and "not marked for anyio" in sync.text
    assert "is a plain def test" in sync.text and "make it 'async def'" in sync.text


def test_a_marked_plain_def_test_is_told_to_be_async_def(kit_run):
    """A plain ``def`` test in a module marked for anyio was told to add the marker it had
    (anyio runs only ``async def`` tests): the advice could not help."""
    outcome = kit_run["test_marked_but_not_async"]
    assert outcome.call == "error"
    assert "test_marked_but_not_async is a plain def test using the async fixture(s)" in (
        outcome.text
    )
    assert "make it 'async def'" in outcome.text
    assert "not marked for anyio" not in outcome.text


def test_the_tests_after_the_mistake_are_unaffected(kit_run):
    assert kit_run["test_the_next_test_is_unaffected"].call == "passed"
    assert kit_run["test_a_plain_test_is_unaffected"].call == "passed"


# -- registration is validated in the kit's plugin manager (in-process) --------------------------


def test_a_misspelt_hook_is_refused_when_registered(gws_plugin_manager):
    class Typo:
        @hookimpl
        def on_record_cancel_acknowleged(self, ack):
            pass

    with pytest.raises(pluggy.PluginValidationError) as caught:
        gws_plugin_manager.register(Typo(), name="typo")
    message = str(caught.value)
    assert "\n" not in message
    assert "plugin 'typo': unknown hook 'on_record_cancel_acknowleged'" in message
    assert "did you mean 'on_record_cancel_acknowledged'?" in message
    assert not gws_plugin_manager.has_plugin("typo")


@pytest.mark.parametrize("hook", ["on_cancel_requested", "on_operation_requested"])
def test_an_async_implementation_of_a_host_fired_hook_is_refused(gws_plugin_manager, hook):
    async def implementation(request):
        pass

    implementation.__name__ = hook
    plugin = type("Async", (), {hook: staticmethod(hookimpl(implementation))})()
    with pytest.raises(pluggy.PluginValidationError) as caught:
        gws_plugin_manager.register(plugin, name="async")
    assert f"{hook} must be a plain function, not async def" in str(caught.value)
    assert not gws_plugin_manager.has_plugin("async")


def test_an_async_implementation_of_a_dispatched_hook_is_accepted(gws_plugin_manager):
    class Async:
        @hookimpl
        async def on_operation_acknowledged(self, ack):
            pass

    assert gws_plugin_manager.register(Async(), name="async") == "async"


@pytest.mark.parametrize("kind", ["wrapper", "hookwrapper"])
def test_a_wrapper_of_a_dispatched_hook_is_refused_when_registered(gws_plugin_manager, kind):
    """It was accepted: registered in a running plugin it never ran (the dispatcher calls each
    implementation on its own) and the test passed; registered before the start, the host
    only failed at start, with no file:line; ``gws-outbound plugins`` listed it as fine."""

    def on_operation_acknowledged(ack):
        yield

    plugin = type("Wrapping", (), {})()
    plugin.on_operation_acknowledged = hookimpl(**{kind: True})(on_operation_acknowledged)
    with pytest.raises(pluggy.PluginValidationError) as caught:
        gws_plugin_manager.register(plugin, name="wrapping")
    message = str(caught.value)
    assert "\n" not in message
    assert "plugin 'wrapping': on_operation_acknowledged cannot be wrapped" in message
    assert "implement it as a plain or async def function" in message
    assert f"(at {__file__}:" in message
    assert not gws_plugin_manager.has_plugin("wrapping")


def test_a_plugin_class_registered_instead_of_an_instance_is_refused(gws_plugin_manager):
    """``pm.register(Tally)``, or an entry point naming the class (``pkg:Tally``): accepted,
    and every call of its hooks then raised ``TypeError: ... missing 1 required positional
    argument`` (``self`` took the payload)."""

    class Tally:
        @hookimpl
        def on_operation_acknowledged(self, ack):
            pass

        @staticmethod
        @hookimpl
        def on_operation_failed(failure):  # a static method needs no instance: fine
            pass

    with pytest.raises(pluggy.PluginValidationError) as caught:
        gws_plugin_manager.register(Tally, name="tally")
    message = str(caught.value)
    assert message.startswith(
        "plugin 'tally': it is the class Tally, not an instance: "
        "on_operation_acknowledged(self, ...) would be called without one; register Tally() "
    )
    assert "on_operation_failed" not in message
    assert not gws_plugin_manager.has_plugin("tally")
    assert gws_plugin_manager.register(Tally(), name="tally") == "tally"
    assert gws_plugin_manager.hook.on_operation_failed.get_hookimpls()[-1].plugin_name == "tally"


def test_a_hook_method_without_self_is_refused(gws_plugin_manager):
    """``def on_record_cancel_acknowledged(ack)`` written in a class, ``self`` forgotten: the
    instance took the place of ``ack``, pluggy saw a hook asking for no argument, and every
    call was silently given the plugin itself instead of the payload (a test asserting on
    what the hook saw failed with an empty list, and no message said why)."""

    class Watch:
        @hookimpl
        def on_record_cancel_acknowledged(ack):  # the mistake under test: no self
            pass

        @hookimpl
        def on_user_event(self, event):  # fine
            pass

        @staticmethod
        @hookimpl
        def on_operation_failed(failure):  # a static method needs no self: fine
            pass

    with pytest.raises(pluggy.PluginValidationError) as caught:
        gws_plugin_manager.register(Watch(), name="watch")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "plugin 'watch': on_record_cancel_acknowledged(ack) is a method without self: "
        "its first parameter 'ack' would be given the Watch instance, not the hook's ack; "
        "write def on_record_cancel_acknowledged(self, ack)"
    )
    assert f"(at {__file__}:" in message
    assert "on_user_event" not in message and "on_operation_failed" not in message
    assert not gws_plugin_manager.has_plugin("watch")


def test_a_module_level_hook_needs_no_self(gws_plugin_manager, tmp_path, monkeypatch):
    """The check above is for methods: a module's functions take the hook's arguments as
    they are."""
    (tmp_path / "plain_hooks.py").write_text(
        "from gws_outbound_plugin import hookimpl\n\n"
        "@hookimpl\ndef on_record_cancel_acknowledged(ack):\n    pass\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import plain_hooks  # type: ignore[import-not-found]

    assert gws_plugin_manager.register(plain_hooks, name="plain") == "plain"


def test_a_second_registration_is_one_line_that_says_what_to_do(gws_plugin_manager):
    """pluggy's 'Plugin name already registered: watch=<...>' / 'Plugin already registered
    under a different name' span two lines and print the whole registry's reprs, and say
    nothing of what to do (a host registering its own Tally() next to the installed one)."""

    class Watch:
        @hookimpl
        def on_user_event(self, event):
            pass

    watch = Watch()
    gws_plugin_manager.register(watch, name="watch")
    attempts = {
        "same name": (Watch(), "watch"),
        "same object": (watch, "watch2"),
        "again": (watch, "watch"),
    }
    messages = {}
    for case, (plugin, name) in attempts.items():
        with pytest.raises(ValueError, match="registered already") as caught:
            gws_plugin_manager.register(plugin, name=name)
        messages[case] = str(caught.value)
    kind = f"{__name__}.test_a_second_registration_is_one_line_that_says_what_to_do.<locals>.Watch"
    assert messages == {
        "same name": (
            f"a plugin named 'watch' is registered already (a {kind}, for instance loaded from "
            f"its entry point): register a {kind} under another name (pm.register(plugin, "
            "name=...)), or unregister that one first (pm.unregister(name='watch'))"
        ),
        "same object": (
            f"a {kind} is registered already, as 'watch': register it once (not again as "
            "'watch2')"
        ),
        "again": "plugin 'watch' is registered already: register it once",
    }
    assert gws_plugin_manager.get_plugin("watch") is watch
    assert not gws_plugin_manager.has_plugin("watch2")
