"""The core's hook implementations on the plugin manager, and the checks made of the other
plugins' implementations when a core starts."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Generator, Mapping
from typing import Any, Final

import pluggy

from ._dispatcher import DISPATCHED_HOOKS, HOST_FIRED_HOOKS, report_hook_failure, safe_log
from ._engine import Engine
from ._exceptions import (
    GWSOutboundError,
    InvalidCancelRequest,
    InvalidOperationRequest,
    NotRunningError,
)
from ._log import get_logger
from ._requests import OPERATION_TYPES, CancelRequest, OperationRequest
from .hookspecs import hookimpl

__all__ = [
    "CORE_PLUGIN_NAME",
    "CoreAbsentGuard",
    "CoreHooks",
    "CoreMarker",
    "bind_core",
    "not_a_request",
    "refuse_wrappers",
    "unbind_core",
]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

CORE_PLUGIN_NAME: Final = "gws_outbound_core"


class CoreHooks:
    """The core's answer to the host-fired hooks: one ``wrapper=True`` implementation each.

    Before any other implementation sees the request, it accepts it (or raises: no core
    running, invalid request, too many pending) and then returns ``[ticket, *observer
    results]``, so the host's result list starts with the ticket. An observer that raises is
    logged with its plugin's name and does not take the ticket away (pluggy does not call the
    observers after it). ``make_plugin_manager()`` registers one with no engine, which refuses
    every request with ``NotRunningError``; a starting ``OutboundPlugin`` binds its engine.
    """

    def __init__(self, engine: Engine | None = None, pm: pluggy.PluginManager | None = None):
        self.engine = engine
        self.pm = pm

    @hookimpl(wrapper=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        if self.engine is not None and not isinstance(request, CancelRequest):
            if isinstance(request, Mapping):  # a bus event as it came
                hint = "build it from a bus event with CancelRequest.from_bus(event)"
            else:
                hint = "fire on_operation_requested for other operations"
            raise InvalidCancelRequest(
                {
                    "request": f"on_cancel_requested takes a CancelRequest, got "
                    f"{type(request).__name__} ({hint}; nothing was sent)"
                }
            )
        return (yield from self._accept("on_cancel_requested", request, "cancel"))

    @hookimpl(wrapper=True)
    def on_operation_requested(self, request: Any) -> Generator[None, Any, Any]:
        if self.engine is not None and not isinstance(request, OperationRequest):
            # Not "invalid cancel request": nothing says the host meant a cancel.
            if isinstance(request, Mapping):
                hint = "build it from a bus event with request_from_bus(event)"
            else:
                hint = "build one of the request types, e.g. RejectRecordRequest(...)"
            raise InvalidOperationRequest(
                {
                    "request": "on_operation_requested takes a request object, got "
                    f"{type(request).__name__} ({hint}; nothing was sent)"
                }
            )
        return (yield from self._accept("on_operation_requested", request, "request"))

    def _accept(self, hook: str, request: Any, what: str) -> Generator[None, Any, Any]:
        engine = self.engine
        if engine is None:
            raise NotRunningError(
                f"no running OutboundPlugin accepted the {what}; nothing was sent"
            )
        ticket = engine.accept(request)
        ACCEPTED.ticket = ticket  # for submit(), should something after this hide it
        try:
            results = yield
        except BaseException as error:
            # An observer's failure must not hide the ticket: the request was accepted and
            # goes on, and a host told otherwise might send it again.
            if self.pm is not None:
                report_hook_failure(self.pm, culprit(self.pm, hook, error), hook, error)
            if isinstance(error, KeyboardInterrupt | SystemExit):
                log_request_goes_on(ticket.reference_id, error)
                raise
            results = []
        finally:
            # An observer's own request (its submit() or hook call) made meanwhile set its
            # ticket here: this one is the ticket of the call that returns now.
            ACCEPTED.ticket = ticket
        return [ticket, *results]


#: The ticket the core accepted last in this thread (see ``OutboundPlugin.submit``).
ACCEPTED: Final = threading.local()

#: Kept for ``make_plugin_manager()`` and code that imported it: the unbound core hooks.
CoreAbsentGuard = CoreHooks


class CoreMarker:
    """Registered under the plugin's name while it runs (the hooks live in the manager's
    ``CoreHooks``): ``pm.has_plugin(CORE_PLUGIN_NAME)`` tells whether a core runs."""


def log_request_goes_on(reference_id: str, error: BaseException | str) -> None:
    """Log ``accepted_request_goes_on``: a call around an accepted request failed (``error``,
    or what went wrong), and the request goes on; a ``KeyboardInterrupt`` or ``SystemExit``
    is named as what interrupted the call (the caller raises it on)."""
    if isinstance(error, KeyboardInterrupt | SystemExit):
        safe_log(
            logger.error,
            "accepted_request_goes_on",
            reference_id=reference_id,
            interrupted_by=type(error).__name__,
        )
        return
    text = f"{type(error).__name__}: {error}"[:300] if isinstance(error, BaseException) else error
    safe_log(logger.error, "accepted_request_goes_on", reference_id=reference_id, error=text)


def culprit(pm: pluggy.PluginManager, hook: str, error: BaseException) -> str | None:
    """The plugin whose implementation raised ``error`` (from its traceback).

    A frame is matched by its code object and, for a method, by the instance it runs on:
    implementations made from one source (``EveryHook``'s, generated from the hook specs)
    share a code object, and only the instance tells their plugins apart."""
    by_code: dict[object, str | None] = {}
    by_method: dict[tuple[object, int], str] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        owner = getattr(impl.function, "__self__", None)
        if owner is not None:
            by_method[(code, id(owner))] = impl.plugin_name
        # A code object shared by several plugins names none of them on its own.
        by_code[code] = impl.plugin_name if code not in by_code else None
    traceback = error.__traceback__
    name = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code in by_code:
            owner = frame.f_locals.get("self") if frame.f_code.co_argcount else None
            found = by_method.get((frame.f_code, id(owner))) or by_code[frame.f_code]
            name = found or name
        traceback = traceback.tb_next
    return name


def not_a_request(method: str, request: object) -> InvalidOperationRequest:
    """What ``submit()`` / ``perform()`` / ``cancel()`` say when given something that is not a
    request object (a bus event's dict, most often): how to make one."""
    got = f"got {'a dict' if isinstance(request, Mapping) else type(request).__name__}"
    if method == "cancel":
        return InvalidCancelRequest(
            {
                "request": f"cancel() takes a CancelRequest, {got}: build it with "
                "CancelRequest(...) or, from a bus event in GWS camelCase keys, "
                "CancelRequest.from_bus(event)"
            }
        )
    types = ", ".join(kind.__name__ for kinds in OPERATION_TYPES.values() for kind in kinds)
    return InvalidOperationRequest(
        {
            "request": f"{method}() takes a request object, {got}: build it with "
            "request_from_bus(event) from a bus event in GWS camelCase keys with its "
            f"operationName, or with one of the request types ({types})"
        }
    )


def bind_core(pm: pluggy.PluginManager, engine: Engine, name: str) -> tuple[CoreHooks, bool]:
    """Bind ``engine`` to the manager's unbound ``CoreHooks`` (``make_plugin_manager()``
    registers one) under a :class:`CoreMarker` named ``name``, or register a new
    ``CoreHooks`` under ``name``; returns it and whether it was registered here."""
    core = next((p for _, p in pm.list_name_plugin() if isinstance(p, CoreHooks)), None)
    if core is not None and core.engine is None:
        core.engine, core.pm = engine, pm
        pm.register(CoreMarker(), name=name)
        return core, False
    core = CoreHooks(engine, pm)
    pm.register(core, name=name)
    return core, True


def unbind_core(
    pm: pluggy.PluginManager, core: CoreHooks | None, registered: bool, name: str
) -> None:
    """Undo :func:`bind_core`: the manager's ``CoreHooks`` refuses requests again."""
    if core is not None and not registered:
        core.engine = None
    if pm.has_plugin(name):
        pm.unregister(name=name)


def refuse_wrappers(pm: pluggy.PluginManager) -> None:
    """Refuse what could hide a ticket or never run: wrappers of the host-fired hooks,
    async implementations of them, wrappers of the hooks the dispatcher fires."""
    for hook_name in HOST_FIRED_HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if (impl.hookwrapper or impl.wrapper) and not isinstance(impl.plugin, CoreHooks):
                raise GWSOutboundError(
                    f"plugin {impl.plugin_name!r} wraps {hook_name}: a wrapper could hide "
                    "the ticket of a request that was accepted and sent; observe the "
                    "request with a plain implementation instead"
                )
            if inspect.iscoroutinefunction(impl.function):
                raise GWSOutboundError(
                    f"plugin {impl.plugin_name!r} implements {hook_name} as async def: "
                    "it runs in the caller's thread and nothing would await it"
                )
    for hook_name in DISPATCHED_HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                raise GWSOutboundError(
                    f"plugin {impl.plugin_name!r} wraps {hook_name}: hook wrappers are "
                    "not supported on the hooks the dispatcher fires (it calls each "
                    "implementation on its own); implement it as a plain or async def "
                    "function (tryfirst=True / trylast=True set its place)"
                )
