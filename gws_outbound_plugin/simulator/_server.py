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

:class:`GWSSimulator` is the facade; each job lives in its own module:

* ``_state``: what the parts share (users, OCS model, clock, faults, sessions, Bayeux);
* ``_app``: the aiohttp app, its routes, the recording middleware, the listening server;
  ``_http``: the paths served and the request notes the handlers share;
* ``_auth``: users, HTTP Basic auth, the session cookie and CSRF;
* ``_rest``: the GWS REST handlers (user, devices, session, outbound operations, JSON 404);
* ``_bayeux_http``: the Bayeux HTTP endpoint over ``_bayeux``'s server;
* ``_delivery``: outcomes shaped by the faults and published (now, later or parked),
  the callback scheduler and the unsolicited events;
* ``_ocs_actions``: a command applied to the records (``_records``) and its outcome's
  messages, built by ``_ocs_messages``;
* ``_admin``: the ``/_simulator/`` endpoints, each calling a public control of the facade.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from ._admin import AdminAPI
from ._app import HTTPServer, RequestRecorder, build_app
from ._auth import Authenticator, make_users
from ._bayeux import DEFAULT_MAX_QUEUE, BayeuxServer
from ._bayeux_http import BayeuxEndpoint
from ._clock import SimulatorClock
from ._delivery import Delivery
from ._faults import Faults
from ._http import CAMPAIGNS_PREFIX, NOTIFICATIONS_PATH, OUTBOUND_PREFIX
from ._ocs_actions import OCSActions
from ._recording import HandledOperation, PublishedMessage, RecordedRequest
from ._records import (
    DEFAULT_RECORDS,
    CampaignState,
    OCSModel,
    RecordState,
    RecordStatus,
    SeedRecord,
)
from ._rest import RestAPI
from ._sessions import SessionStore
from ._state import SimulatorState, channel_set

__all__ = ["DEFAULT_USERS", "GWSSimulator"]

DEFAULT_USERS: Final[Mapping[str, str]] = {"agent1": "secret"}
#: Defaults of the keywords of the same names, shared with the command line's options.
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_SESSION_IDLE_TIMEOUT: Final = 1800.0
DEFAULT_CONNECT_TIMEOUT: Final = 30.0
DEFAULT_COMETD_SESSION_TIMEOUT: Final = 60.0


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
        host: str = DEFAULT_HOST,
        port: int = 0,
        records: Iterable[SeedRecord] | None = None,
        session_idle_timeout: float = DEFAULT_SESSION_IDLE_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        cometd_session_timeout: float = DEFAULT_COMETD_SESSION_TIMEOUT,
        max_queue: int = DEFAULT_MAX_QUEUE,
        request_log: Callable[[RecordedRequest], None] | None = None,
        clock: SimulatorClock | None = None,
        forbidden_channels: Iterable[str] = (),
    ) -> None:
        user_table = make_users(dict(DEFAULT_USERS if users is None else users))
        _check_settings(
            session_idle_timeout, connect_timeout, cometd_session_timeout, port, max_queue, clock
        )
        self._host = host
        forbidden = channel_set(forbidden_channels)
        ocs = OCSModel(DEFAULT_RECORDS if records is None else records)
        the_clock = SimulatorClock() if clock is None else clock
        self._state = SimulatorState(
            users=user_table,
            csrf=bool(csrf),
            ocs=ocs,
            clock=the_clock,
            actions=OCSActions(ocs, the_clock.now),
            faults=Faults(),
            forbidden=forbidden,
            session_idle_timeout=float(session_idle_timeout),
            connect_timeout=float(connect_timeout),
            cometd_session_timeout=float(cometd_session_timeout),
            max_queue=max_queue,
        )
        self._server = HTTPServer(self._state, "127.0.0.1" if host == "localhost" else host, port)
        self._auth = Authenticator(self._state)
        self._recorder = RequestRecorder(self._state, request_log)
        self._delivery = Delivery(self._state)
        self._rest = RestAPI(self._state, self._auth, self._delivery, lambda: self.base_url)
        self._bayeux_endpoint = BayeuxEndpoint(self._state, self._auth)
        self._admin = AdminAPI(self)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return (
            f"GWSSimulator({where}, users={sorted(self._state.users)!r}, csrf={self._state.csrf})"
        )

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
        return self._server.running

    async def start(self) -> None:
        """Start listening (on the same port as before after a :meth:`stop`)."""
        if self.running:
            raise RuntimeError("the simulator is already running")
        self._recorder.stopping = False
        self._state.renew()
        await self._server.start(self._build_app())
        self._delivery.start()

    async def stop(self) -> None:
        """Stop listening. Sessions, CometD clients and unpublished outcomes are lost.

        Held ``/meta/connect`` requests end with the connection closed, like a server
        going away. Recorded requests, published messages, records (and their schedules:
        callbacks due while stopped come when it starts again), preview sessions, passwords,
        forbidden channels and armed faults stay; armed faults include
        ``hold_notifications`` (still holding after a restart) but not the outcomes it had
        parked. Calling it when stopped does nothing.
        """
        await self._server.stop(self._shut_down)

    async def _shut_down(self) -> None:
        self._recorder.stopping = True
        scheduler = self._delivery.stop()
        if scheduler is not None:
            await asyncio.wait([scheduler])  # never raises, so our own cancellation still can
        self._delivery.forget_pending()
        self._state.faults._discard_held()
        self._state.bayeux.forget_all(stopping=True)
        self._state.sessions.expire_all()

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
        if self._server.port == 0:
            raise RuntimeError("the simulator has not been started yet")
        return self._server.port

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
        return tuple(self._state.users)

    def device_id(self, username: str) -> str:
        """The bare uuid of the user's device (uuid5 of the user name)."""
        return self._state.user(username).device_id

    def device_path(self, username: str) -> str:
        """The user's ``devicePath``: ``/devices/<uuid>``."""
        return f"/devices/{self.device_id(username)}"

    def phone_number(self, username: str) -> str:
        """The user's device DN (``5001`` for the first user, ``5002`` for the next...)."""
        return self._state.user(username).phone_number

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received (REST and Bayeux, not admin), in arrival order."""
        return list(self._recorder.requests)

    @property
    def cancels(self) -> list[RecordedRequest]:
        """The recorded ``POST /api/v2/me/outbound-records...`` requests (any operation)."""
        return self._recorder.posts(OUTBOUND_PREFIX)

    @property
    def operations(self) -> list[RecordedRequest]:
        """The recorded POSTs to every outbound resource (records and campaigns)."""
        return self._recorder.posts(OUTBOUND_PREFIX, CAMPAIGNS_PREFIX)

    @property
    def journal(self) -> list[HandledOperation]:
        """Every outbound operation POST received, in arrival order, with what GWS answered and
        what OCS did with it (acted, refused with an error number, or nothing): the server's
        truth to judge a client's outcomes against."""
        return list(self._rest.journal)

    @property
    def records(self) -> Mapping[int, RecordState]:
        """Live read-only view of the OCS records: handle -> :class:`RecordState`."""
        return self._state.ocs.view

    @property
    def campaigns(self) -> Mapping[tuple[str, int], CampaignState]:
        """Live read-only view of the campaigns: (name, applicationId) -> :class:`CampaignState`.

        Built from the records' campaigns; treat the states as read-only (change them with
        :meth:`send_campaign_status`).
        """
        return self._state.ocs.campaign_view

    @property
    def do_not_call_numbers(self) -> frozenset[str]:
        """Phone numbers on OCS's do-not-call list (GetPreviewRecord skips them)."""
        return frozenset(self._state.ocs.do_not_call_numbers)

    def preview_session_active(self, username: str, campaign_name: str) -> bool:
        """Whether ``username`` has a preview session on that campaign (any application)."""
        return any(
            self._state.ocs.has_session(username, campaign)
            for (name, _), campaign in self._state.ocs.campaign_view.items()
            if name == campaign_name
        )

    @property
    def clock(self) -> SimulatorClock:
        """The simulated OCS's clock (``advance`` / ``set`` it to bring callbacks due)."""
        return self._state.clock

    @property
    def forbidden_channels(self) -> frozenset[str]:
        """Channels whose subscription is refused (see :meth:`set_forbidden_channels`)."""
        return frozenset(self._state.forbidden)

    def set_forbidden_channels(self, channels: Iterable[str]) -> None:
        """Refuse subscriptions to these channels from now on (replacing the previous set).

        A ``/meta/subscribe`` naming one (alone or in a list) is answered
        ``{"successful": false, "error": "403::Forbidden channel"}``; messages published on a
        forbidden channel reach nobody, even clients that subscribed before or through a
        wildcard. An empty set allows every channel again.

        :raises ValueError: for a channel that is not a valid non-meta channel name.
        """
        self._state.forbidden = channel_set(channels)

    @property
    def faults(self) -> Faults:
        """The fault controls."""
        return self._state.faults

    @property
    def published(self) -> list[PublishedMessage]:
        """Every CometD message published so far (including to no subscriber), in order."""
        return list(self._delivery.published)

    @property
    def cometd_client_count(self) -> int:
        """How many CometD clients the server currently knows."""
        return self._state.bayeux.client_count

    @property
    def session_count(self) -> int:
        """How many GWS HTTP sessions are alive."""
        self._state.sessions.sweep()
        return len(self._state.sessions)

    def clear_recorded(self) -> None:
        """Forget the recorded requests, the journal and the published messages (e.g. between
        phases)."""
        self._recorder.clear()
        self._rest.journal.clear()
        self._delivery.published.clear()

    def expire_sessions(self) -> int:
        """Expire every GWS HTTP session now; return how many there were."""
        return self._state.sessions.expire_all()

    def rotate_csrf_tokens(self) -> int:
        """Give every live GWS session a new CSRF token; return how many sessions there are.

        The sessions stay alive: the next write with an old token is answered 403
        ``Missing or invalid Csrf token``, and the next authenticated GET carries the new one.
        """
        return self._state.sessions.rotate_csrf_tokens()

    def set_password(self, username: str, password: str) -> None:
        """From now on, Basic auth accepts only ``password`` for ``username``.

        Existing sessions stay valid until they expire, as in GWS: requests sending only the
        session cookie go on working, while any request sending Basic credentials with the
        old password (and every new login with it) is answered 401. The password is kept
        across :meth:`restart`, and is never logged, recorded or shown in a repr.

        :raises KeyError: for an unknown user (users cannot be added).
        :raises ValueError: when ``password`` is not a string.
        """
        user = self._state.user(username)
        if not isinstance(password, str):
            raise ValueError(f"the password of user {username!r} must be a string")
        self._state.users[username] = dataclasses.replace(user, password=password)

    def forget_cometd_clients(self) -> int:
        """Drop every CometD client (their next message gets ``402::Unknown client``).

        A ``/meta/connect`` being held is answered with that 402 at once.
        """
        return self._state.bayeux.forget_all()

    async def wait_for_published(self, n: int, timeout: float = 5.0) -> list[PublishedMessage]:
        """Wait until at least ``n`` messages were published in total; return them all.

        :raises TimeoutError: when fewer were published within ``timeout`` seconds.
        """
        return await self._delivery.wait_for_published(n, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters, as served by ``GET /_simulator/stats``."""
        ocs = self._state.ocs
        by_status = {status.value: 0 for status in RecordStatus}
        for state in ocs.view.values():
            by_status[state.status.value] += 1
        return {
            "running": self.running,
            "requests": len(self._recorder.requests),
            "cancels": len(self.cancels),
            "operations": len(self.operations),
            "published": len(self._delivery.published),
            "cometd_clients": self.cometd_client_count,
            "sessions": self.session_count,
            "records": len(ocs.view),
            "records_cancelled": by_status[RecordStatus.CANCELLED.value],
            "records_by_status": by_status,
            "preview_sessions": ocs.session_count,
            "do_not_call_numbers": sorted(ocs.do_not_call_numbers),
            "clock": self._state.clock.datetime().isoformat(),
            "forbidden_channels": sorted(self._state.forbidden),
            "held_notifications": self._state.faults.held_count,
            "faults": list(self._state.faults.active),
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
        self._delivery.record_cancel(record_handle)

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
        self._delivery.campaign_status(campaign_name, event, application_id, mode, user)

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
        return self._delivery.preview_record(campaign_name, user, application_id)

    # -------------------------------------------------------------------- plumbing
    @property
    def _sessions(self) -> SessionStore:
        return self._state.sessions

    @property
    def _bayeux(self) -> BayeuxServer:
        return self._state.bayeux

    def _build_app(self) -> web.Application:
        routes = [*self._admin.routes(), *self._bayeux_endpoint.routes(), *self._rest.routes()]
        return build_app(self._recorder.middleware, routes, not_found=self._rest.not_found)


def _check_settings(
    session_idle_timeout: float,
    connect_timeout: float,
    cometd_session_timeout: float,
    port: int,
    max_queue: int,
    clock: SimulatorClock | None,
) -> None:
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
