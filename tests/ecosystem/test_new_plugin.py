"""``gws-outbound new-plugin NAME``: a plugin project whose generated test passes (run here,
so in ``make test``)."""

from __future__ import annotations

import tomllib

import pytest

from .conftest import Cli, run_pytest


def test_the_generated_plugin_passes_its_own_test(cli: Cli, tmp_path):
    result = cli("new-plugin", "call-log", "--directory", str(tmp_path))

    assert result.status == 0, result.err
    root = tmp_path / "gws-outbound-call-log"
    assert result.out == f"wrote {root}\n"
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "gws-outbound-call-log"
    assert project["project"]["entry-points"]["gws_outbound"] == {
        "call-log": "gws_outbound_call_log:plugin"
    }
    module = (root / "src" / "gws_outbound_call_log" / "__init__.py").read_text()
    assert 'logger.info("call_log_acknowledged",' in module  # an event name is one word
    assert (
        (root / "tests" / "conftest.py")
        .read_text()
        .strip()
        .endswith('pytest_plugins = ["gws_outbound_plugin.testing"]')
    )

    assert run_pytest(root, "-p", "no:randomly", timeout=180).startswith("1 passed")


def test_the_generated_plugin_is_one_the_cli_can_load(cli: Cli, tmp_path, monkeypatch):
    cli("new-plugin", "call-log", "--directory", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "gws-outbound-call-log" / "src"))
    listing = cli("plugins", "--plugin", "gws_outbound_call_log:plugin")

    assert listing.status == 0, listing.err
    assert "gws_outbound_call_log  [(no distribution)]" in listing.lines
    assert "    on_operation_acknowledged" in listing.lines


@pytest.mark.parametrize(
    ("name", "message"),
    [("Call Log", "is not a plugin name"), ("class", "is a Python keyword")],
)
def test_an_unusable_name_is_a_usage_error(cli: Cli, tmp_path, name, message):
    result = cli("new-plugin", name, "--directory", str(tmp_path))

    assert result.status == 2
    assert result.err.startswith("gws-outbound new-plugin: error: ")
    assert message in result.err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_left_alone(cli: Cli, tmp_path):
    (tmp_path / "gws-outbound-tally").mkdir()
    result = cli("new-plugin", "tally", "--directory", str(tmp_path))

    assert result.status == 2
    assert "exists already: nothing was written" in result.err
    assert list((tmp_path / "gws-outbound-tally").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("seen", "a plugin named 'seen' is installed already (gwsx-seen 1.0)"),
        ("gws-outbound-twin", "gws-outbound-twin 2.0 is installed already: installing the new "),
    ],
    ids=["entry-point", "distribution"],
)
def test_a_name_an_installed_plugin_has_is_refused(cli: Cli, tmp_path, name, message):
    """``new-plugin audit`` wrote gws-outbound-audit, the reference plugin's own distribution:
    pip install -e of it replaced the installed one, or hosts found two plugins of one name."""
    from .conftest import make_site

    site = make_site(tmp_path, {"seen": "\n"})
    twin = site / "gws_outbound_twin-2.0.dist-info"
    twin.mkdir()
    (twin / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gws-outbound-twin\nVersion: 2.0\n", encoding="utf-8"
    )
    cli.plugins_from(site)
    target = tmp_path / "projects"
    target.mkdir()
    result = cli("new-plugin", name, "--directory", str(target))

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert line.startswith(f"gws-outbound new-plugin: error: {message}")
    assert line.endswith("; choose another name: nothing was written")
    assert list(target.iterdir()) == []


def test_a_directory_that_does_not_exist_yet_is_created(cli: Cli, tmp_path):
    target = tmp_path / "projects" / "mine"
    result = cli("new-plugin", "call-log", "--directory", str(target))

    assert result.status == 0, result.err
    assert result.out == f"wrote {target / 'gws-outbound-call-log'}\n"
    assert (target / "gws-outbound-call-log" / "pyproject.toml").is_file()


def test_a_directory_that_is_a_file_is_refused_in_one_line(cli: Cli, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n", encoding="utf-8")
    result = cli("new-plugin", "call-log", "--directory", str(target))

    assert result.status == 2
    assert result.err == (
        f"gws-outbound new-plugin: error: {target} is a file, not a directory: "
        "nothing was written\n"
    )
    assert target.read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize(
    "version", ["0.1.0", "0.2.0rc1", "0.3.0.dev4", "0.1.2", "1.4.2", "1.0.0.post1", "2.0.0b2"]
)
def test_the_generated_plugin_accepts_the_version_it_was_written_against(tmp_path, version):
    """``new-plugin`` run with a pre-release or development build (``0.2.0rc1``, a checkout's
    ``0.3.0.dev4``) wrote ``gws-outbound-plugin>=0.2,<0.3``, which that very version does not
    satisfy (a pre-release sorts before its release): installing the new plugin made pip
    look for another gws-outbound-plugin, or fail. The range written always admits the
    version it was written against, as pip reads it (a pre-release only when named)."""
    from packaging.specifiers import SpecifierSet

    from gws_outbound_plugin._template import write_plugin

    root = write_plugin("tally", tmp_path, version=version)
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    (dependency,) = project["project"]["dependencies"]
    assert dependency.startswith("gws-outbound-plugin")
    allowed = SpecifierSet(dependency.removeprefix("gws-outbound-plugin"))
    assert allowed.contains(version), dependency
    major, minor = (int(part) for part in version.split(".")[:2])
    # ... and not the next release that may break it.
    assert not allowed.contains(f"0.{minor + 1}.0" if major == 0 else f"{major + 1}.0.0")
