"""A plugin base implementing every hook of :mod:`~gws_outbound_plugin.hookspecs`, made from
the specifications themselves: a subclass of :class:`EveryHook` receives each hook call in
:meth:`EveryHook._hook_called` (the hook's name and its keyword arguments), so a hook added to
the specifications reaches it without an edit. The CLI's ``tail``, the testing kit's
``HookRecorder`` and the project's tests are built on it.

pluggy finds a hook implementation by its attribute name and the ``@hookimpl`` marker, and
passes it the arguments its code object names (``varnames``: ``co_varnames`` after ``self``),
so each method is a real function with the specification's argument names, compiled from a
one-line source built from those names (the way :mod:`dataclasses` makes ``__init__``).
"""

from __future__ import annotations

import abc
import inspect
import keyword
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from . import hookspecs
from .hookspecs import PROJECT_NAME, hookimpl

__all__ = ["HOOK_ARGUMENTS", "EveryHook", "hook_specs"]


def hook_specs() -> Iterator[tuple[str, Callable[..., Any]]]:
    """``(name, specification)`` of every hook, in the order :mod:`hookspecs` declares them."""
    marker = PROJECT_NAME + "_spec"
    for name, value in vars(hookspecs).items():
        if inspect.isfunction(value) and hasattr(value, marker):
            yield name, value


#: The argument names of every hook, by hook name (the specifications' parameters).
HOOK_ARGUMENTS: Final[Mapping[str, tuple[str, ...]]] = {
    name: tuple(inspect.signature(spec).parameters) for name, spec in hook_specs()
}


def _implementation(name: str, spec: Callable[..., Any]) -> Callable[..., None]:
    """``def <name>(self, <spec's arguments>): self._hook_called(<name>, {...})``, marked
    ``@hookimpl``, with the specification's annotations and a docstring."""
    arguments = HOOK_ARGUMENTS[name]
    for identifier in (name, *arguments):
        if not identifier.isidentifier() or keyword.iskeyword(identifier):
            raise ValueError(f"hook {name!r}: {identifier!r} is not a Python name")
    passed = ", ".join(f"{argument!r}: {argument}" for argument in arguments)
    source = (
        f"def {name}(self, {', '.join(arguments)}):\n"
        f"    self._hook_called({name!r}, {{{passed}}})\n"
    )
    namespace: dict[str, Any] = {}
    # The source is made of the specifications' names only, checked above.
    exec(compile(source, f"<{__name__}: {name}>", "exec"), {}, namespace)  # noqa: S102
    function: Callable[..., None] = namespace[name]
    function.__module__ = __name__
    function.__qualname__ = f"EveryHook.{name}"
    function.__doc__ = f"Hands the ``{name}`` call to :meth:`EveryHook._hook_called`."
    annotations = dict(getattr(spec, "__annotations__", {}))
    annotations["return"] = "None"
    function.__annotations__ = annotations
    return hookimpl(function)


class EveryHook(abc.ABC):
    """A plugin implementing every hook: each call goes to :meth:`_hook_called`, which a
    subclass must define (a class without it cannot be instantiated).

    The implementations are plain functions (quick on any thread), return ``None`` (so a
    ``firstresult`` hook goes on to the next implementation) and can be overridden one by
    one in a subclass.
    """

    @abc.abstractmethod
    def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        """One hook call: ``hook`` with its arguments by name (a fresh dict)."""


for _name, _spec in hook_specs():
    setattr(EveryHook, _name, _implementation(_name, _spec))
del _name, _spec
