"""A pytest plugin for testing gws_outbound plugins and hosts against the embedded simulator.

Enable it with one line in your top-level ``conftest.py``::

    pytest_plugins = ["gws_outbound_plugin.testing"]

and mark your async tests for anyio (``pytestmark = pytest.mark.anyio``). It gives you:

``anyio_backend``
    ``"asyncio"`` (the plugin core runs on asyncio only). A fixture of the same name in your
    own ``conftest.py`` takes precedence.
``gws_simulator``
    A started :class:`~gws_outbound_plugin.simulator.GWSSimulator` on 127.0.0.1 (a free
    port) with the user ``agent1`` / ``secret`` and the seeded records; a fresh one per test.
``gws_plugin_manager``
    ``make_plugin_manager(load_entrypoints=False)``: the hook specifications, no installed
    plugin. Register the plugin under test in it.
``gws_hook_recorder``
    A :class:`HookRecorder` registered in ``gws_plugin_manager``: every hook call, in order.
``wait_for_hook``
    ``await wait_for_hook(name, predicate=None, timeout=5.0)``: the first call of hook
    ``name`` (past or future) for which ``predicate(call)`` is true; see
    :meth:`HookRecorder.wait_for`.
``gws_config``
    A :class:`~gws_outbound_plugin.GWSConfig` for the simulator with short timeouts
    (``ack_timeout`` 2 s, ``hook_timeout`` 2 s, ``drain_timeout`` 1 s).
``gws_outbound``
    A started :class:`~gws_outbound_plugin.OutboundPlugin` wired to the simulator and to
    ``gws_plugin_manager`` (with the recorder registered before it starts); closed after the
    test.
``gws_request_factory``
    A :class:`CancelRequestFactory`: ``gws_request_factory()`` makes a valid
    :class:`~gws_outbound_plugin.CancelRequest` for a seeded record nobody has cancelled yet.

Override any fixture by defining one with the same name in your ``conftest.py`` (for
instance ``gws_config`` for other timeouts, ``gws_simulator`` for other records).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Final, Protocol

import anyio
import pluggy
import pytest

from . import hookspecs
from ._config import GWSConfig
from ._manager import make_plugin_manager
from ._models import CancelFailure, CancelRequest, RecordCancelAck, UserEvent
from ._plugin import OutboundPlugin
from .hookspecs import hookimpl
from .simulator import GWSSimulator

__all__ = [
    "RECORDER_PLUGIN_NAME",
    "SIMULATOR_PASSWORD",
    "SIMULATOR_USER",
    "CancelRequestFactory",
    "HookCall",
    "HookRecorder",
    "HookWaitTimeout",
    "WaitForHook",
    "anyio_backend",
    "gws_config",
    "gws_hook_recorder",
    "gws_outbound",
    "gws_plugin_manager",
    "gws_request_factory",
    "gws_simulator",
    "pytest_configure",
    "wait_for_hook",
]

SIMULATOR_USER: Final = "agent1"
"""The user the ``gws_simulator`` fixture accepts."""
SIMULATOR_PASSWORD: Final = "secret"
"""Its password."""
RECORDER_PLUGIN_NAME: Final = "gws_hook_recorder"
"""The name the ``gws_hook_recorder`` fixture registers the recorder under."""

#: Handle of a record the simulator's default records do not contain (its cancel is an
#: OCS error "Record not found").
UNKNOWN_RECORD_HANDLE: Final = 999_999


# -- recording hook calls -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class HookCall:
    """One recorded hook call: the hook's name and its keyword arguments.

    The arguments are also attributes: ``call.ack`` for ``on_record_cancel_acknowledged``,
    ``call.failure``, ``call.event``, ``call.request``.
    """

    name: str
    kwargs: Mapping[str, Any]
    thread_id: int
    """``threading.get_ident()`` of the thread that made the call."""
    monotonic: float
    """``time.monotonic()`` when it was recorded."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "kwargs":  # copy/pickle probes, unset slots
            raise AttributeError(name)
        try:
            return self.kwargs[name]
        except KeyError:
            raise AttributeError(
                f"{self.name} has no argument {name!r} (it has {', '.join(self.kwargs)})"
            ) from None

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={_short(value)}" for key, value in self.kwargs.items())
        return f"<HookCall {self.name}({arguments})>"


Predicate = Callable[[HookCall], bool]


class HookWaitTimeout(AssertionError):
    """No matching hook call arrived in time (an ``AssertionError``, so pytest shows it as a
    test failure with the calls recorded so far)."""


class WaitForHook(Protocol):
    """The signature of the ``wait_for_hook`` fixture (:meth:`HookRecorder.wait_for`)."""

    async def __call__(
        self, name: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> HookCall: ...


class _Waiter:
    __slots__ = ("name", "predicate", "wake")

    def __init__(self, name: str, predicate: Predicate | None, wake: Callable[[], None]) -> None:
        self.name = name
        self.predicate = predicate
        self.wake = wake


class HookRecorder:
    """A plugin that records every hook call, in order, from any thread.

    Register it in a plugin manager (the ``gws_hook_recorder`` fixture does), then read
    :attr:`calls` or wait for a call with :meth:`wait_for` (on the event loop) or
    :meth:`wait_for_blocking` (from another thread). It implements every hook of
    :mod:`gws_outbound_plugin.hookspecs`, returns nothing and never raises.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[HookCall] = []
        self._waiters: list[_Waiter] = []

    # The hook implementations: plain functions, so they are quick on any thread.

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        self._record("on_cancel_requested", {"request": request})

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._record("on_record_cancel_acknowledged", {"ack": ack})

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._record("on_cancel_failed", {"failure": failure})

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._record("on_user_event", {"event": event})

    # Reading.

    @property
    def calls(self) -> list[HookCall]:
        """Every call recorded so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_of(self, name: str) -> list[HookCall]:
        """The calls of hook ``name``, oldest first."""
        _check_hook_name(name)
        return [call for call in self.calls if call.name == name]

    def clear(self) -> None:
        """Forget the calls recorded so far."""
        with self._lock:
            self._calls.clear()

    def find(self, name: str, predicate: Predicate | None = None) -> HookCall | None:
        """The first recorded call of ``name`` matching ``predicate``, or ``None``."""
        _check_hook_name(name)
        with self._lock:
            return self._find(name, predicate)

    async def wait_for(
        self, name: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> HookCall:
        """Wait on the event loop for the first call of ``name`` matching ``predicate``.

        A call recorded before the wait counts, so there is no race with the code that
        causes it. ``predicate`` receives the :class:`HookCall` (e.g.
        ``lambda call: call.ack.record_handle == 11``).

        :raises ValueError: ``name`` is not a hook of the specification (a misspelling).
        :raises HookWaitTimeout: no such call within ``timeout`` seconds.
        """
        _check_hook_name(name)
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(_set_result, arrived)

        found, waiter = self._find_or_wait(name, predicate, wake)
        if found is not None:
            return found
        try:
            with anyio.move_on_after(timeout):
                await arrived
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        found = self.find(name, predicate)
        if found is None:
            raise HookWaitTimeout(self._explain(name, predicate, timeout))
        return found

    def wait_for_blocking(
        self, name: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> HookCall:
        """Like :meth:`wait_for`, blocking the calling thread (never the event loop's)."""
        _check_hook_name(name)
        arrived = threading.Event()
        found, waiter = self._find_or_wait(name, predicate, arrived.set)
        if found is not None:
            return found
        try:
            arrived.wait(timeout)
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        found = self.find(name, predicate)
        if found is None:
            raise HookWaitTimeout(self._explain(name, predicate, timeout))
        return found

    # Internals.

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        call = HookCall(name, kwargs, threading.get_ident(), time.monotonic())
        with self._lock:
            self._calls.append(call)
            ready = [w for w in self._waiters if w.name == name and _matches(w.predicate, call)]
            for waiter in ready:
                self._waiters.remove(waiter)
        for waiter in ready:
            waiter.wake()

    def _find(self, name: str, predicate: Predicate | None) -> HookCall | None:
        for call in self._calls:
            if call.name == name and _matches(predicate, call):
                return call
        return None

    def _find_or_wait(
        self, name: str, predicate: Predicate | None, wake: Callable[[], None]
    ) -> tuple[HookCall | None, _Waiter]:
        waiter = _Waiter(name, predicate, wake)
        with self._lock:
            found = self._find(name, predicate)
            if found is None:
                self._waiters.append(waiter)
            return found, waiter

    def _explain(self, name: str, predicate: Predicate | None, timeout: float) -> str:
        calls = self.calls
        wanted = name if predicate is None else f"{name} matching {_describe(predicate)}"
        same = [call for call in calls if call.name == name]
        lines = [f"no {wanted} call within {timeout:g} s; {len(calls)} hook call(s) recorded"]
        counts: dict[str, int] = {}
        for call in calls:
            counts[call.name] = counts.get(call.name, 0) + 1
        if counts:
            lines.append("  " + ", ".join(f"{hook} x{count}" for hook, count in counts.items()))
        for call in same[-5:]:
            lines.append(f"  {call!r}")
        failures = [call for call in calls if call.name == "on_cancel_failed"]
        if failures and name != "on_cancel_failed":
            lines.append(f"  last failure: {failures[-1].failure.describe()}")
        return "\n".join(lines)


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _matches(predicate: Predicate | None, call: HookCall) -> bool:
    if predicate is None:
        return True
    try:
        return bool(predicate(call))
    except Exception:  # a predicate that cannot read this call does not match it
        return False


def _describe(predicate: Predicate) -> str:
    return getattr(predicate, "__qualname__", repr(predicate))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _hook_names() -> frozenset[str]:
    return frozenset(name for name in hookspecs.__all__ if name.startswith("on_"))


def _check_hook_name(name: str) -> None:
    names = _hook_names()
    if name not in names:
        raise ValueError(f"unknown hook {name!r}; the hooks are {', '.join(sorted(names))}")


# -- making requests ------------------------------------------------------------------------------


class CancelRequestFactory:
    """Makes valid :class:`CancelRequest` objects for a simulator's seeded records.

    ``factory()`` picks the first record that is neither cancelled nor handed out yet;
    ``factory(record_handle=14)`` uses that record; any other keyword (``phone_number``,
    ``chain_attribute``, ``reference_id``, ...) overrides the request's field.
    """

    def __init__(self, simulator: GWSSimulator, username: str = SIMULATOR_USER) -> None:
        self._simulator = simulator
        self._username = username
        self._handed_out: set[int] = set()

    @property
    def device_path(self) -> str:
        """The user's ``devicePath`` in the simulator."""
        return self._simulator.device_path(self._username)

    def __call__(self, record_handle: int | None = None, **overrides: Any) -> CancelRequest:
        states = self._simulator.records
        if record_handle is None:
            for handle, candidate in states.items():
                if not candidate.cancelled and handle not in self._handed_out:
                    record_handle = handle
                    break
            else:
                raise LookupError("every seeded record is cancelled or already handed out")
        state = states.get(record_handle)
        if state is None:
            raise LookupError(
                f"the simulator has no record {record_handle}; use unknown_record() for a "
                "request OCS refuses"
            )
        self._handed_out.add(record_handle)
        record = state.record
        fields: dict[str, Any] = {
            "record_handle": record.record_handle,
            "application_id": record.application_id,
            "campaign_name": record.campaign_name,
            "calling_list": record.calling_list,
            "device_path": self.device_path,
        }
        fields.update(overrides)
        return CancelRequest(**fields)

    def unknown_record(self, **overrides: Any) -> CancelRequest:
        """A valid request for a record the simulator does not have: OCS refuses it
        (``on_cancel_failed`` with reason ``ocs_error``)."""
        fields: dict[str, Any] = {
            "record_handle": UNKNOWN_RECORD_HANDLE,
            "application_id": 134,
            "campaign_name": "Campaign1",
            "calling_list": "CallingList1",
            "device_path": self.device_path,
        }
        fields.update(overrides)
        return CancelRequest(**fields)


# -- pytest integration -------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # aiocometd-noloop (used by the plugin core) calls asyncio.get_event_loop() in its
    # constructors; keep that out of suites that turn warnings into errors.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:aiocometd_noloop.*")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The plugin core runs on asyncio (aiohttp, aiocometd)."""
    return "asyncio"


@pytest.fixture
async def gws_simulator() -> AsyncIterator[GWSSimulator]:
    """A started GWS simulator (user ``agent1`` / ``secret``, seeded records)."""
    async with GWSSimulator(
        users={SIMULATOR_USER: SIMULATOR_PASSWORD}, host="127.0.0.1", port=0
    ) as simulator:
        yield simulator


@pytest.fixture
def gws_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook specifications and no installed plugin."""
    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def gws_hook_recorder(gws_plugin_manager: pluggy.PluginManager) -> Iterator[HookRecorder]:
    """A :class:`HookRecorder` registered in ``gws_plugin_manager``."""
    recorder = HookRecorder()
    gws_plugin_manager.register(recorder, name=RECORDER_PLUGIN_NAME)
    yield recorder
    if gws_plugin_manager.has_plugin(RECORDER_PLUGIN_NAME):
        gws_plugin_manager.unregister(name=RECORDER_PLUGIN_NAME)


@pytest.fixture
def wait_for_hook(gws_hook_recorder: HookRecorder) -> WaitForHook:
    """``await wait_for_hook(name, predicate=None, timeout=5.0)`` -> :class:`HookCall`."""
    return gws_hook_recorder.wait_for


@pytest.fixture
def gws_config(gws_simulator: GWSSimulator) -> GWSConfig:
    """Settings for the simulator, with timeouts short enough for tests."""
    return GWSConfig(
        base_url=gws_simulator.base_url,
        username=SIMULATOR_USER,
        password=SIMULATOR_PASSWORD,
        ack_timeout=2.0,
        hook_timeout=2.0,
        drain_timeout=1.0,
        request_timeout=5.0,
        retry_backoff=0.05,
        cometd_connection_timeout=5.0,
    )


@pytest.fixture
async def gws_outbound(
    gws_plugin_manager: pluggy.PluginManager,
    gws_config: GWSConfig,
    gws_hook_recorder: HookRecorder,
) -> AsyncIterator[OutboundPlugin]:
    """A started OutboundPlugin on the simulator, closed (and drained) after the test."""
    async with OutboundPlugin(gws_plugin_manager, gws_config) as plugin:
        yield plugin


@pytest.fixture
def gws_request_factory(gws_simulator: GWSSimulator) -> CancelRequestFactory:
    """Makes valid CancelRequests for the simulator's seeded records."""
    return CancelRequestFactory(gws_simulator)
