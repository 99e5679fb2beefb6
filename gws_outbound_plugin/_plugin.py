"""OutboundPlugin: the core plugin, as an async context manager."""

from __future__ import annotations

import enum
import inspect
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import anyio
import pluggy
import structlog
from anyio.abc import TaskGroup

from ._cometd import CometDListener, CometDState
from ._config import GWSConfig
from ._dispatcher import DISPATCHED_HOOKS, HookDispatcher
from ._engine import CancelEngine
from ._exceptions import GWSOutboundError, NotRunningError
from ._models import CancelRequest, RecordCancelAck
from ._session import GWSSession
from ._ticket import CancelTicket
from .hookspecs import hookimpl

__all__ = ["CORE_PLUGIN_NAME", "DEFAULT_CHANNELS", "CoreAbsentGuard", "OutboundPlugin"]

logger = structlog.get_logger(__name__)

CORE_PLUGIN_NAME: Final = "gws_outbound_core"
#: The CometD channels the plugin subscribes to.
DEFAULT_CHANNELS: Final = ("/v2/me/outbound", "/me/internal")

# The ticket accepted during the current on_cancel_requested call, per calling thread.
_accepted = threading.local()


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class _CoreHooks:
    """The core's ``on_cancel_requested`` (tryfirst): accept and return a CancelTicket."""

    def __init__(self, engine: CancelEngine) -> None:
        self._engine = engine

    @hookimpl(tryfirst=True)
    def on_cancel_requested(self, request: CancelRequest) -> CancelTicket:
        ticket = self._engine.accept(request)
        _accepted.ticket = ticket
        return ticket


class CoreAbsentGuard:
    """Registered by ``make_plugin_manager()``: refuses a cancel that no running core accepted.

    Without it, ``pm.hook.on_cancel_requested(...)`` with no ``OutboundPlugin`` running would
    return ``[]`` after the observers had seen a request that is never sent. It runs after the
    core (both are ``tryfirst``; the core registers later, so pluggy calls it first) and before
    every observer.
    """

    @hookimpl(tryfirst=True)
    def on_cancel_requested(self, request: CancelRequest) -> None:
        ticket: CancelTicket | None = getattr(_accepted, "ticket", None)
        if ticket is None or ticket.request is not request:
            raise NotRunningError("no running OutboundPlugin accepted the cancel; nothing was sent")


class _ObserverGuard:
    """Keeps an observer's exception from taking the ticket away from the host."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    @hookimpl(wrapper=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        _accepted.ticket = None
        try:
            return (yield)
        except Exception as error:
            ticket: CancelTicket | None = getattr(_accepted, "ticket", None)
            if ticket is None or ticket.request is not request:
                raise  # the core itself refused: the host must know
            logger.error(
                "plugin_hook_failed",
                hook="on_cancel_requested",
                plugin=self._culprit(error),
                error=f"{type(error).__name__}: {error}"[:300],
            )
            return [ticket]
        finally:
            _accepted.ticket = None

    def _culprit(self, error: BaseException) -> str | None:
        codes = {
            getattr(impl.function, "__code__", None): impl.plugin_name
            for impl in self._pm.hook.on_cancel_requested.get_hookimpls()
        }
        traceback = error.__traceback__
        name = None
        while traceback is not None:
            name = codes.get(traceback.tb_frame.f_code, name)
            traceback = traceback.tb_next
        return name


class OutboundPlugin:
    """The GWS outbound plugin core for one agent.

    ``async with OutboundPlugin(pm, config) as plugin:`` logs in to GWS, opens the CometD
    session on the same HTTP session, subscribes to ``/v2/me/outbound`` and ``/me/internal``
    and registers the core ``on_cancel_requested`` implementation in ``pm``. From then on a
    ``pm.hook.on_cancel_requested(request=...)`` from any thread is sent to GWS, and its
    outcome fans out as ``on_record_cancel_acknowledged`` or ``on_cancel_failed``.

    Leaving the block unregisters the core, waits up to ``config.drain_timeout`` for pending
    outcomes, fails the rest (reason ``shut_down``) and closes both HTTP stacks. One
    ``OutboundPlugin`` per plugin manager; it can be entered once.
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
        )
        self._engine = CancelEngine(
            config,
            self._session,
            HookDispatcher(
                pm, hook_timeout=config.hook_timeout, slow_hook_warning=config.slow_hook_warning
            ),
            is_connected=lambda: self._listener.state is CometDState.CONNECTED,
            wait_connected=self._listener.wait_connected,
        )
        self._tg: TaskGroup | None = None
        self._guard_name = name + ".guard"

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
    def pending_count(self) -> int:
        """Cancels accepted whose outcome has not been delivered yet."""
        return self._engine.pending_count

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters: accepted, acknowledged, failed, foreign_acks, duplicates, late, ..."""
        return dict(self._engine.stats)

    @property
    def user(self) -> Mapping[str, Any]:
        """The ``user`` object of ``GET /api/v2/me``."""
        return self._session.user

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the CometD session is connected and subscribed (after a loss)."""
        with anyio.fail_after(timeout):
            await self._listener.wait_connected()

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

    # -- cancelling --------------------------------------------------------------------------

    def submit(self, request: CancelRequest) -> CancelTicket:
        """Fire ``on_cancel_requested`` and return the core's ticket (any thread, no I/O)."""
        self._require_running()
        for result in self.pm.hook.on_cancel_requested(request=request):
            if isinstance(result, CancelTicket):
                return result
        raise NotRunningError("the core did not accept the request; nothing was sent")

    async def cancel(self, request: CancelRequest) -> RecordCancelAck:
        """Fire ``on_cancel_requested`` and await the outcome.

        :raises CancelFailed: the cancel failed (``.failure`` says why).
        :raises NotRunningError: the plugin is not running; nothing was sent.
        """
        return await self.submit(request)

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
        log = logger.bind(user=self.config.username, base_url=self.config.base_url)
        try:
            await self._session.open()
            await self._listener.open()
            self._tg = anyio.create_task_group()
            await self._tg.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._listener.close()
                await self._session.close()
            self._state = _State.CLOSED
            raise
        self._engine.start(self._tg)
        self._tg.start_soon(self._listener.run, self._engine.deliver)
        self.pm.register(_ObserverGuard(self.pm), name=self._guard_name)
        self.pm.register(_CoreHooks(self._engine), name=self.name)
        self._state = _State.RUNNING
        log.info("plugin_started", seconds=round(time.perf_counter() - started, 4))
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
        """Stop: unregister, drain (unless ``drain=False``), fail the rest, close. Idempotent."""
        if self._state in (_State.CLOSING, _State.CLOSED, _State.NEW):
            if self._state is _State.NEW:
                self._state = _State.CLOSED
            return
        self._state = _State.CLOSING
        log = logger.bind(user=self.config.username)
        with anyio.CancelScope(shield=True):
            self._engine.stop_accepting()
            for name in (self.name, self._guard_name):
                if self.pm.has_plugin(name):
                    self.pm.unregister(name=name)
            await self._engine.drain(self.config.drain_timeout if drain else 0.0)
        # The task group was entered in __aenter__, outside any scope opened here.
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                tg.cancel_scope.cancel()
                # Raises the host's cancellation when the host task is being cancelled.
                await tg.__aexit__(None, None, None)
        finally:
            self._engine.close()
            with anyio.CancelScope(shield=True):
                await self._listener.close()
                await self._session.close()
            self._state = _State.CLOSED
            log.info("plugin_stopped", stats=self.stats)

    def _refuse_wrappers(self) -> None:
        for impl in self.pm.hook.on_cancel_requested.get_hookimpls():
            if inspect.iscoroutinefunction(impl.function):
                raise GWSOutboundError(
                    f"plugin {impl.plugin_name!r} implements on_cancel_requested as async def: "
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

    def _on_lost(self, why: str) -> None:
        self._engine.session_lost(why)

    def _on_restored(self) -> None:
        self._engine.session_restored()
