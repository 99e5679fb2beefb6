"""``gws-outbound new-plugin``: a plugin project from the template."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._template import TemplateError, write_plugin
from ._common import EXIT_OK, _Context, _UsageError
from ._parser import _version


def _run_new_plugin(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        root = write_plugin(args.name, Path(args.directory), version=_version())
    except TemplateError as error:
        raise _UsageError(str(error)) from None
    ctx.out(f"wrote {root}")
    ctx.note(f"next: cd {root} && pip install -e '.[test]' && pytest")
    return EXIT_OK
