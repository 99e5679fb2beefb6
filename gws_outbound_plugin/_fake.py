"""``FakeGWS``: GWS and OCS in memory, an :class:`~gws_outbound_plugin.OutboundTransport`
without sockets.

It is the simulator's OCS without the simulator's HTTP and Bayeux servers: a POST is checked
by the simulator's validation (``simulator._outbound.validate``: GWS's ``statusCode``
refusals), applied to the simulator's record model (``OCSModel`` through ``OCSActions``) and
answered ``{"statusCode": 0}``; the CometD messages OCS publishes for it (built by
``simulator._ocs_messages``, shaped by the simulator's outcome-stage ``Faults``) are then
handed to the plugin as its CometD listener would. So the messages are the simulator's, and
what the simulator knows about GWS is written once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn
from urllib.parse import unquote

import anyio

from ._cometd import CometDState
from ._exceptions import GWSStatusError, GWSTransportError
from ._retry import RetryPolicy
from ._seam import Deliver, SessionEvents
from ._session import GWSNoAnswerError, _is_operation_path
from .simulator._auth import make_users
from .simulator._clock import SimulatorClock
from .simulator._delivery import planned_outcome
from .simulator._faults import Faults
from .simulator._ocs_actions import OCSActions
from .simulator._ocs_messages import Message
from .simulator._outbound import (
    OUTBOUND_CHANNEL,
    USER_EVENT_CHANNEL,
    ErrorReply,
    Resource,
    operation_of,
    validate,
)
from .simulator._recording import DecodedBody
from .simulator._records import (
    DEFAULT_RECORDS,
    CampaignState,
    OCSModel,
    RecordState,
    SeedRecord,
)
from .simulator._rest import STATUS_MESSAGES, device_json, user_json

__all__ = ["FakeFaults", "FakeGWS"]

#: Where the fake's ``uri`` fields point (nothing listens there).
FAKE_BASE_URL: Final = "http://fake-gws.invalid"
_CHANNELS: Final = (OUTBOUND_CHANNEL, USER_EVENT_CHANNEL)


class FakeFaults(Faults):
    """The simulator's fault controls (``docs/simulator.md``) that mean something without
    HTTP: ``status_code``, ``reset_connection`` (no answer: the POST fails ``may have been
    processed`` though OCS never saw it), ``slow_answer`` (on the loop's clock) and every
    outcome-stage control (``ocs_error``, ``cometd_error``, ``delay_notifications``,
    ``drop_notifications``, ``duplicate_notifications``, ``reverse_notifications``,
    ``hold_notifications`` / ``release_notifications``). The HTTP ones raise ``TypeError``:
    test those with ``GWSSimulator``."""

    def _about_http(self, control: str) -> NoReturn:
        raise TypeError(
            f"FakeGWS does not play {control}(): it is about HTTP (sessions, CSRF, status "
            "lines, CometD connects), which FakeGWS has none of; use GWSSimulator"
        )

    def http_error(self, *args: Any, **kwargs: Any) -> None:
        self._about_http("http_error")

    def unauthorized(self, *args: Any, **kwargs: Any) -> None:
        self._about_http("unauthorized")

    def csrf_reject(self, *args: Any, **kwargs: Any) -> None:
        self._about_http("csrf_reject")

    def expire_session(self, *args: Any, **kwargs: Any) -> None:
        self._about_http("expire_session")

    def hold_connects(self, *args: Any, **kwargs: Any) -> None:
        self._about_http("hold_connects")


def _resource(path: str) -> tuple[Resource, str | None]:
    """The outbound resource of an operation path and its last segment, percent-decoded."""
    parts = path.split("/")  # "", "me", "outbound-records" | "outbound-campaigns", [value]
    value = unquote(parts[3]) if len(parts) > 3 else None
    if parts[2] == "outbound-campaigns":
        return "campaign", value
    return ("records", None) if value is None else ("record", value)


class FakeGWS:
    """GWS and OCS for one agent, in memory: pass it as ``OutboundPlugin(pm, config,
    transport=FakeGWS())``; ``config``'s URLs and credentials are then not used.

    Every POST is answered as GWS answers it (``statusCode`` 0, or GWS's refusal codes) and
    every accepted operation is applied to the simulator's OCS record model, whose CometD
    messages (the ``Outbound...Message`` echoing the ``referenceId`` and the
    ``DeviceUserEventMessage`` with the ``GSW_*`` user data) reach the plugin a moment later.
    :attr:`faults` shapes them (refusals, duplicates, losses, delays; see
    :class:`FakeFaults`); :meth:`lose_session` / :meth:`restore_session` play a lost CometD
    session. Delays run on the event loop's clock: on ``testing.virtual_clock_loop`` they
    cost no wall time.

    :param username: the agent (its device is ``/devices/<device_id>``).
    :param records: OCS's records (default: the simulator's ``DEFAULT_RECORDS``).
    :param clock: OCS's clock for scheduled callbacks and change times.
    :param refused_channels: channels the server refuses to subscribe (``/me/internal``:
        acknowledgements then carry no user data).
    """

    def __init__(
        self,
        *,
        username: str = "agent1",
        records: Iterable[SeedRecord] | None = None,
        clock: SimulatorClock | None = None,
        refused_channels: Iterable[str] = (),
    ) -> None:
        self._user = make_users({username: ""})[username]
        self.clock = SimulatorClock() if clock is None else clock
        self.ocs = OCSModel(DEFAULT_RECORDS if records is None else records)
        self._actions = OCSActions(self.ocs, self.clock.now)
        self.faults = FakeFaults()
        refused = tuple(refused_channels)
        if OUTBOUND_CHANNEL in refused:
            raise ValueError(
                f"{OUTBOUND_CHANNEL} carries every acknowledgement: it cannot be refused"
            )
        self._refused = tuple(channel for channel in _CHANNELS if channel in refused)
        self.posts: list[tuple[str, dict[str, Any]]] = []
        """Every POST received: ``(path, body)``, in order."""
        self.published: list[Message] = []
        """Every ``(channel, data)`` OCS published, in order (delivered or not)."""
        self.missed = 0
        """Messages published while the session was lost (never delivered)."""
        self._state = CometDState.CLOSED
        self._events: SessionEvents | None = None
        self._inbox: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()
        self._connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Handle] = set()

    def __repr__(self) -> str:
        return f"<FakeGWS {self._user.name} {self._state.value}>"

    # -- the agent ---------------------------------------------------------------------------

    @property
    def username(self) -> str:
        return self._user.name

    def device_id(self, username: str | None = None) -> str:
        """The id of the agent's device (``username``, if given, must be the agent's: the
        same call as ``GWSSimulator.device_id``)."""
        if username is not None and username != self._user.name:
            raise KeyError(f"FakeGWS plays one agent, {self._user.name!r}, not {username!r}")
        return self._user.device_id

    def device_path(self, username: str | None = None) -> str:
        """``/devices/<id>`` of the agent's device, for the requests' ``device_path``."""
        return f"/devices/{self.device_id(username)}"

    @property
    def records(self) -> Mapping[int, RecordState]:
        """OCS's records by handle, as they are now."""
        return self.ocs.view

    @property
    def campaigns(self) -> Mapping[tuple[str, int], CampaignState]:
        """OCS's campaigns by (name, application id)."""
        return self.ocs.campaign_view

    @property
    def user(self) -> Mapping[str, Any]:
        return user_json(self._user, FAKE_BASE_URL) if self._state is not CometDState.CLOSED else {}

    @property
    def retry_policy(self) -> RetryPolicy:
        """No retries: a POST reaches the fake or it does not."""
        return RetryPolicy(retries=0)

    async def devices(self) -> list[Mapping[str, Any]]:
        await anyio.lowlevel.checkpoint()
        return [device_json(self._user, FAKE_BASE_URL)]

    async def end_contact_center_session(self) -> Mapping[str, Any]:
        await anyio.lowlevel.checkpoint()
        self.posts.append(("/me", {"operationName": "EndContactCenterSession"}))
        return {"statusCode": 0}

    # -- the notification session ------------------------------------------------------------

    @property
    def state(self) -> CometDState:
        return self._state

    @property
    def refused_channels(self) -> tuple[str, ...]:
        return self._refused

    async def open(self, events: SessionEvents) -> None:
        await anyio.lowlevel.checkpoint()
        self._loop = asyncio.get_running_loop()
        self._events = events
        self._set_state(CometDState.CONNECTING)
        self._set_state(CometDState.CONNECTED)

    async def run(self, deliver: Deliver) -> None:
        while True:
            while not self._inbox:
                self._arrived.clear()
                await self._arrived.wait()
            channel, data = self._inbox.popleft()
            await deliver({"channel": channel, "data": data})

    async def wait_connected(self) -> None:
        while self._state is not CometDState.CONNECTED:
            await self._connected.wait()

    async def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self._inbox.clear()
        self._set_state(CometDState.CLOSED)
        await anyio.lowlevel.checkpoint()

    def lose_session(self, why: str = "closed by the server") -> None:
        """Lose the CometD session (as a ``402::Unknown client`` would): what OCS publishes
        until :meth:`restore_session` is missed."""
        if self._state is CometDState.CONNECTED:
            self._set_state(CometDState.RECONNECTING)
            if self._events is not None:
                self._events.session_lost(why)

    def restore_session(self) -> None:
        """The session is back and subscribed again."""
        if self._state is CometDState.RECONNECTING:
            self._set_state(CometDState.CONNECTED)
            if self._events is not None:
                self._events.session_restored()

    def publish(self, channel: str, data: Mapping[str, Any]) -> None:
        """Publish one CometD message now (an unsolicited OCS event, another client's
        acknowledgement, a malformed message...)."""
        self._publish([(channel, json.loads(json.dumps(data)))])

    def _set_state(self, state: CometDState) -> None:
        previous, self._state = self._state, state
        if state is CometDState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        if self._events is not None and state is not previous:
            self._events.state_changed(state, previous)

    def _publish(self, messages: list[Message]) -> None:
        for channel, data in messages:
            self.published.append((channel, data))
            if self._state is not CometDState.CONNECTED:
                self.missed += 1
            elif channel not in self._refused:
                self._inbox.append((channel, data))
        self._arrived.set()

    # -- GWS: operations ---------------------------------------------------------------------

    async def post_operation(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Answer as GWS would: ``{"statusCode": 0}`` and OCS's messages a moment later, or
        GWS's refusal (``GWSStatusError``), or no answer (``reset_connection``)."""
        if not _is_operation_path(path):
            raise GWSTransportError(f"refused to send an operation to {path!r}; nothing was sent")
        text = json.dumps(body)  # what would be on the wire
        data = json.loads(text)
        self.posts.append((path, data))
        await anyio.lowlevel.checkpoint()  # a POST is never answered synchronously
        decoded = DecodedBody(True, data, text)
        plan = self.faults._take_request_plan(operation_of(decoded))
        if plan.reset:
            raise GWSNoAnswerError(
                f"POST /api/v2{path} to FakeGWS failed: connection reset; GWS may have "
                "processed it, so it was not sent again"
            )
        answer = self._answer(path, decoded)
        if plan.slow_seconds > 0:
            await anyio.sleep(plan.slow_seconds)
        if isinstance(answer, ErrorReply):
            raise GWSStatusError(answer.status_code, answer.message)
        return {"statusCode": 0}

    def _answer(self, path: str, body: DecodedBody) -> ErrorReply | None:
        resource, value = _resource(path)
        command = validate(
            resource, value, body, frozenset({self._user.device_id}), self._campaign_exists
        )
        if isinstance(command, ErrorReply):
            return command
        injected = self.faults._take_status_code(command.operation)
        if injected is not None:
            message = injected.message or STATUS_MESSAGES.get(injected.code, "Simulated error")
            return ErrorReply(injected.code, message)
        plan = self.faults._take_outcome_plan(command.operation)
        messages = planned_outcome(
            self._actions, command, self._user.name, time.perf_counter_ns(), plan
        )
        if messages:
            self._schedule(messages, plan.delay)
        return None

    def _campaign_exists(self, name: str, application_id: int) -> bool | str:
        if self.ocs.campaign(name, application_id) is not None:
            return True
        return "applicationId" if name in self.ocs.campaign_names() else "campaignName"

    def _schedule(self, messages: list[Message], delay: float) -> None:
        loop = self._loop
        assert loop is not None, "FakeGWS was not opened"
        scheduled: list[asyncio.Handle] = []

        def publish() -> None:
            self._pending.difference_update(scheduled)
            self._publish(messages)

        def deliver() -> None:
            handle = loop.call_later(delay, publish) if delay > 0 else loop.call_soon(publish)
            scheduled.append(handle)
            self._pending.add(handle)

        if not self.faults._park(deliver):
            deliver()
