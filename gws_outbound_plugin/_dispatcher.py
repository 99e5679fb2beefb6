"""Calling hook implementations one at a time, each isolated from the others."""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import contextvars
import inspect
import math
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
import pluggy

from . import hookspecs
from ._log import get_logger
from ._ticket import HOOK_TASK, HOOK_TASKS

__all__ = [
    "DISPATCHED_HOOKS",
    "HOST_FIRED_HOOKS",
    "TAKEN_BACK_WATCH",
    "HookDispatcher",
    "HookFailure",
    "cancelled_by_plugin",
    "cancelled_from_outside",
    "report_hook_failure",
    "safe_log",
    "steadfast",
    "take_back_cancellation",
    "unmonitored",
    "watch_hook_failures",
]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


def safe_log(method: Callable[..., Any], event: str, **fields: Any) -> None:
    """Log without letting a broken log pipeline (a host's processor that raises) through.

    The engine decides outcomes and then logs them; a log call must never be able to take an
    outcome that was already decided away from the host.
    """
    try:
        method(event, **fields)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: S110 - a host's log pipeline is not ours to crash on
        pass


_T = TypeVar("_T")

# pluggy's own hook execution: a manager that nothing monitors runs this one. (With another
# pluggy layout, every call goes through the manager's hook execution.)
_PLUGGY_HOOKEXEC: object = None
with contextlib.suppress(ImportError):
    from pluggy._callers import _multicall as _PLUGGY_HOOKEXEC


def unmonitored(pm: pluggy.PluginManager) -> bool:
    """Whether nothing monitors ``pm``: its hook execution is pluggy's own (no
    ``pm.add_hookcall_monitoring()`` or ``pm.enable_tracing()`` in force), so a hook
    implementation may be called directly, without pluggy's bookkeeping, unseen by no one."""
    return pm._inner_hookexec is _PLUGGY_HOOKEXEC


def cancelled_by_plugin() -> bool:
    """Whether an anyio scope around the caller was cancelled (the plugin stopping its own
    task, a timeout): a ``CancelledError`` caught now must go through."""
    return anyio.current_effective_deadline() == -math.inf


def cancelled_from_outside() -> bool:
    """Whether a ``CancelledError`` caught in the current task is a plain asyncio
    ``task.cancel()`` of this task (a host cancelling every task, a hook's stray timer),
    rather than the cancellation of an anyio scope around the caller, which must go
    through, or a ``CancelledError`` that something awaited raised without this task being
    cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0 and not cancelled_by_plugin()


def take_back_cancellation(what: str, *, quiet: bool = False) -> None:
    """Undo the cancellation requests the current task received (``Task.uncancel()``, so
    that asyncio's and anyio's bookkeeping of the task stays right: several ``cancel()``
    calls before it ran deliver one ``CancelledError``) and log it (at debug level when
    ``quiet``: one of many identical tasks)."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()
    safe_log(
        logger.debug if quiet else logger.info, "plugin_task_cancellation_contained", task=what
    )
    if task is not None and TAKEN_BACK_WATCH:
        watch = TAKEN_BACK_WATCH.get(task)
        if watch is not None:
            watch()


#: A plugin's background task -> what to call when it takes a cancellation back (see
#: ``BackgroundTasks``: a task whose plugin nobody is left to close does not run on forever).
TAKEN_BACK_WATCH: Final[weakref.WeakKeyDictionary[asyncio.Task[Any], Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


async def steadfast(step: Callable[[], Awaitable[_T]], what: str) -> _T:
    """``await step()``; when a plain ``task.cancel()`` from outside interrupts it, take the
    cancellation back and call ``step()`` again. For the plugin's own tasks only, and only
    around steps that can be repeated (waiting for an event). An anyio cancellation of an
    enclosing scope (the plugin stopping the task, a timeout) goes through."""
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            if not cancelled_from_outside():
                raise
            take_back_cancellation(what)


class _HookCall:
    """What the dispatcher and a hook call's own task share."""

    __slots__ = (
        "deadline",
        "ended",
        "finished",
        "hook_name",
        "impl",
        "interrupt",
        "scope",
        "timed_out",
        "timeout",
    )

    def __init__(self, hook_name: str, impl: pluggy.HookImpl, timeout: float) -> None:
        self.hook_name = hook_name
        self.impl = impl
        self.timeout = timeout
        """The call's ``hook_timeout``, as it was when the call started."""
        self.ended = False
        """Whether the task's body ran to its end (its last step)."""
        self.finished: asyncio.Future[None] | None = None
        """What a caller waiting for the call awaits (only a call that did not end in its
        first step has one): set by the task's body as its last step (the waiting caller
        wakes with no extra trip through the loop), or by its done callback if the body
        never ran."""
        self.deadline: asyncio.TimerHandle | None = None
        """The loop timer of the call's deadline (only a call that did not end in its first
        step, which no timer can interrupt, has one)."""
        self.scope: anyio.CancelScope | None = None
        """The scope bounding the call (``hook_timeout``), once the call started."""
        self.timed_out = False
        """Whether the call was reported as timed out (once per call)."""
        self.interrupt: BaseException | None = None
        """The ``KeyboardInterrupt`` / ``SystemExit`` the hook raised, raised by the caller
        once the call ended: it never leaves the hook's task as that task's exception (a task
        that ends with one is logged as "Task exception was never retrieved" when nobody
        asks for it, and on Python 3.12 an eager first step raising one loses the task)."""

    def end(self) -> None:
        """The task's body's last step: no deadline any more, and the caller wakes."""
        self.ended = True
        if self.deadline is not None:
            self.deadline.cancel()
        self.wake()

    def wake(self, *_: object) -> None:
        finished = self.finished
        if finished is not None and not finished.done():
            finished.set_result(None)

    def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the call the anyio way (a hook's shielded scope is respected), or the
        task if it has not started yet."""
        if self.scope is not None:
            self.scope.cancel()
        else:
            task.cancel()


_SCOPE_CLASS: type[anyio.CancelScope] | None = None

_TAILS_AT_MOST: Final = 64
"""Python 3.11: hook calls that ended in their first step, whose tasks have yet to take their
(empty) last step, at most, before the caller lets the loop run them."""


class _Tails:
    """How many such tasks one event loop has now (Python 3.11 only: none with eager
    tasks)."""

    __slots__ = ("count", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.count = 0


class _ThreadTails(threading.local):
    """The count of the event loop this thread runs hook calls on now. A count belongs to
    its loop: a loop left with such tasks pending (stopped, or abandoned, before they took
    their step) does not leave a high count to the next loop the thread runs, which would
    then let the loop run after every hook call."""

    current = _Tails(None)


_TAILS: Final = _ThreadTails()


async def _let_the_loop_run() -> None:
    """One trip through the event loop, for the tasks of the hook calls that ended in their
    first step to end (a caller that never waits would otherwise pile them up, in memory
    and in every garbage collection): as the hook call's own wait did, a plain
    ``task.cancel()`` of the caller is taken back, an anyio cancellation goes through."""
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        if not cancelled_from_outside():
            raise
        take_back_cancellation("hook call")


def _cancel_scope() -> anyio.CancelScope:
    """A new ``anyio.CancelScope()``: the class of anyio's asyncio backend (a hook call
    runs in an asyncio task), made directly once known. ``anyio.CancelScope()`` asks which
    async library runs (``sniffio``) for every scope it makes, about a third of the cost of
    a scope; the object and its semantics are the same."""
    global _SCOPE_CLASS
    if _SCOPE_CLASS is None:
        scope = anyio.CancelScope()
        _SCOPE_CLASS = type(scope)
        return scope
    return _SCOPE_CLASS()


def _host_task(
    loop: asyncio.AbstractEventLoop,
    coroutine: Coroutine[Any, Any, None],
    context: contextvars.Context,
) -> asyncio.Task[None]:
    """The task of a hook call when the host set a task factory (``loop.set_task_factory``):
    made by it, as every other task of the loop is (a host's Task subclass, its context
    propagation, its bookkeeping of the loop's tasks). Its first step runs when the
    factory's task takes it (at once with an eager factory, else in the loop's next
    round).

    Made inside ``context`` (the task runs in a copy of it), not given it as ``context=``:
    asyncio then passes ``context=`` on to the factory, and one written for ``(loop,
    coro)``, as before Python 3.11, raised ``TypeError`` for every hook call."""
    return context.run(loop.create_task, coroutine)


if sys.version_info >= (3, 12):

    def _start_task(
        loop: asyncio.AbstractEventLoop,
        coroutine: Coroutine[Any, Any, None],
        context: contextvars.Context,
    ) -> asyncio.Task[None]:
        """A task for one hook call, its first step run at once (a hook that never waits
        costs no trip through the event loop); the host's task factory's, if it set one."""
        if loop.get_task_factory() is not None:
            return _host_task(loop, coroutine, context)
        return asyncio.Task(coroutine, loop=loop, eager_start=True, context=context)

else:  # Python 3.11: no eager tasks; the same, by hand
    from asyncio.tasks import _enter_task, _leave_task

    class _FirstStepTaken(collections.abc.Coroutine[Any, Any, None]):
        """What the task of a hook call runs on Python 3.11: the call's coroutine, whose
        first step :func:`_start_task` already ran in that task (as the task of Python
        3.12's ``eager_start=True`` does). The task goes on from there: its first step
        hands it what the first step awaited, or ends at once if the coroutine ended; every
        later step is the coroutine's own. It looks like the coroutine to ``inspect``
        (anyio delivers a cancellation only to a task whose coroutine started)."""

        __slots__ = ("_coroutine", "_ended", "_pending", "_tail", "_tails", "_waiting")

        def __init__(self, coroutine: Coroutine[Any, Any, None], tails: _Tails) -> None:
            self._coroutine = coroutine
            self._tails = tails
            """The count of the task's loop."""
            self._pending: Any = None
            """What the first step awaited (a future, or None for a bare ``yield``)."""
            self._waiting = False
            """Whether the first step awaited something the task has not been handed."""
            self._ended = False
            self._tail = False
            """Whether the coroutine ended in the first step, and the task has yet to end."""

        def first_step(self) -> None:
            """Run the coroutine's first step (in the task, its context entered)."""
            try:
                self._pending = self._coroutine.send(None)
            except StopIteration:
                self._ended = self._tail = True
                self._tails.count += 1
            except BaseException:  # KeyboardInterrupt / SystemExit: the caller raises it
                self._ended = True
                raise
            else:
                self._waiting = True

        def send(self, value: Any) -> Any:
            if self._waiting:  # the task's first step: it now waits for what was awaited
                self._waiting = False
                pending, self._pending = self._pending, None
                return pending
            if self._ended:
                self._last_step()
                raise StopIteration
            return self._coroutine.send(value)

        def __next__(self) -> Any:  # the task's steps (asyncio sends None as next())
            return self.send(None)

        def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
            if self._ended:
                self._last_step()
                raise typ if val is None else val
            if self._waiting:
                # Cancelled before its first step here (anyio's scope, a task.cancel()):
                # as for a task waiting on it, what the coroutine awaited is cancelled.
                self._waiting = False
                pending, self._pending = self._pending, None
                if isinstance(pending, asyncio.Future):
                    pending.cancel()
            if val is None and tb is None:
                return self._coroutine.throw(typ)
            return self._coroutine.throw(typ, val, tb)  # pragma: no cover - Python 3.11 only

        def _last_step(self) -> None:
            if self._tail:
                self._tail = False
                self._tails.count -= 1

        def close(self) -> None:
            self._coroutine.close()

        def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - never awaited
            return self._coroutine.__await__()

        @property
        def cr_running(self) -> bool:
            return bool(getattr(self._coroutine, "cr_running", False))

        @property
        def cr_suspended(self) -> bool:
            return bool(getattr(self._coroutine, "cr_suspended", False))

        @property
        def cr_frame(self) -> Any:
            return getattr(self._coroutine, "cr_frame", None)

        @property
        def cr_code(self) -> Any:
            return getattr(self._coroutine, "cr_code", None)

        @property
        def cr_await(self) -> Any:
            return getattr(self._coroutine, "cr_await", None)

        @property
        def __name__(self) -> str:  # the task's repr names the hook call's coroutine
            return str(getattr(self._coroutine, "__qualname__", "hook call"))

    def _start_task(
        loop: asyncio.AbstractEventLoop,
        coroutine: Coroutine[Any, Any, None],
        context: contextvars.Context,
    ) -> asyncio.Task[None]:
        """A task for one hook call, its first step run at once (a hook that never waits
        costs no trip through the event loop): as Python 3.12's ``eager_start=True`` does,
        the first step runs here, in the task (it is the current task, in its context),
        and the task goes on from there. The host's task factory's task, if it set one."""
        caller = asyncio.current_task(loop)
        if loop.get_task_factory() is not None:
            return _host_task(loop, coroutine, context)
        if caller is None:  # pragma: no cover - dispatch() always runs in a task
            return asyncio.Task(coroutine, loop=loop, context=context)
        tails = _TAILS.current
        if tails.loop is not loop:  # another loop than this thread's last one
            tails = _TAILS.current = _Tails(loop)
        runs = _FirstStepTaken(coroutine, tails)
        task: asyncio.Task[None] = asyncio.Task(runs, loop=loop, context=context)
        _leave_task(loop, caller)
        _enter_task(loop, task)
        try:
            context.run(runs.first_step)
        finally:
            _leave_task(loop, task)
            _enter_task(loop, caller)
        return task


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
    blocked: float | None = None,
) -> None:
    """Log a failed hook implementation call and tell the watchers of ``pm``. Never raises.

    ``blocked``: a plain implementation that ran that many seconds, past ``timeout``, on the
    event loop (``timed_out`` too)."""
    if timed_out:
        if blocked is not None:
            text = (
                f"blocked the event loop for {blocked:.3g}s, longer than hook_timeout "
                f"({timeout:g}s)"
            )
        elif timeout is not None:
            text = f"no answer within hook_timeout ({timeout:g}s)"
        else:
            text = "timed out"
        safe_log(
            logger.error,
            "plugin_hook_timed_out",
            plugin=plugin,
            hook=hook,
            timeout=timeout,
            **({} if blocked is None else {"blocked_seconds": round(blocked, 3)}),
        )
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

# (implementations as pluggy lists them, [(implementation, is async def), ...] in call order,
#  whether any is async def)
_Plan = tuple[list[pluggy.HookImpl], list[tuple[pluggy.HookImpl, bool]], bool]


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
        # pluggy's hook execution, which every HookCaller calls: it runs whatever
        # pm.add_hookcall_monitoring() / enable_tracing() installed at the time of the call.
        self._hookexec: Callable[[str, list[pluggy.HookImpl], Mapping[str, Any], bool], Any] = (
            pm._hookexec
        )
        self._hook_timeout = hook_timeout
        self._blocking_limit = hook_timeout
        """A plain implementation running longer is a failure: ``hook_timeout`` as configured
        (not the token timeout a hurried close gives the async ones)."""
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
        """Call every implementation of ``hook_name`` in pluggy's order, each isolated.

        Plain implementations are called here, in the caller's task. An ``async def`` one
        (or the awaitable a plain one returned) runs in a task of its own, bounded by
        ``hook_timeout``: a cancellation it causes (a timer calling
        ``asyncio.current_task().cancel()``, say) reaches that task only, and is its
        failure. Waiting for it, the caller takes back a plain ``task.cancel()`` from outside
        (see :func:`steadfast`); an anyio cancellation of the caller's scope goes through.
        """
        calls, _ = self._plan(hook_name)
        for impl, is_async in calls:
            try:
                if is_async:
                    awaitable = self._execute(hook_name, impl, kwargs)
                else:
                    awaitable = self._call_plain(hook_name, impl, kwargs)
            except Exception as error:  # a plugin's bug must not reach the others
                report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                continue
            except BaseException as error:
                if isinstance(error, KeyboardInterrupt | SystemExit):
                    raise
                # pytest's fail(), a CancelledError raised by a plain implementation, ...
                report_hook_failure(self._pm, impl.plugin_name, hook_name, error)
                continue
            if awaitable is not None:
                await self._in_own_task(hook_name, impl, awaitable)

    async def _in_own_task(self, hook_name: str, impl: pluggy.HookImpl, awaitable: Any) -> None:
        """Run one hook call in a task of its own and wait until it ended, without ever
        cancelling it: a plain ``task.cancel()`` of the waiting task is taken back and the
        wait goes on; an anyio cancellation of the waiting task's scope (the plugin stopping
        the pump) goes through, and cancels the hook's task on its way.

        The task's first step runs at once, here (see :func:`_start_task`): a call that
        ends in it (a hook that never waits) costs no trip through the event loop, and no
        timer, since nothing can interrupt that step. A call that waits gets its deadline
        then, counted from its start."""
        loop = asyncio.get_running_loop()
        call = _HookCall(hook_name, impl, self._hook_timeout)
        started = loop.time()
        context = contextvars.copy_context()
        task = _start_task(loop, self._run_bounded(awaitable, call), context)
        if not call.ended:
            if math.isfinite(call.timeout):
                call.deadline = loop.call_at(
                    started + call.timeout, self._deadline_passed, call, context=context.copy()
                )
            finished = call.finished = loop.create_future()
            task.add_done_callback(call.wake)
            try:
                while not task.done():
                    try:
                        await finished
                    except asyncio.CancelledError:
                        if not cancelled_from_outside():
                            raise
                        take_back_cancellation("hook call")
                        if finished.cancelled():
                            finished = call.finished = loop.create_future()
            except BaseException:  # the caller was stopped: so is the hook (if it lets us)
                call.stop(task)
                # And the caller ends after it (structured concurrency): the task that
                # entered the plugin waits, on leaving it, for a hook that shields itself.
                with anyio.CancelScope(shield=True):
                    while not task.done():
                        try:
                            await asyncio.wait((task,))
                        except asyncio.CancelledError:
                            take_back_cancellation("hook call")
                if call.interrupt is not None:
                    raise call.interrupt from None
                raise
        elif not task.done():
            # Python 3.11: the call ended in the first step; the task ends at its own
            # first step (the loop's next round), which runs nothing of the hook's.
            if task.cancelling():  # the hook cancelled its own task, and returned
                self._cancelled_task(call, awaitable)
            if call.interrupt is not None:
                raise call.interrupt
            if _TAILS.current.count > _TAILS_AT_MOST:  # this loop's (set by _start_task)
                await _let_the_loop_run()
            return
        if task.cancelled():  # cancelled from outside before it could even start
            self._cancelled_task(call, awaitable)
            return
        if call.interrupt is not None:  # KeyboardInterrupt / SystemExit: not ours to swallow
            raise call.interrupt

    def _cancelled_task(self, call: _HookCall, awaitable: Any) -> None:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        report_hook_failure(
            self._pm,
            call.impl.plugin_name,
            call.hook_name,
            asyncio.CancelledError("the hook's task was cancelled before it ran"),
        )

    async def _run_bounded(self, awaitable: Any, call: _HookCall) -> None:
        """The body of a hook's own task: ``await awaitable`` within the call's timeout.

        A call still running at its deadline is reported as timed out then, whether or not
        its cancellation stops it: one that shields itself from it (``CancelScope(shield=
        True)``) or takes it back (``except CancelledError``) and goes on holds up every hook
        call after it all the same, and must not pass unnoticed (nor a test of the testing
        kit). The deadline is one loop timer (see :meth:`_in_own_task`), which cancels the
        call's scope and reports it at once (anyio's ``move_on_after`` would only say so
        once the call ended, if it ever does)."""
        task = asyncio.current_task()
        if task is not None:
            HOOK_TASKS[task] = self._pm
            HOOK_TASK.set(task)  # in this task's own context: the tasks it starts inherit it
        try:
            scope = _cancel_scope()
            with scope:
                call.scope = scope
                await awaitable
            if scope.cancelled_caught:  # its deadline (reported), or the plugin stopping it
                self._overdue(call)
        except Exception as error:  # a plugin's bug must not reach the others
            report_hook_failure(self._pm, call.impl.plugin_name, call.hook_name, error)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt | SystemExit):
                call.interrupt = error  # the caller raises it (see _HookCall.interrupt)
                return
            # A stray CancelledError (the hook's own timer, a task.cancel() of this task
            # from outside), pytest's fail(): that plugin's failure, contained in this task.
            report_hook_failure(self._pm, call.impl.plugin_name, call.hook_name, error)
        finally:
            if task is not None:
                HOOK_TASKS.pop(task, None)
            call.end()

    def _deadline_passed(self, call: _HookCall) -> None:
        """The call is still running at its deadline: cancel it (the anyio way) and report
        it as timed out, whether or not the cancellation stops it."""
        if call.scope is not None:
            call.scope.cancel()
        self._overdue(call)

    def _overdue(self, call: _HookCall) -> None:
        """Report the call as timed out, once."""
        if not call.timed_out:
            call.timed_out = True
            report_hook_failure(
                self._pm,
                call.impl.plugin_name,
                call.hook_name,
                None,
                timed_out=True,
                timeout=call.timeout,
            )

    def _execute(self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
        """Call one implementation the way pluggy calls a hook (its hook execution, so that
        ``pm.add_hookcall_monitoring()`` and ``pm.enable_tracing()`` see every call, with
        that implementation as the call's list); return what it returned. For an ``async
        def`` implementation that is the coroutine, which the caller then runs.

        While nothing monitors the manager (its hook execution is pluggy's own), the
        implementation is called directly: the same call, without pluggy's bookkeeping."""
        if unmonitored(self._pm) and not getattr(impl, "kwargnames", ()):
            return impl.function(*[kwargs[name] for name in impl.argnames])
        results = self._hookexec(hook_name, [impl], kwargs, False)
        return results[0] if results else None

    def _call_plain(self, hook_name: str, impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
        """Call a plain implementation; return the awaitable it returned, else None."""
        started = time.perf_counter()
        result = self._execute(hook_name, impl, kwargs)
        elapsed = time.perf_counter() - started
        if elapsed > self._blocking_limit:
            # Longer than any hook may take: the timers that release tickets could not run
            # meanwhile (the promise's hook_timeout bound), so it is a failure of that
            # plugin, as an async def hook that overran would be.
            report_hook_failure(
                self._pm,
                impl.plugin_name,
                hook_name,
                None,
                timed_out=True,
                timeout=self._blocking_limit,
                blocked=elapsed,
            )
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
