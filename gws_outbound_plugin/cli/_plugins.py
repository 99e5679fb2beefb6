"""``gws-outbound plugins`` and the one-off ``--plugin`` loading the other commands share."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from .._dispatcher import HookFailure, watch_hook_failures
from .._hints import closest
from .._manager import (
    ENV_ALLOW,
    ENV_DISABLE,
    PluginInfo,
    PluginLoadFailure,
    _names,
    describe_plugins,
    make_plugin_manager,
    misspelt_blocks,
    plugin_load_failures,
)
from ..hookspecs import PROJECT_NAME
from ._common import EXIT_FAILED, EXIT_OK, _Context, _isatty, _UsageError


def _import_plugin(spec: str) -> tuple[str, object]:
    """What a ``--plugin`` names: a ``.py`` file (by path) or an importable module, or, with
    ``:ATTR`` as in an entry point, that attribute of it (``package:plugin``)."""
    where, colon, attribute = spec.rpartition(":")
    if colon and attribute.isidentifier() and where and not where.endswith(("\\", "/")):
        name, module = _import_module_or_file(where)
        if not hasattr(module, attribute):
            raise _UsageError(f"--plugin {spec}: {where} has no attribute {attribute!r}")
        return name, getattr(module, attribute)
    return _import_module_or_file(spec)


def _import_module_or_file(spec: str) -> tuple[str, ModuleType]:
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec or path.is_file():
        if not path.is_file():
            raise _UsageError(f"--plugin {spec}: no such file")
        name = path.stem
        found = importlib.util.spec_from_file_location(name, path)
        if found is None or found.loader is None:
            raise _UsageError(f"--plugin {spec}: not a Python module")
        module = importlib.util.module_from_spec(found)
        sys.modules[name] = module  # dataclasses, pickling... look modules up by name
        try:
            found.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return name, module
    return spec, importlib.import_module(spec)


def _load_one_off_plugins(pm: Any, specs: Sequence[str], ctx: _Context) -> None:
    """Register each ``--plugin``; any problem is a usage error (exit 2, nothing sent). The
    installed plugin itself (a project installed with ``pip install -e .``, then tried with
    ``--plugin``) is loaded once; another plugin of an installed one's name is refused with
    how to load it instead."""
    for spec in specs:
        try:
            name, module = _import_plugin(spec)
            if pm.is_registered(module):
                ctx.note(
                    f"--plugin {spec} is the installed plugin {pm.get_name(module)!r}: loaded once"
                )
                continue
            if pm.has_plugin(name):
                raise _UsageError(
                    f"--plugin {spec}: a plugin named {name!r} is installed and loaded "
                    f"already: set {ENV_DISABLE}={name} to load this one instead"
                )
            pm.register(module, name=name)
            if isinstance(module, ModuleType) and not pm.get_hookcallers(module):
                try:
                    _hooks_elsewhere(pm, spec, module)
                except _UsageError:
                    pm.unregister(module)
                    raise
                ctx.note(
                    f"warning: --plugin {spec} implements no hook (no @hookimpl function or "
                    "object in it): it will hear nothing"
                )
        except _UsageError:
            raise
        except pluggy.PluginValidationError as error:
            raise _UsageError(f"--plugin {spec}: {' '.join(str(error).split())}") from None
        except Exception as error:
            where = _plugin_error_location(error, spec) or _not_on_the_path(error, spec)
            raise _UsageError(
                f"--plugin {spec}: cannot load it: {type(error).__name__}: "
                f"{' '.join(str(error).split())}{where}"
            ) from None


def _implements_hooks(pm: Any, value: object) -> bool:
    return any(
        pm.parse_hookimpl_opts(value, hook) is not None
        for hook in vars(pm.hook)
        if not hook.startswith("_")
    )


def _hooks_elsewhere(pm: Any, spec: str, module: ModuleType) -> None:
    """A module with no hook of its own, given to ``--plugin`` by its file or name, whose
    hooks are on an object in it (``plugin = Watch()``, the layout of the tutorial and of
    ``new-plugin``) or only on a class: a usage error naming what to give instead."""
    objects: list[tuple[str, object]] = []
    classes: list[tuple[str, type]] = []
    for attribute, value in vars(module).items():
        if attribute.startswith("_") or isinstance(value, ModuleType):
            continue
        kind = value if isinstance(value, type) else type(value)
        if getattr(kind, "__module__", None) != module.__name__ or not _implements_hooks(pm, value):
            continue
        (classes if isinstance(value, type) else objects).append((attribute, value))
    own = "it has no @hookimpl function of its own; its hooks are on"
    if objects:
        attribute, value = objects[0]
        raise _UsageError(
            f"--plugin {spec}: {own} the object {attribute!r} (a {type(value).__name__}): "
            f"--plugin {spec}:{attribute}"
        )
    if classes:
        name = classes[0][1].__name__
        raise _UsageError(
            f"--plugin {spec}: {own} the class {name}: add an instance to it "
            f"(plugin = {name}()) and give --plugin {spec}:plugin"
        )


def _not_on_the_path(error: BaseException, spec: str) -> str:
    """What to do when the module a ``--plugin`` names is not importable but is right here
    (``./my_plugin.py``, or ``src/my_plugin/`` of a project): the ``gws-outbound`` script,
    unlike ``python -m``, does not put the current folder on the Python path."""
    module = spec.rpartition(":")[0] if ":" in spec else spec
    top = module.split(".", 1)[0]
    if not isinstance(error, ModuleNotFoundError) or error.name != top or not top.isidentifier():
        return ""
    if Path(f"{top}.py").is_file() or Path(top, "__init__.py").is_file():
        here = f"{top}.py" if Path(f"{top}.py").is_file() else f"{top}/"
        instead = f", or give the file: --plugin ./{top}.py" if module == spec == top else ""
        return (
            f" (./{here} is in this folder, which is not on the Python path: "
            f"run with PYTHONPATH=.{instead})"
        )
    if Path("src", top).is_dir() or Path("src", f"{top}.py").is_file():
        return (
            f" (src/{top} is in this folder but not on the Python path: run with "
            "PYTHONPATH=src, or install the project with pip install -e .)"
        )
    return ""


def _plugin_error_location(error: BaseException, spec: str) -> str:
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f" (at {error.filename}:{error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    own = {str(Path(__file__).resolve())}
    mine = [frame for frame in frames if str(Path(frame.filename).resolve()) not in own]
    if not mine or mine[-1].filename.startswith("<"):
        return ""
    return f" (at {mine[-1].filename}:{mine[-1].lineno})"


def _is_variable(failure: PluginLoadFailure) -> bool:
    """A failure that is a misspelt variable of the plugin manager (``GWS_OUTBOUND_PLUGIN``),
    not a plugin."""
    return failure.entry_point is None and failure.name.startswith("GWS_OUTBOUND_")


def _report_load_failures(pm: Any, ctx: _Context) -> None:
    """One line per installed plugin that failed to load (the run goes on without it), and
    per misspelt name in ``GWS_OUTBOUND_DISABLE_PLUGINS`` that let the plugin meant load."""
    for failure in sorted(plugin_load_failures(pm), key=lambda failure: failure.name):
        where = f" at {failure.location}" if failure.location else ""
        error = " ".join(failure.error.split())
        if _is_variable(failure):
            ctx.note(f"warning: {failure.name}: {error}")
        else:
            ctx.note(f"warning: plugin {failure.name!r} not loaded: {error}{where}")
    blocks = _names(ctx.environ.get(ENV_DISABLE)) or ()
    for _, meant, line in misspelt_blocks(pm, blocks, ENV_DISABLE):
        if pm.has_plugin(meant):  # the plugin meant to be blocked runs
            ctx.note(f"warning: {line}")


def _warn_of_hook_failures(pm: Any, ctx: _Context, log_level: str | None) -> None:
    """When no log level was asked for (so nothing is logged), one ``warning:`` line for each
    hook implementation that raised or timed out: a plugin tried with ``--plugin`` must not
    fail in silence. With a level, the ``plugin_hook_failed`` log line (and its traceback)
    says it."""
    if log_level is not None:
        return

    def warn(failure: HookFailure) -> None:
        if _isatty(ctx.stderr):  # over the progress line, which is drawn again after
            with contextlib.suppress(OSError, ValueError):
                ctx.stderr.write("\r\x1b[K")
        ctx.note(f"warning: {failure.describe()} (--log-level error shows the traceback)")

    watch_hook_failures(pm, warn)


def _run_plugins(args: argparse.Namespace, ctx: _Context) -> int:
    pm = make_plugin_manager(environ=ctx.environ)
    _load_one_off_plugins(pm, args.one_off_plugins, ctx)
    infos = describe_plugins(pm)
    failures = sorted(plugin_load_failures(pm), key=lambda failure: failure.name)
    near_misses = _near_miss_groups() + [
        line
        for _, _, line in misspelt_blocks(
            pm, _names(ctx.environ.get(ENV_DISABLE)) or (), ENV_DISABLE
        )
    ]
    for line in near_misses:
        ctx.note(f"warning: {line}")
    warned = any(info.warnings for info in infos) or bool(near_misses)
    status = EXIT_FAILED if failures or (args.strict and warned) else EXIT_OK
    if args.json:
        ctx.out(json.dumps(_plugin_entries(pm, infos, failures), indent=2))
        return status
    if not infos and not failures:
        ctx.out(f"no plugin installed under the {PROJECT_NAME!r} entry-point group")
    _print_plugins(pm, infos, failures, ctx)
    if failures:
        plugins = [failure.name for failure in failures if not _is_variable(failure)]
        variables = [failure.name for failure in failures if _is_variable(failure)]
        problems = []
        if plugins:
            problems.append(f"{len(plugins)} plugin(s) failed to load: " + ", ".join(plugins))
        if variables:
            problems.append("not a setting: " + ", ".join(variables))
        ctx.error("; ".join(problems))
    elif args.strict and warned:
        ctx.error("warnings with --strict")
    return status


def _near_miss_groups() -> list[str]:
    """A line for each entry point announced under a group named nearly like the project's
    (``gws-outbound``, ``gws_outbound_plugin``, ``gws_outbound_plugins`` in a
    ``pyproject.toml``): it is installed, and no host ever finds it."""
    lines = []
    points = (
        (point, distribution)
        for distribution in importlib.metadata.distributions()
        for point in distribution.entry_points
    )
    for point, distribution in points:
        group = point.group
        if group == PROJECT_NAME:
            continue
        folded = group.replace("-", "_").replace(".", "_").lower()
        if not (folded.startswith(PROJECT_NAME) or closest(group, [PROJECT_NAME], 0.8)):
            continue
        owner = f"{distribution.metadata['Name']} {distribution.version}"
        lines.append(
            f"{owner} announces {point.name!r} under the entry-point group {group!r}, not "
            f"{PROJECT_NAME!r}, so no host finds it: in its pyproject.toml, "
            f"[project.entry-points.{PROJECT_NAME}]"
        )
    return lines


def _plugin_entries(
    pm: Any, infos: Sequence[PluginInfo], failures: Sequence[PluginLoadFailure]
) -> list[dict[str, Any]]:
    """``plugins --json``: one object per plugin, loaded or not, by name."""
    entries: list[dict[str, Any]] = [
        {
            **dataclasses.asdict(info),
            "error": None,
            "location": None,
            **dict(zip(("configured", "setup_hint"), _configured(pm, info.name), strict=True)),
        }
        for info in infos
    ]
    entries += [
        {
            "name": failure.name,
            "hooks": [],
            "distribution": failure.distribution,
            "version": None,
            "warnings": [],
            "error": failure.error,
            "location": failure.location,
            "configured": None,
            "setup_hint": None,
        }
        for failure in failures
    ]
    entries.sort(key=lambda entry: str(entry["name"]))
    return entries


def _print_plugins(
    pm: Any, infos: Sequence[PluginInfo], failures: Sequence[PluginLoadFailure], ctx: _Context
) -> None:
    """``plugins``: each plugin, its hooks and warnings, then each load failure."""
    filters = [
        f"{key}={ctx.environ[key]}" for key in (ENV_ALLOW, ENV_DISABLE) if ctx.environ.get(key)
    ]
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "(no distribution)"
        ctx.out(f"{info.name}  [{origin}]")
        for hook in info.hooks:
            ctx.out(f"    {hook}")
        for warning in info.warnings:
            ctx.out(f"    warning: {warning}")
        configured, hint = _configured(pm, info.name)
        if configured is False:
            ctx.out(f"    not configured (does nothing): {hint or 'see its documentation'}")
    for failure in failures:
        origin = f" [{failure.distribution}]" if failure.distribution else ""
        label = "NOT A SETTING" if _is_variable(failure) else "FAILED TO LOAD"
        ctx.out(f"{failure.name}{origin}  {label}")
        for part in _error_lines(failure.error):
            ctx.out(f"    {part}")
        if failure.location:
            ctx.out(f"    at {failure.location}")
        if failure.entry_point:
            ctx.out(f"    entry point: {failure.name} = {failure.entry_point}")
    if filters:
        ctx.out("(filtered by " + ", ".join(filters) + ")")


def _configured(pm: Any, name: str) -> tuple[bool | None, str | None]:
    """Whether a plugin is configured, as it says through the optional ``enabled`` and
    ``setup_hint`` attributes (docs/writing-a-plugin.md); ``None``: it does not say."""
    plugin = pm.get_plugin(name)
    enabled = getattr(plugin, "enabled", None)
    if not isinstance(enabled, bool):
        return None, None
    hint = getattr(plugin, "setup_hint", None)
    return enabled, hint if isinstance(hint, str) else None


def _error_lines(error: str) -> list[str]:
    """A long one-line error split at its '; ' separators, for reading."""
    return [part for part in error.split("; ") if part] or [error]
