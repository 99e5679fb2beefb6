"""Building the plugin manager, validating registrations and loading plugins from the
``gws_outbound`` entry points."""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
import os
import re
import textwrap
import traceback
import types
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Final, NoReturn

import anyio
import pluggy

from . import hookspecs
from ._exceptions import PluginLoadError
from ._hints import closest
from ._log import get_logger
from ._plugin import CoreAbsentGuard
from .hookspecs import PROJECT_NAME

__all__ = [
    "GWSPluginManager",
    "PluginInfo",
    "PluginLoadFailure",
    "close_plugins",
    "describe_plugins",
    "load_entrypoint_plugins",
    "make_plugin_manager",
    "plugin_load_failures",
]

logger = get_logger(__name__)

ENV_ALLOW = "GWS_OUTBOUND_PLUGINS"
CORE_ABSENT_GUARD = "gws_outbound_core_absent_guard"
ENV_DISABLE = "GWS_OUTBOUND_DISABLE_PLUGINS"
_VARIABLE_PREFIX: Final = "GWS_OUTBOUND_"
_IMPL_MARKER: Final = PROJECT_NAME + "_impl"
_MAX_ERROR: Final = 500


@dataclass(frozen=True, slots=True)
class PluginLoadFailure:
    """A plugin of the ``gws_outbound`` entry-point group that could not be loaded."""

    name: str
    """The entry-point name (as in ``GWS_OUTBOUND_PLUGINS``)."""
    error: str
    """What went wrong, on one line (``ExceptionType: message``, or ``not installed (...)``)."""
    location: str | None = None
    """``file:line`` where it went wrong, when known (the import error's line in the plugin)."""
    entry_point: str | None = None
    """The entry point's value (``module:attribute``); ``None`` for a plugin not installed."""
    distribution: str | None = None
    """``name version`` of the distribution announcing it, when known."""

    def describe(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.error}{where}"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, for listings (``gws-outbound plugins``)."""

    name: str
    hooks: tuple[str, ...]
    distribution: str | None
    version: str | None
    warnings: tuple[str, ...] = ()
    """Mistakes that do not stop the plugin from loading, e.g. a function named like a hook
    without ``@hookimpl`` (it is never called)."""


class _Records:
    """What the manager remembers about its plugins, for :func:`describe_plugins`."""

    __slots__ = ("distributions", "failures", "warnings")

    def __init__(self) -> None:
        self.distributions: dict[str, tuple[str, str]] = {}
        self.failures: list[PluginLoadFailure] = []
        self.warnings: dict[str, tuple[str, ...]] = {}


_RECORDS: weakref.WeakKeyDictionary[pluggy.PluginManager, _Records] = weakref.WeakKeyDictionary()


def _records(pm: pluggy.PluginManager) -> _Records:
    records = _RECORDS.get(pm)
    if records is None:
        records = _RECORDS[pm] = _Records()
    return records


# -- validation ---------------------------------------------------------------------------------


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    )


def _host_fired_hooks(spec_names: Iterable[str]) -> frozenset[str]:
    """The hooks the host fires from its own thread (``on_cancel_requested``, ...): their
    implementations must be plain functions, since nothing awaits them."""
    declared = getattr(hookspecs, "HOST_FIRED_HOOKS", None)
    if declared is not None:
        return frozenset(declared)
    return frozenset(name for name in spec_names if name.endswith("_requested"))


def _where(function: object) -> str | None:
    function = inspect.unwrap(getattr(function, "__func__", function))  # type: ignore[arg-type]
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    return f"{code.co_filename}:{code.co_firstlineno}"


def _marked_impls(pm: pluggy.PluginManager, plugin: object) -> list[tuple[str, Any]]:
    """(hook name, function) of every ``@hookimpl`` attribute of ``plugin``."""
    return [(hook, function) for hook, function, _ in _marked_impls_with_options(pm, plugin)]


def _marked_impls_with_options(
    pm: pluggy.PluginManager, plugin: object
) -> list[tuple[str, Any, Mapping[str, Any]]]:
    found: list[tuple[str, Any, Mapping[str, Any]]] = []
    for attribute in dir(plugin):
        options = pm.parse_hookimpl_opts(plugin, attribute)
        if options is None:
            continue
        function = getattr(plugin, attribute, None)
        found.append((options.get("specname") or attribute, function, options))
    return found


def _takes_self(function: object) -> bool:
    """A plain function whose first parameter is ``self``: a method read from its class."""
    if not inspect.isfunction(function):
        return False
    parameters = list(inspect.signature(function).parameters)
    return bool(parameters) and parameters[0] == "self"


def _self_forgotten(pm: pluggy.PluginManager, plugin: object, hook: str, function: object) -> str:
    """The first parameter of a method bound to ``plugin`` when it is named like one of the
    hook's arguments (``def on_user_event(event)`` in a class, ``self`` forgotten: ``event``
    would be given the instance), else ``""``."""
    if not inspect.ismethod(function) or function.__self__ is not plugin:
        return ""
    caller = getattr(pm.hook, hook, None)
    spec = getattr(caller, "spec", None)
    if spec is None:
        return ""
    parameters = list(inspect.signature(function.__func__).parameters)
    if parameters and parameters[0] in spec.argnames:
        return parameters[0]
    return ""


@functools.lru_cache(maxsize=512)
def _discarded_calls(code: types.CodeType) -> tuple[tuple[ast.expr, int], ...]:
    """(what is called, line) of each statement of the function of ``code`` that is a call
    whose result is not used, when its source can be read and parsed (read once per code:
    a host registers its plugins again in each plugin manager)."""
    try:
        lines, first = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except Exception:
        # (OSError, SyntaxError; tokenize.TokenError when the file changed since the
        # import and the function's line now opens a string or bracket left open)
        return ()
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name != code.co_name:
        return ()
    return tuple(
        (statement.value.func, statement.lineno + first - 1)
        for statement in _own_statements(node)
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
    )


def _own_statements(node: ast.AST) -> Iterator[ast.AST]:
    """Every node of a function's body but those of the functions and classes it defines
    (their bodies run, if ever, in another call)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        yield child
        yield from _own_statements(child)


_UNRESOLVED: Final = object()


def _resolve(expression: ast.expr, function: types.FunctionType, receiver: object) -> object:
    """What ``expression`` (``name`` or ``name.attr...``) names in ``function``'s scope at
    registration (its first parameter being ``receiver`` when that is not None: the ``self``
    of a method), without running any code of the plugin (no property, no ``__getattr__``);
    ``_UNRESOLVED`` when that cannot be told."""
    if isinstance(expression, ast.Attribute):
        base = _resolve(expression.value, function, receiver)
        if base is _UNRESOLVED:
            return _UNRESOLVED
        try:
            found = inspect.getattr_static(base, expression.attr)
        except AttributeError:
            return _UNRESOLVED
        if isinstance(found, staticmethod | classmethod):
            return found.__func__
        return found
    if not isinstance(expression, ast.Name):
        return _UNRESOLVED
    name = expression.id
    code = function.__code__
    if name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        first = code.co_varnames[0] if code.co_argcount else None
        return receiver if receiver is not None and name == first else _UNRESOLVED
    if name in code.co_varnames or name in code.co_cellvars:
        return _UNRESOLVED  # a local variable: its value is not known before the call
    if name in code.co_freevars:
        cell = (function.__closure__ or ())[code.co_freevars.index(name)]
        try:
            return cell.cell_contents
        except ValueError:
            return _UNRESOLVED
    namespace = function.__globals__
    if name in namespace:
        return namespace[name]
    return getattr(builtins, name, _UNRESOLVED)


def _dropped_coroutines(implementation: Any) -> list[tuple[str, str]]:
    """(the call's text, ``file:line``) of each statement of a hook implementation that
    calls a coroutine function and does nothing with the result: the coroutine never runs
    (Python only warns "coroutine ... was never awaited", later, naming no hook)."""
    receiver = implementation.__self__ if inspect.ismethod(implementation) else None
    function = inspect.unwrap(getattr(implementation, "__func__", implementation))
    if not inspect.isfunction(function):
        return []
    dropped = []
    for called, line in _discarded_calls(function.__code__):
        target = _resolve(called, function, receiver)
        if target is not _UNRESOLVED and inspect.iscoroutinefunction(target):
            where = f"{function.__code__.co_filename}:{line}"
            dropped.append((ast.unparse(called) + "(...)", where))
    return dropped


def _unpassed_parameters(function: Any) -> tuple[str, bool]:
    """The parameters of a hook implementation that a hook call never fills, as the
    signature spells them (``*, failure``, ``**kwargs``), or ``""``, and whether the hook
    can never work for them: pluggy passes the hook's arguments by position to the
    parameters named like them, so a keyword-only one is never given (without a default the
    call raises ``TypeError``, every time) and ``*args`` / ``**kwargs`` receive nothing (when
    they are all the hook takes, as a decorator's wrapper without ``functools.wraps``, the
    hook gets none of its arguments). A keyword-only parameter with a default, or ``*args``
    / ``**kwargs`` beside named parameters (written for later arguments), is harmless."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return "", False
    unpassed = []
    fatal = False
    named = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            unpassed.append(f"the keyword-only {parameter.name}")
            fatal = fatal or parameter.default is inspect.Parameter.empty
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            unpassed.append(f"*{parameter.name}")
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            unpassed.append(f"**{parameter.name}")
        else:
            named = True
    if unpassed and not named and len(unpassed) == sum(u.startswith("*") for u in unpassed):
        fatal = True  # nothing but *args / **kwargs: the hook gets none of its arguments
    return " and ".join(unpassed), fatal


def _hook_arguments(pm: pluggy.PluginManager, hook: str) -> tuple[str, ...]:
    """The arguments the hook ``hook`` passes (none for a name that is no hook)."""
    spec = getattr(getattr(pm.hook, hook, None), "spec", None)
    return tuple(getattr(spec, "argnames", ()))


def _unpassed_message(pm: pluggy.PluginManager, hook: str, function: Any, unpassed: str) -> str:
    arguments = ", ".join(_hook_arguments(pm, hook))
    return (
        f"{hook} takes {unpassed}, which pluggy never fills (it passes the hook's "
        f"arguments, {arguments}, each to the parameter of that name): write def "
        f"{hook}({_plain_signature(function, arguments)})"
    )


def _harmless_unpassed(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Warnings for hook implementations taking parameters no call fills that do no harm
    (a keyword-only one with a default, ``**kwargs`` beside the hook's arguments): the
    author may expect them filled."""
    names = set(_spec_names(pm))
    warnings = []
    for hook, function, _ in _marked_impls_with_options(pm, plugin):
        if hook not in names:
            continue
        unpassed, fatal = _unpassed_parameters(function)
        if unpassed and not fatal:
            where = _where(function)
            at = f" (at {where})" if where else ""
            warnings.append(
                _unpassed_message(pm, hook, function, unpassed)
                + f" (harmless: it always gets its default or nothing){at}"
            )
    return warnings


def _plain_signature(function: Any, arguments: str) -> str:
    """``self, failure`` for a method, ``failure`` for a function: the signature to write."""
    return f"self, {arguments}" if inspect.ismethod(function) else arguments


def _dropped_coroutine_problem(
    hook: str, call: str, where: str, *, host_fired: bool, is_async: bool
) -> str:
    if is_async:
        remedy = f"write await {call}"
    elif host_fired:
        remedy = (
            f"{hook} stays a plain function (the host calls it in its own thread): do that "
            "work in an async def hook, such as on_operation_acknowledged, and await it there"
        )
    else:
        remedy = f"make {hook} async def and write await {call}"
    return (
        f"{hook} calls the coroutine function {call} without await (at {where}), so it never "
        f"runs (the call only makes a coroutine, which is dropped): {remedy}"
    )


def _registration_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    names = _spec_names(pm)
    host_fired = _host_fired_hooks(names)
    problems = []
    for hook, function, options in _marked_impls_with_options(pm, plugin):
        where = _where(function)
        at = f" (at {where})" if where else ""
        if isinstance(plugin, type) and _takes_self(function):
            problems.append(
                f"it is the class {plugin.__name__}, not an instance: {hook}(self, ...) would be "
                f"called without one; register {plugin.__name__}() (in an entry point, name a "
                f"module attribute such as plugin = {plugin.__name__}()){at}"
            )
            continue
        if first := _self_forgotten(pm, plugin, hook, function):
            arguments = ", ".join(inspect.signature(function.__func__).parameters)
            problems.append(
                f"{hook}({arguments}) is a method without self: its first parameter "
                f"{first!r} would be given the {type(plugin).__name__} instance, not the "
                f"hook's {first}; write def {hook}(self, {arguments}){at}"
            )
            continue
        if (
            hook in host_fired
            and (options.get("wrapper") or options.get("hookwrapper"))
            and not isinstance(plugin, CoreAbsentGuard)
        ):
            problems.append(
                f"{hook} cannot be wrapped: a wrapper could hide the ticket of a request that "
                f"was accepted and sent; observe it with a plain implementation{at}"
            )
            continue
        if (
            hook in names
            and hook not in host_fired
            and (options.get("wrapper") or options.get("hookwrapper"))
        ):
            problems.append(
                f"{hook} cannot be wrapped: the plugin core calls each implementation of the "
                "hooks it fires on its own (its own hook_timeout, its exception kept to it), "
                "so nothing would run a wrapper around the others; implement it as a plain or "
                f"async def function (tryfirst=True / trylast=True set its place){at}"
            )
            continue
        if hook not in names:
            close = closest(hook, names)
            hint = f"did you mean {close!r}?" if close else "the hooks are " + ", ".join(names)
            problems.append(f"unknown hook {hook!r}: {hint}{at}")
        elif hook in host_fired and (
            inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
        ):
            problems.append(
                f"{hook} must be a plain function, not async def: the host calls it in its "
                f"own thread and nothing would await it{at}"
            )
        elif (unpassed := _unpassed_parameters(function))[1]:
            problems.append(_unpassed_message(pm, hook, function, unpassed[0]) + at)
        else:
            problems.extend(
                _dropped_coroutine_problem(
                    hook,
                    call,
                    line,
                    host_fired=hook in host_fired,
                    is_async=inspect.iscoroutinefunction(function),
                )
                for call, line in _dropped_coroutines(function)
            )
    return problems


def _unmarked_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Warnings for functions named like a hook (or nearly) that lack ``@hookimpl``."""
    if isinstance(plugin, type):
        return []
    names = _spec_names(pm)
    marked = {attribute for attribute, _ in _marked_impls(pm, plugin)}
    warnings = []
    for attribute in dir(plugin):
        if not attribute.startswith("on_") or attribute in marked:
            continue
        try:
            value = inspect.getattr_static(plugin, attribute)
        except AttributeError:
            continue
        value = getattr(value, "__func__", value)
        if not inspect.isfunction(value) or hasattr(value, _IMPL_MARKER):
            continue
        like = attribute if attribute in names else closest(attribute, names, 0.85)
        if like is None:
            continue
        named = "is named like the hook" if like == attribute else f"looks like the hook {like!r}"
        at = f" (at {where})" if (where := _where(value)) else ""
        other = _other_projects_marker(value)
        if other is not None:
            warnings.append(
                f"{attribute} {named} but is marked by pluggy.HookimplMarker({other!r}), not "
                f"this project's ({PROJECT_NAME!r}): it is never called; use "
                f"gws_outbound_plugin.hookimpl{at}"
            )
            continue
        warnings.append(f"{attribute} {named} but has no @hookimpl: it is never called{at}")
    return warnings


def _other_projects_marker(function: object) -> str | None:
    """The project name of the ``HookimplMarker`` that marked ``function``, when it is not
    this project's (``HookimplMarker("gws_outbound_plugin")``, the package's name, sets
    ``gws_outbound_plugin_impl``), else ``None``."""
    for attribute, value in vars(function).items():
        if attribute.endswith("_impl") and isinstance(value, dict) and attribute != _IMPL_MARKER:
            return attribute.removesuffix("_impl")
    return None


def _hooks_on_an_object(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """A warning for a module that implements no hook itself while an object defined in it
    does (``plugin = Tally()``): an entry point or a ``register()`` that names the module
    instead of that object registers a plugin that hears nothing."""
    if not isinstance(plugin, types.ModuleType) or pm.get_hookcallers(plugin):
        return []
    found: list[tuple[str, object]] = []
    for attribute, value in vars(plugin).items():
        kind = value if isinstance(value, type) else type(value)
        if attribute.startswith("_") or getattr(kind, "__module__", None) != plugin.__name__:
            continue
        if not isinstance(value, types.ModuleType) and _marked_impls(pm, value):
            found.append((attribute, value))
    objects = [(attribute, value) for attribute, value in found if not isinstance(value, type)]
    module = plugin.__name__
    if objects:
        attribute, value = objects[0]
        return [
            f"the module {module} implements no hook: they are on its object {attribute!r} "
            f"(a {type(value).__name__}), so it hears nothing; name that object instead (an "
            f'entry point "{module}:{attribute}", --plugin {module}:{attribute})'
        ]
    if found:
        name = getattr(found[0][1], "__name__", found[0][0])
        return [
            f"the module {module} implements no hook: they are on its class {name}, so it "
            f"hears nothing; add an instance (plugin = {name}()) and name it instead (an "
            f'entry point "{module}:plugin")'
        ]
    return []


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _readable_validation_error(
    error: pluggy.PluginValidationError,
    label: str,
    where: Mapping[str, str | None],
    passed: Mapping[str, Sequence[str]],
) -> str:
    """pluggy's multi-line validation message as one clear line; ``where`` is the
    ``file:line`` of each implementation, ``passed`` the arguments of each hook, by hook
    name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    definition = next((line for line in lines if line.startswith("hookimpl definition:")), None)
    missing = next((line for line in lines if line.startswith("Argument(s)")), None)
    if definition is not None and missing is not None:
        signature = definition.removeprefix("hookimpl definition:").strip()
        hook = signature.split("(", 1)[0]
        arguments = missing.removeprefix("Argument(s)").split(" are declared", 1)[0].strip()
        at = f" (at {where[hook]})" if where.get(hook) else ""
        return (
            f"plugin {label!r}: {signature} asks for {arguments}, which the hook {hook} does "
            f"not pass{_what_it_passes(arguments, passed.get(hook, ()))}{at}"
        )
    return f"plugin {label!r}: " + "; ".join(lines)


def _what_it_passes(arguments: str, passed: Sequence[str]) -> str:
    """What follows "which the hook ... does not pass" for a hook's refused ``arguments`` (as
    pluggy prints them, a set's repr): the argument a misspelt one meant, and what the hook
    does pass, e.g. `` (did you mean 'event'?): it passes event (...)``."""
    unknown = re.findall(r"'([^']+)'", arguments)
    meant = [close for name in unknown if (close := closest(name, passed)) is not None]
    text = f" (did you mean {meant[0]!r}?)" if len(unknown) == 1 and meant else ""
    if passed:
        text += f": it passes {', '.join(passed)}"
    return text + " (an implementation may take any subset of the hook's arguments, by name)"


def _a(plugin: object) -> str:
    kind = type(plugin)
    if isinstance(plugin, types.ModuleType):
        return f"the module {plugin.__name__}"
    return f"a {kind.__module__}.{kind.__qualname__}"


def _refuse_a_second_registration(pm: pluggy.PluginManager, plugin: object, label: str) -> None:
    """pluggy's ``ValueError`` for a name or a plugin registered already, as one line that
    says what to do (pluggy's spans lines and prints the whole registry's reprs)."""
    if pm.has_plugin(label):
        there = pm.get_plugin(label)
        if there is plugin:
            raise ValueError(f"plugin {label!r} is registered already: register it once")
        raise ValueError(
            f"a plugin named {label!r} is registered already ({_a(there)}, for instance "
            f"loaded from its entry point): register {_a(plugin)} under another name "
            f"(pm.register(plugin, name=...)), or unregister that one first "
            f"(pm.unregister(name={label!r}))"
        )
    if pm.is_registered(plugin):
        raise ValueError(
            f"{_a(plugin)} is registered already, as {pm.get_name(plugin)!r}: register it "
            f"once (not again as {label!r})"
        )


def validated_register(
    pm: pluggy.PluginManager, plugin: object, name: str | None = None
) -> str | None:
    """``pm.register(plugin, name)`` with this project's checks (see
    :class:`GWSPluginManager`); nothing is left registered when it raises."""
    label = name or pm.get_canonical_name(plugin)
    if pm.is_blocked(label):
        return None
    _refuse_a_second_registration(pm, plugin, label)
    problems = _registration_problems(pm, plugin)
    if problems:
        raise pluggy.PluginValidationError(plugin, f"plugin {label!r}: " + "; ".join(problems))
    try:
        registered = pluggy.PluginManager.register(pm, plugin, name)
    except pluggy.PluginValidationError as error:
        if pm.is_registered(plugin):  # pluggy < 1.7 validates while registering
            pm.unregister(plugin)
        raise pluggy.PluginValidationError(
            plugin,
            _readable_validation_error(
                error,
                label,
                {hook: _where(function) for hook, function in _marked_impls(pm, plugin)},
                {hook: _hook_arguments(pm, hook) for hook, _ in _marked_impls(pm, plugin)},
            ),
        ) from None
    if registered is None:
        return None
    unmarked = _unmarked_hooks(pm, plugin)
    elsewhere = _hooks_on_an_object(pm, plugin)
    unfilled = _harmless_unpassed(pm, plugin)
    if unmarked or elsewhere or unfilled:
        _records(pm).warnings[registered] = (*unmarked, *elsewhere, *unfilled)
    if unmarked:
        logger.warning("plugin_hook_not_marked", plugin=registered, problems=unmarked)
    if elsewhere:
        logger.warning("plugin_implements_no_hook", plugin=registered, problems=elsewhere)
    if unfilled:
        logger.warning("plugin_hook_parameter_unfilled", plugin=registered, problems=unfilled)
    return registered


class GWSPluginManager(pluggy.PluginManager):
    """The plugin manager :func:`make_plugin_manager` returns: a ``pluggy.PluginManager``
    whose :meth:`register` checks every plugin, whenever it is registered.

    A plugin is refused (``pluggy.PluginValidationError`` with a one-line message, nothing
    registered) when it implements a hook that does not exist (with the closest hook name as
    a suggestion), implements a hook the host fires (``on_cancel_requested``) as ``async
    def``, asks for an argument the hook does not pass, is a method that forgot its
    ``self`` (its first parameter named like a hook argument), takes a parameter no hook call
    fills and cannot do without (keyword-only without a default; nothing but ``*args`` /
    ``**kwargs``), or calls a coroutine function without
    ``await`` (a statement ``notify(x)`` for an ``async def notify``: the coroutine would be
    dropped unrun). A function named like a hook but
    without ``@hookimpl`` is accepted and logged (``plugin_hook_not_marked``), and so is a
    hook whose unfilled parameters do no harm (``plugin_hook_parameter_unfilled``: a
    keyword-only one with a default, ``**kwargs`` beside the hook's arguments).
    """

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        return validated_register(self, plugin, name)

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        if name is None and plugin is not None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        records = _RECORDS.get(self)
        if records is not None and name is not None:
            records.warnings.pop(name, None)
        return removed


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    plugins: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
) -> pluggy.PluginManager:
    """A :class:`GWSPluginManager` named ``gws_outbound`` with the hook specifications added.

    Every later ``pm.register(plugin)`` is validated (see :class:`GWSPluginManager`). With
    ``load_entrypoints`` (the default) the plugins announced under the ``gws_outbound``
    entry-point group are loaded too; see :func:`load_entrypoint_plugins` for ``plugins``,
    ``disable`` and ``strict``.
    """
    pm = GWSPluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(CoreAbsentGuard(), name=CORE_ABSENT_GUARD)
    if load_entrypoints:
        load_entrypoint_plugins(
            pm, plugins=plugins, disable=disable, strict=strict, environ=environ
        )
    return pm


# -- loading entry points -----------------------------------------------------------------------


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


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
        list in ``GWS_OUTBOUND_PLUGINS``). A name that no installed distribution announces is
        a failure too (``plugin_not_installed``, naming what is installed).
    :param disable: never load these (added to ``GWS_OUTBOUND_DISABLE_PLUGINS``); they are
        also blocked in ``pm``, so registering them later by name fails.
    :param strict: after trying every plugin, raise :class:`PluginLoadError` for the first
        that failed (naming the others); by default each failure is logged
        (``plugin_load_failed``, with its name, error and location) and skipped.

    Every failure is kept: :func:`plugin_load_failures` lists them. A plugin implementing a
    hook that does not exist (a misspelt name) fails validation.
    """
    env = os.environ if environ is None else environ
    for keyword, names in (("plugins", plugins), ("disable", disable)):
        if isinstance(names, str):  # set("audit") would be five one-letter names
            raise TypeError(
                f"{keyword}= takes a list of plugin names, not the string {names!r}: write "
                f"{keyword}={[name.strip() for name in names.split(',') if name.strip()]!r}"
            )
    allowed = set(plugins) if plugins is not None else _names(env.get(ENV_ALLOW))
    blocked = set(disable or ()) | (_names(env.get(ENV_DISABLE)) or set())
    for name in blocked:
        pm.set_blocked(name)
    records = _records(pm)
    group = list(entry_points(group=PROJECT_NAME))
    loaded: list[str] = []
    failed: list[tuple[PluginLoadFailure, BaseException | None]] = []
    for ep in group:
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        load_failure = _load_one(pm, ep, records)
        if load_failure is None:
            loaded.append(ep.name)
        else:
            failed.append(load_failure)
    if allowed is not None:
        setting = ENV_ALLOW if plugins is None else "plugins="
        failed.extend(
            (missing, None) for missing in _not_installed(pm, allowed, blocked, group, setting)
        )
    chosen_by = None if allowed is None else ENV_ALLOW if plugins is None else "plugins="
    failed.extend((misspelt, None) for misspelt in _misspelt_variables(env, chosen_by))
    for setting, names in (("disable=", disable), (ENV_DISABLE, _names(env.get(ENV_DISABLE)))):
        for name, meant, _ in misspelt_blocks(pm, names or (), setting, group):
            logger.warning("plugin_block_misspelt", setting=setting, plugin=name, meant=meant)
    records.failures.extend(failure for failure, _ in failed)
    if strict and failed:
        _raise_first(failed)
    return loaded


def _load_one(
    pm: pluggy.PluginManager, ep: EntryPoint, records: _Records
) -> tuple[PluginLoadFailure, BaseException] | None:
    """Register the plugin of ``ep``; the failure (logged) when it cannot be."""
    try:
        _register(pm, ep)
    except Exception as error:
        failure = PluginLoadFailure(
            name=ep.name,
            error=_describe(error),
            location=_error_location(error),
            entry_point=ep.value,
            distribution=_distribution(ep),
        )
        logger.warning(
            "plugin_load_failed",
            plugin=ep.name,
            entry_point=ep.value,
            error=failure.error,
            location=failure.location,
        )
        return failure, error
    if ep.dist is not None:
        records.distributions[ep.name] = (ep.dist.metadata["Name"], ep.dist.version)
    logger.info("plugin_loaded", plugin=ep.name, entry_point=ep.value)
    return None


def _not_installed(
    pm: pluggy.PluginManager,
    allowed: set[str],
    blocked: set[str],
    group: list[EntryPoint],
    setting: str,
) -> list[PluginLoadFailure]:
    """A failure (logged) for each name asked for that no installed distribution announces."""
    installed = sorted({ep.name for ep in group})
    failures: list[PluginLoadFailure] = []
    for name in sorted(allowed - set(installed)):
        if pm.has_plugin(name) or name in blocked:
            continue
        failures.append(
            PluginLoadFailure(
                name=name,
                error=f"not installed (installed: {', '.join(installed) or 'none'})",
            )
        )
        logger.warning("plugin_not_installed", plugin=name, setting=setting, installed=installed)
    return failures


def misspelt_blocks(
    pm: pluggy.PluginManager,
    names: Iterable[str],
    setting: str,
    group: Iterable[EntryPoint] | None = None,
) -> list[tuple[str, str, str]]:
    """(name, the installed plugin meant, what it says) for each name of ``setting``
    (``GWS_OUTBOUND_DISABLE_PLUGINS``, ``disable=``) that no installed plugin has but one
    nearly has (``webhok``): it blocks nothing, and the plugin meant is loaded all the same. A
    name unlike any installed plugin's is left alone (a block list shared by machines may
    name plugins not installed here)."""
    names = set(names)
    if not names:
        return []
    points = entry_points(group=PROJECT_NAME) if group is None else group
    installed = sorted({ep.name for ep in points})
    found = []
    for name in sorted(names - set(installed)):
        meant = closest(name, installed)
        if meant is None:
            continue
        effect = f"{meant} is loaded" if pm.has_plugin(meant) else f"{meant} is not blocked"
        found.append(
            (
                name,
                meant,
                f"{setting} names {name!r}, which no installed plugin is (did you mean "
                f"{meant!r}?): it blocks nothing, and {effect}",
            )
        )
    return found


def _misspelt_variables(env: Mapping[str, str], chosen_by: str | None) -> list[PluginLoadFailure]:
    """A failure (logged) for each variable that looks like ``GWS_OUTBOUND_PLUGINS`` or
    ``GWS_OUTBOUND_DISABLE_PLUGINS`` but is not: misspelt, it would be ignored, and every
    installed plugin loaded (``GWS_OUTBOUND_PLUGIN=audit`` loading the webhook too).
    ``chosen_by``: what chose the plugins instead (``plugins=``, ``GWS_OUTBOUND_PLUGINS``),
    if anything did."""
    settings = (ENV_ALLOW, ENV_DISABLE)
    failures: list[PluginLoadFailure] = []
    for key in sorted(env):
        if not key.startswith(_VARIABLE_PREFIX) or key in settings:
            continue
        meant = closest(key, settings, 0.9)
        if meant is None:
            continue
        if meant != ENV_ALLOW:
            effect = "ignored, so it blocked none"
        elif chosen_by is None:
            effect = "ignored, so every installed plugin was loaded"
        else:  # another choice was made: saying that all loaded would not be true
            effect = f"ignored (the plugins loaded are those {chosen_by} names)"
        failures.append(
            PluginLoadFailure(name=key, error=f"not a setting (did you mean {meant}?): {effect}")
        )
        logger.warning("plugin_setting_misspelt", variable=key, meant=meant)
    return failures


def _raise_first(failed: list[tuple[PluginLoadFailure, BaseException | None]]) -> NoReturn:
    """:class:`PluginLoadError` for the first failure, naming the others."""
    (first, cause), others = failed[0], [failure for failure, _ in failed[1:]]
    problem = first.describe()
    if others:
        problem += f" (and {len(others)} more: " + "; ".join(
            f"{other.name!r}: {other.describe()}" for other in others
        )
        problem += ")"
    error = PluginLoadError(first.name, problem)
    if first.entry_point is None and first.name.startswith(_VARIABLE_PREFIX):
        error.args = (f"{first.name}: {problem}",)  # a misspelt variable, not a plugin
    raise error from cause


def _register(pm: pluggy.PluginManager, ep: EntryPoint) -> None:
    plugin = ep.load()
    if isinstance(pm, GWSPluginManager):
        pm.register(plugin, name=ep.name)
    else:
        validated_register(pm, plugin, ep.name)


def _distribution(ep: EntryPoint) -> str | None:
    if ep.dist is None:
        return None
    return f"{ep.dist.metadata['Name']} {ep.dist.version}"


def _describe(error: BaseException) -> str:
    text = _one_line(str(error))
    if isinstance(error, pluggy.PluginValidationError):
        return text[:_MAX_ERROR]
    return f"{type(error).__name__}: {text}"[:_MAX_ERROR]


_INTERNAL_DIRS: Final = tuple(
    str(Path(module.__file__).resolve().parent)
    for module in (importlib, pluggy)
    if module.__file__ is not None
)


def _error_location(error: BaseException) -> str | None:
    """``file:line`` of the plugin's code where loading it failed, when there is one."""
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f"{error.filename}:{error.lineno}"
    own = str(Path(__file__).resolve())
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<")
        and str(Path(frame.filename).resolve()) != own
        and not str(Path(frame.filename).resolve()).startswith(_INTERNAL_DIRS)
    ]
    if not frames:
        return None
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def plugin_load_failures(pm: pluggy.PluginManager) -> list[PluginLoadFailure]:
    """Every plugin that :func:`load_entrypoint_plugins` could not load into ``pm``, in order
    (import errors, validation errors, names in the allow-list that are not installed)."""
    records = _RECORDS.get(pm)
    return list(records.failures) if records is not None else []


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """The registered plugins with the hooks each implements and its distribution."""
    records = _RECORDS.get(pm) or _Records()
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name.startswith("gws_outbound_core"):
            continue  # the core's own hook implementations are not plugins to list
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        dist = records.distributions.get(name)
        warnings = records.warnings.get(name)
        if warnings is None:
            warnings = tuple(_unmarked_hooks(pm, plugin))
        infos.append(
            PluginInfo(
                name=name,
                hooks=hooks,
                distribution=dist[0] if dist is not None else None,
                version=dist[1] if dist is not None else None,
                warnings=warnings,
            )
        )
    return sorted(infos, key=lambda info: info.name)


# -- closing ------------------------------------------------------------------------------------


async def close_plugins(pm: pluggy.PluginManager, *, timeout: float = 5.0) -> list[str]:
    """Let the registered plugins that hold resources finish: await the ``async def aclose()``
    of each one that has it (the reference ``audit`` and ``webhook`` plugins do).

    Call it after leaving ``async with OutboundPlugin(...)``, on the event loop (a thread-based
    host: ``portal.call(close_plugins, pm)``). Each ``aclose()`` may take up to ``timeout``
    seconds; one that raises or takes longer is logged (``plugin_close_failed``, with the
    plugin's name) and does not stop the others. Plugins are closed one at a time, most
    recently registered first.

    :returns: the names of the plugins whose ``aclose()`` failed or timed out (``[]`` when all
        closed cleanly).
    """
    failed: list[str] = []
    seen: set[int] = set()
    for name, plugin in reversed(pm.list_name_plugin()):
        if plugin is None or inspect.isclass(plugin) or id(plugin) in seen:
            continue
        seen.add(id(plugin))
        closer = getattr(plugin, "aclose", None)
        if not inspect.iscoroutinefunction(closer):
            continue
        try:
            with anyio.fail_after(timeout):
                await closer()
        except TimeoutError:
            failed.append(name)
            logger.error("plugin_close_failed", plugin=name, error=f"no answer within {timeout:g}s")
        except Exception as error:
            failed.append(name)
            logger.error(
                "plugin_close_failed",
                plugin=name,
                error=f"{type(error).__name__}: {error}"[:300],
                exc_info=(type(error), error, error.__traceback__),
            )
    return failed
