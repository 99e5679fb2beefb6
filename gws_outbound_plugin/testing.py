"""A pytest plugin for testing gws_outbound plugins and hosts against the embedded simulator.

Enable it with one line in your top-level ``conftest.py``::

    pytest_plugins = ["gws_outbound_plugin.testing"]

and mark your async tests for anyio (``pytestmark = pytest.mark.anyio``); a test that uses
the kit's async fixtures without the marker fails at once, saying so. It gives you:

``anyio_backend``
    ``"asyncio"`` (the plugin core runs on asyncio only). A fixture of the same name in your
    own ``conftest.py`` takes precedence.
``gws_simulator``
    A started :class:`~gws_outbound_plugin.simulator.GWSSimulator` on 127.0.0.1 (a free
    port) with the user ``agent1`` / ``secret`` and the seeded records; a fresh one per test.
    ``gws_simulator.clock.advance(seconds)`` moves OCS's time on (rescheduled records come
    back as ``ScheduledCall``); ``send_record_cancel(handle)``,
    ``send_campaign_status(campaign, event)`` and ``send_preview_record(campaign)`` make OCS
    speak unprompted.
``gws_plugin_manager``
    ``make_plugin_manager(load_entrypoints=False)``: the hook specifications, no installed
    plugin. Register the plugin under test in it.
``gws_hook_recorder``
    A :class:`HookRecorder` registered in ``gws_plugin_manager``: every call of every hook
    (the cancel hooks, ``on_operation_requested`` / ``_acknowledged`` / ``_failed``,
    ``on_user_event``, OCS's unsolicited events ``on_record_cancelled``,
    ``on_scheduled_call``, ``on_preview_record``, ``on_campaign_status``, and
    ``on_connection_state_changed``), in order.
``wait_for_hook``
    ``await wait_for_hook(name, predicate=None, timeout=5.0)``: the first call of hook
    ``name`` (past or future) for which ``predicate(call)`` is true; see
    :meth:`HookRecorder.wait_for`.
``gws_config``
    A :class:`~gws_outbound_plugin.GWSConfig` for the simulator with short timeouts
    (``ack_timeout`` 2 s, ``hook_timeout`` 2 s, ``drain_timeout`` 1 s, ``request_timeout``
    5 s).
``gws_outbound``
    A started :class:`~gws_outbound_plugin.OutboundPlugin` wired to the simulator and to
    ``gws_plugin_manager`` (with the recorder registered before it starts); closed after the
    test. ``await gws_outbound.cancel(request)`` / ``await gws_outbound.perform(request)``
    return the acknowledgement or raise ``CancelFailed`` / ``OperationFailed``.
``gws_request_factory``
    A :class:`RequestFactory`: valid requests of every operation for seeded records nobody
    has touched yet. ``gws_request_factory()`` (or ``.cancel()``) makes a
    :class:`~gws_outbound_plugin.CancelRequest`; ``.reject()``, ``.complete(call_result=...)``,
    ``.do_not_call()``, ``.reschedule()`` (a callback due one hour later on the simulator's
    clock: ``gws_simulator.clock.advance(3600)`` brings its ``on_scheduled_call``),
    ``.update(phone_type=...)``, ``.chained()``, ``.do_not_call_phone()``, ``.add_record()``,
    ``.start_preview()``, ``.get_preview()``, ``.end_preview()`` the other operations' requests
    (send them with ``await gws_outbound.perform(request)``); ``.unknown_record(operation)``
    one that OCS refuses. Keywords override the request's fields (``record_handle=14``).
``gws_hook_failures``
    A :class:`HookFailureLog`: the hook implementations that raised or timed out during the
    test (``.failures``), and ``.allow(*plugins)`` for a test that expects some.

**A hook implementation that raises or times out fails the test** that caused it (at the end
of its call, or at teardown when it happened while the fixtures shut down), naming the
plugin, the hook and the exception: the plugin core only logs such failures, so without the
kit they would pass unnoticed. A test that expects one opts out with the marker
``@pytest.mark.gws_allow_hook_failures`` (every plugin) or
``@pytest.mark.gws_allow_hook_failures("my_plugin", ...)`` (these plugins only), or by
calling ``gws_hook_failures.allow(...)``; the failures stay readable in
``gws_hook_failures.failures``. Every plugin manager the fixtures build or use is watched.

``gws_plugin_manager`` validates each registration (``pluggy.PluginValidationError`` for a
misspelt hook name, an ``async def on_cancel_requested``, a coroutine function called
without ``await``...), as every host's does. With the kit on, Python's "coroutine ... was
never awaited" warning shows where the coroutine was made (coroutine origin tracking), so a
dropped one names the hook that dropped it.

Override any fixture by defining one with the same name in your ``conftest.py`` (for
instance ``gws_config`` for other timeouts, ``gws_simulator`` for other records).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import anyio
import pluggy
import pytest

from ._config import GWSConfig
from ._dispatcher import HookFailure, watch_hook_failures
from ._every_hook import HOOK_ARGUMENTS, EveryHook
from ._fake import FakeGWS
from ._hints import closest
from ._manager import make_plugin_manager
from ._plugin import OutboundPlugin
from ._requests import (
    _UPDATE_FIELDS,
    OPERATION_TYPES,
    AddRecordRequest,
    CallbackType,
    CancelRequest,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    PhoneType,
    RejectRecordRequest,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    _RecordOperation,
)
from ._virtual_clock import virtual_clock_loop
from .simulator import GWSSimulator, RecordStatus, SeedRecord

__all__ = [
    "ALLOW_HOOK_FAILURES_MARKER",
    "DEFAULT_CALLBACK_DELAY",
    "RECORDER_PLUGIN_NAME",
    "SIMULATOR_PASSWORD",
    "SIMULATOR_USER",
    "UNKNOWN_RECORD_HANDLE",
    "CancelRequestFactory",
    "FakeGWS",
    "HookCall",
    "HookFailureLog",
    "HookRecorder",
    "HookWaitTimeout",
    "RequestFactory",
    "WaitForHook",
    "anyio_backend",
    "gws_config",
    "gws_hook_failures",
    "gws_hook_recorder",
    "gws_outbound",
    "gws_plugin_manager",
    "gws_request_factory",
    "gws_simulator",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "virtual_clock_loop",
    "wait_for_hook",
]

SIMULATOR_USER: Final = "agent1"
"""The user the ``gws_simulator`` fixture accepts."""
SIMULATOR_PASSWORD: Final = "secret"
"""Its password."""
RECORDER_PLUGIN_NAME: Final = "gws_hook_recorder"
"""The name the ``gws_hook_recorder`` fixture registers the recorder under."""
ALLOW_HOOK_FAILURES_MARKER: Final = "gws_allow_hook_failures"
"""``@pytest.mark.gws_allow_hook_failures(*plugins)``: hook failures do not fail this test."""

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


#: Hooks whose calls :attr:`HookRecorder.calls` leaves out (they come with every start).
_APART: Final = frozenset({"on_connection_state_changed"})


class HookRecorder(EveryHook):
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
        # What a predicate raised (the first time), by id(predicate), for the timeout's
        # message: a predicate that cannot read a call does not match it, but a typo in it
        # (call.failure for an ack) would otherwise look like a call that never came.
        self._predicate_errors: dict[int, str] = {}

    # The hook implementations are EveryHook's, one per hook of the specification.

    def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        self._record(hook, kwargs)

    # Reading.

    @property
    def calls(self) -> list[HookCall]:
        """Every call recorded so far, oldest first (a copy), but the connection's state
        changes (``on_connection_state_changed``, which start and close the plugin make):
        ask for those with :meth:`calls_of`, :meth:`find` or :meth:`wait_for`."""
        with self._lock:
            return [call for call in self._calls if call.name not in _APART]

    def calls_of(self, name: str) -> list[HookCall]:
        """The calls of hook ``name``, oldest first."""
        _check_hook_name(name)
        with self._lock:
            return [call for call in self._calls if call.name == name]

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
            ready = [
                w for w in self._waiters if w.name == name and self._matches(w.predicate, call)
            ]
            for waiter in ready:
                self._waiters.remove(waiter)
        for waiter in ready:
            waiter.wake()

    def _matches(self, predicate: Predicate | None, call: HookCall) -> bool:
        """Whether ``call`` matches; one that ``predicate`` cannot read does not (what it
        raised is kept for the timeout's message). Called with the lock held."""
        if predicate is None:
            return True
        try:
            return bool(predicate(call))
        except Exception as error:
            if id(predicate) not in self._predicate_errors and len(self._predicate_errors) < 64:
                text = f"{type(error).__name__}: {error}"
                self._predicate_errors[id(predicate)] = f"on a call of {call.name}: {text[:300]}"
            return False

    def _find(self, name: str, predicate: Predicate | None) -> HookCall | None:
        for call in self._calls:
            if call.name == name and self._matches(predicate, call):
                return call
        return None

    def _find_or_wait(
        self, name: str, predicate: Predicate | None, wake: Callable[[], None]
    ) -> tuple[HookCall | None, _Waiter]:
        waiter = _Waiter(name, predicate, wake)
        with self._lock:
            self._predicate_errors.pop(id(predicate), None)  # another's, of the same id
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
        # A failed cancel fires on_cancel_failed and on_operation_failed: shown once.
        failures = [
            call
            for call in calls
            if call.name == "on_cancel_failed"
            or (call.name == "on_operation_failed" and call.failure.operation != "CancelRecord")
        ]
        if failures and name not in ("on_cancel_failed", "on_operation_failed"):
            lines.append(f"  last failure: {failures[-1].failure.describe()}")
        with self._lock:
            raised = self._predicate_errors.pop(id(predicate), None)
        if raised is not None:
            lines.insert(
                1, f"  the predicate raised {raised} (a call it cannot read does not match)"
            )
        return "\n".join(lines)


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _describe(predicate: Predicate) -> str:
    return getattr(predicate, "__qualname__", repr(predicate))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _check_hook_name(name: str) -> None:
    names = HOOK_ARGUMENTS
    if name not in names:
        close = closest(name, names)
        meant = f"did you mean {close!r}? " if close else ""
        raise ValueError(f"unknown hook {name!r}: {meant}the hooks are {', '.join(sorted(names))}")


# -- making requests ------------------------------------------------------------------------------

#: Operations of :meth:`RequestFactory.unknown_record` (the ones on a record handle).
_RECORD_OPERATIONS: Final[Mapping[str, type[Any]]] = {
    name: cls
    for name, types in OPERATION_TYPES.items()
    for cls in types
    if issubclass(cls, _RecordOperation)
}
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_R = TypeVar("_R", bound="DataclassInstance")

#: What a rescheduled record of :meth:`RequestFactory.reschedule` waits, by default.
DEFAULT_CALLBACK_DELAY: Final = datetime.timedelta(hours=1)


class RequestFactory:
    """Makes valid requests of every operation for a simulator's seeded records.

    Each record method picks, unless given ``record_handle=``, the first seeded record that
    nobody has touched (OCS status ``ready``: not cancelled, completed, handed out...) and
    that this factory has not handed out yet; every other keyword overrides a field of the
    request. ``factory()`` (or ``factory.cancel()``) makes a :class:`CancelRequest`;
    ``reject()``, ``complete()``, ``do_not_call()``, ``reschedule()``, ``update()``,
    ``chained()`` the other record operations; ``do_not_call_phone()`` and ``add_record()``
    those without a handle; ``start_preview()``, ``get_preview()``, ``end_preview()`` the
    preview-session operations; ``unknown_record(operation)`` one that OCS refuses.
    """

    def __init__(self, simulator: GWSSimulator, username: str = SIMULATOR_USER) -> None:
        self._simulator = simulator
        self._username = username
        self._handed_out: set[int] = set()
        self._added = 0

    @property
    def device_path(self) -> str:
        """The user's ``devicePath`` in the simulator."""
        return self._simulator.device_path(self._username)

    # Records.

    def _take(self, record_handle: int | None) -> SeedRecord:
        states = self._simulator.records
        if record_handle is None:
            for handle, candidate in states.items():
                if candidate.status is RecordStatus.READY and handle not in self._handed_out:
                    record_handle = handle
                    break
            else:
                raise LookupError(
                    "every seeded record is cancelled, otherwise touched, or already handed "
                    "out by this factory"
                )
        state = states.get(record_handle)
        if state is None:
            raise LookupError(
                f"the simulator has no record {record_handle}; use unknown_record() for a "
                "request OCS refuses"
            )
        self._handed_out.add(record_handle)
        return state.record

    def _on_record(
        self,
        kind: type[_R],
        record_handle: int | None,
        overrides: Mapping[str, Any],
        defaults: Callable[[SeedRecord], Mapping[str, Any]] | None = None,
    ) -> _R:
        record = self._take(record_handle)
        names = {field.name for field in dataclasses.fields(kind)}
        fields: dict[str, Any] = {
            "record_handle": record.record_handle,
            "application_id": record.application_id,
            "campaign_name": record.campaign_name,
            "device_path": self.device_path,
        }
        if "calling_list" in names and kind is not UpdateRecordRequest:
            fields["calling_list"] = record.calling_list
        if defaults is not None:
            fields.update(defaults(record))
        fields.update(overrides)
        return kind(**fields)

    def __call__(self, record_handle: int | None = None, **overrides: Any) -> CancelRequest:
        """A :class:`CancelRequest` (kept for tests written before the other operations)."""
        return self.cancel(record_handle, **overrides)

    def cancel(self, record_handle: int | None = None, **overrides: Any) -> CancelRequest:
        """A :class:`CancelRequest` (``CancelRecord``)."""
        return self._on_record(CancelRequest, record_handle, overrides)

    def reject(self, record_handle: int | None = None, **overrides: Any) -> RejectRecordRequest:
        """A :class:`RejectRecordRequest` (``RejectRecord``)."""
        return self._on_record(RejectRecordRequest, record_handle, overrides)

    def complete(self, record_handle: int | None = None, **overrides: Any) -> CompleteRecordRequest:
        """A :class:`CompleteRecordRequest` (``CompleteRecord``); pass ``call_result=...``."""
        return self._on_record(CompleteRecordRequest, record_handle, overrides)

    def do_not_call(
        self, record_handle: int | None = None, **overrides: Any
    ) -> DoNotCallRecordRequest:
        """A :class:`DoNotCallRecordRequest` (``DoNotCallRecord`` on a record handle)."""
        return self._on_record(DoNotCallRecordRequest, record_handle, overrides)

    def reschedule(
        self, record_handle: int | None = None, **overrides: Any
    ) -> RescheduleRecordRequest:
        """A :class:`RescheduleRecordRequest`: a ``Personal`` callback due
        :data:`DEFAULT_CALLBACK_DELAY` (one hour) later **on the simulator's clock**, so
        ``gws_simulator.clock.advance(3600)`` brings its ``ScheduledCall``."""
        when = self._simulator.clock.datetime() + DEFAULT_CALLBACK_DELAY
        return self._on_record(
            RescheduleRecordRequest,
            record_handle,
            overrides,
            lambda record: {"callback_type": CallbackType.PERSONAL, "scheduled_time": when},
        )

    def update(self, record_handle: int | None = None, **overrides: Any) -> UpdateRecordRequest:
        """An :class:`UpdateRecordRequest`; without any of ``phone_number``, ``time_zone``,
        ``phone_type``, ``call_from``, ``call_until`` it sets the record's own phone number
        (a valid update that changes nothing)."""
        given = any(name in overrides for name in _UPDATE_FIELDS)
        return self._on_record(
            UpdateRecordRequest,
            record_handle,
            overrides,
            None if given else lambda record: {"phone_number": record.phone_number},
        )

    def chained(
        self, record_handle: int | None = None, **overrides: Any
    ) -> GetChainedRecordRequest:
        """A :class:`GetChainedRecordRequest` (``GetChainedRecord``)."""
        return self._on_record(GetChainedRecordRequest, record_handle, overrides)

    def do_not_call_phone(
        self, record_handle: int | None = None, **overrides: Any
    ) -> DoNotCallPhoneRequest:
        """A :class:`DoNotCallPhoneRequest` (``DoNotCallRecord`` by phone number) for the phone
        number of a record nobody touched (so OCS marks that record)."""
        record = self._take(record_handle)
        fields: dict[str, Any] = {
            "application_id": record.application_id,
            "campaign_name": record.campaign_name,
            "phone_number": record.phone_number,
            "device_path": self.device_path,
        }
        fields.update(overrides)
        return DoNotCallPhoneRequest(**fields)

    def add_record(self, **overrides: Any) -> AddRecordRequest:
        """An :class:`AddRecordRequest` for the first seeded record's calling list, with a
        phone number no record has (``"5550000"``, ``"5550001"``, ...), all day long."""
        first = next(iter(self._simulator.records.values())).record
        taken = {state.record.phone_number for state in self._simulator.records.values()}
        while (phone := f"555{self._added:04d}") in taken:
            self._added += 1
        self._added += 1
        fields: dict[str, Any] = {
            "application_id": first.application_id,
            "campaign_name": first.campaign_name,
            "calling_list": first.calling_list,
            "phone_number": phone,
            "time_zone": first.time_zone,
            "phone_type": PhoneType.HOME_PHONE,
            "call_from": 0,
            "call_until": 86_399,
            "device_path": self.device_path,
        }
        fields.update(overrides)
        return AddRecordRequest(**fields)

    # Preview sessions.

    def _on_campaign(self, kind: type[_R], overrides: Mapping[str, Any]) -> _R:
        campaigns = self._simulator.campaigns
        name = overrides.get("campaign_name")
        application = overrides.get("application_id")
        for candidate_name, candidate_application in campaigns:
            if name in (None, candidate_name) and application in (None, candidate_application):
                name, application = candidate_name, candidate_application
                break
        fields: dict[str, Any] = {
            "campaign_name": name,
            "application_id": application,
            "device_path": self.device_path,
        }
        fields.update(overrides)
        return kind(**fields)

    def start_preview(self, **overrides: Any) -> StartPreviewSessionRequest:
        """A :class:`StartPreviewSessionRequest` on the first seeded campaign (or
        ``campaign_name=``)."""
        return self._on_campaign(StartPreviewSessionRequest, overrides)

    def get_preview(self, **overrides: Any) -> GetPreviewRecordRequest:
        """A :class:`GetPreviewRecordRequest` on the first seeded campaign (or
        ``campaign_name=``)."""
        return self._on_campaign(GetPreviewRecordRequest, overrides)

    def end_preview(self, **overrides: Any) -> EndPreviewSessionRequest:
        """An :class:`EndPreviewSessionRequest` on the first seeded campaign (or
        ``campaign_name=``)."""
        return self._on_campaign(EndPreviewSessionRequest, overrides)

    # Refused requests.

    def unknown_record(self, operation: str = "CancelRecord", **overrides: Any) -> Any:
        """A valid request of a record ``operation`` (``"CancelRecord"``,
        ``"RejectRecord"``, ...) for a record the simulator does not have: OCS refuses it
        (``on_operation_failed``, and ``on_cancel_failed`` for a cancel, with reason
        ``ocs_error``)."""
        kind = _RECORD_OPERATIONS.get(operation)
        if kind is None:
            raise ValueError(
                f"unknown_record() takes a record operation ({', '.join(_RECORD_OPERATIONS)}), "
                f"got {operation!r}"
            )
        fields: dict[str, Any] = {
            "record_handle": UNKNOWN_RECORD_HANDLE,
            "application_id": 134,
            "campaign_name": "Campaign1",
            "device_path": self.device_path,
        }
        names = {field.name for field in dataclasses.fields(kind)}
        if "calling_list" in names and kind is not UpdateRecordRequest:
            fields["calling_list"] = "CallingList1"
        if kind is RescheduleRecordRequest:
            fields["callback_type"] = CallbackType.PERSONAL
            fields["scheduled_time"] = self._simulator.clock.datetime() + DEFAULT_CALLBACK_DELAY
        if kind is UpdateRecordRequest and not any(name in overrides for name in _UPDATE_FIELDS):
            fields["phone_type"] = PhoneType.MOBILE
        fields.update(overrides)
        return kind(**fields)


#: The name of the factory before it made every operation's requests.
CancelRequestFactory = RequestFactory


# -- hook failures ------------------------------------------------------------------------------


class HookFailureLog:
    """The hook implementation calls that raised or timed out during one test.

    The ``gws_hook_failures`` fixture; every plugin manager of the kit's fixtures is watched
    (:meth:`watch` adds another). Unless allowed, the failures fail the test.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[HookFailure] = []
        self._reported = 0
        self._allowed: set[str] | None = set()  # None: every plugin
        self._watched: dict[int, Callable[[], None]] = {}

    @property
    def failures(self) -> list[HookFailure]:
        """Every failure recorded so far, oldest first (a copy); each has ``.plugin``,
        ``.hook``, ``.error`` and ``.timed_out``."""
        with self._lock:
            return list(self._failures)

    def allow(self, *plugins: str) -> None:
        """Do not fail the test for hook failures of these plugins (of every plugin when
        called without arguments)."""
        with self._lock:
            if not plugins:
                self._allowed = None
            elif self._allowed is not None:
                self._allowed.update(plugins)

    def watch(self, pm: pluggy.PluginManager) -> None:
        """Record the hook failures of ``pm`` too (idempotent)."""
        if id(pm) not in self._watched:
            self._watched[id(pm)] = watch_hook_failures(pm, self._record)

    def close(self) -> None:
        """Stop watching."""
        for unwatch in self._watched.values():
            unwatch()
        self._watched.clear()

    def _record(self, failure: HookFailure) -> None:
        with self._lock:
            self._failures.append(failure)

    def _take_unreported(self, allowed_by_marker: set[str] | None) -> list[HookFailure]:
        """The failures since the last call that nothing allows."""
        with self._lock:
            new, self._reported = self._failures[self._reported :], len(self._failures)
            allowed = self._allowed
        if allowed is None or allowed_by_marker is None:
            return []
        every = allowed | allowed_by_marker
        return [failure for failure in new if failure.plugin not in every]


_LOG_KEY = pytest.StashKey[HookFailureLog]()


def _hook_failure_log(item: pytest.Item) -> HookFailureLog:
    log = item.stash.get(_LOG_KEY, None)
    if log is None:
        log = item.stash[_LOG_KEY] = HookFailureLog()
    return log


def _allowed_by_marker(item: pytest.Item) -> set[str] | None:
    allowed: set[str] = set()
    for marker in item.iter_markers(ALLOW_HOOK_FAILURES_MARKER):
        if not marker.args:
            return None
        allowed.update(str(plugin) for plugin in marker.args)
    return allowed


def _explain_failures(failures: list[HookFailure]) -> str:
    lines = [
        f"{len(failures)} hook implementation call(s) failed during this test "
        "(the plugin core only logs these; the testing kit fails the test):"
    ]
    lines += [f"  {failure.describe()}" for failure in failures]
    lines.append(
        f"If the test expects it, mark it @pytest.mark.{ALLOW_HOOK_FAILURES_MARKER}"
        '("<plugin>") or call gws_hook_failures.allow("<plugin>").'
    )
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail the test (or its teardown) in which a watched hook implementation failed."""
    report = yield
    log = item.stash.get(_LOG_KEY, None)
    if log is None or call.when not in ("call", "teardown"):
        return report
    failures = log._take_unreported(_allowed_by_marker(item))
    if call.when == "teardown":
        log.close()
    if not failures:
        return report
    text = _explain_failures(failures)
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text
    else:
        report.sections.append(("gws_outbound hook failures", text))
    return report


# -- async tests without the anyio marker --------------------------------------------------------


def _kit_async_fixtures(item: pytest.Item) -> list[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    names = []
    for name in item.fixturenames:  # type: ignore[attr-defined]
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        function = definitions[-1].func
        if getattr(function, "__module__", None) == __name__ and (
            inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
        ):
            names.append(name)
    return names


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test using the kit's async fixtures must run under anyio: say so, before pytest
    sets up the fixtures (an unhandled async fixture leaves pytest's fixture state broken
    and the *next* test errors with an opaque ``AssertionError``)."""
    if "anyio_backend" in getattr(item, "fixturenames", ()):
        return
    async_fixtures = _kit_async_fixtures(item)
    if not async_fixtures:
        return
    fixtures = ", ".join(async_fixtures)
    add_marker = (
        "'pytestmark = pytest.mark.anyio' to the module (or @pytest.mark.anyio to the test)"
    )
    if inspect.iscoroutinefunction(getattr(item, "obj", None)):
        problem = f"is an async test using the async fixture(s) {fixtures} of "
        problem += f"gws_outbound_plugin.testing, but is not marked for anyio: add {add_marker}"
    else:  # anyio runs only async def tests, marked or not
        problem = f"is a plain def test using the async fixture(s) {fixtures} of "
        problem += "gws_outbound_plugin.testing, which only an async def test can use: make it "
        problem += "'async def'"
        if item.get_closest_marker("anyio") is None:
            problem += f", and it is not marked for anyio: add {add_marker}"
    pytest.fail(f"{item.name} {problem}", pytrace=False)


# -- pytest integration -------------------------------------------------------------------------


#: Frames of where a coroutine was made that Python's "coroutine ... was never awaited"
#: shows while the kit is on: the hook that dropped it, and what called that.
COROUTINE_ORIGIN_DEPTH: Final = 4


def pytest_configure(config: pytest.Config) -> None:
    # aiocometd-noloop (used by the plugin core) calls asyncio.get_event_loop() in its
    # constructors; keep that out of suites that turn warnings into errors.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:aiocometd_noloop.*")
    # A hook that calls an async def function without await (in a way registration cannot
    # see, as through a local name) drops the coroutine: Python's warning then names only
    # the coroutine. With its origin tracked it names the hook, its file and line.
    if sys.get_coroutine_origin_tracking_depth() < COROUTINE_ORIGIN_DEPTH:
        sys.set_coroutine_origin_tracking_depth(COROUTINE_ORIGIN_DEPTH)
    config.addinivalue_line(
        "markers",
        f"{ALLOW_HOOK_FAILURES_MARKER}(*plugins): a hook implementation that raises or times "
        "out does not fail this test (only for these plugins, when named)",
    )


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
def gws_hook_failures(request: pytest.FixtureRequest) -> HookFailureLog:
    """The hook failures of this test (see :class:`HookFailureLog`)."""
    return _hook_failure_log(request.node)


@pytest.fixture
def gws_plugin_manager(gws_hook_failures: HookFailureLog) -> pluggy.PluginManager:
    """A plugin manager with the hook specifications and no installed plugin; registrations
    are validated and hook failures fail the test."""
    pm = make_plugin_manager(load_entrypoints=False)
    gws_hook_failures.watch(pm)
    return pm


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
    gws_hook_failures: HookFailureLog,
) -> AsyncIterator[OutboundPlugin]:
    """A started OutboundPlugin on the simulator, closed (and drained) after the test."""
    gws_hook_failures.watch(gws_plugin_manager)  # also when gws_plugin_manager is overridden
    async with OutboundPlugin(gws_plugin_manager, gws_config) as plugin:
        yield plugin


@pytest.fixture
def gws_request_factory(gws_simulator: GWSSimulator) -> RequestFactory:
    """Makes valid requests of every operation for the simulator's seeded records
    (``gws_request_factory()`` a cancel, ``.reject()``, ``.complete()``, ...)."""
    return RequestFactory(gws_simulator)
