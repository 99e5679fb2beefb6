"""Building the plugin manager and loading plugins from the ``gws_outbound`` entry points."""

from __future__ import annotations

import inspect
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pluggy
import structlog

from . import hookspecs
from ._exceptions import PluginLoadError
from ._plugin import CoreAbsentGuard
from .hookspecs import PROJECT_NAME

__all__ = ["PluginInfo", "describe_plugins", "load_entrypoint_plugins", "make_plugin_manager"]

logger = structlog.get_logger(__name__)

ENV_ALLOW = "GWS_OUTBOUND_PLUGINS"
CORE_ABSENT_GUARD = "gws_outbound_core_absent_guard"
ENV_DISABLE = "GWS_OUTBOUND_DISABLE_PLUGINS"

# Which distribution each entry-point plugin came from, per plugin manager.
_DISTRIBUTIONS: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    plugins: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
) -> pluggy.PluginManager:
    """A ``PluginManager`` named ``gws_outbound`` with the hook specifications added.

    With ``load_entrypoints`` (the default) the plugins announced under the ``gws_outbound``
    entry-point group are loaded too; see :func:`load_entrypoint_plugins` for ``plugins``,
    ``disable`` and ``strict``.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(CoreAbsentGuard(), name=CORE_ABSENT_GUARD)
    if load_entrypoints:
        load_entrypoint_plugins(
            pm, plugins=plugins, disable=disable, strict=strict, environ=environ
        )
    return pm


def load_entrypoint_plugins(
    pm: pluggy.PluginManager,
    *,
    plugins: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Register the plugins of the ``gws_outbound`` entry-point group; return their names.

    :param plugins: load only these entry-point names (default: all, or the comma-separated
        list in ``GWS_OUTBOUND_PLUGINS``).
    :param disable: never load these (added to ``GWS_OUTBOUND_DISABLE_PLUGINS``); they are
        also blocked in ``pm``, so registering them later by name fails.
    :param strict: raise :class:`PluginLoadError` for a plugin that fails to import or to
        validate; by default it is logged (``plugin_load_failed``, with its name) and skipped.

    A plugin implementing a hook that does not exist (a misspelt name) fails validation.
    """
    env = os.environ if environ is None else environ
    allowed = set(plugins) if plugins is not None else _names(env.get(ENV_ALLOW))
    blocked = set(disable or ()) | (_names(env.get(ENV_DISABLE)) or set())
    for name in blocked:
        pm.set_blocked(name)
    loaded: list[str] = []
    for ep in entry_points(group=PROJECT_NAME):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        try:
            _register(pm, ep)
        except Exception as error:
            if strict:
                raise PluginLoadError(ep.name, _describe(error)) from error
            logger.warning(
                "plugin_load_failed",
                plugin=ep.name,
                entry_point=ep.value,
                error=_describe(error),
            )
            continue
        loaded.append(ep.name)
        if ep.dist is not None:
            _DISTRIBUTIONS.setdefault(pm, {})[ep.name] = (ep.dist.metadata["Name"], ep.dist.version)
        logger.info("plugin_loaded", plugin=ep.name, entry_point=ep.value)
    return loaded


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _register(pm: pluggy.PluginManager, ep: EntryPoint) -> None:
    plugin = ep.load()
    try:
        pm.register(plugin, name=ep.name)
        unknown = [
            caller.name for caller in pm.get_hookcallers(plugin) or () if caller.spec is None
        ]
        for impl in pm.hook.on_cancel_requested.get_hookimpls():
            if impl.plugin is plugin and inspect.iscoroutinefunction(impl.function):
                raise pluggy.PluginValidationError(
                    plugin,
                    "on_cancel_requested must be a plain function (it runs in the caller's "
                    "thread; an async def would never be awaited)",
                )
        if unknown:
            raise pluggy.PluginValidationError(
                plugin,
                f"unknown hook {', '.join(sorted(unknown))} (known: "
                + ", ".join(sorted(_spec_names()))
                + ")",
            )
    except BaseException:
        if pm.has_plugin(ep.name):
            pm.unregister(name=ep.name)
        raise


def _spec_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("on_")]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, for listings (``gws-outbound plugins``)."""

    name: str
    hooks: tuple[str, ...]
    distribution: str | None
    version: str | None


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """The registered plugins with the hooks each implements and its distribution."""
    dists = _DISTRIBUTIONS.get(pm, {})
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name.startswith("gws_outbound_core"):
            continue  # the core's own hook implementations are not plugins to list
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        dist = dists.get(name)
        infos.append(
            PluginInfo(
                name=name,
                hooks=hooks,
                distribution=dist[0] if dist is not None else None,
                version=dist[1] if dist is not None else None,
            )
        )
    return sorted(infos, key=lambda info: info.name)
