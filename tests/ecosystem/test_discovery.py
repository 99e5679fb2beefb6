"""Entry-point discovery (``make_plugin_manager`` / ``load_entrypoint_plugins``) with small
throwaway distributions: a ``.dist-info`` and a module in a temporary directory on sys.path,
which is all ``importlib.metadata`` needs to see an installed distribution."""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pluggy
import pytest
from structlog.testing import capture_logs

from gws_outbound_plugin import (
    PROJECT_NAME,
    PluginLoadError,
    close_plugins,
    describe_plugins,
    hookimpl,
    load_entrypoint_plugins,
    make_plugin_manager,
    plugin_load_failures,
)

GOOD = """
from gws_outbound_plugin import hookimpl

SEEN = []

@hookimpl
def on_record_cancel_acknowledged(ack):
    SEEN.append(ack)

@hookimpl
def on_user_event(event):
    SEEN.append(event)
"""

Install = Callable[..., str]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(entry_point_name, source, dist="...")`` -> the module's (unique) name.

    Writes ``<module>.py`` and ``<dist>-1.0.dist-info/{METADATA,entry_points.txt}`` into a
    directory prepended to sys.path, announcing ``<entry_point_name> = <module>`` under the
    ``gws_outbound`` group.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install_one(
        name: str, source: str, *, dist: str | None = None, attribute: str | None = None
    ) -> str:
        module = f"gwsx_{name}_{uuid.uuid4().hex[:8]}"
        dist = dist or f"gwsx-{name}"
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8"
        )
        target = module if attribute is None else f"{module}:{attribute}"
        (info / "entry_points.txt").write_text(
            f"[{PROJECT_NAME}]\n{name} = {target}\n", encoding="utf-8"
        )
        modules.append(module)
        return module

    yield install_one
    for module in modules:
        sys.modules.pop(module, None)


def hook_plugin_names(pm: pluggy.PluginManager, hook: str) -> list[str]:
    return [impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls()]


def test_a_plugin_is_discovered_and_described(install):
    install("good", GOOD, dist="gwsx-good-dist")

    pm = make_plugin_manager(plugins=["good"])

    (info,) = describe_plugins(pm)
    assert info.name == "good"
    assert info.distribution == "gwsx-good-dist"
    assert info.version == "1.0"
    assert info.hooks == ("on_record_cancel_acknowledged", "on_user_event")
    assert hook_plugin_names(pm, "on_user_event") == ["good"]


def test_every_plugin_of_the_group_is_loaded_without_an_allow_list(install):
    install("first", GOOD)
    install("second", GOOD)

    loaded = load_entrypoint_plugins(make_plugin_manager(load_entrypoints=False), environ={})

    assert {"first", "second"} <= set(loaded)


def test_an_object_attribute_can_be_the_plugin(install):
    install(
        "instance",
        """
        from gws_outbound_plugin import hookimpl

        class Counter:
            def __init__(self):
                self.count = 0

            @hookimpl
            def on_user_event(self, event):
                self.count += 1

        plugin = Counter()
        """,
        attribute="plugin",
    )
    pm = make_plugin_manager(plugins=["instance"])
    assert type(pm.get_plugin("instance")).__name__ == "Counter"


def test_the_allow_list_comes_from_the_environment_or_the_argument(install):
    install("alpha", GOOD)
    install("beta", GOOD)

    from_env = make_plugin_manager(environ={"GWS_OUTBOUND_PLUGINS": " beta , nothing-else "})
    assert [info.name for info in describe_plugins(from_env)] == ["beta"]

    # The argument wins over the environment.
    from_argument = make_plugin_manager(plugins=["alpha"], environ={"GWS_OUTBOUND_PLUGINS": "beta"})
    assert [info.name for info in describe_plugins(from_argument)] == ["alpha"]


def test_blocked_plugins_are_not_loaded_and_stay_blocked(install):
    install("alpha", GOOD)
    install("beta", GOOD)
    install("gamma", GOOD)

    pm = make_plugin_manager(
        plugins=["alpha", "beta", "gamma"],
        disable=["alpha"],
        environ={"GWS_OUTBOUND_DISABLE_PLUGINS": "beta"},
    )

    assert [info.name for info in describe_plugins(pm)] == ["gamma"]
    assert pm.is_blocked("alpha")
    assert pm.is_blocked("beta")
    # A blocked name cannot be registered later either.
    assert pm.register(object(), name="alpha") is None
    assert not pm.has_plugin("alpha")


def test_a_plugin_that_fails_to_import_is_reported_by_name_and_skipped(install):
    install("good", GOOD)
    install("broken", "import gwsx_this_module_does_not_exist\n")

    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["good", "broken"])

    assert [info.name for info in describe_plugins(pm)] == ["good"]
    (failure,) = [entry for entry in logs if entry["event"] == "plugin_load_failed"]
    assert failure["plugin"] == "broken"
    assert failure["log_level"] == "warning"
    assert "ModuleNotFoundError" in failure["error"]
    assert "gwsx_this_module_does_not_exist" in failure["error"]


def test_a_plugin_that_raises_at_import_is_reported_by_name_and_skipped(install):
    install("angry", "raise ValueError('GWS_OUTBOUND_ANGRY_URL is not a URL')\n")

    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["angry"])

    assert describe_plugins(pm) == []
    (failure,) = [entry for entry in logs if entry["event"] == "plugin_load_failed"]
    assert failure["plugin"] == "angry"
    assert failure["error"] == "ValueError: GWS_OUTBOUND_ANGRY_URL is not a URL"


def test_strict_loading_stops_start_up_naming_the_plugin(install):
    install("good", GOOD)
    install("broken", "import gwsx_this_module_does_not_exist\n")

    with pytest.raises(PluginLoadError, match="'broken'") as caught:
        make_plugin_manager(plugins=["good", "broken"], strict=True)
    assert caught.value.plugin_name == "broken"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


MISSPELLED = """
from gws_outbound_plugin import hookimpl

@hookimpl
def on_record_cancel_acknowleged(ack):
    pass
"""


def test_a_misspelled_hook_name_is_caught(install):
    install("typo", MISSPELLED)

    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["typo"])

    assert not pm.has_plugin("typo")
    # Nothing is left half-registered: pluggy's check_pending finds no unknown hook.
    pm.check_pending()
    assert all(
        impl.plugin_name != "typo"
        for caller in vars(pm.hook).values()
        for impl in caller.get_hookimpls()
    )
    (failure,) = [entry for entry in logs if entry["event"] == "plugin_load_failed"]
    assert failure["plugin"] == "typo"
    assert "on_record_cancel_acknowleged" in failure["error"]

    with pytest.raises(PluginLoadError, match="on_record_cancel_acknowleged"):
        make_plugin_manager(plugins=["typo"], strict=True)


def test_a_misspelling_is_refused_when_registered_directly_too(install):
    # Registered by hand on the manager of make_plugin_manager(), not through an entry point.
    module = install("typo", MISSPELLED)
    pm = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(pluggy.PluginValidationError) as caught:
        pm.register(__import__(module), name="typo")
    message = str(caught.value)
    assert "\n" not in message
    assert "plugin 'typo': unknown hook 'on_record_cancel_acknowleged'" in message
    assert "did you mean 'on_record_cancel_acknowledged'?" in message
    assert f"{module}.py:4" in message  # where the function is defined
    assert not pm.has_plugin("typo")
    pm.check_pending()  # nothing half-registered


def test_an_argument_the_hook_does_not_have_fails_validation(install):
    install(
        "badarg",
        """
        from gws_outbound_plugin import hookimpl

        @hookimpl
        def on_user_event(evnt):
            pass
        """,
    )

    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["badarg"])

    assert not pm.has_plugin("badarg")
    assert hook_plugin_names(pm, "on_user_event") == []
    (failure,) = [entry for entry in logs if entry["event"] == "plugin_load_failed"]
    assert failure["plugin"] == "badarg"
    assert "evnt" in failure["error"]


def test_a_subset_of_the_arguments_is_enough(install):
    # Hook specs can grow: an implementation asks only for the arguments it needs.
    install(
        "subset",
        """
        from gws_outbound_plugin import hookimpl

        @hookimpl
        def on_cancel_failed():
            pass
        """,
    )
    pm = make_plugin_manager(plugins=["subset"], strict=True)
    assert hook_plugin_names(pm, "on_cancel_failed") == ["subset"]


def test_an_already_registered_name_is_not_loaded_twice(install):
    install("good", GOOD)
    pm = make_plugin_manager(load_entrypoints=False)
    mine = object()
    pm.register(mine, name="good")

    assert load_entrypoint_plugins(pm, plugins=["good"]) == []
    assert pm.get_plugin("good") is mine


def test_loading_is_logged(install):
    install("good", GOOD)
    with capture_logs() as logs:
        make_plugin_manager(plugins=["good"])
    (loaded,) = [entry for entry in logs if entry["event"] == "plugin_loaded"]
    assert loaded["plugin"] == "good"
    assert loaded["log_level"] == "info"


def test_an_async_on_cancel_requested_fails_validation(install):
    install(
        "asyncreq",
        """
        from gws_outbound_plugin import hookimpl

        @hookimpl
        async def on_cancel_requested(request):
            pass
        """,
    )
    with capture_logs():
        pm = make_plugin_manager(plugins=["asyncreq"])
    assert not pm.has_plugin("asyncreq")


def test_the_reference_plugins_are_discovered(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed.site))
    for name in ("gws_outbound_audit", "gws_outbound_webhook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("GWS_OUTBOUND_AUDIT_FILE", raising=False)
    monkeypatch.delenv("GWS_OUTBOUND_WEBHOOK_URL", raising=False)
    try:
        pm = make_plugin_manager(plugins=["audit", "webhook"], strict=True)
        infos = {info.name: info for info in describe_plugins(pm)}
        assert set(infos) == {"audit", "webhook"}
        assert infos["audit"].distribution == "gws-outbound-audit"
        assert infos["webhook"].distribution == "gws-outbound-webhook"
        assert infos["audit"].hooks == (
            "on_cancel_failed",
            "on_cancel_requested",
            "on_operation_acknowledged",
            "on_operation_failed",
            "on_operation_requested",
            "on_record_cancel_acknowledged",
        )
        assert infos["webhook"].hooks == (
            "on_cancel_failed",
            "on_operation_acknowledged",
            "on_operation_failed",
            "on_record_cancel_acknowledged",
        )
    finally:
        for name in ("gws_outbound_audit", "gws_outbound_webhook"):
            sys.modules.pop(name, None)


# -- every failure is kept, on one line, with where it happened --------------------------------


def test_every_failure_is_listed_with_its_location(install):
    good = install("good", GOOD)
    broken = install("broken", "X = 1\nimport gwsx_this_module_does_not_exist\n")
    syntax = install("syntax", "def on_user_event(:\n")
    install("typo", MISSPELLED)

    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["good", "broken", "syntax", "typo", "nothere"])

    assert [info.name for info in describe_plugins(pm)] == ["good"]
    failures = {failure.name: failure for failure in plugin_load_failures(pm)}
    assert set(failures) == {"broken", "syntax", "typo", "nothere"}
    assert failures["broken"].error.startswith("ModuleNotFoundError: No module named")
    assert failures["broken"].location is not None
    assert failures["broken"].location.endswith(f"{broken}.py:2")
    assert failures["broken"].entry_point == broken
    assert failures["broken"].distribution == "gwsx-broken 1.0"
    assert failures["syntax"].error.startswith("SyntaxError")
    assert failures["syntax"].location is not None
    assert failures["syntax"].location.endswith(f"{syntax}.py:1")
    assert "did you mean 'on_record_cancel_acknowledged'?" in failures["typo"].error
    assert failures["nothere"].error.startswith("not installed (installed: ")
    assert "good" in failures["nothere"].error and "broken" in failures["nothere"].error
    assert all("\n" not in failure.error for failure in failures.values())
    logged = {entry["plugin"]: entry for entry in logs if entry["event"] == "plugin_load_failed"}
    assert logged["broken"]["location"] == failures["broken"].location
    (missing,) = [entry for entry in logs if entry["event"] == "plugin_not_installed"]
    assert missing["plugin"] == "nothere"
    assert good not in {failure.name for failure in failures.values()}


def test_pluggys_argument_message_becomes_one_clear_line(install):
    install(
        "badarg",
        """
        from gws_outbound_plugin import hookimpl

        @hookimpl
        def on_user_event(evnt):
            pass
        """,
    )
    with capture_logs():
        pm = make_plugin_manager(plugins=["badarg"])
    (failure,) = plugin_load_failures(pm)
    assert "\n" not in failure.error
    assert failure.error.startswith("plugin 'badarg': on_user_event(evnt) asks for {'evnt'}")
    assert "which the hook on_user_event does not pass" in failure.error
    # Where, as for a misspelt hook (it was the one refusal without its file:line).
    assert re.search(r"\(at .*gwsx_badarg_\w+\.py:\d+\)$", failure.error), failure.error


def test_strict_loading_tries_every_plugin_and_names_them_all(install):
    install("good", GOOD)
    install("broken", "import gwsx_this_module_does_not_exist\n")
    install("typo", MISSPELLED)

    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(plugins=["good", "broken", "typo"], strict=True)
    message = str(caught.value)
    assert caught.value.plugin_name in ("broken", "typo")
    assert "and 1 more" in message
    assert "'broken'" in message and "'typo'" in message


def test_a_plugin_named_in_the_allow_list_but_not_installed_fails_strict_loading(install):
    install("good", GOOD)
    with pytest.raises(PluginLoadError, match=r"'godo' failed to load: not installed \(installed"):
        make_plugin_manager(plugins=["godo"], strict=True)


def test_functions_named_like_hooks_without_hookimpl_are_flagged(install):
    install(
        "unmarked",
        """
        from gws_outbound_plugin import hookimpl

        @hookimpl
        def on_user_event(event):
            pass

        def on_record_cancel_acknowledged(ack):
            pass

        def on_cancel_faild(failure):
            pass

        def on_something_else():
            pass
        """,
    )
    with capture_logs() as logs:
        pm = make_plugin_manager(plugins=["unmarked"], strict=True)

    (info,) = describe_plugins(pm)
    assert info.hooks == ("on_user_event",)
    assert len(info.warnings) == 2
    assert info.warnings[0].startswith(
        "on_cancel_faild looks like the hook 'on_cancel_failed' but has no @hookimpl"
    )
    assert info.warnings[1].startswith(
        "on_record_cancel_acknowledged is named like the hook but has no @hookimpl: it is never"
    )
    (warning,) = [entry for entry in logs if entry["event"] == "plugin_hook_not_marked"]
    assert warning["plugin"] == "unmarked"


def test_a_plain_pluggy_manager_is_validated_when_loading_too(install):
    install("typo", MISSPELLED)
    pm = pluggy.PluginManager(PROJECT_NAME)
    from gws_outbound_plugin import hookspecs

    pm.add_hookspecs(hookspecs)
    with capture_logs():
        assert load_entrypoint_plugins(pm, plugins=["typo"]) == []
    assert not pm.has_plugin("typo")
    (failure,) = plugin_load_failures(pm)
    assert "unknown hook" in failure.error


# -- close_plugins --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_close_plugins_awaits_every_aclose_and_survives_broken_ones():
    closed: list[str] = []

    class Closing:
        def __init__(self, name: str, behaviour: str = "ok") -> None:
            self.name = name
            self.behaviour = behaviour

        @hookimpl
        def on_user_event(self, event):
            pass

        async def aclose(self) -> None:
            if self.behaviour == "raise":
                raise RuntimeError("cannot close")
            if self.behaviour == "hang":
                await anyio.sleep_forever()
            closed.append(self.name)

    class SyncClose:
        def aclose(self) -> None:  # not a coroutine function: not called
            closed.append("sync")

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Closing("first"), name="first")
    pm.register(Closing("broken", "raise"), name="broken")
    pm.register(Closing("stuck", "hang"), name="stuck")
    pm.register(SyncClose(), name="sync")
    pm.register(Closing("last"), name="last")

    with capture_logs() as logs:
        failed = await close_plugins(pm, timeout=0.05)

    assert closed == ["last", "first"]  # most recently registered first
    assert failed == ["stuck", "broken"]
    problems = {entry["plugin"]: entry for entry in logs if entry["event"] == "plugin_close_failed"}
    assert problems["broken"]["error"] == "RuntimeError: cannot close"
    assert "0.05" in problems["stuck"]["error"]


def test_a_misspelt_name_in_the_block_list_is_logged_with_the_one_meant(install):
    """``GWS_OUTBOUND_DISABLE_PLUGINS=webhok``: the webhook plugin the host meant to keep out
    was loaded without a word (a misspelt *variable* was reported, a misspelt *name* in it
    not). A name unlike any installed plugin's stays quiet: a block list shared by several
    machines may name plugins not installed here."""
    install("sentinel", GOOD)
    install("gamma", GOOD)

    with capture_logs() as logs:
        pm = make_plugin_manager(
            disable=["gama"],
            environ={"GWS_OUTBOUND_DISABLE_PLUGINS": "sentinal,not-installed-anywhere"},
        )

    assert pm.has_plugin("sentinel") and pm.has_plugin("gamma")  # nothing guessed, nothing lost
    misspelt = [
        (entry["setting"], entry["plugin"], entry["meant"], entry["log_level"])
        for entry in logs
        if entry["event"] == "plugin_block_misspelt"
    ]
    assert misspelt == [
        ("disable=", "gama", "gamma", "warning"),
        ("GWS_OUTBOUND_DISABLE_PLUGINS", "sentinal", "sentinel", "warning"),
    ]
    assert plugin_load_failures(pm) == []  # not a failure: strict loading does not stop
