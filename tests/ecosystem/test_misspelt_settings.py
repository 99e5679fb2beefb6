"""A misspelt variable of the plugin manager (``GWS_OUTBOUND_PLUGIN=audit``, no S) was
ignored without a word: every installed plugin loaded, the webhook too. GWSConfig leaves
``GWS_OUTBOUND_*`` to the manager, so nothing said so. Now it is a load failure naming the
variable meant: logged, listed by ``gws-outbound plugins`` (exit 1), raised when strict."""

from __future__ import annotations

import pytest

from gws_outbound_plugin import PluginLoadError, make_plugin_manager, plugin_load_failures

from .conftest import Cli


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "GWS_OUTBOUND_PLUGIN",
            "not a setting (did you mean GWS_OUTBOUND_PLUGINS?): ignored, so every installed "
            "plugin was loaded",
        ),
        (
            "GWS_OUTBOUND_DISABLED_PLUGINS",
            "not a setting (did you mean GWS_OUTBOUND_DISABLE_PLUGINS?): ignored, so it blocked "
            "none",
        ),
    ],
)
def test_a_misspelt_manager_variable_is_a_load_failure(variable, message):
    pm = make_plugin_manager(environ={variable: "audit"})  # every installed plugin loads

    (failure,) = plugin_load_failures(pm)
    assert (failure.name, failure.error, failure.entry_point) == (variable, message, None)


@pytest.mark.parametrize(
    ("keywords", "environ", "chosen_by"),
    [
        ({"plugins": []}, {}, "plugins="),
        ({}, {"GWS_OUTBOUND_PLUGINS": ""}, "GWS_OUTBOUND_PLUGINS"),
    ],
)
def test_a_misspelt_allow_list_says_what_chose_the_plugins(keywords, environ, chosen_by):
    """With plugins= given, or GWS_OUTBOUND_PLUGINS set as well, the misspelt variable is
    ignored all the same, but not every installed plugin was loaded (none was, here): the
    failure said they all were."""
    pm = make_plugin_manager(**keywords, environ={**environ, "GWS_OUTBOUND_PLUGIN": "audit"})

    (failure,) = plugin_load_failures(pm)
    assert failure.error == (
        "not a setting (did you mean GWS_OUTBOUND_PLUGINS?): ignored (the plugins loaded are "
        f"those {chosen_by} names)"
    )
    assert [name for name, _ in pm.list_name_plugin() if name in ("audit", "webhook")] == []


def test_strict_loading_raises_naming_the_variable_not_a_plugin():
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(plugins=[], strict=True, environ={"GWS_OUTBOUND_PLUGIN": "audit"})

    assert str(caught.value).startswith(
        "GWS_OUTBOUND_PLUGIN: not a setting (did you mean GWS_OUTBOUND_PLUGINS?)"
    )


def test_a_plugins_own_variables_are_not_taken_for_the_managers():
    environ = {
        "GWS_OUTBOUND_PLUGINS": "",
        "GWS_OUTBOUND_TALLY_PLUGINS": "x",  # a plugin "tally"'s own setting
        "GWS_OUTBOUND_AUDIT_FILE": "/tmp/audit.jsonl",
    }
    assert plugin_load_failures(make_plugin_manager(plugins=[], environ=environ)) == []


def test_gws_outbound_plugins_lists_it_as_not_a_setting(cli: Cli):
    cli.env(GWS_OUTBOUND_PLUGIN="audit")
    result = cli("plugins")

    assert result.status == 1
    assert "GWS_OUTBOUND_PLUGIN  NOT A SETTING\n" in result.out
    assert result.err == "gws-outbound plugins: error: not a setting: GWS_OUTBOUND_PLUGIN\n"


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        (
            {"plugins": "audit"},
            "plugins= takes a list of plugin names, not the string 'audit': write "
            "plugins=['audit']",
        ),
        (
            {"disable": "webhook,audit"},
            "disable= takes a list of plugin names, not the string 'webhook,audit': write "
            "disable=['webhook', 'audit']",
        ),
    ],
)
def test_a_string_for_a_list_of_names_is_refused(keywords, message):
    """plugins="audit" was five one-letter names ('a', 'u', ... not installed) and audit was
    not loaded; disable="webhook" blocked five letters and loaded the webhook."""
    with pytest.raises(TypeError) as caught:
        make_plugin_manager(environ={}, **keywords)

    assert str(caught.value) == message


def test_a_plugin_announced_under_a_near_miss_group_is_pointed_out(cli: Cli, tmp_path):
    """[project.entry-points.gws-outbound] (a hyphen): installed, listed nowhere, loaded by
    no host, and `gws-outbound plugins` said only "no plugin installed"."""
    site = tmp_path / "site"
    info = site / "gwsx_hyphen-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "gwsx_hyphen.py").write_text("", encoding="utf-8")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gwsx-hyphen\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[gws-outbound]\nhyphen = gwsx_hyphen\n")
    cli.plugins_from(site)

    result = cli("plugins", "--strict")

    assert (
        "gws-outbound plugins: warning: gwsx-hyphen 1.0 announces 'hyphen' under the "
        "entry-point group 'gws-outbound', not 'gws_outbound', so no host finds it: in its "
        "pyproject.toml, [project.entry-points.gws_outbound]"
    ) in result.err.splitlines()
    assert result.status == 1  # a warning, under --strict
