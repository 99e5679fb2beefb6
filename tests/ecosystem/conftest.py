"""Fixtures of the ecosystem tests: the testing kit; the reference plugins and the tutorial's
plugin built and installed with pip into a temporary directory; the command line run
in-process (``cli``) against a simulator on a thread of its own (``threaded_gws``); and the
helpers of the tests that start a subprocess."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from anyio.from_thread import start_blocking_portal

from gws_outbound_plugin.simulator import GWSSimulator

# The testing kit's fixtures and hooks, as a plugin author gets them with
# ``pytest_plugins = ["gws_outbound_plugin.testing"]`` (which only a top-level conftest may
# declare).
from gws_outbound_plugin.testing import gws_config as gws_config
from gws_outbound_plugin.testing import gws_hook_failures as gws_hook_failures
from gws_outbound_plugin.testing import gws_hook_recorder as gws_hook_recorder
from gws_outbound_plugin.testing import gws_outbound as gws_outbound
from gws_outbound_plugin.testing import gws_plugin_manager as gws_plugin_manager
from gws_outbound_plugin.testing import gws_request_factory as gws_request_factory
from gws_outbound_plugin.testing import gws_simulator as gws_simulator
from gws_outbound_plugin.testing import pytest_configure as pytest_configure
from gws_outbound_plugin.testing import pytest_runtest_makereport as pytest_runtest_makereport
from gws_outbound_plugin.testing import pytest_runtest_setup as pytest_runtest_setup
from gws_outbound_plugin.testing import wait_for_hook as wait_for_hook

from ._tutorial import extract_tutorial

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"
REFERENCE_PLUGINS = ("gws-outbound-audit", "gws-outbound-webhook")
CLI = Path(sys.executable).with_name("gws-outbound")


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess: the current one without GWS_* settings from the
    developer's shell (nor pytest's, nor a PYTHONPATH), unbuffered, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GWS_", "PYTEST_")) and key != "PYTHONPATH"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_pytest(
    directory: Path,
    *options: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> str:
    """Run pytest in ``directory`` in a subprocess, as a plugin's author would (``-q``, no
    cache), assert it passed, and return its summary line."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=directory,
        env=dict(env) if env is not None else base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary: str = result.stdout.strip().splitlines()[-1]
    return summary


def make_site(tmp_path: Path, plugins: Mapping[str, str]) -> Path:
    """A directory for PYTHONPATH with one throwaway distribution per plugin: module
    ``gwsx_<name>``, announced as entry point ``<name>`` of the gws_outbound group."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    for name, source in plugins.items():
        (site / f"gwsx_{name}.py").write_text(source, encoding="utf-8")
        info = site / f"gwsx_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: gwsx-{name}\nVersion: 1.0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[gws_outbound]\n{name} = gwsx_{name}\n", encoding="utf-8"
        )
    return site


class Installed:
    """Where the plugins were installed, and how to run Python with them importable."""

    def __init__(self, site: Path, tutorial: Path) -> None:
        self.site = site
        self.tutorial = tutorial

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The current environment, with the installed plugins first on the path and no
        GWS_* / GWS_OUTBOUND_* settings leaking in from the developer's shell."""
        return base_env({"PYTHONPATH": str(self.site), **(extra or {})})


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """pip-install the reference plugins and the tutorial's plugin from source, once: built as
    a user's pip builds them (``make install`` installs the reference plugins editable)."""
    base = tmp_path_factory.mktemp("plugins")
    tutorial = extract_tutorial(ROOT / "docs" / "writing-a-plugin.md", base / "tutorial")
    # Build from copies: setuptools leaves build/ and *.egg-info next to the sources.
    sources = [
        shutil.copytree(
            HOOKS / name,
            base / "sources" / name,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
        )
        for name in REFERENCE_PLUGINS
    ]
    site = base / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-input",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        str(site),
        *map(str, sources),
        str(tutorial.project),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"pip install failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return Installed(site, tutorial.project)


# -- the CLI in-process: `main(argv)` against a simulator on a thread of its own --------------


class ThreadedSimulator:
    """A :class:`GWSSimulator` on its own event-loop thread, so that ``main(argv)`` (which
    runs its own loop) can be called on the test's thread. ``call`` runs a function on the
    simulator's loop, as its methods require."""

    def __init__(self, portal: Any, simulator: GWSSimulator) -> None:
        self.portal = portal
        self.simulator = simulator

    @property
    def base_url(self) -> str:
        return self.simulator.base_url

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(lambda: function(*args))

    def read(self, function: Callable[[GWSSimulator], Any]) -> Any:
        """``function(simulator)`` on the simulator's loop: its state, read between runs."""
        return self.portal.call(lambda: function(self.simulator))


@pytest.fixture
def threaded_gws() -> Iterator[ThreadedSimulator]:
    with start_blocking_portal(backend="asyncio") as portal:
        simulator = GWSSimulator(connect_timeout=1.0)
        with portal.wrap_async_context_manager(simulator):
            yield ThreadedSimulator(portal, simulator)


def _forget_plugin_modules() -> None:
    """Drop the modules of the ``gws_outbound`` entry points from ``sys.modules``."""
    roots = {
        entry_point.module.partition(".")[0]
        for entry_point in importlib.metadata.entry_points(group="gws_outbound")
    }
    roots.discard("gws_outbound_plugin")
    for name in [name for name in sys.modules if name.partition(".")[0] in roots]:
        del sys.modules[name]


@dataclasses.dataclass
class CliResult:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Cli:
    """Runs ``gws-outbound`` in-process through ``main(argv)``: stdout and stderr as the
    user sees them (capsys), the environment of the test (no GWS_* from the developer's
    shell, no installed plugin unless asked)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self._monkeypatch = monkeypatch
        self._capsys = capsys
        for key in list(os.environ):
            if key.startswith("GWS_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("GWS_OUTBOUND_PLUGINS", "")
        # argparse wraps help to the terminal's width: the same as in a pipe, whatever the
        # terminal the tests run on.
        monkeypatch.setenv("COLUMNS", "80")
        # Never prompt on the developer's terminal (/dev/tty) in a test.
        monkeypatch.setattr(
            "gws_outbound_plugin.cli._environment._has_controlling_terminal", lambda: False
        )

    def env(self, **values: str) -> None:
        for key, value in values.items():
            self._monkeypatch.setenv(key, value)

    def unset(self, *keys: str) -> None:
        for key in keys:
            self._monkeypatch.delenv(key, raising=False)

    def plugins_from(self, site: Installed | Path) -> None:
        """Make the plugins installed in ``site`` visible to entry-point discovery, as
        ``PYTHONPATH`` does for a subprocess."""
        path = site.site if isinstance(site, Installed) else site
        self._monkeypatch.syspath_prepend(str(path))

    def connect(self, gws: ThreadedSimulator, **extra: str) -> None:
        settings = {
            "GWS_BASE_URL": gws.base_url,
            "GWS_USERNAME": "agent1",
            "GWS_PASSWORD": "secret",
            "GWS_ACK_TIMEOUT": "3",
        }
        self.env(**{**settings, **extra})

    def __call__(self, *argv: str, stdin: str = "") -> CliResult:
        return self.with_stdin(io.StringIO(stdin), *argv)

    def with_stdin(self, stdin: io.StringIO, *argv: str) -> CliResult:
        from gws_outbound_plugin._cli import main

        self._capsys.readouterr()
        self._monkeypatch.setattr(sys, "stdin", stdin)
        # Each run imports its plugins afresh, as a new process would: the reference plugins
        # read their configuration from the environment when imported.
        _forget_plugin_modules()
        try:
            status = main(list(argv))
        except SystemExit as exit_:  # argparse: --help, usage errors
            status = exit_.code if isinstance(exit_.code, int) else 2
        finally:
            structlog.reset_defaults()
            _forget_plugin_modules()
        captured = self._capsys.readouterr()
        return CliResult(status, captured.out, captured.err)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    yield Cli(monkeypatch, capsys)
    structlog.reset_defaults()
