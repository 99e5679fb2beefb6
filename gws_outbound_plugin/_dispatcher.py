"""Calling hook implementations one at a time, each isolated from the others."""

from __future__ import annotations

import contextlib
import inspect
import math
import time
import weakref
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Final

import anyio
import pluggy

from . import hookspecs
from ._log import get_logger

__all__ = [
    "DISPATCHED_HOOKS",
    "HOST_FIRED_HOOKS",
    "HookDispatcher",
    "HookFailure",
    "report_hook_failure",
    "safe_log",
    "watch_hook_failures",
]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


def safe_log(method: Callable[..., Any], event: str, **fields: Any) -> None:
    """Log without letting a broken log pipeline (a host's processor that raises) through.

    The engine decides outcomes and then logs them; a log call must never be able to take an
    outcome that was already decided away from the host.
    """
    with contextlib.suppress(Exception):  # a host's log pipeline is not ours to crash on
        method(event, **fields)


@dataclass(frozen=True, slots=True)
class HookFailure:
    """One hook implementation call that raised or timed out (see :func:`watch_hook_failures`)."""

    plugin: str | None
    hook: str
    error: str
    """``ExceptionType: message`` (at most 300 characters), or a description of the timeout."""
    timed_out: bool = False

    def describe(self) -> str:
        what = "timed out" if self.timed_out else "raised"
        return f"plugin {self.plugin!r} {what} in {self.hook}: {self.error}"


_Watcher = Callable[[HookFailure], None]
_WATCHERS: weakref.WeakKeyDictionary[pluggy.PluginManager, list[_Watcher]] = (
    weakref.WeakKeyDictionary()
)


def watch_hook_failures(pm: pluggy.PluginManager, callback: _Watcher) -> Callable[[], None]:
    """Call ``callback(failure)`` for every hook implementation call on ``pm`` that raised or
    timed out (the dispatched hooks and the observers of the host-fired hooks). Returns a
    function that stops watching. Used by the testing kit to fail the test that caused it."""
    watchers = _WATCHERS.setdefault(pm, [])
    watchers.append(callback)

    def unwatch() -> None:
        if callback in watchers:
            watchers.remove(callback)

    return unwatch


def report_hook_failure(
    pm: pluggy.PluginManager,
    plugin: str | None,
    hook: str,
    error: BaseException | None,
    *,
    timed_out: bool = False,
    timeout: float | None = None,
) -> None:
    """Log a failed hook implementation call and tell the watchers of ``pm``. Never raises."""
    if timed_out:
        text = (
            f"no answer within hook_timeout ({timeout:g}s)" if timeout is not None else "timed out"
        )
        safe_log(logger.error, "plugin_hook_timed_out", plugin=plugin, hook=hook, timeout=timeout)
    else:
        text = f"{type(error).__name__}: {error}"[:300] if error is not None else "failed"
        if error is not None:
            safe_log(
                logger.error,
                "plugin_hook_failed",
                plugin=plugin,
                hook=hook,
                exc_info=(type(error), error, error.__traceback__),
            )
        else:
            safe_log(logger.error, "plugin_hook_failed", plugin=plugin, hook=hook)
    failure = HookFailure(plugin=plugin, hook=hook, error=text, timed_out=timed_out)
    for watcher in list(_WATCHERS.get(pm, ())):
        try:
            watcher(failure)
        except Exception:  # a watcher's bug must not reach the dispatcher
            safe_log(logger.exception, "hook_failure_watcher_failed")


#: The hooks the dispatcher fires (``on_cancel_requested`` is fired by the host).
DISPATCHED_HOOKS: Final = (
    "on_record_cancel_acknowledged",
    "on_cancel_failed",
    "on_user_event",
    "on_operation_acknowledged",
    "on_operation_failed",
    "on_record_cancelled",
    "on_scheduled_call",
    "on_preview_record",
    "on_campaign_status",
)
#: The hooks the host fires; the core answers them with a ticket.
HOST_FIRED_HOOKS: Final = hookspecs.HOST_FIRED_HOOKS

# What next() returns for a coroutine that finished in its first step.
_FINISHED: Final = object()
# (implementations as pluggy lists them, [(implementation, is async def), ...] in call order,
#  whether any is async def)
_Plan = tuple[list[pluggy.HookImpl], list[tuple[pluggy.HookImpl, bool]], bool]


class _Resume:
    """Awaits the rest of a coroutine whose first step already ran and yielded ``first``.

    ``coroutine`` is the coroutine's ``__await__()`` iterator. This is the delegation
    ``yield from`` does (PEP 380): values, exceptions and ``close()`` pass through to the
    coroutine, so the event loop and cancellation see no difference.
    """

    __slots__ = ("_coroutine", "_first")

    def __init__(self, coroutine: Generator[Any, Any, Any], first: Any) -> None:
        self._coroutine = coroutine
        self._first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, value = self._coroutine, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:
                try:
                    value = coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration:
                    return


class HookDispatcher:
    """Fires a hook by calling each implementation on its own.

    pluggy stops a hook call at the first exception and does not await coroutines; here every
    implementation is called in pluggy's order, ``async def`` ones are awaited (bounded by
    ``hook_timeout``), and an exception or timeout is logged with the plugin's name and the
    hook, without reaching the other implementations or the caller.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        *,
        hook_timeout: float = 5.0,
        slow_hook_warning: float = 0.1,
    ) -> None:
        self._pm = pm
        self._hook_timeout = hook_timeout
        self._slow_hook_warning = slow_hook_warning
        self._plans: dict[str, _Plan] = {}

    @property
    def hook_timeout(self) -> float:
        """Longest an ``async def`` implementation may take (seconds)."""
        return self._hook_timeout

    @hook_timeout.setter
    def hook_timeout(self, value: float) -> None:
        self._hook_timeout = value

    def _plan(self, hook_name: str) -> tuple[list[tuple[pluggy.HookImpl, bool]], bool]:
        """The implementations to call in pluggy's order, each with whether it is ``async
        def``, and whether any is; rebuilt when the registrations change."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        plan = self._plans.get(hook_name)
        if plan is None or plan[0] != impls:  # HookImpl compares by identity: cheap
            # get_hookimpls() lists in reverse call order; pluggy calls from the end.
            calls = [
                (impl, inspect.iscoroutinefunction(impl.function))
                for impl in reversed(impls)
                if not (impl.hookwrapper or impl.wrapper)
            ]
            plan = self._plans[hook_name] = (impls, calls, any(a for _, a in calls))
        return plan[1], plan[2]

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (wrappers aside)."""
        return bool(self._plan(hook_name)[0])

    async def dispatch(self, hook_name: str, **kwargs: Any) -> None:
        calls, any_async = self._plan(hook_name)
        if not any_async:
            for impl, _ in calls:
                try:
                    awaitable = self._call_plain(hook_name, impl, kwargs)
                    if awaitable is not None:
                        await self._bounded(hook_name, impl, awaitable)
                except Exception as error:  # a plugin's bug must not reach the others
                    report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                except BaseException as error:
                    if isinstance(error, KeyboardInterrupt | SystemExit):
                        raise
                    report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                    await anyio.lowlevel.checkpoint()  # a real cancellation surfaces here
            return
        start = 0
        while start < len(calls):
            start = await self._call_scoped(hook_name, calls, start, kwargs)

    def _call_plain(self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
        """Call a plain implementation; return the awaitable it returned, else None."""
        args = [kwargs[name] for name in impl.argnames]
        started = time.perf_counter()
        result = impl.function(*args)
        elapsed = time.perf_counter() - started
        if result is not None and inspect.isawaitable(result):
            return result
        if elapsed > self._slow_hook_warning:
            safe_log(
                logger.warning,
                "plugin_hook_blocked_loop",
                plugin=impl.plugin_name,
                hook=hook_name,
                seconds=round(elapsed, 3),
            )
        return None

    async def _call_scoped(
        self,
        hook_name: str,
        calls: list[tuple[pluggy.HookImpl, bool]],
        start: int,
        kwargs: Mapping[str, Any],
    ) -> int:
        """Call ``calls[start:]`` in one cancel scope; return where the caller goes on.

        The scope is entered before any implementation runs, so the scopes and task groups
        an implementation opens nest inside it. It only gets a deadline while an ``async
        def`` implementation waits (``hook_timeout`` from that implementation's start), so
        one that finishes without waiting costs no timer. After a timeout (or a cancellation
        the implementation swallowed) the scope is spent: the rest go on in a fresh one.
        """
        perf_counter = time.perf_counter
        index = start
        with anyio.CancelScope() as scope:
            while index < len(calls):
                impl, is_async = calls[index]
                try:
                    if not is_async:
                        awaitable = self._call_plain(hook_name, impl, kwargs)
                        if awaitable is not None:
                            await self._bounded(hook_name, impl, awaitable)
                    else:
                        started = perf_counter()
                        function: Callable[..., Any] = impl.function
                        awaitable = function(*[kwargs[name] for name in impl.argnames])
                        if type(awaitable) is not CoroutineType:
                            await self._bounded(hook_name, impl, awaitable)
                        else:
                            # Run its first step here; next() with a default sees a coroutine
                            # return without raising StopIteration in Python.
                            steps = awaitable.__await__()
                            first = next(steps, _FINISHED)
                            if first is not _FINISHED:  # it waits: bound the rest
                                elapsed = perf_counter() - started
                                scope.deadline = anyio.current_time() + (
                                    self._hook_timeout - elapsed
                                )
                                try:
                                    await _Resume(steps, first)
                                finally:
                                    scope.deadline = math.inf
                except Exception as error:  # a plugin's bug must not reach the others
                    report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                except BaseException as error:
                    # A BaseException a plugin raised (pytest's fail(), a CancelledError from
                    # something it awaited) is its failure; our own timeout, a real
                    # cancellation of the caller and an interrupt go through.
                    if isinstance(error, KeyboardInterrupt | SystemExit) or (
                        isinstance(error, anyio.get_cancelled_exc_class()) and scope.cancel_called
                    ):
                        raise
                    report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                    await anyio.lowlevel.checkpoint()  # a real cancellation surfaces here
                index += 1
                if scope.cancel_called:
                    return index
            return index
        # Only reached when the scope caught its own cancellation: calls[index] timed out.
        # (Anyone else's cancellation passes through, as it must.)
        impl = calls[index][0]
        report_hook_failure(
            self._pm, impl.plugin_name, hook_name, None, timed_out=True, timeout=self._hook_timeout
        )
        return index + 1

    async def _bounded(self, hook_name: str, impl: pluggy.HookImpl, awaitable: Any) -> None:
        with anyio.move_on_after(self._hook_timeout) as scope:
            await awaitable
        if scope.cancelled_caught:
            report_hook_failure(
                self._pm,
                impl.plugin_name,
                hook_name,
                None,
                timed_out=True,
                timeout=self._hook_timeout,
            )
