"""The embedded GWS simulator: an aiohttp server on loopback that behaves like GWS v2.

See ``docs/simulator.md`` for every rule; the short version:

* ``GET /api/v2/me``, ``GET /api/v2/me/devices`` and ``POST /api/v2/me`` (Start/End
  contact-center session) with HTTP Basic auth, a ``JSESSIONID`` session cookie and
  GWS-style CSRF protection;
* every GWS outbound operation on ``POST /api/v2/me/outbound-records[/<handle>]`` and
  ``POST /api/v2/me/outbound-campaigns/<name>``, validated like GWS, answered
  ``{"statusCode": 0}`` at once, the OCS outcome following on CometD;
* a small OCS: record states, preview sessions, the do-not-call list, callbacks that come
  back as ``ScheduledCall`` when the simulator's clock reaches them, and unsolicited events
  (``RecordCancel``, campaign status, pushed preview records) the tests trigger;
* a Bayeux long-polling endpoint at ``/api/v2/notifications``;
* fault injection through :attr:`GWSSimulator.faults`, server-side changes
  (:meth:`GWSSimulator.rotate_csrf_tokens`, :meth:`GWSSimulator.set_password`, ...) and an
  admin endpoint under ``/_simulator/`` for both (loopback clients only, not recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hmac
import inspect
import ipaddress
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import aiohttp
from aiohttp import web

from .._log import get_logger
from ._bayeux import DEFAULT_MAX_QUEUE, BayeuxServer, ServerStopping, _valid_subscription
from ._clock import SimulatorClock
from ._faults import (
    ADMIN_FAULTS,
    SERVICE_UNAVAILABLE_BODY,
    CSRFReject,
    Faults,
    Refusal,
    Unauthorized,
)
from ._operations import Engine, Message
from ._outbound import (
    OUTBOUND_CHANNEL,
    USER_EVENT_CHANNEL,
    Command,
    ErrorReply,
    Resource,
    operation_of,
    validate,
)
from ._recording import (
    DecodedBody,
    PublishedMessage,
    RecordedRequest,
    decode_body,
    redact,
    redact_query,
)
from ._records import (
    CAMPAIGN_EVENTS,
    DEFAULT_RECORDS,
    CampaignState,
    Change,
    OCSModel,
    OCSRefusal,
    RecordState,
    RecordStatus,
    SeedRecord,
)
from ._sessions import Session, SessionStore

__all__ = ["DEFAULT_USERS", "GWSSimulator"]

logger = get_logger(__name__)  # structlog's logger once the host configured structlog

DEFAULT_USERS: Final[Mapping[str, str]] = {"agent1": "secret"}

SESSION_COOKIE = "JSESSIONID"
BAYEUX_COOKIE = "BAYEUX_BROWSER"
CSRF_HEADER = "X-CSRF-TOKEN"
CSRF_TEXT = "Missing or invalid Csrf token"
NOTIFICATIONS_PATH = "/api/v2/notifications"
OUTBOUND_PREFIX = "/api/v2/me/outbound-records"
CAMPAIGNS_PREFIX = "/api/v2/me/outbound-campaigns"
ADMIN_PREFIX = "/_simulator/"
#: The ``statusMessage`` of GWS's ``statusCode`` 20 (HTCC "Interpreting a Response").
ACCESS_DENIED = "Access denied"
_REALM = 'Basic realm="Genesys Web Services (simulator)"'
_NOT_AUTHENTICATED = 20
_INTERNAL_ERROR = 4
_SHUTDOWN_GRACE = 0.5

# Namespaces for the deterministic ids derived from user names.
_DEVICE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:device")
_USER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:user")
_ENVIRONMENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:env"))
_READY_STATE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:ready"))

_FAULT_NAMES = ADMIN_FAULTS

_STATUS_MESSAGES: Mapping[int, str] = {
    1: "A required parameter is missing",
    2: "A parameter is not valid for the current state",
    3: "Operation forbidden",
    4: "Internal error",
    5: "User does not have permission",
    6: "Resource not found",
    7: "Partial success",
    8: "Password change demanded",
    9: "Processing incomplete",
    10: "Input validation error",
    11: "Attempt to change a read-only property",
    12: "Unable to retrieve resource",
    13: "Unable to create resource",
    14: "Unable to delete resource",
    15: "Unable to update resource",
    16: "Unable to assign resource",
    17: "Unable to unassign resource",
    18: "Resource already exists",
    19: "Resource already in use",
    20: ACCESS_DENIED,
}


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    password: str = field(repr=False)
    device_id: str
    user_id: str
    phone_number: str


@dataclass(slots=True)
class _RequestInfo:
    """What the middleware and the handlers learn about one request, for its record."""

    body: DecodedBody
    started: float
    started_ns: int
    had_basic_auth: bool
    had_session_cookie: bool
    had_csrf_token: bool
    username: str | None = None
    bayeux_channels: tuple[str, ...] = ()
    reset: bool = False


@dataclass(frozen=True, slots=True)
class _Auth:
    user: str
    session: Session | None
    new_session: bool


# The middleware's notes about the request being handled. A context variable rather than a
# request key: typed keys (web.RequestKey) need aiohttp >= 3.12 and plain string keys warn
# there; each request is handled in one task, which has its own context.
_CURRENT_INFO: ContextVar[_RequestInfo] = ContextVar("gws_simulator_request_info")


def _info(request: web.Request) -> _RequestInfo:
    """The middleware's notes about ``request`` (the request being handled)."""
    info = _CURRENT_INFO.get(None)
    if info is None:
        raise RuntimeError(f"{request.path}: request did not pass through the middleware")
    return info


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _csrf_refused() -> web.Response:
    """GWS's answer to a write without a live session or its CSRF token."""
    return web.Response(status=403, text=CSRF_TEXT, content_type="text/plain")


class GWSSimulator:
    """An in-process GWS v2 server for the outbound-record API, with CometD and faults.

    Use it as an async context manager (or call :meth:`start` / :meth:`stop`) on a running
    asyncio loop; every method and property is meant to be used on that loop's thread.

    :param users: user name -> password accepted by HTTP Basic auth (default
        ``{"agent1": "secret"}``). Each user has one device, see :meth:`device_id`.
    :param csrf: GWS CSRF protection (``X-CSRF-HEADER`` / ``X-CSRF-TOKEN``) on or off.
    :param host: address to listen on; ``"localhost"`` listens on 127.0.0.1 but keeps
        ``localhost`` in :attr:`base_url` (useful for clients that ignore cookies set by
        IP hosts).
    :param port: TCP port; 0 picks a free one (kept across :meth:`restart`).
    :param records: the OCS records (``None``: :data:`DEFAULT_RECORDS`).
    :param session_idle_timeout: seconds a GWS HTTP session lives without a request.
    :param connect_timeout: seconds a Bayeux ``/meta/connect`` is held at most.
    :param cometd_session_timeout: seconds after which a CometD client that has not
        polled is forgotten.
    :param max_queue: messages kept per CometD client at most (the oldest are dropped).
    :param request_log: called with each :class:`RecordedRequest` once it is answered;
        exceptions it raises are logged and ignored.
    :param clock: the simulated OCS's clock (default: a new :class:`SimulatorClock`
        following real time); rescheduled records come back when it reaches their time.
    :param forbidden_channels: channels whose subscription is refused with
        ``403::Forbidden channel`` (e.g. ``["/me/internal"]``, as a GWS might); see
        :meth:`set_forbidden_channels`.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        csrf: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        records: Iterable[SeedRecord] | None = None,
        session_idle_timeout: float = 1800.0,
        connect_timeout: float = 30.0,
        cometd_session_timeout: float = 60.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        request_log: Callable[[RecordedRequest], None] | None = None,
        clock: SimulatorClock | None = None,
        forbidden_channels: Iterable[str] = (),
    ) -> None:
        user_map = dict(DEFAULT_USERS if users is None else users)
        if not user_map:
            raise ValueError("users must name at least one user")
        for name, password in user_map.items():
            if not isinstance(name, str) or not name or ":" in name:
                raise ValueError(f"invalid user name {name!r}: non-empty, without ':'")
            if not isinstance(password, str):
                raise ValueError(f"the password of user {name!r} must be a string")
        for label, value in (
            ("session_idle_timeout", session_idle_timeout),
            ("connect_timeout", connect_timeout),
            ("cometd_session_timeout", cometd_session_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError("port must be an integer between 0 and 65535")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError("max_queue must be a positive integer")
        if clock is not None and not isinstance(clock, SimulatorClock):
            raise ValueError("clock must be a SimulatorClock")
        self._forbidden = _channel_set(forbidden_channels)
        self._users: dict[str, _User] = {
            name: _User(
                name=name,
                password=password,
                device_id=str(uuid.uuid5(_DEVICE_NAMESPACE, name)),
                user_id=str(uuid.uuid5(_USER_NAMESPACE, name)).replace("-", ""),
                phone_number=str(5001 + index),
            )
            for index, (name, password) in enumerate(user_map.items())
        }
        self._csrf = bool(csrf)
        self._host = host
        self._bind_host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self._session_idle_timeout = float(session_idle_timeout)
        self._connect_timeout = float(connect_timeout)
        self._cometd_session_timeout = float(cometd_session_timeout)
        self._max_queue = max_queue
        self._request_log = request_log
        self._ocs = OCSModel(DEFAULT_RECORDS if records is None else records)
        self._clock = SimulatorClock() if clock is None else clock
        self._engine = Engine(self._ocs, self._clock, self.device_id)
        self._faults = Faults()
        self._sessions = SessionStore(self._session_idle_timeout)
        self._bayeux = self._new_bayeux()
        self._requests: list[RecordedRequest] = []
        self._generation = 0
        self._published: list[PublishedMessage] = []
        self._published_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._pending: set[asyncio.Handle] = set()
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def __repr__(self) -> str:
        where = self.base_url if self._runner is not None else "stopped"
        return f"GWSSimulator({where}, users={sorted(self._users)!r}, csrf={self._csrf})"

    # ------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> GWSSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    async def start(self) -> None:
        """Start listening (on the same port as before after a :meth:`stop`)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._sessions = SessionStore(self._session_idle_timeout)
        self._bayeux = self._new_bayeux()
        runner = web.AppRunner(
            self._build_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_GRACE,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._bind_host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        self._sweeper = asyncio.create_task(self._sweep_forever())
        self._wakeup = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule_forever())
        self._clock._subscribe(self._clock_changed)

    async def stop(self) -> None:
        """Stop listening. Sessions, CometD clients and unpublished outcomes are lost.

        Held ``/meta/connect`` requests end with the connection closed, like a server
        going away. Recorded requests, published messages, records (and their schedules:
        callbacks due while stopped come when it starts again), preview sessions, passwords,
        forbidden channels and armed faults stay; armed faults include
        ``hold_notifications`` (still holding after a restart) but not the outcomes it had
        parked. Calling it when stopped does nothing.
        """
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        self._stopping = True
        self._clock._unsubscribe(self._clock_changed)
        tasks = [task for task in (self._sweeper, self._scheduler) if task is not None]
        self._sweeper = self._scheduler = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # never raises, so our own cancellation still can
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self._faults._discard_held()
        self._bayeux.forget_all(stopping=True)
        self._sessions.expire_all()
        await runner.cleanup()

    async def restart(self) -> None:
        """Stop and start again on the same port, losing sessions and CometD clients.

        Armed faults stay armed (see :meth:`stop`).
        """
        await self.stop()
        await self.start()

    # ---------------------------------------------------------------- public state
    @property
    def port(self) -> int:
        """The TCP port (the chosen one once started with ``port=0``)."""
        if self._port == 0:
            raise RuntimeError("the simulator has not been started yet")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def cometd_url(self) -> str:
        """The Bayeux endpoint: ``base_url + "/api/v2/notifications"``."""
        return self.base_url + NOTIFICATIONS_PATH

    @property
    def users(self) -> tuple[str, ...]:
        """The configured user names (passwords are not exposed)."""
        return tuple(self._users)

    def device_id(self, username: str) -> str:
        """The bare uuid of the user's device (uuid5 of the user name)."""
        return self._user(username).device_id

    def device_path(self, username: str) -> str:
        """The user's ``devicePath``: ``/devices/<uuid>``."""
        return f"/devices/{self.device_id(username)}"

    def phone_number(self, username: str) -> str:
        """The user's device DN (``5001`` for the first user, ``5002`` for the next...)."""
        return self._user(username).phone_number

    def _user(self, username: str) -> _User:
        try:
            return self._users[username]
        except KeyError:
            raise KeyError(f"unknown simulator user {username!r}") from None

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received (REST and Bayeux, not admin), in arrival order."""
        return list(self._requests)

    @property
    def cancels(self) -> list[RecordedRequest]:
        """The recorded ``POST /api/v2/me/outbound-records...`` requests (any operation)."""
        return [
            item
            for item in self._requests
            if item.method == "POST" and item.path.startswith(OUTBOUND_PREFIX)
        ]

    @property
    def operations(self) -> list[RecordedRequest]:
        """The recorded POSTs to every outbound resource (records and campaigns)."""
        return [
            item
            for item in self._requests
            if item.method == "POST"
            and (item.path.startswith(OUTBOUND_PREFIX) or item.path.startswith(CAMPAIGNS_PREFIX))
        ]

    @property
    def records(self) -> Mapping[int, RecordState]:
        """Live read-only view of the OCS records: handle -> :class:`RecordState`."""
        return self._ocs.view

    @property
    def campaigns(self) -> Mapping[tuple[str, int], CampaignState]:
        """Live read-only view of the campaigns: (name, applicationId) -> :class:`CampaignState`.

        Built from the records' campaigns; treat the states as read-only (change them with
        :meth:`send_campaign_status`).
        """
        return self._ocs.campaign_view

    @property
    def do_not_call_numbers(self) -> frozenset[str]:
        """Phone numbers on OCS's do-not-call list (GetPreviewRecord skips them)."""
        return frozenset(self._ocs.do_not_call_numbers)

    def preview_session_active(self, username: str, campaign_name: str) -> bool:
        """Whether ``username`` has a preview session on that campaign (any application)."""
        return any(
            self._ocs.has_session(username, campaign)
            for (name, _), campaign in self._ocs.campaign_view.items()
            if name == campaign_name
        )

    @property
    def clock(self) -> SimulatorClock:
        """The simulated OCS's clock (``advance`` / ``set`` it to bring callbacks due)."""
        return self._clock

    @property
    def forbidden_channels(self) -> frozenset[str]:
        """Channels whose subscription is refused (see :meth:`set_forbidden_channels`)."""
        return frozenset(self._forbidden)

    def set_forbidden_channels(self, channels: Iterable[str]) -> None:
        """Refuse subscriptions to these channels from now on (replacing the previous set).

        A ``/meta/subscribe`` naming one (alone or in a list) is answered
        ``{"successful": false, "error": "403::Forbidden channel"}``; messages published on a
        forbidden channel reach nobody, even clients that subscribed before or through a
        wildcard. An empty set allows every channel again.

        :raises ValueError: for a channel that is not a valid non-meta channel name.
        """
        self._forbidden = _channel_set(channels)

    @property
    def faults(self) -> Faults:
        """The fault controls."""
        return self._faults

    @property
    def published(self) -> list[PublishedMessage]:
        """Every CometD message published so far (including to no subscriber), in order."""
        return list(self._published)

    @property
    def cometd_client_count(self) -> int:
        """How many CometD clients the server currently knows."""
        return self._bayeux.client_count

    @property
    def session_count(self) -> int:
        """How many GWS HTTP sessions are alive."""
        self._sessions.sweep()
        return len(self._sessions)

    def clear_recorded(self) -> None:
        """Forget the recorded requests and published messages (e.g. between phases)."""
        self._requests.clear()
        self._published.clear()
        self._generation += 1

    def expire_sessions(self) -> int:
        """Expire every GWS HTTP session now; return how many there were."""
        return self._sessions.expire_all()

    def rotate_csrf_tokens(self) -> int:
        """Give every live GWS session a new CSRF token; return how many sessions there are.

        The sessions stay alive: the next write with an old token is answered 403
        ``Missing or invalid Csrf token``, and the next authenticated GET carries the new one.
        """
        return self._sessions.rotate_csrf_tokens()

    def set_password(self, username: str, password: str) -> None:
        """From now on, Basic auth accepts only ``password`` for ``username``.

        Existing sessions stay valid until they expire, as in GWS: requests sending only the
        session cookie go on working, while any request sending Basic credentials with the
        old password (and every new login with it) is answered 401. The password is kept
        across :meth:`restart`, and is never logged, recorded or shown in a repr.

        :raises KeyError: for an unknown user (users cannot be added).
        :raises ValueError: when ``password`` is not a string.
        """
        user = self._user(username)
        if not isinstance(password, str):
            raise ValueError(f"the password of user {username!r} must be a string")
        self._users[username] = dataclasses.replace(user, password=password)

    def forget_cometd_clients(self) -> int:
        """Drop every CometD client (their next message gets ``402::Unknown client``).

        A ``/meta/connect`` being held is answered with that 402 at once.
        """
        return self._bayeux.forget_all()

    async def wait_for_published(self, n: int, timeout: float = 5.0) -> list[PublishedMessage]:
        """Wait until at least ``n`` messages were published in total; return them all.

        :raises TimeoutError: when fewer were published within ``timeout`` seconds.
        """
        if len(self._published) >= n:
            return list(self._published)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, waiter)
        self._published_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise TimeoutError(
                f"{len(self._published)} of {n} CometD messages published within {timeout} s"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._published_waiters.remove(entry)
        return list(self._published)

    def stats(self) -> dict[str, Any]:
        """Counters, as served by ``GET /_simulator/stats``."""
        by_status = {status.value: 0 for status in RecordStatus}
        for state in self._ocs.view.values():
            by_status[state.status.value] += 1
        return {
            "running": self.running,
            "requests": len(self._requests),
            "cancels": len(self.cancels),
            "operations": len(self.operations),
            "published": len(self._published),
            "cometd_clients": self.cometd_client_count,
            "sessions": self.session_count,
            "records": len(self._ocs.view),
            "records_cancelled": by_status[RecordStatus.CANCELLED.value],
            "records_by_status": by_status,
            "preview_sessions": self._ocs.session_count,
            "do_not_call_numbers": sorted(self._ocs.do_not_call_numbers),
            "clock": self._clock.datetime().isoformat(),
            "forbidden_channels": sorted(self._forbidden),
            "held_notifications": self._faults.held_count,
            "faults": list(self._faults.active),
        }

    # --------------------------------------------------------- unsolicited events
    def send_record_cancel(self, record_handle: int) -> None:
        """Someone else cancels a record an agent holds: OCS tells that agent ``RecordCancel``.

        The record (handed out by GetPreviewRecord, GetChainedRecord, a pushed preview record
        or a delivered ``ScheduledCall``) becomes cancelled and the agent holding it gets the
        ``/me/internal`` user event ``RecordCancel`` at once (no fault applies).

        :raises KeyError: for an unknown handle.
        :raises ValueError: when no agent holds the record.
        """
        state, holder = self._ocs.cancel_held(record_handle, self._clock.now())
        self._publish(holder, self._engine.record_cancel(state, holder, time.perf_counter_ns()))

    def send_campaign_status(
        self,
        campaign_name: str,
        event: str,
        *,
        application_id: int | None = None,
        mode: str | None = None,
        user: str | None = None,
    ) -> None:
        """OCS announces a campaign status change to ``user`` (default: every user).

        :param event: ``CampaignLoaded``, ``CampaignStarted``, ``CampaignStopped``,
            ``CampaignUnloaded`` or ``CampaignModeChanged`` (which needs ``mode``, the new
            dialing mode, e.g. ``"Progressive"``). The campaign's ``state`` becomes
            ``Loaded`` / ``Started`` / ``Stopped`` / ``Unloaded``; only a ``Started``
            campaign hands out preview records.
        :param application_id: needed only when two applications have a campaign of that name.
        :raises KeyError: for an unknown campaign or user.
        :raises ValueError: for an unknown event, or ``mode`` missing/unexpected.
        """
        if event not in CAMPAIGN_EVENTS:
            raise ValueError(f"event must be one of {', '.join(CAMPAIGN_EVENTS)}, got {event!r}")
        if (event == "CampaignModeChanged") != (mode is not None):
            raise ValueError("mode is required by CampaignModeChanged and only by it")
        if mode is not None and (not isinstance(mode, str) or not mode.strip()):
            raise ValueError("mode must be a non-empty string")
        campaign = self._find_campaign(campaign_name, application_id)
        users = list(self._users) if user is None else [self._user(user).name]
        self._ocs.campaign_event(campaign, event, mode)
        for name in users:
            messages = self._engine.campaign_status(campaign, event, name, time.perf_counter_ns())
            self._publish(name, messages)

    def send_preview_record(
        self,
        campaign_name: str,
        user: str | None = None,
        *,
        application_id: int | None = None,
    ) -> int:
        """OCS pushes the campaign's next ready record to ``user`` (default: the first user).

        Publishes the ``PreviewRecord`` ``OutboundRecordMessage`` (without ``referenceId``)
        and its user event; the record becomes held by the user. No preview session is
        needed. Returns the record handle.

        :raises KeyError: for an unknown campaign or user.
        :raises LookupError: when the campaign has no ready record left (or is not started).
        """
        campaign = self._find_campaign(campaign_name, application_id)
        username = self._user(user).name if user is not None else next(iter(self._users))
        try:
            state = self._ocs.next_preview_record(
                username, campaign, Change(None, None, self._clock.now()), session=False
            )
        except OCSRefusal:
            raise LookupError(f"campaign {campaign_name!r} has no record available") from None
        messages = self._engine.preview_messages(
            state, username, self.device_id(username), None, time.perf_counter_ns()
        )
        self._publish(username, messages)
        return state.record.record_handle

    def _find_campaign(self, name: str, application_id: int | None) -> CampaignState:
        found = [
            campaign
            for (campaign_name, app), campaign in self._ocs.campaign_view.items()
            if campaign_name == name and application_id in (None, app)
        ]
        if not found:
            raise KeyError(f"the simulator has no campaign {name!r}")
        if len(found) > 1:
            raise KeyError(f"campaign {name!r} exists in several applications: name one")
        return found[0]

    def _clock_changed(self) -> None:
        self._deliver_due()
        if self._wakeup is not None:
            self._wakeup.set()

    def _deliver_due(self) -> None:
        """Deliver every callback the clock has reached, as ``ScheduledCall`` user events."""
        if not self.running:
            return
        now = self._clock.now()
        for state in self._ocs.due(now):
            delivered = self._ocs.deliver_scheduled(state, now)
            username, messages = self._engine.scheduled_call(delivered, time.perf_counter_ns())
            self._publish(username, messages)

    async def _schedule_forever(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            wakeup.clear()
            self._deliver_due()
            due = self._ocs.next_due_time()
            timeout: float | None = None
            if due is not None and not self._clock.frozen:
                timeout = max(due - self._clock.now(), 0.0) + 0.001
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wakeup.wait()

    # -------------------------------------------------------------------- plumbing
    def _new_bayeux(self) -> BayeuxServer:
        return BayeuxServer(
            connect_timeout=self._connect_timeout,
            session_timeout=self._cometd_session_timeout,
            max_queue=self._max_queue,
            hold_fault=self._faults._take_connect_hold,
            forbidden=lambda channel: channel in self._forbidden,
        )

    async def _sweep_forever(self) -> None:
        interval = min(
            max(min(self._session_idle_timeout, self._cometd_session_timeout) / 2, 0.05), 5.0
        )
        while True:
            await asyncio.sleep(interval)
            self._sessions.sweep()
            self._bayeux.sweep()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        router = app.router
        router.add_post(ADMIN_PREFIX + "faults", self._admin_faults)
        router.add_post(ADMIN_PREFIX + "forget-clients", self._admin_forget_clients)
        router.add_post(ADMIN_PREFIX + "expire-sessions", self._admin_expire_sessions)
        router.add_post(ADMIN_PREFIX + "rotate-csrf", self._admin_rotate_csrf)
        router.add_post(ADMIN_PREFIX + "users", self._admin_users)
        router.add_get(ADMIN_PREFIX + "stats", self._admin_stats)
        router.add_post(ADMIN_PREFIX + "events", self._admin_events)
        router.add_get(ADMIN_PREFIX + "clock", self._admin_clock)
        router.add_post(ADMIN_PREFIX + "clock", self._admin_clock)
        router.add_post(ADMIN_PREFIX + "forbidden-channels", self._admin_forbidden_channels)
        router.add_post(NOTIFICATIONS_PATH, self._notifications)
        router.add_post(NOTIFICATIONS_PATH + "/{tail:.*}", self._notifications)
        router.add_get("/api/v2/me", self._get_me)
        router.add_post("/api/v2/me", self._post_me)
        router.add_get("/api/v2/me/devices", self._get_devices)
        router.add_post(OUTBOUND_PREFIX, self._outbound_records)
        router.add_post(OUTBOUND_PREFIX + "/{handle}", self._outbound_record)
        router.add_post(CAMPAIGNS_PREFIX + "/{name}", self._outbound_campaign)
        # Matched against the percent-decoded path: ``(?s)`` so that a newline (``%0A``) is
        # matched too, and GWS's JSON 404 answers it rather than aiohttp's text one.
        router.add_route("*", "/api/v2/{tail:(?s:.*)}", self._not_found)
        return app

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Any],
    ) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            response: web.StreamResponse = await handler(request)
            return response
        if self._stopping:
            # A request on a kept-alive connection while stopping: the server is gone.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        started = time.monotonic()
        started_ns = time.perf_counter_ns()
        try:
            raw = await request.read()
        except web.HTTPException as exc:
            raw = b""
            too_large: web.HTTPException | None = exc
        else:
            too_large = None
        session = self._sessions.peek(request.cookies.get(SESSION_COOKIE))
        token = request.headers.get(CSRF_HEADER)
        info = _RequestInfo(
            body=decode_body(raw),
            started=started,
            started_ns=started_ns,
            had_basic_auth=request.headers.get("Authorization", "")[:6].lower() == "basic ",
            had_session_cookie=session is not None,
            had_csrf_token=session is not None
            and token is not None
            and _same(token, session.csrf_token),
        )
        if request.path == NOTIFICATIONS_PATH or request.path.startswith(NOTIFICATIONS_PATH + "/"):
            info.bayeux_channels = _channels(info.body)
        context_token = _CURRENT_INFO.set(info)
        generation, index = self._generation, len(self._requests)
        self._requests.append(self._record(request, info, status=0))
        status = 0
        try:
            if too_large is not None:
                raise too_large
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            logger.exception(
                "gws_simulator_handler_failed", method=request.method, path=request.path
            )
            status = 500
            return _json(
                {"statusCode": _INTERNAL_ERROR, "statusMessage": "Simulator internal error"},
                status=500,
            )
        finally:
            _CURRENT_INFO.reset(context_token)
            record = self._record(request, info, status=0 if info.reset else status)
            if generation == self._generation:
                self._requests[index] = record
            if self._request_log is not None:
                try:
                    self._request_log(record)
                except Exception:
                    logger.exception("gws_simulator_request_log_failed")

    def _record(self, request: web.Request, info: _RequestInfo, *, status: int) -> RecordedRequest:
        body = info.body
        recorded_body = redact(body.value) if body.is_json else (body.raw_text or None)
        answered = status != 0 or info.reset
        return RecordedRequest(
            method=request.method,
            path=request.path,
            query=redact_query(request.query.items()),
            body=recorded_body,
            had_session_cookie=info.had_session_cookie,
            had_csrf_token=info.had_csrf_token,
            had_basic_auth=info.had_basic_auth,
            username=info.username,
            status=status,
            bayeux_channels=info.bayeux_channels,
            time=info.started,
            duration_ms=(time.monotonic() - info.started) * 1000 if answered else 0.0,
        )

    def _reset(self, request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer."""
        _info(request).reset = True
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    # ---------------------------------------------------------------- auth & CSRF
    def _basic_user(self, request: web.Request) -> tuple[bool, str | None]:
        """(an Authorization header was sent, the user its valid Basic credentials name)."""
        header = request.headers.get("Authorization")
        if header is None:
            return False, None
        try:
            credentials = aiohttp.BasicAuth.decode(header)
        except ValueError:
            return True, None
        user = self._users.get(credentials.login)
        if user is None or not _same(credentials.password, user.password):
            return True, None
        return True, user.name

    def _unauthorized(self) -> web.Response:
        response = _json({"statusCode": _NOT_AUTHENTICATED, "statusMessage": ACCESS_DENIED}, 401)
        response.headers["WWW-Authenticate"] = _REALM
        return response

    def _authenticate(self, request: web.Request) -> _Auth | web.Response:
        """Basic credentials or a live session; Basic without a session creates one."""
        sent, user = self._basic_user(request)
        if sent and user is None:
            return self._unauthorized()
        session = self._sessions.use(request.cookies.get(SESSION_COOKIE))
        if user is None:
            if session is None:
                return self._unauthorized()
            return self._authenticated(request, session.username, session, new=False)
        if session is None or session.username != user:
            return self._authenticated(request, user, self._sessions.create(user), new=True)
        return self._authenticated(request, user, session, new=False)

    def _authenticate_write(self, request: web.Request) -> _Auth | web.Response:
        """Like :meth:`_authenticate`, but with CSRF on a live session and token come first."""
        if not self._csrf:
            return self._authenticate(request)
        session = self._sessions.use(request.cookies.get(SESSION_COOKIE))
        token = request.headers.get(CSRF_HEADER)
        if session is None or token is None or not _same(token, session.csrf_token):
            return _csrf_refused()
        sent, user = self._basic_user(request)
        if sent and user is None:
            return self._unauthorized()
        return self._authenticated(request, user or session.username, session, new=False)

    def _authenticated(
        self, request: web.Request, user: str, session: Session | None, *, new: bool
    ) -> _Auth:
        _info(request).username = user
        return _Auth(user=user, session=session, new_session=new)

    def _answer(
        self, auth: _Auth, body: Any, status: int = 200, *, read: bool = False
    ) -> web.Response:
        """A JSON answer with the session cookie (when new) and, for reads, CSRF headers."""
        response = _json(body, status)
        self._decorate(response, auth, read=read)
        return response

    def _decorate(self, response: web.StreamResponse, auth: _Auth, *, read: bool) -> None:
        if auth.session is None:
            return
        if auth.new_session:
            response.set_cookie(SESSION_COOKIE, auth.session.session_id, path="/", httponly=True)
        if read and self._csrf:
            response.headers["X-CSRF-HEADER"] = CSRF_HEADER
            response.headers[CSRF_HEADER] = auth.session.csrf_token

    # --------------------------------------------------------------- REST handlers
    async def _get_me(self, request: web.Request) -> web.StreamResponse:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        user = self._users[auth.user]
        body: dict[str, Any] = {
            "id": user.user_id,
            "userName": user.name,
            "firstName": user.name[:1].upper() + user.name[1:],
            "lastName": "Simulated",
            "roles": ["ROLE_AGENT"],
            "enabled": True,
            "changePasswordOnFirstLogin": False,
            "uri": f"{self.base_url}/api/v2/users/{user.user_id}",
            "path": f"/users/{user.user_id}",
        }
        if request.query.get("subresources") == "*":
            body["devices"] = [self._device_json(user)]
        return self._answer(auth, {"statusCode": 0, "user": body}, read=True)

    async def _get_devices(self, request: web.Request) -> web.StreamResponse:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        devices = [self._device_json(self._users[auth.user])]
        return self._answer(auth, {"statusCode": 0, "devices": devices}, read=True)

    def _device_json(self, user: _User) -> dict[str, Any]:
        return {
            "id": user.device_id,
            "deviceState": "Active",
            "userState": {"id": _READY_STATE_ID, "displayName": "Ready", "state": "Ready"},
            "phoneNumber": user.phone_number,
            "e164Number": f"+1555000{user.phone_number}",
            "telephonyNetwork": "Private",
            "doNotDisturb": "Off",
            "voiceEnvironmentUri": f"{self.base_url}/api/v2/voice-environments/{_ENVIRONMENT_ID}",
            "uri": f"{self.base_url}/api/v2/devices/{user.device_id}",
            "path": f"/devices/{user.device_id}",
        }

    async def _post_me(self, request: web.Request) -> web.StreamResponse:
        auth = self._authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth
        data = _info(request).body
        if not data.is_json or not isinstance(data.value, dict):
            reply = ErrorReply(10, "Invalid request body: expected a JSON object")
            return self._answer(auth, reply.body())
        operation = data.value.get("operationName")
        if operation is None:
            return self._answer(
                auth, ErrorReply(1, "Missing required parameter: operationName").body()
            )
        if operation == "StartContactCenterSession":
            return self._answer(auth, {"statusCode": 0})
        if operation == "EndContactCenterSession":
            if auth.session is not None:
                self._sessions.expire(auth.session.session_id)
            return _json({"statusCode": 0})
        return self._answer(
            auth, ErrorReply(3, f"Operation {operation} is not supported by this simulator").body()
        )

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        read = request.method in ("GET", "HEAD", "OPTIONS")
        auth = self._authenticate(request) if read else self._authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth
        body = {"statusCode": 6, "statusMessage": f"Resource not found: {request.path}"}
        return self._answer(auth, body, 404, read=read)

    async def _outbound_records(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "records", None)

    async def _outbound_record(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "record", request.match_info["handle"])

    async def _outbound_campaign(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "campaign", request.match_info["name"])

    async def _outbound(
        self, request: web.Request, resource: Resource, path_value: str | None
    ) -> web.StreamResponse:
        operation = operation_of(_info(request).body)
        plan = self._faults._take_request_plan(operation)
        if plan.reset:
            return self._reset(request)
        if plan.expire_session:
            self._sessions.expire(request.cookies.get(SESSION_COOKIE))
        if plan.refusal is not None:
            response = self._refusal(plan.refusal)
        else:
            response = self._outbound_answer(request, resource, path_value)
        if plan.slow_seconds > 0:
            await asyncio.sleep(plan.slow_seconds)
        return response

    def _refusal(self, refusal: Refusal) -> web.Response:
        """The answer of a request-stage refusal fault (the request is not processed)."""
        if isinstance(refusal, Unauthorized):
            return self._unauthorized()
        if isinstance(refusal, CSRFReject):
            return _csrf_refused()
        status = refusal.status
        if refusal.gws_body:
            if status == 503:
                body: dict[str, Any] = dict(SERVICE_UNAVAILABLE_BODY)
            elif status == 500:
                body = {"statusCode": _INTERNAL_ERROR, "statusMessage": "Simulated internal error"}
            else:
                body = {"statusCode": _INTERNAL_ERROR, "statusMessage": _STATUS_MESSAGES[4]}
            return _json(body, status=status)
        return web.Response(
            status=status,
            text=f"Simulated HTTP {status} error",
            content_type="text/plain",
        )

    def _campaign_exists(self, name: str, application_id: int) -> bool | str:
        if self._ocs.campaign(name, application_id) is not None:
            return True
        return "applicationId" if name in self._ocs.campaign_names() else "campaignName"

    def _outbound_answer(
        self, request: web.Request, resource: Resource, path_value: str | None
    ) -> web.Response:
        auth = self._authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth
        info = _info(request)
        result = validate(
            resource,
            path_value,
            info.body,
            frozenset({self._users[auth.user].device_id}),
            self._campaign_exists,
        )
        if isinstance(result, ErrorReply):
            return self._answer(auth, result.body())
        injected = self._faults._take_status_code(result.operation)
        if injected is not None:
            message = injected.message or _STATUS_MESSAGES.get(injected.code, "Simulated error")
            return self._answer(auth, {"statusCode": injected.code, "statusMessage": message})
        self._accept(result, auth.user, info.started_ns)
        return self._answer(auth, {"statusCode": 0})

    def _accept(self, command: Command, username: str, started_ns: int) -> None:
        plan = self._faults._take_outcome_plan(command.operation)
        messages: list[Message]
        if plan.cometd_error is not None:
            fault = plan.cometd_error
            messages = Engine.cometd_error(command, fault.code, fault.message, fault.channel)
        elif plan.ocs_error is not None:
            fault_ocs = plan.ocs_error
            messages = self._engine.refuse(command, fault_ocs.number, fault_ocs.message, started_ns)
        else:
            messages = self._engine.perform(command, username, started_ns)
        if plan.drop == "both":
            messages = []
        elif plan.drop == "outbound":
            messages = [item for item in messages if item[0] != OUTBOUND_CHANNEL]
        elif plan.drop == "user_event":
            messages = [item for item in messages if item[0] != USER_EVENT_CHANNEL]
        if plan.reverse:
            messages.reverse()
        messages = messages * plan.times
        if messages:
            self._schedule(username, messages, plan.delay)
        if self._wakeup is not None:
            # A reschedule may have set an earlier due time; a callback already due is
            # delivered after the acknowledgement scheduled just above.
            self._wakeup.set()

    def _schedule(self, username: str, messages: list[Message], delay: float) -> None:
        loop = self._loop
        if loop is None:
            return

        def deliver() -> None:
            if not self.running:
                return
            scheduled: list[asyncio.Handle] = []

            def publish() -> None:
                self._pending.difference_update(scheduled)
                self._publish(username, messages)

            handle = loop.call_later(delay, publish) if delay > 0 else loop.call_soon(publish)
            scheduled.append(handle)
            self._pending.add(handle)

        if not self._faults._park(deliver):
            deliver()

    def _publish(self, username: str, messages: list[Message]) -> None:
        for channel, data in messages:
            recipients = self._bayeux.publish(username, channel, data)
            self._published.append(
                PublishedMessage(
                    channel=channel,
                    data=copy.deepcopy(data),
                    username=username,
                    recipients=recipients,
                    time=time.monotonic(),
                )
            )
        total = len(self._published)
        for wanted, waiter in self._published_waiters:
            if total >= wanted and not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------- Bayeux
    async def _notifications(self, request: web.Request) -> web.StreamResponse:
        info = _info(request)
        decoded = info.body.value if info.body.is_json else None
        if isinstance(decoded, dict):
            messages: list[Any] = [decoded]
        elif isinstance(decoded, list) and decoded:
            messages = decoded
        else:
            return _json([{"successful": False, "error": "400::Malformed Bayeux message"}], 400)
        auth: _Auth | None = None
        if "/meta/handshake" in info.bayeux_channels:
            checked = self._authenticate(request)
            if isinstance(checked, web.Response):
                return checked
            auth = checked
        else:
            _sent, basic = self._basic_user(request)
            session = self._sessions.peek(request.cookies.get(SESSION_COOKIE))
            info.username = basic or (session.username if session else None)
        try:
            result = await self._bayeux.handle(messages, auth.user if auth else None)
        except ServerStopping:
            return self._reset(request)
        info.username = info.username or result.username
        response = _json(result.replies)
        if auth is not None:
            self._decorate(response, auth, read=False)
        if result.handshake_succeeded and BAYEUX_COOKIE not in request.cookies:
            response.set_cookie(BAYEUX_COOKIE, secrets.token_hex(12), path="/", httponly=True)
        return response

    # -------------------------------------------------------------------- admin
    def _admin_refused(self, request: web.Request) -> web.Response | None:
        remote = request.remote or ""
        try:
            loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return _json({"error": "the admin endpoint only answers loopback clients"}, 403)
        return None

    async def _admin_faults(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        body = decode_body(await request.read())
        data = body.value if body.is_json else None
        if not isinstance(data, dict) or not isinstance(data.get("fault"), str):
            return _json({"error": 'expected a JSON object like {"fault": "<name>", ...}'}, 400)
        arguments = dict(data)
        name = arguments.pop("fault")
        if name not in _FAULT_NAMES:
            return _json({"error": f"unknown fault {name!r}", "faults": sorted(_FAULT_NAMES)}, 400)
        method = getattr(self._faults, name)
        try:
            inspect.signature(method).bind(**arguments)
        except TypeError as exc:
            return _json({"error": f"{name}: {exc}"}, 400)
        try:
            method(**arguments)
        except ValueError as exc:
            return _json({"error": f"{name}: {exc}"}, 400)
        return _json({"ok": True, "active": list(self._faults.active)})

    async def _admin_forget_clients(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        return _json({"ok": True, "forgotten": self.forget_cometd_clients()})

    async def _admin_expire_sessions(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        return _json({"ok": True, "expired": self.expire_sessions()})

    async def _admin_rotate_csrf(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        return _json({"ok": True, "rotated": self.rotate_csrf_tokens()})

    async def _admin_users(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        body = decode_body(await request.read())
        data = body.value if body.is_json else None
        # Never echo the body: it holds a password.
        if (
            not isinstance(data, dict)
            or set(data) != {"user", "password"}
            or not isinstance(data["user"], str)
            or not isinstance(data["password"], str)
        ):
            return _json(
                {"error": 'expected a JSON object {"user": "<name>", "password": "<password>"}'},
                400,
            )
        username: str = data["user"]
        if username not in self._users:
            return _json({"error": f"unknown simulator user {username!r}"}, 404)
        self.set_password(username, data["password"])
        return _json({"ok": True, "user": username})

    async def _admin_stats(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        return _json(self.stats())

    async def _admin_json(self, request: web.Request) -> dict[str, Any] | None:
        body = decode_body(await request.read())
        data = body.value if body.is_json else None
        return data if isinstance(data, dict) else None

    async def _admin_events(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        data = await self._admin_json(request)
        usage = (
            'expected {"event": "RecordCancel", "recordHandle": N}, '
            '{"event": "PreviewRecord", "campaignName": NAME, "user": USER} or '
            '{"event": "Campaign...", "campaignName": NAME, "mode": MODE, "user": USER}'
        )
        if data is None or not isinstance(data.get("event"), str):
            return _json({"error": usage}, 400)
        event = data.pop("event")
        if event == "RecordCancel":
            keys = {"recordHandle"}
        elif event == "PreviewRecord":
            keys = {"campaignName", "user", "applicationId"}
        else:
            keys = {"campaignName", "mode", "user", "applicationId"}
        if set(data) - keys:
            return _json({"error": f"{event}: unexpected key(s) {sorted(set(data) - keys)}"}, 400)
        try:
            if event == "RecordCancel":
                handle = data.get("recordHandle")
                if isinstance(handle, bool) or not isinstance(handle, int):
                    return _json({"error": "RecordCancel: recordHandle must be an integer"}, 400)
                self.send_record_cancel(handle)
                return _json({"ok": True, "event": event, "recordHandle": handle})
            name = data.get("campaignName")
            if not isinstance(name, str):
                return _json({"error": f"{event}: campaignName must be a string"}, 400)
            if event == "PreviewRecord":
                handle = self.send_preview_record(
                    name, data.get("user"), application_id=data.get("applicationId")
                )
                return _json({"ok": True, "event": event, "recordHandle": handle})
            if event not in CAMPAIGN_EVENTS:
                return _json({"error": f"unknown event {event!r}; {usage}"}, 400)
            self.send_campaign_status(
                name,
                event,
                application_id=data.get("applicationId"),
                mode=data.get("mode"),
                user=data.get("user"),
            )
            return _json({"ok": True, "event": event, "campaignName": name})
        except KeyError as exc:
            return _json({"error": f"{event}: {exc.args[0]}"}, 404)
        except LookupError as exc:
            return _json({"error": f"{event}: {exc}"}, 409)
        except ValueError as exc:
            return _json({"error": f"{event}: {exc}"}, 409 if event == "RecordCancel" else 400)

    async def _admin_clock(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        if request.method == "POST":
            data = await self._admin_json(request)
            if data is None or len(data) != 1 or not set(data) <= {"advance", "set"}:
                return _json(
                    {"error": 'expected {"advance": SECONDS} or {"set": ISO-8601 or EPOCH}'}, 400
                )
            try:
                if "advance" in data:
                    self._clock.advance(data["advance"])
                else:
                    when = data["set"]
                    self._clock.set(datetime.fromisoformat(when) if isinstance(when, str) else when)
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
        return _json(
            {
                "ok": True,
                "now": self._clock.now(),
                "iso": self._clock.datetime().isoformat(),
                "frozen": self._clock.frozen,
            }
        )

    async def _admin_forbidden_channels(self, request: web.Request) -> web.StreamResponse:
        refused = self._admin_refused(request)
        if refused is not None:
            return refused
        data = await self._admin_json(request)
        channels = None if data is None or set(data) != {"channels"} else data["channels"]
        if not isinstance(channels, list):
            return _json({"error": 'expected {"channels": ["/me/internal", ...]}'}, 400)
        try:
            self.set_forbidden_channels(channels)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"ok": True, "forbidden_channels": sorted(self._forbidden)})


def _channel_set(channels: Iterable[str]) -> frozenset[str]:
    if isinstance(channels, str):
        raise ValueError("forbidden channels must be a list of channel names, not one string")
    result = frozenset(channels)
    for channel in result:
        if not _valid_subscription(channel) or "*" in channel:
            raise ValueError(f"not a channel name: {channel!r}")
    return result


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _channels(body: DecodedBody) -> tuple[str, ...]:
    """The channels named by the Bayeux messages of a request body."""
    value = body.value if body.is_json else None
    messages = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    return tuple(
        message["channel"]
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("channel"), str)
    )
