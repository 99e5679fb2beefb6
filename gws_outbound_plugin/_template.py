"""``gws-outbound new-plugin NAME``: a new plugin project from a template.

It writes a package with its entry point, one hook and a passing test on the testing kit
(``gws_outbound_plugin.testing``), laid out as docs/writing-a-plugin.md explains.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import Final

__all__ = ["TemplateError", "compatible_requirement", "plugin_names", "write_plugin"]

_NAME: Final = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class TemplateError(ValueError):
    """The name or the target directory cannot be used (nothing was written)."""


def plugin_names(name: str) -> tuple[str, str, str]:
    """(entry-point name, distribution name, package name) for ``name`` (``my-plugin`` ->
    ``my-plugin``, ``gws-outbound-my-plugin``, ``gws_outbound_my_plugin``)."""
    if not _NAME.match(name):
        raise TemplateError(
            f"{name!r} is not a plugin name: lower-case letters, digits, '-' or '_', "
            "starting with a letter (e.g. tally, call-log)"
        )
    bare = name.removeprefix("gws-outbound-").removeprefix("gws_outbound_")
    package = "gws_outbound_" + bare.replace("-", "_")
    if keyword.iskeyword(bare):
        raise TemplateError(f"{name!r} is a Python keyword")
    return bare, "gws-outbound-" + bare.replace("_", "-"), package


def compatible_requirement(version: str) -> str:
    """The versions of gws-outbound-plugin a plugin written against ``version`` declares it
    works with, as the tutorial and the reference plugins do: that minor release on while the
    major is 0 (``0.1.0`` -> ``>=0.1,<0.2``), that major release on after. A pre-release or
    development build is itself the lower bound (``0.2.0rc1`` -> ``>=0.2.0rc1,<0.3``): it
    sorts before ``0.2``, and pip takes a pre-release only where one is named."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        return f">={version}"
    major, minor = int(match[1]), int(match[2])
    rest = re.sub(r"[._-]?post\d*", "", version.split("+", 1)[0][match.end() :].lower())
    lower = version if re.search(r"[a-z]", rest) else f"{major}.{minor}"
    if major == 0:
        return f">={lower},<0.{minor + 1}"
    return f">={lower},<{major + 1}"


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = "A gws_outbound plugin: counts acknowledged outbound operations"
requires-python = ">=3.11"
dependencies = ["gws-outbound-plugin{requirement}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# What makes it a plugin: hosts find `plugin` under the name `{entry}`.
[project.entry-points.gws_outbound]
{entry} = "{package}:plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
filterwarnings = ["error"]
"""

_MODULE = '''\
"""{distribution}: a gws_outbound plugin.

Installed, hosts load it from the ``gws_outbound`` entry-point group as ``{entry}``. Without
installing it: ``gws-outbound tail --plugin {package}:plugin`` (with ``src`` on
``PYTHONPATH``).
Every hook and payload: docs/hooks.md of gws-outbound-plugin.
"""

from __future__ import annotations

from collections import Counter

from gws_outbound_plugin import OperationAck, get_logger, hookimpl

__all__ = ["Plugin", "plugin"]

logger = get_logger(__name__)


class Plugin:
    """Counts acknowledged operations by their GWS operationName."""

    def __init__(self) -> None:
        self.acknowledged: Counter[str] = Counter()

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        # Called once per acknowledged request of any operation (cancels included), on the
        # plugin core's event loop: keep it quick, or make it `async def`.
        self.acknowledged[ack.operation] += 1
        logger.info("{event}", operation=ack.operation, record=ack.record_handle)


plugin = Plugin()
"""The instance the ``{entry}`` entry point registers."""
'''

_CONFTEST = """\
# The testing kit: a GWS simulator, a started plugin core, request factories, and a check
# that fails a test whose hook raised or timed out.
pytest_plugins = ["gws_outbound_plugin.testing"]
"""

_TEST = """\
import pytest

from {package} import Plugin

pytestmark = pytest.mark.anyio  # the kit's fixtures are async


@pytest.fixture
def counter(gws_plugin_manager):
    counter = Plugin()
    gws_plugin_manager.register(counter, name="{entry}")
    return counter


async def test_counts_acknowledged_operations(
    counter, gws_outbound, gws_request_factory, wait_for_hook
):
    await gws_outbound.cancel(gws_request_factory())
    await gws_outbound.perform(gws_request_factory.reject())
    await wait_for_hook(
        "on_operation_acknowledged", lambda call: call.ack.operation == "RejectRecord"
    )

    assert counter.acknowledged == {{"CancelRecord": 1, "RejectRecord": 1}}
"""

_README = """\
# {distribution}

A [gws-outbound-plugin](https://pypi.org/project/gws-outbound-plugin/) plugin, entry point
`{entry}`.

```console
$ pip install -e '.[test]'
$ pytest                                      # the tests, on the embedded GWS simulator
$ gws-outbound plugins                        # lists "{entry}" and its hook
$ PYTHONPATH=src gws-outbound tail --plugin {package}:plugin   # without installing it
```
"""


def write_plugin(name: str, directory: Path, *, version: str) -> Path:
    """Write the project of plugin ``name`` into ``directory/<distribution>`` and return
    that folder.

    ``directory`` is created (with its parents) when it does not exist.

    :raises TemplateError: ``name`` is not usable, the folder exists already, or
        ``directory`` cannot be one.
    """
    entry, distribution, package = plugin_names(name)
    root = directory / distribution
    if root.exists():
        raise TemplateError(f"{root} exists already: nothing was written")
    if directory.exists() and not directory.is_dir():
        raise TemplateError(f"{directory} is a file, not a directory: nothing was written")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TemplateError(f"cannot create {directory}: {reason}: nothing was written") from None
    values = {
        "entry": entry,
        "distribution": distribution,
        "package": package,
        "event": entry.replace("-", "_") + "_acknowledged",  # a log event name: one word
    }
    files = {
        "pyproject.toml": _PYPROJECT.format(requirement=compatible_requirement(version), **values),
        "README.md": _README.format(**values),
        f"src/{package}/__init__.py": _MODULE.format(**values),
        f"src/{package}/py.typed": "",
        "tests/conftest.py": _CONFTEST,
        f"tests/test_{package.removeprefix('gws_outbound_')}.py": _TEST.format(**values),
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
