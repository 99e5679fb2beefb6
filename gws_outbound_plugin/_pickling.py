"""Pickling of the package's exceptions and of the frozen values they carry.

An exception crosses a process boundary pickled (a process pool's worker, a
``multiprocessing`` or queue log handler); unpickling calls ``type(error)(*error.args)``,
which an exception whose ``__init__`` takes other arguments than its message cannot take.
:func:`reduce_exception` rebuilds one without calling ``__init__``: its arguments and its
attributes as they were (nothing more: no secret is kept in an exception's state).

The frozen values (requests, failure payloads) hold read-only mappings
(``MappingProxyType``), which pickle refuses: :func:`reduce_frozen` pickles each field with
those mappings as plain dictionaries, marked, and read-only again once unpickled.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

__all__ = ["reduce_exception", "reduce_frozen"]


class _ReadOnly(dict[Any, Any]):
    """A ``MappingProxyType``'s items in a pickle: made read-only again when unpickled."""


def _thawed(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return _ReadOnly({key: _thawed(item) for key, item in value.items()})
    if type(value) is dict:
        return {key: _thawed(item) for key, item in value.items()}
    if type(value) in (tuple, list):
        return type(value)(_thawed(item) for item in value)
    return value


def _frozen(value: Any) -> Any:
    if type(value) is _ReadOnly:
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if type(value) is dict:
        return {key: _frozen(item) for key, item in value.items()}
    if type(value) in (tuple, list):
        return type(value)(_frozen(item) for item in value)
    return value


def reduce_frozen(value: Any) -> tuple[Any, ...]:
    """``__reduce__`` of a frozen, slotted dataclass (and of a host's subclass of one, its
    ``__dict__`` too if it has one)."""
    fields = tuple(
        (field.name, _thawed(getattr(value, field.name))) for field in dataclasses.fields(value)
    )
    extra = _thawed(dict(vars(value))) if hasattr(value, "__dict__") else {}
    return (_restore_frozen, (type(value), fields, extra))


def _restore_frozen(kind: type[Any], fields: tuple[tuple[str, Any], ...], extra: Any) -> Any:
    value = object.__new__(kind)
    for name, item in fields:
        object.__setattr__(value, name, _frozen(item))
    for name, item in extra.items():
        object.__setattr__(value, name, _frozen(item))
    return value


def reduce_exception(error: BaseException) -> tuple[Any, ...]:
    """``__reduce__`` of an exception of the package: its class, ``args`` and attributes."""
    return (_restore_exception, (type(error), error.args, dict(vars(error))))


def _restore_exception(
    kind: type[BaseException], args: tuple[Any, ...], attributes: dict[str, Any]
) -> BaseException:
    error = kind.__new__(kind, *args)
    error.args = args
    vars(error).update(attributes)
    return error
