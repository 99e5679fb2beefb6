"""OutboundPlugin: the core plugin, as an async context manager."""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, overload

import anyio
import pluggy
from anyio.abc import TaskGroup

from ._cometd import CometDListener, CometDState
from ._config import GWSConfig
from ._dispatcher import (
    DISPATCHED_HOOKS,
    HOST_FIRED_HOOKS,
    HookDispatcher,
    cancelled_by_plugin,
    cancelled_from_outside,
    report_hook_failure,
    safe_log,
    take_back_cancellation,
)
from ._engine import Engine, outcome_bound
from ._exceptions import (
    GWSOutboundError,
    InvalidCancelRequest,
    InvalidOperationRequest,
    NotRunningError,
)
from ._log import get_logger
from ._payloads import OperationAck, RecordCancelAck
from ._requests import OPERATION_TYPES, CancelRequest, OperationRequest
from ._session import GWSSession
from ._ticket import CancelTicket, OperationTicket, in_hook
from .hookspecs import hookimpl

__all__ = ["CORE_PLUGIN_NAME", "DEFAULT_CHANNELS", "CoreAbsentGuard", "CoreHooks", "OutboundPlugin"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

CORE_PLUGIN_NAME: Final = "gws_outbound_core"
#: The CometD channels the plugin subscribes to.
DEFAULT_CHANNELS: Final = ("/v2/me/outbound", "/me/internal")


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


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
            raise InvalidCancelRequest(
                {
                    "request": f"on_cancel_requested takes a CancelRequest, got "
                    f"{type(request).__name__} (fire on_operation_requested for other "
                    "operations; nothing was sent)"
                }
            )
        return (yield from self._accept("on_cancel_requested", request, "cancel"))

    @hookimpl(wrapper=True)
    def on_operation_requested(self, request: Any) -> Generator[None, Any, Any]:
        return (yield from self._accept("on_operation_requested", request, "request"))

    def _accept(self, hook: str, request: Any, what: str) -> Generator[None, Any, Any]:
        engine = self.engine
        if engine is None:
            raise NotRunningError(
                f"no running OutboundPlugin accepted the {what}; nothing was sent"
            )
        ticket = engine.accept(request)
        _ACCEPTED.ticket = ticket  # for submit(), should something after this hide it
        try:
            results = yield
        except BaseException as error:
            # An observer's failure must not hide the ticket: the request was accepted and
            # goes on, and a host told otherwise might send it again.
            if self.pm is not None:
                report_hook_failure(self.pm, _culprit(self.pm, hook, error), hook, error)
            if isinstance(error, KeyboardInterrupt | SystemExit):
                safe_log(
                    logger.error,
                    "accepted_request_goes_on",
                    reference_id=ticket.reference_id,
                    interrupted_by=type(error).__name__,
                )
                raise
            results = []
        return [ticket, *results]


#: The ticket the core accepted last in this thread (see ``OutboundPlugin.submit``).
_ACCEPTED: Final = threading.local()

#: Kept for ``make_plugin_manager()`` and code that imported it: the unbound core hooks.
CoreAbsentGuard = CoreHooks


class _CoreMarker:
    """Registered under the plugin's name while it runs (the hooks live in the manager's
    ``CoreHooks``): ``pm.has_plugin(CORE_PLUGIN_NAME)`` tells whether a core runs."""


def _culprit(pm: pluggy.PluginManager, hook: str, error: BaseException) -> str | None:
    """The plugin whose implementation raised ``error`` (from its traceback)."""
    codes = {
        getattr(impl.function, "__code__", None): impl.plugin_name
        for impl in getattr(pm.hook, hook).get_hookimpls()
    }
    traceback = error.__traceback__
    name = None
    while traceback is not None:
        name = codes.get(traceback.tb_frame.f_code, name)
        traceback = traceback.tb_next
    return name


def _not_a_request(method: str, request: object) -> InvalidOperationRequest:
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


#: Connection state changes waiting for their hook call at most (a few per loss).
_STATE_CHANGES_BUFFER: Final = 64


async def _to_the_end(close: Callable[[], Awaitable[None]], what: str) -> None:
    """One step of the close: a plain ``task.cancel()`` from outside that cuts it short (or
    a cancelled task of the CometD client it awaits) does not stop the steps after it."""
    try:
        await close()
    except asyncio.CancelledError:
        if cancelled_by_plugin():
            raise
        take_back_cancellation(what)


class OutboundPlugin:
    """The GWS outbound plugin core for one agent.

    ``async with OutboundPlugin(pm, config) as plugin:`` logs in to GWS, opens the CometD
    session on the same HTTP session, subscribes to ``/v2/me/outbound`` and ``/me/internal``
    and binds the core to ``pm``. From then on a ``pm.hook.on_cancel_requested(request=...)``
    or ``pm.hook.on_operation_requested(request=...)`` from any thread is sent to GWS, and its
    outcome resolves the ticket and fans out as hooks.

    Leaving the block (or :meth:`aclose`, from any task) unbinds the core, waits up to
    ``config.drain_timeout`` for pending outcomes, fails the rest (reason ``shut_down``),
    makes the hook calls still queued and closes both HTTP stacks. One ``OutboundPlugin`` per
    plugin manager; it can be entered once.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        config: GWSConfig,
        *,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        name: str = CORE_PLUGIN_NAME,
    ) -> None:
        self.pm = pm
        self.config = config
        self.name = name
        self._channels = tuple(channels)
        self._state = _State.NEW
        self._session = GWSSession(config)
        self._listener = CometDListener(
            config,
            self._session,
            self._channels,
            on_lost=self._on_lost,
            on_restored=self._on_restored,
            on_state=self._on_connection_state,
        )
        # on_connection_state_changed: every change, in order, through one delivery task
        # (the changes while starting are delivered once it runs).
        self._state_changes: collections.deque[tuple[CometDState, CometDState]] = collections.deque(
            maxlen=_STATE_CHANGES_BUFFER
        )
        self._state_changed = asyncio.Event()  # asyncio's can be made outside an event loop
        self._state_hooks = HookDispatcher(
            pm, hook_timeout=config.hook_timeout, slow_hook_warning=config.slow_hook_warning
        )
        self._engine = Engine(
            config,
            self._session,
            HookDispatcher(
                pm, hook_timeout=config.hook_timeout, slow_hook_warning=config.slow_hook_warning
            ),
            is_connected=lambda: self._listener.state is CometDState.CONNECTED,
            wait_connected=self._listener.wait_connected,
        )
        self._tg: TaskGroup | None = None
        self._owner: int | None = None
        self._core: CoreHooks | None = None
        self._core_registered = False
        self._closed = asyncio.Event()  # asyncio's can be made outside an event loop
        self._started = asyncio.Event()
        self._scopes: list[anyio.CancelScope] = []

    def __repr__(self) -> str:
        return f"<OutboundPlugin {self.config.username}@{self.config.base_url} {self._state.value}>"

    # -- information -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    @property
    def cometd_state(self) -> CometDState:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return self._listener.state

    @property
    def connection_state(self) -> CometDState:
        """The connection to GWS's notifications, for a host's "online / offline" display:
        ``connecting`` (starting), ``connected`` (outcomes can be heard), ``reconnecting``
        (the CometD session was lost: no outcome can be heard until it is back) or
        ``closed``. A ``str`` enum (``plugin.connection_state == "connected"``); every change
        also fires ``on_connection_state_changed(state, previous)``."""
        return self._listener.state

    @property
    def refused_channels(self) -> tuple[str, ...]:
        """Channels the server refused to subscribe (``/me/internal`` on some GWS): the
        plugin runs without them (acknowledgements then carry no user data)."""
        return tuple(getattr(self._listener, "refused_channels", ()))

    @property
    def pending_count(self) -> int:
        """Requests accepted whose ticket has not resolved yet."""
        return self._engine.pending_count

    @property
    def outcome_bound(self) -> float:
        """Seconds within which every accepted request's ticket resolves while the plugin
        runs (see "The promise" in ``docs/hosting.md``); closing resolves them all sooner."""
        return outcome_bound(self.config, self._session.retry_policy)

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters: accepted, acknowledged, failed, foreign_acks, duplicates, late, ..."""
        stats = self._engine.stats
        stats["refused_channels"] = len(self.refused_channels)
        return stats

    @property
    def user(self) -> Mapping[str, Any]:
        """The ``user`` object of ``GET /api/v2/me``."""
        return self._session.user

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the CometD session is connected and subscribed (after a loss)."""
        with anyio.fail_after(timeout):
            await self._listener.wait_connected()

    async def wait_hooks_idle(self, timeout: float | None = None) -> bool:
        """Wait until every hook call decided so far was made (tickets do not wait for
        hooks); False if ``timeout`` passed first."""
        return await self._engine.wait_hooks_idle(timeout)

    async def devices(self) -> list[Mapping[str, Any]]:
        """The agent's devices (``GET /api/v2/me/devices``): ``id``, ``phoneNumber``, ..."""
        self._require_running()
        return await self._session.devices()

    async def device_path(self) -> str:
        """``/devices/<id>`` of the agent's first device, for ``CancelRequest.device_path``."""
        for device in await self.devices():
            device_id = device.get("id")
            if isinstance(device_id, str) and device_id:
                return f"/devices/{device_id}"
        raise GWSOutboundError("GWS lists no device for this agent")

    # -- requests ----------------------------------------------------------------------------

    # A CancelRequest is an OperationRequest too: the first overload, more specific, wins.
    @overload
    def submit(self, request: CancelRequest) -> CancelTicket: ...  # type: ignore[overload-overlap]

    @overload
    def submit(self, request: OperationRequest) -> OperationTicket[OperationAck]: ...

    def submit(self, request: OperationRequest) -> OperationTicket[Any]:
        """Fire the request's hook and return the core's ticket (any thread, no I/O).

        A :class:`CancelRequest` fires ``on_cancel_requested`` and returns a
        :class:`CancelTicket`; any other request fires ``on_operation_requested`` and returns
        an :class:`OperationTicket`.
        """
        if not isinstance(request, OperationRequest):
            raise _not_a_request("submit", request)
        self._require_running()
        _ACCEPTED.ticket = None
        try:
            if isinstance(request, CancelRequest):
                results = self.pm.hook.on_cancel_requested(request=request)
            else:
                results = self.pm.hook.on_operation_requested(request=request)
        except Exception as error:
            # Raised after the core accepted it (a hook call monitor of the manager, say):
            # the request goes on, so the host gets its ticket, as when an observer raises.
            accepted: OperationTicket[Any] | None = getattr(_ACCEPTED, "ticket", None)
            _ACCEPTED.ticket = None
            if accepted is None or accepted.request is not request:
                raise
            safe_log(
                logger.error,
                "accepted_request_goes_on",
                reference_id=accepted.reference_id,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            return accepted
        _ACCEPTED.ticket = None
        for result in results:
            if isinstance(result, OperationTicket):
                ticket: OperationTicket[Any] = result
                return ticket
        raise NotRunningError("the core did not accept the request; nothing was sent")

    async def cancel(self, request: CancelRequest) -> RecordCancelAck:
        """Fire ``on_cancel_requested`` and await the outcome.

        :raises CancelFailed: the cancel failed (``.failure`` says why).
        :raises NotRunningError: the plugin is not running; nothing was sent.
        """
        if not isinstance(request, CancelRequest):
            raise _not_a_request("cancel", request)
        ticket: CancelTicket = self.submit(request)
        return await ticket

    @overload
    async def perform(self, request: CancelRequest) -> RecordCancelAck: ...  # type: ignore[overload-overlap]

    @overload
    async def perform(self, request: OperationRequest) -> OperationAck: ...

    async def perform(self, request: OperationRequest) -> RecordCancelAck | OperationAck:
        """Fire the request's hook and await the outcome: the ``OperationAck`` (the
        ``RecordCancelAck`` for a cancel).

        :raises OperationFailed: the request failed (``CancelFailed`` for a cancel).
        :raises NotRunningError: the plugin is not running; nothing was sent.
        """
        if not isinstance(request, OperationRequest):
            raise _not_a_request("perform", request)
        ticket: OperationTicket[Any] = self.submit(request)
        ack: RecordCancelAck | OperationAck = await ticket
        return ack

    def _require_running(self) -> None:
        if self._state is not _State.RUNNING:
            raise NotRunningError(
                f"the GWS outbound plugin is {self._state.value}; nothing was sent"
            )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> OutboundPlugin:
        if self._state is not _State.NEW:
            raise GWSOutboundError(
                f"an OutboundPlugin can be entered once (this one is {self._state.value})"
            )
        if self.pm.has_plugin(self.name):
            raise GWSOutboundError(
                f"a plugin named {self.name!r} is already registered: one OutboundPlugin "
                "per plugin manager"
            )
        self._refuse_wrappers()
        self._state = _State.STARTING
        started = time.perf_counter()
        try:
            await self._session.open()
            await self._listener.open()
            tg = anyio.create_task_group()
            await tg.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._listener.close()
                await self._session.close()
            self._state = _State.CLOSED
            self._closed.set()
            self._started.set()
            raise
        self._tg = tg
        self._owner = anyio.get_current_task().id
        self._engine.start(self._spawn)
        self._spawn(self._listener.run, self._engine.deliver)
        self._spawn(self._deliver_state_changes)
        self._bind_core()
        self._state = _State.RUNNING
        self._started.set()
        logger.info(
            "plugin_started",
            user=self.config.username,
            base_url=self.config.base_url,
            seconds=round(time.perf_counter() - started, 4),
            refused_channels=list(self.refused_channels) or None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc is not None and isinstance(exc, anyio.get_cancelled_exc_class())
        await self.aclose(drain=not cancelled)

    async def aclose(self, *, drain: bool = True) -> None:
        """Stop: unbind, drain (unless ``drain=False``), fail the rest, make the queued hook
        calls, close. Idempotent, and safe from any task: a second call waits for the first.

        The task group of the background tasks belongs to the task that entered the plugin:
        from another task, the background tasks are stopped here and the group is left to
        that task's ``async with`` exit. From inside a hook, the close runs in a task of its
        own and this call returns at once (the close waits for the hook calls).
        """
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            self._closed.set()
            return
        if in_hook() and self._state is _State.RUNNING and self._tg is not None:
            # From a hook: closing waits for the hook calls, this one included, so the close
            # runs in a task of its own and this call returns at once.
            self._tg.start_soon(self._close_from_hook, drain)
            return
        if self._state is _State.STARTING:
            with anyio.CancelScope(shield=True):
                await self._started.wait()
        if self._state is _State.CLOSED:
            await self._exit_task_group()
            return
        if self._state is _State.CLOSING:
            with anyio.CancelScope(shield=True):
                await self._closed.wait()
            await self._exit_task_group()
            return
        self._state = _State.CLOSING
        try:
            with anyio.CancelScope(shield=True):
                await self._shutdown_to_the_end(drain)
        finally:
            self._state = _State.CLOSED
            self._closed.set()
        await self._exit_task_group()

    async def _shutdown_to_the_end(self, drain: bool) -> None:
        """Run :meth:`_shutdown` in a task of its own and wait for it: no cancellation of
        the closing task (anyio's, shielded above, or a plain asyncio ``task.cancel()``) can
        cut the close short. A plain cancellation received meanwhile is raised once the
        close is done."""
        cancelled = False
        loop = asyncio.get_running_loop()
        for _ in range(3):  # a closer cancelled from outside before it ran is started again
            closer = loop.create_task(self._shutdown(drain))
            while not closer.done():
                try:
                    await asyncio.wait((closer,))
                except asyncio.CancelledError:
                    cancelled = True  # the host's: raised below, after the close
            if not closer.cancelled():
                break
        if closer.cancelled():
            safe_log(logger.error, "plugin_close_cut_short", attempts=3)
        error = None if closer.cancelled() else closer.exception()
        if error is not None:
            raise error
        if cancelled:
            raise asyncio.CancelledError

    async def _close_from_hook(self, drain: bool) -> None:
        try:
            await self.aclose(drain=drain)
        except Exception:
            safe_log(logger.exception, "close_from_hook_failed")

    async def _shutdown(self, drain: bool) -> None:
        self._engine.stop_accepting()
        self._unbind_core()
        drain_timeout = self.config.drain_timeout if drain else 0.0
        try:
            await self._engine.drain(drain_timeout)
            await self._engine.close(hook_budget=max(drain_timeout, self.config.hook_timeout))
        finally:
            self._stop_tasks()
            self._engine.cancel_pump()
            await _to_the_end(self._listener.close, "closing the CometD session")
            await _to_the_end(self._session.close, "closing the HTTP session")
            logger.info("plugin_stopped", user=self.config.username, stats=dict(self.stats))

    def _spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a background task in the plugin's task group, in a scope of its own.

        The host's ``async with`` body runs inside the task group's scope, so the plugin never
        cancels that scope: it cancels its tasks' own scopes. A task that raises is logged
        and does not take the host's task down.
        """
        assert self._tg is not None
        # Shielded: an anyio cancellation of the host's scopes does not reach the plugin's
        # tasks; they stop when the plugin stops them (aclose), after the last outcome.
        scope = anyio.CancelScope(shield=True)
        self._scopes.append(scope)
        self._tg.start_soon(self._guarded, scope, function, *args)

    async def _guarded(
        self, scope: anyio.CancelScope, function: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        name = getattr(function, "__qualname__", repr(function))
        with scope:
            while True:
                try:
                    await function(*args)
                    return
                except asyncio.CancelledError:
                    if cancelled_by_plugin():
                        raise  # the plugin stops it
                    if not cancelled_from_outside():
                        # Raised by something it awaited, not a cancellation of this task.
                        safe_log(logger.exception, "background_task_crashed", task=name)
                        return
                    # A plain task.cancel() from outside (a host cancelling every task):
                    # the plugin's tasks stop when the plugin stops them. Start it again.
                    take_back_cancellation(name)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:  # never into the task group: its scope is the host's
                    safe_log(logger.exception, "background_task_crashed", task=name)
                    return

    def _stop_tasks(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    async def _exit_task_group(self) -> None:
        """Exit the task group from the task that entered it, once its tasks are stopped
        (the host's own cancellation, if any, is raised here)."""
        tg = self._tg
        if tg is None or self._owner != anyio.get_current_task().id:
            return
        self._tg = None
        self._stop_tasks()
        await tg.__aexit__(None, None, None)

    def _bind_core(self) -> None:
        core = next((p for _, p in self.pm.list_name_plugin() if isinstance(p, CoreHooks)), None)
        if core is not None and core.engine is None:
            core.engine, core.pm = self._engine, self.pm
            self.pm.register(_CoreMarker(), name=self.name)
        else:
            core = CoreHooks(self._engine, self.pm)
            self.pm.register(core, name=self.name)
            self._core_registered = True
        self._core = core

    def _unbind_core(self) -> None:
        core, self._core = self._core, None
        if core is not None and not self._core_registered:
            core.engine = None
        if self.pm.has_plugin(self.name):
            self.pm.unregister(name=self.name)

    def _refuse_wrappers(self) -> None:
        for hook_name in HOST_FIRED_HOOKS:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
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
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.hookwrapper or impl.wrapper:
                    raise GWSOutboundError(
                        f"plugin {impl.plugin_name!r} wraps {hook_name}: hook wrappers are "
                        "not supported on the hooks the dispatcher fires"
                    )

    # -- CometD session events (event loop thread) -------------------------------------------

    def _on_connection_state(self, state: CometDState, previous: CometDState) -> None:
        self._state_changes.append((state, previous))  # the oldest go beyond the buffer
        self._state_changed.set()

    async def _deliver_state_changes(self) -> None:
        while True:
            await self._state_changed.wait()
            self._state_changed.clear()
            while self._state_changes:
                state, previous = self._state_changes.popleft()
                await self._state_hooks.dispatch(
                    "on_connection_state_changed", state=state.value, previous=previous.value
                )

    def _on_lost(self, why: str) -> None:
        self._engine.session_lost(why)

    def _on_restored(self) -> None:
        self._engine.session_restored()
