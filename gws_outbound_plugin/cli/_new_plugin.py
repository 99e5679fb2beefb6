"""``gws-outbound new-plugin``: a plugin project from the template."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from .._template import TemplateError, plugin_names, write_plugin
from ..hookspecs import PROJECT_NAME
from ._common import EXIT_OK, _Context, _UsageError
from ._parser import _version


def _taken(name: str) -> str | None:
    """Why ``name`` would clash with what is installed: a plugin of that entry-point name
    (hosts would find two of one name) or a distribution of the project's name (``pip
    install -e`` of the new project would replace it); ``None`` when it is free."""
    entry, distribution, _ = plugin_names(name)
    for point in metadata.entry_points(group=PROJECT_NAME):
        if point.name == entry:
            owner = f" ({point.dist.name} {point.dist.version})" if point.dist else ""
            return f"a plugin named {entry!r} is installed already{owner}"
    try:
        installed = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    return (
        f"{distribution} {installed.version} is installed already: installing the new "
        "project would replace it"
    )


def _run_new_plugin(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        clash = _taken(args.name)
        if clash is not None:
            raise _UsageError(f"{clash}; choose another name: nothing was written")
        root = write_plugin(args.name, Path(args.directory), version=_version())
    except TemplateError as error:
        raise _UsageError(str(error)) from None
    ctx.out(f"wrote {root}")
    ctx.note(f"next: cd {root} && pip install -e '.[test]' && pytest")
    return EXIT_OK
