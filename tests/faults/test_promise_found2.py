"""The promise, broken in further ways and fixed (after tests/faults/test_promise_found.py):
each test here failed before its fix. Every accepted request ends in exactly one outcome, its
own, and the host gets its ticket, whatever plugins, the host's tooling, the server or the
host task do."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio
import pluggy
import pytest

from gws_outbound_plugin import (
    CancelFailure,
    CancelRequest,
    FailureReason,
    OperationAck,
    OperationTicket,
    OutboundPlugin,
    RecordCancelAck,
    RejectRecordRequest,
    UserEvent,
    hookimpl,
    hookspecs,
)
from gws_outbound_plugin.simulator import GWSSimulator
from gws_outbound_plugin.simulator._records import SeedRecord
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import Recorder

pytestmark = pytest.mark.anyio


# -- the host's own tooling, with a plugin that requests in turn ---------------------------------


class AlsoReject:
    """An observer of ``on_cancel_requested`` that hands another record back to OCS for each
    cancel, with the plugin's ``submit()`` or by firing ``on_operation_requested`` itself."""

    def __init__(self, sim: GWSSimulator, handle: int, how: str) -> None:
        self.sim = sim
        self.handle = handle
        self.how = how
        self.plugin: OutboundPlugin | None = None
        self.tickets: list[OperationTicket[OperationAck]] = []

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        assert self.plugin is not None
        reject = RejectRecordRequest(
            record_handle=self.handle,
            application_id=request.application_id,
            campaign_name=request.campaign_name,
            calling_list=request.calling_list,
            device_path=request.device_path,
        )
        if self.how == "submit":
            self.tickets.append(self.plugin.submit(reject))
        else:
            [ticket, *_] = self.plugin.pm.hook.on_operation_requested(request=reject)
            self.tickets.append(ticket)


@pytest.mark.parametrize("how", ["submit", "hook"])
async def test_a_raising_monitor_does_not_hide_the_ticket_when_an_observer_requests_too(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, how: str
) -> None:
    """``pm.add_hookcall_monitoring(before, after)`` whose ``after`` raises for
    ``on_cancel_requested`` (as in test_promise_found.py), and an observer of that hook that
    makes a request of its own while the cancel's hook call runs. Before, the observer's
    request replaced the cancel's ticket as the one the core had just accepted in this
    thread, so ``submit()`` (and ``cancel()``) raised the monitor's error: no ticket for a
    cancel that was sent and acknowledged, and a host told it failed might send it again."""

    def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
        if hook_name == "on_cancel_requested":
            raise RuntimeError("the host's monitor broke")

    first, second = handles(sim, 2)
    observer = AlsoReject(sim, second, how)
    pm.register(observer, name="also_reject")
    pm.add_hookcall_monitoring(lambda *_: None, after)
    request = request_for(sim, first)
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        observer.plugin = plugin
        ack = await plugin.cancel(request)
        [reject] = observer.tickets
        rejected = await reject
    assert ack.request is request
    assert [ack.request for ack in recorder.acks] == [request]
    assert rejected.record_handle == second
    assert [op.body.get("operationName") for op in sim.operations] == [
        "CancelRecord",
        "RejectRecord",
    ]


class ForgetfulWrapper:
    """A wrapper of ``on_cancel_requested`` that forgets to return the results (``None``)."""

    @hookimpl(wrapper=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        yield


class FilteringWrapper:
    """A wrapper of ``on_cancel_requested`` that drops the results, the ticket with them."""

    @hookimpl(wrapper=True)
    def on_cancel_requested(self, request: CancelRequest) -> Generator[None, Any, Any]:
        yield
        return []


@pytest.mark.parametrize("wrapper", [ForgetfulWrapper, FilteringWrapper])
async def test_a_wrapper_registered_after_the_start_cannot_hide_an_accepted_cancel(
    sim: GWSSimulator, recorder: Recorder, wrapper: type
) -> None:
    """A bare pluggy manager (which does not validate registrations; the start refuses a
    wrapper of the host-fired hooks, tests/engine/test_breakers.py) gets such a wrapper
    once the plugin runs. Before, ``submit()`` raised ``NotRunningError`` ("nothing was
    sent"), or a ``TypeError`` for a wrapper returning ``None``, for a cancel the core had
    accepted and sent: no ticket, and a host told nothing was sent might send it again."""
    bare = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    bare.add_hookspecs(hookspecs)
    bare.register(recorder, name="recorder")
    request = request_for(sim, handles(sim, 1)[0])
    async with OutboundPlugin(bare, fast_config(sim.base_url)) as plugin:
        bare.register(wrapper(), name="wrapper")
        ack = await plugin.cancel(request)
    assert ack.request is request
    assert [ack.request for ack in recorder.acks] == [request]
    assert len(sim.cancels) == 1


# -- request objects that misbehave --------------------------------------------------------------


class CancelWithoutSpec(CancelRequest):
    """A host's subclass of ``CancelRequest`` whose ``spec`` raises."""

    @property
    def spec(self) -> Any:
        raise RuntimeError("no spec")


async def test_a_cancel_whose_attributes_raise_gets_its_generic_outcome_hook_too(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    """The engine refuses a request it cannot register (``rejected``, nothing sent), and a
    cancel's outcome fires two hooks, ``on_cancel_failed`` and ``on_operation_failed``.
    Before, the second one's payload was built from the request's ``spec``, which raised:
    ``on_operation_failed`` was never called for that cancel (test_promise_found.py has the
    first hook and an operation's own)."""
    seen: list[tuple[str, Any]] = []

    class Outcomes:
        @hookimpl
        def on_cancel_failed(self, failure: Any) -> None:
            seen.append(("on_cancel_failed", failure))

        @hookimpl
        def on_operation_failed(self, failure: Any) -> None:
            seen.append(("on_operation_failed", failure))

    pm.register(Outcomes(), name="outcomes")
    base = request_for(sim, handles(sim, 1)[0])
    request = CancelWithoutSpec(
        record_handle=base.record_handle,
        application_id=base.application_id,
        campaign_name=base.campaign_name,
        calling_list=base.calling_list,
        device_path=base.device_path,
    )
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        ticket = plugin.submit(request)
        with anyio.fail_after(5):
            while not ticket.done():
                await anyio.sleep(0.01)
        assert await plugin.wait_hooks_idle(5)
    outcome = ticket.outcome
    assert isinstance(outcome, CancelFailure) and outcome.reason is FailureReason.REJECTED
    assert [name for name, _ in seen] == ["on_cancel_failed", "on_operation_failed"]
    assert seen[0][1] == outcome
    generic = seen[1][1]
    assert generic.operation == "CancelRecord"
    assert generic.request is request
    assert generic.reason is FailureReason.REJECTED and generic.may_have_acted is False
    assert sim.operations == []  # nothing was sent


# -- a slow plugin under load ----------------------------------------------------------------------


class SlowAudit:
    """An ``async def on_user_event`` that takes 50 ms (a plugin writing each event to a
    database), well within ``hook_timeout``."""

    @hookimpl
    async def on_user_event(self, event: UserEvent) -> None:
        await anyio.sleep(0.05)


@pytest.mark.parametrize("anyio_backend", [("asyncio", {"loop_factory": virtual_clock_loop})])
async def test_a_slow_plugin_under_load_does_not_turn_acknowledgements_into_timeouts(
    pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """40 cancels at once (a campaign cleanup), every one acknowledged by GWS and OCS at
    once, and a plugin whose hook takes 50 ms: the hook calls (three per cancel) outgrow
    ``hook_queue_size`` (16 here; 1024 by default, which 900 cancels outgrow the same way),
    so the listener stops reading until the plugin catches up (backpressure, as
    documented). Before, the acknowledgement timers went on meanwhile: most cancels ended
    ``timed_out`` (GWS "may have acted": look at the record before sending it again) while
    their acknowledgements waited unread behind the slow plugin. An acknowledgement timer
    that expires while the listener is held back now waits for it (the outcome bound still
    holds: the request's deadline)."""
    pm.register(SlowAudit(), name="slow_audit")
    seed = [
        SeedRecord(
            record_handle=1000 + i,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            phone_number=f"555{i:04d}",
            chain_id=1000 + i,
        )
        for i in range(40)
    ]
    fake = FakeGWS(records=seed)
    config = fast_config("https://gws.example", hook_queue_size=16)
    requests = [
        CancelRequest(
            record_handle=record.record_handle,
            application_id=record.application_id,
            campaign_name=record.campaign_name,
            calling_list=record.calling_list,
            device_path=fake.device_path(),
        )
        for record in seed
    ]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        tickets = [plugin.submit(request) for request in requests]
        outcomes: list[object] = []
        for ticket in tickets:
            try:
                outcomes.append(await ticket)
            except Exception as error:  # a failure: what the assertion below reports
                outcomes.append(error)
        assert await plugin.wait_hooks_idle(60)
    assert [type(outcome) for outcome in outcomes] == [RecordCancelAck] * len(requests), [
        outcome for outcome in outcomes if not isinstance(outcome, RecordCancelAck)
    ][:3]
    heard = sorted(ack.request.reference_id for ack in recorder.acks if ack.request is not None)
    assert heard == sorted(request.reference_id for request in requests)
    assert recorder.failures == []
