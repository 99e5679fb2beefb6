"""The cancel engine: accepts requests, POSTs them, correlates the CometD outcome, fans out.

One engine per :class:`~gws_outbound_plugin.OutboundPlugin`. Everything but :meth:`accept`
runs on the event loop thread, so the state below needs no locks.

Correlation: the ``OutboundRecordMessage`` (``RecordCancelAcknowledge``) carries our
``referenceId``; the ``DeviceUserEventMessage`` carries none, so it is matched by record handle,
application, campaign and calling list (oldest pending request first), or by
``GSW_REFERENCE_ID`` when OCS echoes one. When one of the two has arrived the engine waits up
to ``merge_window`` for the other, then fires one acknowledgement with what it has. Exact
duplicates of a message are dropped; messages for a request that already has its outcome are
late and only reach ``on_user_event``.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import json
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._config import GWSConfig
from ._dispatcher import HookDispatcher
from ._exceptions import (
    GWSAuthenticationError,
    GWSOutboundError,
    GWSStatusError,
    GWSTransportError,
    InvalidCancelRequest,
    NotRunningError,
)
from ._models import (
    CancelFailure,
    CancelRequest,
    ChainAttribute,
    EventMetrics,
    FailureReason,
    RecordCancelAck,
    UserEvent,
)
from ._session import GWSSession
from ._ticket import CancelTicket, Outcome

__all__ = ["CancelEngine"]

logger = structlog.get_logger(__name__)

RecordKey = tuple[int, int, str, str]
_RECENT_LIMIT: Final = 10_000
_FINGERPRINT_LIMIT: Final = 4_096
_FOREIGN_LIMIT: Final = 10_000
_ACK: Final = "RecordCancelAcknowledge"
# What json.dumps(..., sort_keys=True, separators=(",", ":")) builds on every call.
_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
# Failures after which OCS may still send the user event of the request.
_MAY_STILL_ANSWER: Final = frozenset(
    {
        FailureReason.TIMED_OUT,
        FailureReason.OUTCOME_UNKNOWN,
        FailureReason.SHUT_DOWN,
        FailureReason.TRANSPORT_FAILURE,
    }
)


class _Pending:
    __slots__ = (
        "__weakref__",
        "accepted",
        "done",
        "outbound",
        "posted_at",
        "request",
        "ticket",
        "user_event",
    )

    def __init__(self, ticket: CancelTicket) -> None:
        self.ticket = ticket
        self.request = ticket.request
        self.posted_at: float | None = None
        self.accepted = False
        self.done = False
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None


class _Foreign:
    """The first half of an acknowledgement that matches no request of ours."""

    __slots__ = ("outbound", "user_event")

    def __init__(self) -> None:
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None


@dataclass(slots=True)
class _HookCall:
    hook: str
    kwargs: dict[str, Any]
    ticket: CancelTicket | None = None
    outcome: Outcome | None = None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _key(
    handle: object, application: object, campaign: object, calling_list: object
) -> RecordKey | None:
    h, a, c, cl = _int(handle), _int(application), _str(campaign), _str(calling_list)
    if h is None or a is None or c is None or cl is None:
        return None
    return (h, a, c, cl)


def _user_data_key(user_data: Mapping[str, Any]) -> RecordKey | None:
    return _key(
        user_data.get("GSW_RECORD_HANDLE"),
        user_data.get("GSW_APPLICATION_ID"),
        user_data.get("GSW_CAMPAIGN_NAME"),
        user_data.get("GSW_CALLING_LIST"),
    )


def _record_key(record: Mapping[str, Any]) -> RecordKey | None:
    return _key(
        record.get("recordHandle"),
        record.get("applicationId"),
        record.get("campaignName"),
        record.get("callingList"),
    )


def _finished(subject: object) -> bool:
    """Whether a timer's subject is a request that already has its outcome (or is gone)."""
    if not isinstance(subject, weakref.ref):
        return False
    pending = subject()
    return pending is None or pending.done


def _error_number(value: object) -> int | None:
    # ASCII digits only ("²".isdigit() is true but int() refuses it), and not too many.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value) if len(value.strip()) <= 18 else None
    return _int(value)


def _chain(value: object) -> ChainAttribute | None:
    try:
        return ChainAttribute(value) if isinstance(value, str) else None
    except ValueError:
        return None


#: RecordCancelAck field, OutboundRecordMessage ``record`` key, ``userData`` key, converter.
_ACK_FIELDS: Final[tuple[tuple[str, str | None, str, Callable[[object], Any]], ...]] = (
    ("record_handle", "recordHandle", "GSW_RECORD_HANDLE", _int),
    ("application_id", "applicationId", "GSW_APPLICATION_ID", _int),
    ("campaign_name", "campaignName", "GSW_CAMPAIGN_NAME", _str),
    ("calling_list", "callingList", "GSW_CALLING_LIST", _str),
    ("phone_number", None, "GSW_PHONE", _str),
    ("chain_attribute", None, "GSW_CHAIN_ATTR", _chain),
)


def _merge_ack(
    request: CancelRequest | None,
    outbound: Mapping[str, Any] | None,
    event: UserEvent | None,
) -> RecordCancelAck:
    record_obj = outbound.get("record") if outbound is not None else None
    record: Mapping[str, Any] = record_obj if isinstance(record_obj, Mapping) else {}
    data: Mapping[str, Any] = event.user_data if event is not None else {}
    device_path = _str(record.get("devicePath"))
    device_id = event.device_id if event is not None else None
    if device_id is None and device_path is not None and device_path.startswith("/devices/"):
        device_id = device_path.rsplit("/", 1)[1]
    if device_id is None and request is not None:
        device_id = request.device_id

    reference = _str(outbound.get("referenceId")) if outbound is not None else None
    if reference is None:
        gsw_ref = data.get("GSW_REFERENCE_ID")
        reference = str(gsw_ref) if isinstance(gsw_ref, str | int) and gsw_ref != "" else None
    if reference is None and request is not None:
        reference = request.reference_id
    # Each field from the OutboundRecordMessage's record, else the user event, else our request.
    fields: dict[str, Any] = {}
    for name, record_key, data_key, convert in _ACK_FIELDS:
        value = record.get(record_key) if record_key is not None else None
        if value is None:
            value = data.get(data_key)
        if value is None and request is not None:
            value = getattr(request, name)
        fields[name] = convert(value)
    return RecordCancelAck(
        reference_id=reference,
        **fields,
        device_id=device_id,
        request=request,
        user_data=data if isinstance(data, MappingProxyType) else MappingProxyType(dict(data)),
        metrics=event.metrics if event is not None else None,
    )


class CancelEngine:
    """See the module docstring. Created and run by ``OutboundPlugin``."""

    def __init__(
        self,
        config: GWSConfig,
        session: GWSSession,
        hooks: HookDispatcher,
        *,
        is_connected: Callable[[], bool],
        wait_connected: Callable[[], Any],
    ) -> None:
        self._config = config
        self._session = session
        self._hooks = hooks
        self._is_connected = is_connected
        self._wait_connected = wait_connected
        self._pending: dict[str, _Pending] = {}
        # Pending requests per record key, oldest first (a list: one entry is the usual case).
        self._by_key: dict[RecordKey, list[_Pending]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        # Record keys of finished requests whose user event may still arrive (how many).
        self._late_keys: OrderedDict[RecordKey, int] = OrderedDict()
        self._fingerprints: OrderedDict[bytes, None] = OrderedDict()
        self._foreign: dict[RecordKey, _Foreign] = {}
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_seq = itertools.count()
        self._timer_wake = anyio.Event()
        self._accept_lock = threading.Lock()
        self._outstanding = 0
        self._accepting = False
        self._loop_thread: int | None = None
        self._loop: Any = None
        self._tg: TaskGroup | None = None
        self._lost_since: float | None = None
        self._work_send: MemoryObjectSendStream[_Pending] | None = None
        self._hook_send: MemoryObjectSendStream[_HookCall] | None = None
        self._streams: list[Any] = []
        self._hook_scope: anyio.CancelScope | None = None
        self.stats: dict[str, int] = {
            "accepted": 0,
            "acknowledged": 0,
            "failed": 0,
            "foreign_acks": 0,
            "duplicates": 0,
            "late": 0,
            "malformed": 0,
            "user_events": 0,
        }

    # -- accepting (any thread) --------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return self._outstanding

    def accept(self, request: CancelRequest) -> CancelTicket:
        if not isinstance(request, CancelRequest):
            raise InvalidCancelRequest(
                {
                    "request": f"must be a CancelRequest, got {type(request).__name__} "
                    "(use CancelRequest.from_bus() for bus events)"
                }
            )
        with self._accept_lock:
            if not self._accepting:
                raise NotRunningError("the GWS outbound plugin is not running; nothing was sent")
            if self._outstanding >= self._config.max_pending:
                raise GWSOutboundError(
                    f"{self._outstanding} cancels are pending (max_pending); nothing was sent"
                )
            self._outstanding += 1
        ticket = CancelTicket(request)
        pending = _Pending(ticket)
        if threading.get_ident() == self._loop_thread:
            self._submit(pending)
        else:
            try:
                self._loop.call_soon_threadsafe(self._submit, pending)
            except RuntimeError:
                with self._accept_lock:
                    self._outstanding -= 1
                raise NotRunningError(
                    "the GWS outbound plugin's event loop is closed; nothing was sent"
                ) from None
        return ticket

    def _submit(self, pending: _Pending) -> None:
        request = pending.request
        if request.reference_id in self._pending:
            # Same referenceId twice: GWS could not tell the answers apart.
            self._tg_start(
                self._fail,
                pending,
                FailureReason.REJECTED,
                None,
                None,
                "a cancel with this referenceId is already pending",
            )
            return
        self._pending[request.reference_id] = pending
        same_key = self._by_key.get(request.record_key)
        if same_key is None:
            self._by_key[request.record_key] = [pending]
        else:
            same_key.append(pending)
        self.stats["accepted"] += 1
        assert self._work_send is not None
        self._work_send.send_nowait(pending)

    def _tg_start(self, func: Callable[..., Any], *args: Any) -> None:
        assert self._tg is not None
        self._tg.start_soon(func, *args)

    # -- running -----------------------------------------------------------------------------

    def start(self, tg: TaskGroup) -> None:
        import asyncio  # the CometD client is asyncio-only, and so is this engine

        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tg = tg
        work_send, work_receive = anyio.create_memory_object_stream[_Pending](
            self._config.max_pending
        )
        hook_send, hook_receive = anyio.create_memory_object_stream[_HookCall](
            self._config.hook_queue_size
        )
        self._work_send, self._hook_send = work_send, hook_send
        self._streams = [work_send, work_receive, hook_send, hook_receive]
        for _ in range(self._config.max_concurrent_requests):
            tg.start_soon(self._worker, work_receive.clone())
        tg.start_soon(self._timer_loop)
        # Shielded: a cancelled host task must still hear every outcome; drain() stops it.
        self._hook_scope = anyio.CancelScope(shield=True)
        tg.start_soon(self._hook_loop, hook_receive)
        with self._accept_lock:
            self._accepting = True

    def close(self) -> None:
        """Release the queues (after the task group has ended)."""
        for stream in self._streams:
            stream.close()
        self._streams = []

    def stop_accepting(self) -> None:
        with self._accept_lock:
            self._accepting = False

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every outstanding outcome, then fail the rest."""
        await self._wait_idle(timeout)
        reason = FailureReason.SHUT_DOWN
        message = "the plugin was closed before the outcome arrived"
        # Let the hook loop deliver what is queued (each call is bounded by hook_timeout);
        # fail again what another thread submitted meanwhile (accepted just before the stop).
        with anyio.move_on_after(max(timeout, self._config.hook_timeout) + 1):
            while self._outstanding:
                for pending in list(self._pending.values()):
                    if self._lost_since is not None and pending.posted_at is not None:
                        await self._fail(
                            pending,
                            FailureReason.OUTCOME_UNKNOWN,
                            None,
                            None,
                            "the CometD session was lost and the plugin was closed",
                        )
                    else:
                        await self._fail(pending, reason, None, None, message)
                await anyio.sleep(0.01)
        if self._hook_scope is not None:
            self._hook_scope.cancel()

    async def _wait_idle(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            while self._outstanding:
                await anyio.sleep(0.01)

    # -- sending -----------------------------------------------------------------------------

    async def _worker(self, receive: MemoryObjectReceiveStream[_Pending]) -> None:
        async with receive:
            async for pending in receive:
                if pending.done:
                    continue
                try:
                    await self._send(pending)
                except Exception as error:  # never let one request stop the worker
                    logger.exception(
                        "cancel_send_crashed", reference_id=pending.request.reference_id
                    )
                    await self._fail(
                        pending,
                        FailureReason.TRANSPORT_FAILURE,
                        None,
                        None,
                        f"unexpected error: {type(error).__name__}",
                    )

    async def _send(self, pending: _Pending) -> None:
        request = pending.request
        if not self._is_connected():
            # A cancel sent now would have its outcome published to nobody: wait for CometD.
            with anyio.move_on_after(self._config.request_timeout):
                await self._wait_connected()
            if not self._is_connected():
                await self._fail(
                    pending,
                    FailureReason.TRANSPORT_FAILURE,
                    None,
                    None,
                    "the CometD session is down; the cancel was not sent",
                )
                return
        pending.posted_at = time.monotonic()
        try:
            await self._session.post_record_operation(request.record_handle, request.to_gws_body())
        except GWSAuthenticationError as error:
            await self._fail(pending, FailureReason.AUTHENTICATION_FAILED, None, None, str(error))
        except GWSStatusError as error:
            await self._fail(
                pending,
                FailureReason.REJECTED,
                error.status_code,
                None,
                error.status_message or str(error),
            )
        except GWSTransportError as error:
            await self._fail(pending, FailureReason.TRANSPORT_FAILURE, None, None, str(error))
        else:
            pending.accepted = True
            logger.debug(
                "cancel_accepted_by_gws",
                reference_id=request.reference_id,
                record_handle=request.record_handle,
            )
            if not pending.done:
                self._schedule(time.monotonic() + self._config.ack_timeout, "ack", pending)

    # -- timers ------------------------------------------------------------------------------

    def _schedule(self, deadline: float, kind: str, subject: Any) -> None:
        if isinstance(subject, _Pending):
            # A timer must not keep a finished request (and its outcome) alive until it
            # fires: it fires for nothing then, whether or not the request is still around.
            subject = weakref.ref(subject)
        earliest = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), kind, subject))
        if earliest is None or deadline < earliest:
            self._timer_wake.set()

    async def _timer_loop(self) -> None:
        while True:
            # The timer of a request that has its outcome would fire for nothing: drop it
            # as soon as it is first in line instead of waiting for its deadline.
            while self._timers and _finished(self._timers[0][3]):
                heapq.heappop(self._timers)
            if not self._timers:
                await self._timer_wake.wait()
                self._timer_wake = anyio.Event()
                continue
            delay = self._timers[0][0] - time.monotonic()
            if delay > 0:
                # Woken by the event loop's own timer (a cancel scope per wait costs more).
                alarm = self._loop.call_later(delay, self._timer_wake.set)
                try:
                    await self._timer_wake.wait()
                finally:
                    alarm.cancel()
                self._timer_wake = anyio.Event()
                continue
            _, _, kind, subject = heapq.heappop(self._timers)
            try:
                await self._fire_timer(kind, subject)
            except Exception:
                logger.exception("timer_crashed", kind=kind)

    async def _fire_timer(self, kind: str, subject: Any) -> None:
        if kind == "foreign":
            key: RecordKey = subject[0]
            foreign: _Foreign = subject[1]
            if self._foreign.get(key) is foreign:
                del self._foreign[key]
                await self._fire_foreign(foreign)
            return
        pending: _Pending | None = subject()
        if pending is None or pending.done:
            return
        if pending.outbound is not None or pending.user_event is not None:
            await self._acknowledge(pending)
        elif kind == "ack":
            await self._fail(
                pending,
                FailureReason.TIMED_OUT,
                None,
                None,
                f"no acknowledgement within {self._config.ack_timeout:g}s",
            )

    # -- CometD messages ---------------------------------------------------------------------

    def session_lost(self, why: str) -> None:
        if self._lost_since is None:
            self._lost_since = time.monotonic()
        logger.warning("cometd_session_lost", reason=why, pending=len(self._pending))

    def session_restored(self) -> None:
        restored_at = time.monotonic()
        self._lost_since = None
        if self._tg is not None:
            self._tg.start_soon(self._settle_after_loss, restored_at)

    async def _settle_after_loss(self, restored_at: float) -> None:
        # Messages that were already on their way are processed first.
        await anyio.sleep(max(self._config.merge_window, 0.05))
        unknown = [
            p
            for p in self._pending.values()
            if not p.done and p.posted_at is not None and p.posted_at < restored_at
        ]
        if unknown:
            logger.warning("cometd_outcomes_unknown", count=len(unknown))
        for pending in unknown:
            await self._fail(
                pending,
                FailureReason.OUTCOME_UNKNOWN,
                None,
                None,
                "the CometD session was lost while the outcome was pending",
            )

    async def deliver(self, message: Mapping[str, Any]) -> None:
        """Handle one CometD message from the listener (never raises)."""
        try:
            await self._deliver(message)
        except Exception:
            self.stats["malformed"] += 1
            channel = message.get("channel") if isinstance(message, Mapping) else None
            logger.exception("cometd_message_failed", channel=_str(channel))

    def _is_duplicate(self, channel: object, data: Mapping[str, Any]) -> bool | None:
        """True for a repeat; None when the message is too large or not JSON."""
        try:
            text = _CANONICAL_JSON.encode([channel, data])
        except (TypeError, ValueError, RecursionError):
            return None
        if len(text) > self._config.max_message_bytes:
            return None
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if digest in self._fingerprints:
            return True
        self._fingerprints[digest] = None
        if len(self._fingerprints) > _FINGERPRINT_LIMIT:
            self._fingerprints.popitem(last=False)
        return False

    def _malformed(self, why: str, channel: object) -> None:
        self.stats["malformed"] += 1
        logger.warning("cometd_message_rejected", reason=why, channel=_str(channel))

    async def _deliver(self, message: Mapping[str, Any]) -> None:
        if not isinstance(message, Mapping):
            self._malformed("not a JSON object", None)
            return
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(data, Mapping):
            self._malformed("no data object", channel)
            return
        duplicate = self._is_duplicate(channel, data)
        if duplicate is None:
            self._malformed(
                f"larger than {self._config.max_message_bytes} bytes or not JSON", channel
            )
            return
        if duplicate:
            self.stats["duplicates"] += 1
            logger.debug("cometd_duplicate_dropped", channel=_str(channel))
            return
        message_type = data.get("messageType")
        if message_type == "OutboundRecordMessage":
            await self._on_outbound(data)
        elif message_type == "DeviceUserEventMessage":
            await self._on_user_event(_str(channel) or "", data)
        else:
            logger.debug(
                "cometd_message_ignored", channel=_str(channel), message_type=_str(message_type)
            )

    async def _on_outbound(self, data: Mapping[str, Any]) -> None:
        notification = data.get("notificationType")
        reference = data.get("referenceId")
        pending = self._pending.get(reference) if isinstance(reference, str) else None
        if notification != _ACK:
            if notification == "Error" and pending is not None:
                message = _str(data.get("errorMessage")) or _str(data.get("statusMessage"))
                await self._fail(
                    pending,
                    FailureReason.OCS_ERROR,
                    None,
                    None,
                    message or "GWS reported an error for this request",
                )
            else:
                logger.debug("outbound_notification_ignored", notification=_str(notification))
            return
        if pending is not None:
            if pending.outbound is None:
                pending.outbound = data
                await self._half_arrived(pending)
            return
        if isinstance(reference, str) and reference in self._recent:
            self.stats["late"] += 1
            logger.info("late_acknowledgement_ignored", reference_id=reference)
            return
        record = data.get("record")
        key = _record_key(record) if isinstance(record, Mapping) else None
        await self._foreign_half(key, outbound=data)

    async def _on_user_event(self, channel: str, data: Mapping[str, Any]) -> None:
        raw = data.get("userData")
        if not isinstance(raw, Mapping):
            self._malformed("userData is not an object", channel)
            return
        if len(raw) > self._config.max_user_data_entries:
            self._malformed(
                f"more than {self._config.max_user_data_entries} userData entries", channel
            )
            return
        user_data = MappingProxyType({str(k): v for k, v in raw.items()})
        event = UserEvent(
            user_event=_str(user_data.get("GSW_USER_EVENT")),
            user_data=user_data,
            device_id=_str(data.get("deviceId")),
            metrics=EventMetrics.from_message(data),
            channel=channel,
        )
        self.stats["user_events"] += 1
        await self._emit(_HookCall("on_user_event", {"event": event}))
        pending = self._match(user_data)
        if pending is None and (event.is_error or event.user_event == _ACK):
            key = _user_data_key(user_data)
            if key is not None and self._late_keys.get(key):
                # The user event of a request that already has its outcome: not foreign.
                self._late_keys[key] -= 1
                if not self._late_keys[key]:
                    del self._late_keys[key]
                self.stats["late"] += 1
                logger.info("late_user_event_ignored", record_handle=key[0])
                return
        if event.is_error:
            if pending is not None:
                await self._fail(
                    pending,
                    FailureReason.OCS_ERROR,
                    None,
                    _error_number(user_data.get("GSW_ERROR_NUMBER")),
                    _str(user_data.get("GSW_ERROR")) or "OCS refused the cancel",
                    user_data,
                )
            return
        if event.user_event != _ACK:
            return
        if pending is not None:
            pending.user_event = event
            await self._half_arrived(pending)
            return
        await self._foreign_half(_user_data_key(user_data), user_event=event)

    def _match(self, user_data: Mapping[str, Any]) -> _Pending | None:
        reference = user_data.get("GSW_REFERENCE_ID")
        if isinstance(reference, str | int) and not isinstance(reference, bool):
            pending = self._pending.get(str(reference))
            if pending is not None and pending.user_event is None:
                return pending
        key = _user_data_key(user_data)
        if key is None:
            return None
        for pending in self._by_key.get(key, ()):
            if not pending.done and pending.user_event is None:
                return pending
        return None

    async def _half_arrived(self, pending: _Pending) -> None:
        both = pending.outbound is not None and pending.user_event is not None
        if both or self._config.merge_window == 0:
            await self._acknowledge(pending)
        else:
            self._schedule(time.monotonic() + self._config.merge_window, "merge", pending)

    async def _foreign_half(
        self,
        key: RecordKey | None,
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> None:
        foreign = self._foreign.get(key) if key is not None else None
        if foreign is None:
            foreign = _Foreign()
        foreign.outbound = foreign.outbound or outbound
        foreign.user_event = foreign.user_event or user_event
        complete = foreign.outbound is not None and foreign.user_event is not None
        if (
            key is None
            or complete
            or len(self._foreign) >= _FOREIGN_LIMIT
            or self._config.merge_window == 0
        ):
            if key is not None:
                self._foreign.pop(key, None)
            await self._fire_foreign(foreign)
            return
        if key not in self._foreign:
            self._foreign[key] = foreign
            self._schedule(time.monotonic() + self._config.merge_window, "foreign", (key, foreign))

    async def _fire_foreign(self, foreign: _Foreign) -> None:
        ack = _merge_ack(None, foreign.outbound, foreign.user_event)
        self.stats["foreign_acks"] += 1
        logger.info(
            "foreign_acknowledgement",
            reference_id=ack.reference_id,
            record_handle=ack.record_handle,
        )
        await self._emit(_HookCall("on_record_cancel_acknowledged", {"ack": ack}))

    # -- outcomes ----------------------------------------------------------------------------

    def _finish(self, pending: _Pending, *, may_answer_late: bool = True) -> bool:
        if pending.done:
            return False
        pending.done = True
        request = pending.request
        if self._pending.get(request.reference_id) is pending:
            del self._pending[request.reference_id]
        queue = self._by_key.get(request.record_key)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(pending)
            if not queue:
                del self._by_key[request.record_key]
        self._recent[request.reference_id] = None
        if len(self._recent) > _RECENT_LIMIT:
            self._recent.popitem(last=False)
        if may_answer_late and pending.user_event is None and pending.posted_at is not None:
            key = request.record_key
            self._late_keys[key] = self._late_keys.get(key, 0) + 1
            self._late_keys.move_to_end(key)
            if len(self._late_keys) > _RECENT_LIMIT:
                self._late_keys.popitem(last=False)
        return True

    async def _acknowledge(self, pending: _Pending) -> None:
        if not self._finish(pending):
            return
        ack = _merge_ack(pending.request, pending.outbound, pending.user_event)
        self.stats["acknowledged"] += 1
        logger.debug(
            "cancel_acknowledged", reference_id=ack.reference_id, record_handle=ack.record_handle
        )
        await self._emit(
            _HookCall("on_record_cancel_acknowledged", {"ack": ack}, pending.ticket, ack)
        )

    async def _fail(
        self,
        pending: _Pending,
        reason: FailureReason,
        status_code: int | None,
        error_number: int | None,
        message: str | None,
        user_data: Mapping[str, Any] | None = None,
    ) -> None:
        if not self._finish(pending, may_answer_late=reason in _MAY_STILL_ANSWER):
            return
        failure = CancelFailure(
            request=pending.request,
            reason=reason,
            status_code=status_code,
            error_number=error_number,
            message=message,
            user_data=user_data if user_data is not None else MappingProxyType({}),
        )
        self.stats["failed"] += 1
        logger.warning(
            "cancel_failed",
            reference_id=pending.request.reference_id,
            record_handle=pending.request.record_handle,
            reason=reason.value,
            status_code=status_code,
            error_number=error_number,
            detail=message,
        )
        await self._emit(
            _HookCall("on_cancel_failed", {"failure": failure}, pending.ticket, failure)
        )

    async def _emit(self, call: _HookCall) -> None:
        assert self._hook_send is not None
        try:
            # No checkpoint: a cancelled caller must not lose an outcome it already decided.
            self._hook_send.send_nowait(call)
            return
        except anyio.WouldBlock:
            if call.ticket is None:
                await self._hook_send.send(call)
                return
        # The queue is full: wait for room, even when cancelled, until the hook loop stops.
        with anyio.CancelScope(shield=True):
            while self._hook_scope is None or not self._hook_scope.cancel_called:
                await anyio.sleep(0.005)
                try:
                    self._hook_send.send_nowait(call)
                    return
                except anyio.WouldBlock:
                    continue

    async def _hook_loop(self, receive: MemoryObjectReceiveStream[_HookCall]) -> None:
        assert self._hook_scope is not None
        with self._hook_scope:
            async for call in receive:
                await self._hooks.dispatch(call.hook, **call.kwargs)
                if call.ticket is not None and call.outcome is not None:
                    call.ticket._resolve(call.outcome)
                    with self._accept_lock:
                        self._outstanding -= 1
