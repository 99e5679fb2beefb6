"""How outcomes reach CometD: an accepted operation's messages, shaped by the outcome-stage
faults and published after their delay; the callbacks the clock brings due (``ScheduledCall``);
the unsolicited OCS events; the log of what was published, and waiting on it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time

from . import _ocs_messages as ocs_messages
from ._faults import MislabelNotifications, OutcomePlan
from ._ocs_actions import OCSActions
from ._ocs_messages import Message
from ._outbound import OUTBOUND_CHANNEL, USER_EVENT_CHANNEL, Command
from ._recording import OCSVerdict, PublishedMessage
from ._records import CAMPAIGN_EVENTS, CampaignState, Change, OCSRefusal
from ._state import SimulatorState

__all__ = ["Delivery", "judged_outcome", "planned_outcome"]


class Delivery:
    """Publishes the simulated OCS's messages on the Bayeux server, now or later.

    Runs while the simulator does (:meth:`start` / :meth:`stop`): the callback scheduler
    follows the clock, and delayed outcomes wait on the loop.
    """

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self.published: list[PublishedMessage] = []
        self._published_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._pending: set[asyncio.Handle] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Start the callback scheduler (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule_forever())
        self._state.clock._subscribe(self._clock_changed)

    def stop(self) -> asyncio.Task[None] | None:
        """Stop the callback scheduler; return its task (cancelled) to wait for."""
        self._state.clock._unsubscribe(self._clock_changed)
        task, self._scheduler = self._scheduler, None
        if task is not None:
            task.cancel()
        return task

    def forget_pending(self) -> None:
        """Forget the outcomes waiting for their delay (the simulator stopped)."""
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()

    # ------------------------------------------------------------ accepted operations
    def accept(self, command: Command, username: str, started_ns: int) -> OCSVerdict:
        """Perform an accepted ``command`` and publish its outcome, as the faults shape it;
        return what OCS did with it."""
        plan = self._state.faults._take_outcome_plan(command.operation)
        messages, verdict = judged_outcome(self._state.actions, command, username, started_ns, plan)
        if messages:
            self._schedule(username, messages, plan.delay)
        if self._wakeup is not None:
            # A reschedule may have set an earlier due time; a callback already due is
            # delivered after the acknowledgement scheduled just above.
            self._wakeup.set()
        return verdict

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
                self.publish(username, messages)

            handle = loop.call_later(delay, publish) if delay > 0 else loop.call_soon(publish)
            scheduled.append(handle)
            self._pending.add(handle)

        if not self._state.faults._park(deliver):
            deliver()

    def publish(self, username: str, messages: list[Message]) -> None:
        """Publish ``messages`` for ``username`` now, log them and wake who waits on them."""
        for channel, data in messages:
            recipients = self._state.bayeux.publish(username, channel, data)
            self.published.append(
                PublishedMessage(
                    channel=channel,
                    data=copy.deepcopy(data),
                    username=username,
                    recipients=recipients,
                    time=time.monotonic(),
                )
            )
        total = len(self.published)
        for wanted, waiter in self._published_waiters:
            if total >= wanted and not waiter.done():
                waiter.set_result(None)

    async def wait_for_published(self, n: int, timeout: float) -> list[PublishedMessage]:
        """Wait until at least ``n`` messages were published in total; return them all."""
        if len(self.published) >= n:
            return list(self.published)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, waiter)
        self._published_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise TimeoutError(
                f"{len(self.published)} of {n} CometD messages published within {timeout} s"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._published_waiters.remove(entry)
        return list(self.published)

    # ------------------------------------------------------------------ callbacks
    def _clock_changed(self) -> None:
        self._deliver_due()
        if self._wakeup is not None:
            self._wakeup.set()

    def _deliver_due(self) -> None:
        """Deliver every callback the clock has reached, as ``ScheduledCall`` user events."""
        if not self.running:
            return
        ocs, now = self._state.ocs, self._state.clock.now()
        for state in ocs.due(now):
            delivered = ocs.deliver_scheduled(state, now)
            username = delivered.held_by
            assert username is not None
            device_id = self._state.users[username].device_id
            messages = ocs_messages.scheduled_call(
                ocs, delivered, device_id, time.perf_counter_ns()
            )
            self.publish(username, messages)

    async def _schedule_forever(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        clock = self._state.clock
        while True:
            wakeup.clear()
            self._deliver_due()
            due = self._state.ocs.next_due_time()
            timeout: float | None = None
            if due is not None and not clock.frozen:
                timeout = max(due - clock.now(), 0.0) + 0.001
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wakeup.wait()

    # ---------------------------------------------------------- unsolicited events
    def record_cancel(self, record_handle: int) -> None:
        """``RecordCancel`` to the agent holding the record (see the facade's method)."""
        state, holder = self._state.ocs.cancel_held(record_handle, self._state.clock.now())
        device_id = self._state.users[holder].device_id
        self.publish(holder, ocs_messages.record_cancel(state, device_id, time.perf_counter_ns()))

    def campaign_status(
        self,
        campaign_name: str,
        event: str,
        application_id: int | None,
        mode: str | None,
        user: str | None,
    ) -> None:
        """A campaign status change to ``user`` or everyone (see the facade's method)."""
        if event not in CAMPAIGN_EVENTS:
            raise ValueError(f"event must be one of {', '.join(CAMPAIGN_EVENTS)}, got {event!r}")
        if (event == "CampaignModeChanged") != (mode is not None):
            raise ValueError("mode is required by CampaignModeChanged and only by it")
        if mode is not None and (not isinstance(mode, str) or not mode.strip()):
            raise ValueError("mode must be a non-empty string")
        campaign = self._find_campaign(campaign_name, application_id)
        users = list(self._state.users) if user is None else [self._state.user(user).name]
        self._state.ocs.campaign_event(campaign, event, mode)
        for name in users:
            device_id = self._state.users[name].device_id
            messages = ocs_messages.campaign_status(
                campaign, event, device_id, time.perf_counter_ns()
            )
            self.publish(name, messages)

    def preview_record(
        self, campaign_name: str, user: str | None, application_id: int | None
    ) -> int:
        """Push the campaign's next ready record (see the facade's method)."""
        campaign = self._find_campaign(campaign_name, application_id)
        username = (
            self._state.user(user).name if user is not None else next(iter(self._state.users))
        )
        try:
            state = self._state.ocs.next_preview_record(
                username, campaign, Change(None, None, self._state.clock.now()), session=False
            )
        except OCSRefusal:
            raise LookupError(f"campaign {campaign_name!r} has no record available") from None
        device_id = self._state.users[username].device_id
        messages = ocs_messages.preview_messages(
            self._state.ocs, state, username, device_id, None, time.perf_counter_ns()
        )
        self.publish(username, messages)
        return state.record.record_handle

    def _find_campaign(self, name: str, application_id: int | None) -> CampaignState:
        found = [
            campaign
            for (campaign_name, app), campaign in self._state.ocs.campaign_view.items()
            if campaign_name == name and application_id in (None, app)
        ]
        if not found:
            raise KeyError(f"the simulator has no campaign {name!r}")
        if len(found) > 1:
            raise KeyError(f"campaign {name!r} exists in several applications: name one")
        return found[0]


def planned_outcome(
    actions: OCSActions, command: Command, username: str, started_ns: int, plan: OutcomePlan
) -> list[Message]:
    """What OCS publishes for an accepted ``command`` under the outcome-stage faults of
    ``plan`` (the command applied to the record model unless a fault refuses it), in the
    order of publication (``plan.delay`` and holding are the caller's)."""
    return judged_outcome(actions, command, username, started_ns, plan)[0]


def judged_outcome(
    actions: OCSActions, command: Command, username: str, started_ns: int, plan: OutcomePlan
) -> tuple[list[Message], OCSVerdict]:
    """As :func:`planned_outcome`, with what OCS did: acted, refused (its error number) or
    refused by the back end's ``ErrorMessage`` (its code)."""
    if plan.cometd_error is not None:
        fault = plan.cometd_error
        messages = OCSActions.cometd_error(command, fault.code, fault.message, fault.channel)
        verdict = OCSVerdict("error_message", fault.code)
    elif plan.ocs_error is not None:
        messages = actions.refuse(
            command, plan.ocs_error.number, plan.ocs_error.message, started_ns
        )
        verdict = OCSVerdict("refused", plan.ocs_error.number)
    else:
        messages, refused = actions.perform_judged(command, username, started_ns)
        verdict = OCSVerdict("acted") if refused is None else OCSVerdict("refused", refused)
    if plan.echo_reference and command.reference_id is not None:
        messages = [_with_reference(item, command.reference_id) for item in messages]
    if plan.mislabel is not None:
        messages = [_mislabelled(item, plan.mislabel) for item in messages]
    return _shaped(messages, plan), verdict


def _with_reference(message: Message, reference_id: str) -> Message:
    """A user event carrying ``GSW_REFERENCE_ID`` (``echo_reference_ids``)."""
    channel, data = message
    if data.get("messageType") != "DeviceUserEventMessage":
        return message
    fresh = copy.deepcopy(data)
    fresh.setdefault("userData", {})["GSW_REFERENCE_ID"] = reference_id
    return channel, fresh


def _mislabelled(message: Message, fault: MislabelNotifications) -> Message:
    """An acknowledgement naming another record or carrying another notificationType
    (``mislabel_notifications``); its referenceId is kept."""
    channel, data = message
    if channel != OUTBOUND_CHANNEL or "notificationType" not in data:
        return message
    fresh = copy.deepcopy(data)
    if fault.notification_type is not None:
        fresh["notificationType"] = fault.notification_type
    record = fresh.get("record")
    if fault.record_handle is not None and isinstance(record, dict):
        record["recordHandle"] = fault.record_handle
    return channel, fresh


def _shaped(messages: list[Message], plan: OutcomePlan) -> list[Message]:
    """The outcome's messages as the outcome-stage faults publish them (dropped, reversed,
    duplicated, with regenerated user events)."""
    if plan.drop == "both":
        messages = []
    elif plan.drop == "outbound":
        messages = [item for item in messages if item[0] != OUTBOUND_CHANNEL]
    elif plan.drop == "user_event":
        messages = [item for item in messages if item[0] != USER_EVENT_CHANNEL]
    if plan.reverse:
        messages.reverse()
    copies = [messages] * plan.times
    if plan.regenerate:
        copies[1:] = [[_regenerated(item, n) for item in messages] for n in range(1, plan.times)]
    return [item for copy_ in copies for item in copy_]


def _regenerated(message: Message, n: int) -> Message:
    """A user event relayed again: the same ``userData``, new ``metrics``."""
    channel, data = message
    if data.get("messageType") != "DeviceUserEventMessage":
        return message
    fresh = copy.deepcopy(data)
    processing = fresh.setdefault("metrics", {}).setdefault("eventProcessing", {})
    processing["serverGenerationTimestamp"] = processing.get("serverGenerationTimestamp", 0) + n
    return channel, fresh
