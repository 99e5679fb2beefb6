"""OutboundPlugin: the core plugin, as an async context manager."""

from __future__ import annotations

import asyncio
import enum
import inspect
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, overload

import anyio
import pluggy

from ._background import BackgroundTasks, run_to_the_end, to_the_end
from ._cometd import CometDListener, CometDState
from ._config import GWSConfig
from ._core_hooks import (
    ACCEPTED,
    CORE_PLUGIN_NAME,
    CoreAbsentGuard,
    CoreHooks,
    CoreMarker,
    bind_core,
    log_request_goes_on,
    not_a_request,
    refuse_wrappers,
    unbind_core,
)
from ._dispatcher import HookDispatcher, safe_log, unmonitored
from ._engine import Engine, outcome_bound
from ._exceptions import GWSOutboundError, NotRunningError
from ._http_link import DEFAULT_CHANNELS, HTTPCometDTransport
from ._log import get_logger
from ._payloads import OperationAck, RecordCancelAck
from ._requests import CancelRequest, OperationRequest
from ._seam import OutboundTransport
from ._session import GWSSession
from ._ticket import HOOK_TASK, CancelTicket, OperationTicket, in_hook
from ._transport_events import TransportEvents

__all__ = ["CORE_PLUGIN_NAME", "DEFAULT_CHANNELS", "CoreAbsentGuard", "CoreHooks", "OutboundPlugin"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class OutboundPlugin:
    """The GWS outbound plugin core for one agent.

    ``async with OutboundPlugin(pm, config) as plugin:`` logs in to GWS, opens the CometD
    session on the same HTTP session, subscribes to ``/v2/me/outbound`` and ``/me/internal``
    and binds the core to ``pm``. From then on a ``pm.hook.on_cancel_requested(request=...)``
    or ``pm.hook.on_operation_requested(request=...)`` from any thread is sent to GWS, and its
    outcome resolves the ticket and fans out as hooks.

    Leaving the block (or :meth:`aclose`, from any task) unbinds the core, waits up to
    ``config.drain_timeout`` for pending outcomes, fails the rest (reason ``shut_down``),
    makes the hook calls still queued and closes the transport. One ``OutboundPlugin`` per
    plugin manager; it can be entered once.

    ``transport=`` replaces GWS over HTTP and CometD (:class:`HTTPCometDTransport`, made from
    ``config`` and ``channels``) with any :class:`OutboundTransport`, such as
    ``testing.FakeGWS``; ``channels=`` then belongs to the transport (passing both is a
    ``ValueError``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # OutboundPlugin(config), the plugin manager left out, would otherwise be "missing 1
        # required positional argument: 'config'": just what the caller thinks they gave.
        # Only for OutboundPlugin's own __init__: a host's subclass may take the config alone.
        if (
            cls.__init__ is OutboundPlugin.__init__
            and len(args) == 1
            and isinstance(args[0], GWSConfig)
            and not {"pm", "config"} & set(kwargs)
        ):
            raise TypeError(
                "OutboundPlugin takes the plugin manager first, then the GWSConfig: "
                "OutboundPlugin(make_plugin_manager(), config)"
            )
        return super().__new__(cls)

    def __init__(
        self,
        pm: pluggy.PluginManager,
        config: GWSConfig,
        *,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        name: str = CORE_PLUGIN_NAME,
        transport: OutboundTransport | None = None,
    ) -> None:
        if isinstance(pm, GWSConfig) and isinstance(config, pluggy.PluginManager):
            raise TypeError(
                "OutboundPlugin(config, pm): the arguments are the other way round, the "
                "plugin manager first: OutboundPlugin(pm, config)"
            )
        if not isinstance(config, GWSConfig):
            raise TypeError(
                f"config must be a GWSConfig, not {type(config).__name__} "
                "(GWSConfig(base_url=..., username=..., password=...), GWSConfig(**settings) "
                "or GWSConfig.from_env())"
            )
        if transport is not None and tuple(channels) != DEFAULT_CHANNELS:
            raise ValueError(
                "pass channels= or transport=, not both: the transport subscribes to its own "
                "channels (HTTPCometDTransport(config, channels=...) takes them)"
            )
        self.pm = pm
        self.config = config
        self.name = name
        self._transport: OutboundTransport = (
            HTTPCometDTransport(config, channels) if transport is None else transport
        )
        self._state = _State.NEW
        self._engine = Engine(
            config,
            self._transport,
            HookDispatcher(
                pm, hook_timeout=config.hook_timeout, slow_hook_warning=config.slow_hook_warning
            ),
            is_connected=lambda: self._transport.state is CometDState.CONNECTED,
            wait_connected=self._transport.wait_connected,
        )
        self._events = TransportEvents(
            self._engine,
            HookDispatcher(
                pm, hook_timeout=config.hook_timeout, slow_hook_warning=config.slow_hook_warning
            ),
        )
        self._tasks = BackgroundTasks("OutboundPlugin", orphaned=self._left_open)
        self._core: CoreHooks | None = None
        self._core_registered = False
        self._closed = asyncio.Event()  # asyncio's can be made outside an event loop
        self._started = asyncio.Event()

    def __repr__(self) -> str:
        return f"<OutboundPlugin {self.config.username}@{self.config.base_url} {self._state.value}>"

    # -- information -------------------------------------------------------------------------

    @property
    def transport(self) -> OutboundTransport:
        """What the plugin talks to GWS through (``HTTPCometDTransport`` unless one was
        passed as ``transport=``)."""
        return self._transport

    @property
    def _session(self) -> GWSSession | None:
        """The default transport's GWS session (for the tests of the HTTP layer)."""
        transport = self._transport
        return transport.session if isinstance(transport, HTTPCometDTransport) else None

    @property
    def _listener(self) -> CometDListener | None:
        """The default transport's CometD listener (for the tests of the CometD layer)."""
        transport = self._transport
        return transport.listener if isinstance(transport, HTTPCometDTransport) else None

    @property
    def running(self) -> bool:
        """True between entering and the start of closing: requests are accepted."""
        return self._state is _State.RUNNING

    @property
    def cometd_state(self) -> CometDState:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return self._transport.state

    @property
    def connection_state(self) -> CometDState:
        """The connection to GWS's notifications, for a host's "online / offline" display:
        ``connecting`` (starting), ``connected`` (outcomes can be heard), ``reconnecting``
        (the CometD session was lost: no outcome can be heard until it is back) or
        ``closed``. A ``str`` enum (``plugin.connection_state == "connected"``); every change
        also fires ``on_connection_state_changed(state, previous)``."""
        return self._transport.state

    @property
    def refused_channels(self) -> tuple[str, ...]:
        """Channels the server refused to subscribe (``/me/internal`` on some GWS): the
        plugin runs without them (acknowledgements then carry no user data)."""
        return tuple(self._transport.refused_channels)

    @property
    def pending_count(self) -> int:
        """Requests accepted whose ticket has not resolved yet."""
        return self._engine.pending_count

    @property
    def outcome_bound(self) -> float:
        """Seconds within which every accepted request's ticket resolves while the plugin
        runs (see "The promise" in ``docs/hosting.md``); closing resolves them all sooner."""
        return outcome_bound(self.config, self._transport.retry_policy)

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters: accepted, acknowledged, failed, foreign_acks, duplicates, late, ..."""
        stats = self._engine.stats
        stats["refused_channels"] = len(self.refused_channels)
        return stats

    @property
    def user(self) -> Mapping[str, Any]:
        """The ``user`` object of ``GET /api/v2/me``."""
        return self._transport.user

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the CometD session is connected and subscribed (after a loss)."""
        with anyio.fail_after(timeout):
            await self._transport.wait_connected()

    async def wait_hooks_idle(self, timeout: float | None = None) -> bool:
        """Wait until every hook call decided so far was made (tickets do not wait for
        hooks); False if ``timeout`` passed first."""
        return await self._engine.wait_hooks_idle(timeout)

    async def devices(self) -> list[Mapping[str, Any]]:
        """The agent's devices (``GET /api/v2/me/devices``): ``id``, ``phoneNumber``, ..."""
        self._require_running()
        return await self._transport.devices()

    async def device_path(self) -> str:
        """``/devices/<id>`` of the agent's first device, for ``CancelRequest.device_path``."""
        for device in await self.devices():
            device_id = device.get("id")
            if isinstance(device_id, str) and device_id:
                return f"/devices/{device_id}"
        raise GWSOutboundError("GWS lists no device for this agent")

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        """Log the agent out of the contact center: ``POST /api/v2/me {"operationName":
        "EndContactCenterSession"}`` on the plugin's own session (on every desktop of the
        agent; GWS restores the default devices and ends the HTTP session, so close the
        plugin next). GWS's answer; raises ``GWSError`` as a POST does.

        :raises NotRunningError: the plugin is not running; nothing was sent.
        """
        self._require_running()
        return await self._transport.end_contact_center_session()

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
            raise not_a_request("submit", request)
        if self._state is not _State.RUNNING:
            self._require_running()
        if isinstance(request, CancelRequest):
            hook = self.pm.hook.on_cancel_requested
        else:
            hook = self.pm.hook.on_operation_requested
        direct = self._direct_accept(hook, request)
        if direct is not None:
            return direct
        ACCEPTED.ticket = None  # not one left by a host's own call of the hook
        try:
            results = hook(request=request)
            accepted: OperationTicket[Any] | None = ACCEPTED.ticket
        except BaseException as error:
            # Raised after the core accepted it (a hook call monitor of the manager, say,
            # also with a BaseException such as pytest's fail()): the request goes on, so
            # the host gets its ticket, as when an observer raises. KeyboardInterrupt and
            # SystemExit go through, logged as going on.
            accepted = ACCEPTED.ticket
            if accepted is None or accepted.request is not request:
                raise
            log_request_goes_on(accepted.reference_id, error)
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            return accepted
        finally:
            ACCEPTED.ticket = None
        for result in results if isinstance(results, list | tuple) else ():
            if isinstance(result, OperationTicket):
                ticket: OperationTicket[Any] = result
                return ticket
        if accepted is not None and accepted.request is request:
            # A hook wrapper registered since the start (a bare pluggy manager does not refuse
            # one) dropped the core's ticket: the request goes on, so the host gets it.
            log_request_goes_on(
                accepted.reference_id, "a hook wrapper dropped the ticket from the hook's results"
            )
            return accepted
        raise NotRunningError("the core did not accept the request; nothing was sent")

    def _direct_accept(
        self, hook: pluggy.HookCaller, request: OperationRequest
    ) -> OperationTicket[Any] | None:
        """The core's ticket without pluggy's hook call, when that call would do nothing
        more: this plugin's core is the hook's only implementation and nothing monitors the
        manager (``pm.add_hookcall_monitoring()`` and ``pm.enable_tracing()`` see every call
        they would have seen). Else ``None``: the hook is called."""
        core = self._core
        if core is None or not unmonitored(self.pm):
            return None
        impls = hook.get_hookimpls()
        if len(impls) != 1 or impls[0].plugin is not core:
            return None
        engine = core.engine
        if engine is None:
            return None
        # What CoreHooks._accept does with no observer after it: [ticket]
        ticket: OperationTicket[Any] = engine.accept(request)
        return ticket

    async def cancel(self, request: CancelRequest) -> RecordCancelAck:
        """Fire ``on_cancel_requested`` and await the outcome.

        :raises CancelFailed: the cancel failed (``.failure`` says why).
        :raises NotRunningError: the plugin is not running; nothing was sent.
        """
        if not isinstance(request, CancelRequest):
            raise not_a_request("cancel", request)
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
            raise not_a_request("perform", request)
        ticket: OperationTicket[Any] = self.submit(request)
        ack: RecordCancelAck | OperationAck = await ticket
        return ack

    def _require_running(self) -> None:
        if self._state is not _State.RUNNING:
            hint = (
                " (enter it first: `async with OutboundPlugin(pm, config) as plugin:`)"
                if self._state is _State.NEW
                else ""
            )
            raise NotRunningError(
                f"the GWS outbound plugin is {self._state.value}; nothing was sent{hint}"
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
        self._refuse_a_second_core()
        spec = getattr(self.pm.hook, "on_cancel_requested", None)
        if not isinstance(spec, pluggy.HookCaller) or spec.spec is None:
            raise GWSOutboundError(
                "the plugin manager has no gws_outbound hook specifications: make it with "
                "make_plugin_manager(), or call "
                "pm.add_hookspecs(gws_outbound_plugin.hookspecs) on a pluggy.PluginManager"
            )
        refuse_wrappers(self.pm)
        self._state = _State.STARTING
        started = time.perf_counter()
        try:
            await self._transport.open(self._events)
            await self._tasks.enter()
            # Again, now that the transport is open: another plugin on this manager may have
            # started meanwhile (both entered at once).
            self._refuse_a_second_core()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._transport.close()
            self._state = _State.CLOSED
            self._closed.set()
            self._started.set()
            raise
        self._engine.start(self._tasks.spawn)
        self._tasks.spawn(self._transport.run, self._engine.deliver)
        self._tasks.spawn(self._events.run)
        self._core, self._core_registered = bind_core(self.pm, self._engine, self.name)
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

    def _refuse_a_second_core(self) -> None:
        """One running ``OutboundPlugin`` per plugin manager, whatever its ``name=``: a
        second core on the same bus would accept every request the first accepts, send it
        again (with the same referenceId, through its own session) and fire a second outcome
        for it on the same hooks."""
        for name, plugin in self.pm.list_name_plugin():
            if isinstance(plugin, CoreHooks) and plugin.engine is not None:
                marker = next(
                    (n for n, p in self.pm.list_name_plugin() if isinstance(p, CoreMarker)),
                    name,
                )
                raise GWSOutboundError(
                    f"another OutboundPlugin (named {marker!r}) runs on this plugin manager: "
                    "one OutboundPlugin per plugin manager (a second one would send every "
                    "request again and give it a second outcome); give each agent a manager "
                    "of its own"
                )

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
        that task's ``async with`` exit. From inside one of its own hooks (of ``pm``), the
        close runs in a task of its own and this call returns at once (the close waits for
        the hook calls); so it does when the plugin is closing already (the close is underway
        and waits for that hook). From another plugin's hook it closes as from any task.
        """
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            self._closed.set()
            return
        own_hook = in_hook(self.pm)
        if own_hook and self._state is _State.RUNNING and self._tasks.entered:
            # From a hook: closing waits for the hook calls, this one included, so the close
            # runs in a task of its own and this call returns at once.
            self._tasks.start_soon(self._close_from_hook, drain)
            return
        if own_hook and self._state in (_State.CLOSING, _State.CLOSED):
            # From a hook the close is making (or made): it is underway and waits for this
            # very hook call; waiting for it here would stall both until the close's hook
            # budget ran out and the hook calls still queued were dropped.
            return
        cancelled = False
        if self._state is _State.STARTING:
            cancelled = await _wait_through_cancellation(self._started)
        if self._state is _State.CLOSING:
            # Another task closes it: wait for that close (a plain task.cancel() of this
            # task meanwhile is raised once it is done, after the group below was left, so
            # the scopes of the task that entered the plugin stay intact).
            cancelled = await _wait_through_cancellation(self._closed) or cancelled
        if self._state is _State.CLOSED:
            await self._tasks.exit()
            if cancelled:
                raise asyncio.CancelledError
            return
        self._state = _State.CLOSING
        try:
            with anyio.CancelScope(shield=True):
                await run_to_the_end(lambda: self._shutdown(drain))
            if cancelled:  # while it waited for the start
                raise asyncio.CancelledError
        finally:
            self._state = _State.CLOSED
            self._closed.set()
            # Also when the close raised (the host's task cancelled again meanwhile): the
            # task group's scope must not be left open on the host's task, whose own scopes
            # could not be exited any more (anyio: "Attempted to exit a cancel scope that
            # isn't the current tasks's current cancel scope").
            await self._tasks.exit()

    def _left_open(self) -> asyncio.Event | None:
        """The task that entered the plugin ended without closing it, and a plain
        ``task.cancel()`` reached the plugin's tasks (``asyncio.run`` returning and
        cancelling every task, a host's shutdown): nothing is left to close the plugin, and
        its tasks, which take such a cancellation back until the close stops them, would
        keep the host waiting for them for ever. It closes itself, as ``aclose(drain=False)``
        (every pending request is decided), in a task of its own; its tasks, once stopped,
        wait for that close (returned) before they end."""
        if self._state is _State.RUNNING:
            safe_log(logger.warning, "plugin_left_open", pending=self._engine.pending_count)
            self._tasks.start_orphan_close(self._close_left_open)
        return self._closed if self._state is not _State.CLOSED else None

    async def _close_left_open(self) -> None:
        HOOK_TASK.set(None)
        try:
            await self.aclose(drain=False)
        except Exception:
            safe_log(logger.exception, "close_failed")

    async def _close_from_hook(self, drain: bool) -> None:
        # Started from the hook, this task copied its context: it is not inside the hook (it
        # would only start another close task, and so on, while the hook runs).
        HOOK_TASK.set(None)
        try:
            await self.aclose(drain=drain)
        except Exception:
            safe_log(logger.exception, "close_from_hook_failed")

    async def _shutdown(self, drain: bool) -> None:
        self._engine.stop_accepting()
        core, self._core = self._core, None
        unbind_core(self.pm, core, self._core_registered, self.name)
        drain_timeout = self.config.drain_timeout if drain else 0.0
        try:
            await self._engine.drain(drain_timeout)
            await self._engine.close(hook_budget=max(drain_timeout, self.config.hook_timeout))
        finally:
            self._tasks.stop()
            self._engine.cancel_pump()
            await to_the_end(self._transport.close, "closing the transport")
            logger.info("plugin_stopped", user=self.config.username, stats=dict(self.stats))


class _ConstructorSignature:
    """``inspect.signature(cls)`` of ``OutboundPlugin`` and its subclasses: the parameters of
    the class's ``__init__`` (a host's subclass's own), not ``__new__``'s ``(*args, **kwargs)``
    (``__new__`` takes anything to refuse ``OutboundPlugin(config)`` in words). ``None`` (let
    inspect look) for a subclass with a ``__new__`` of its own."""

    def __get__(self, instance: object, owner: type[Any]) -> inspect.Signature | None:
        own_new: object = owner.__new__
        if own_new is not _PLUGIN_NEW:
            return None
        try:
            init = inspect.signature(owner.__init__)
        except (TypeError, ValueError):
            return None
        return init.replace(parameters=list(init.parameters.values())[1:])


_PLUGIN_NEW: object = OutboundPlugin.__new__
# Computed for the class it is read on, so that a subclass shows its own constructor's.
setattr(  # noqa: B010 (mypy knows no __signature__ on a class)
    OutboundPlugin, "__signature__", _ConstructorSignature()
)


async def _wait_through_cancellation(event: asyncio.Event) -> bool:
    """Wait until ``event`` is set, shielded from anyio's cancellation and through a plain
    ``task.cancel()`` too; whether one came meanwhile (the caller raises it when done)."""
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not event.is_set():
            try:
                await event.wait()
            except asyncio.CancelledError:
                cancelled = True
    return cancelled
