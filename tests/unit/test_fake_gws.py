"""The transport seam and ``testing.FakeGWS``: the plugin on GWS and OCS in memory, on the
virtual clock (``testing.virtual_clock_loop``): no socket, and no wall time spent waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pluggy
import pytest

from gws_outbound_plugin import (
    FailureReason,
    GWSConfig,
    GWSStatusError,
    HTTPCometDTransport,
    NotRunningError,
    OperationFailed,
    OutboundPlugin,
    OutboundTransport,
    make_plugin_manager,
)
from gws_outbound_plugin.cli._lifecycle import _end_gws_session
from gws_outbound_plugin.simulator import RecordStatus
from gws_outbound_plugin.testing import (
    FakeGWS,
    HookRecorder,
    RequestFactory,
    virtual_clock_loop,
)

pytestmark = pytest.mark.anyio

ACK_TIMEOUT = 30.0
INTERNAL = "/me/internal"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


@pytest.fixture
def config() -> GWSConfig:
    return GWSConfig(
        base_url="https://gws.example",
        username="agent1",
        password="unused",
        ack_timeout=ACK_TIMEOUT,
        hook_timeout=5.0,
        drain_timeout=5.0,
    )


@pytest.fixture
def fake() -> FakeGWS:
    return FakeGWS()


@pytest.fixture
def factory(fake: FakeGWS) -> RequestFactory:
    return RequestFactory(fake)  # type: ignore[arg-type]  # FakeGWS reads like the simulator


@pytest.fixture
def recorder() -> HookRecorder:
    return HookRecorder()


@pytest.fixture
def pm(recorder: HookRecorder) -> pluggy.PluginManager:
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(recorder, name="recorder")
    return pm


@pytest.fixture
async def plugin(
    pm: pluggy.PluginManager, config: GWSConfig, fake: FakeGWS
) -> AsyncIterator[OutboundPlugin]:
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        yield plugin


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_every_operation_is_acknowledged_from_the_ocs_model(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    cancel = factory()
    ack = await plugin.cancel(cancel)
    assert ack.request == cancel
    assert ack.user_data["GSW_USER_EVENT"] == "RecordCancelAcknowledge"
    assert fake.records[cancel.record_handle].status is RecordStatus.CANCELLED
    makers = (
        factory.reject,
        factory.complete,
        factory.do_not_call,
        factory.reschedule,
        factory.update,
        factory.chained,
        factory.do_not_call_phone,
        factory.add_record,
        factory.start_preview,
        factory.get_preview,
        factory.end_preview,
    )
    for make in makers:
        request = make()
        operation = await plugin.perform(request)
        assert operation.request == request
        assert operation.user_data  # the DeviceUserEventMessage's GSW_* keys
    # Each notification echoes its request's referenceId.
    echoed = {data.get("referenceId") for channel, data in fake.published if channel != INTERNAL}
    assert {body["referenceId"] for _, body in fake.posts} <= echoed
    assert plugin.stats["acknowledged"] == 1 + len(makers)


async def test_a_gws_refusal_fails_the_request_with_its_status_code(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    with pytest.raises(OperationFailed) as refused:
        await plugin.perform(factory.reject(device_path="/devices/not-the-agents"))
    assert refused.value.failure.reason is FailureReason.REJECTED
    assert refused.value.failure.status_code == 6  # GWS: device not found for this user
    fake.faults.status_code(code=4, operation="CompleteRecord")
    with pytest.raises(OperationFailed) as injected:
        await plugin.perform(factory.complete())
    assert injected.value.failure.status_code == 4
    assert not fake.published  # neither reached OCS


async def test_an_ocs_refusal_carries_ocs_error_number(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    fake.faults.ocs_error(number=50, message="Record locked")
    with pytest.raises(OperationFailed) as refused:
        await plugin.perform(factory.reject())
    failure = refused.value.failure
    assert (failure.reason, failure.error_number, failure.may_have_acted) == (
        FailureReason.OCS_ERROR,
        50,
        False,
    )


async def test_duplicated_messages_make_one_outcome(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory, recorder: HookRecorder
) -> None:
    fake.faults.duplicate_notifications(times=3)
    await plugin.perform(factory.reject())
    assert await plugin.wait_hooks_idle(5.0)
    assert len(recorder.calls_of("on_operation_acknowledged")) == 1
    assert len(fake.published) == 6
    assert plugin.stats["duplicates"] == 4


async def test_a_lost_acknowledgement_times_out_on_the_virtual_clock(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    fake.faults.drop_notifications()
    started = now()
    with pytest.raises(OperationFailed) as lost:
        await plugin.perform(factory.reject())
    assert lost.value.failure.reason is FailureReason.TIMED_OUT
    assert lost.value.failure.may_have_acted
    assert now() - started >= ACK_TIMEOUT  # waited ack_timeout, in virtual seconds


async def test_a_delayed_acknowledgement_arrives_after_its_delay(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    fake.faults.delay_notifications(seconds=20)
    started = now()
    await plugin.perform(factory.reject())
    assert ACK_TIMEOUT > now() - started >= 20


async def test_a_post_without_answer_ends_outcome_unknown(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    fake.faults.reset_connection()
    with pytest.raises(OperationFailed) as unanswered:
        await plugin.perform(factory.reject())
    assert unanswered.value.failure.may_have_acted
    assert unanswered.value.failure.reason is FailureReason.OUTCOME_UNKNOWN


async def test_a_session_lost_while_pending_ends_outcome_unknown(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory, recorder: HookRecorder
) -> None:
    fake.faults.delay_notifications(seconds=10)
    ticket = plugin.submit(factory.reject())
    while not fake.posts:
        await asyncio.sleep(0.1)
    fake.lose_session()
    assert plugin.connection_state == "reconnecting"
    await asyncio.sleep(15)
    assert fake.missed == 2  # OCS's pair, published while the session was down
    fake.restore_session()
    with pytest.raises(OperationFailed) as unknown:
        await ticket
    assert unknown.value.failure.reason is FailureReason.OUTCOME_UNKNOWN
    assert unknown.value.failure.may_have_acted
    assert await plugin.wait_hooks_idle(5.0)
    changes = [(c.state, c.previous) for c in recorder.calls_of("on_connection_state_changed")]
    assert changes[-2:] == [("reconnecting", "connected"), ("connected", "reconnecting")]


async def test_held_outcomes_are_released_on_demand(
    plugin: OutboundPlugin, fake: FakeGWS, factory: RequestFactory
) -> None:
    fake.faults.hold_notifications()
    ticket = plugin.submit(factory.reject())
    await asyncio.sleep(5)
    assert not ticket.done()
    fake.faults.release_notifications()
    await ticket


async def test_a_refused_channel_gives_acknowledgements_without_user_data(
    pm: pluggy.PluginManager, config: GWSConfig
) -> None:
    fake = FakeGWS(refused_channels=[INTERNAL])
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        assert plugin.refused_channels == (INTERNAL,)
        assert plugin.stats["refused_channels"] == 1
        ack = await plugin.cancel(RequestFactory(fake)())  # type: ignore[arg-type]
        assert ack.user_data == {}
    with pytest.raises(ValueError, match="cannot be refused"):
        FakeGWS(refused_channels=["/v2/me/outbound"])


async def test_the_plugin_speaks_through_the_transport_it_was_given(
    plugin: OutboundPlugin, fake: FakeGWS
) -> None:
    assert plugin.transport is fake
    assert isinstance(fake, OutboundTransport)
    assert plugin.user["userName"] == "agent1"
    assert await plugin.device_path() == fake.device_path()
    assert plugin.outcome_bound >= ACK_TIMEOUT


async def test_the_default_transport_is_gws_over_http_and_cometd(
    pm: pluggy.PluginManager, config: GWSConfig
) -> None:
    plugin = OutboundPlugin(pm, config, channels=["/v2/me/outbound"])
    assert isinstance(plugin.transport, HTTPCometDTransport)
    assert isinstance(plugin.transport, OutboundTransport)
    assert plugin.transport.channels == ("/v2/me/outbound",)


def test_a_transport_and_channels_together_are_refused(
    pm: pluggy.PluginManager, config: GWSConfig
) -> None:
    with pytest.raises(ValueError, match="channels= or transport="):
        OutboundPlugin(pm, config, channels=["/v2/me/outbound"], transport=FakeGWS())


async def test_the_cli_ends_the_contact_center_session_through_the_public_method(
    pm: pluggy.PluginManager, config: GWSConfig, fake: FakeGWS
) -> None:
    plugin = OutboundPlugin(pm, config, transport=fake)
    with pytest.raises(NotRunningError):
        await plugin.end_contact_center_session()
    async with plugin:
        await _end_gws_session(plugin)
    assert fake.posts == [("/me", {"operationName": "EndContactCenterSession"})]


def test_the_http_faults_are_refused_by_the_fake() -> None:
    fake = FakeGWS()
    for control in ("http_error", "unauthorized", "csrf_reject", "expire_session"):
        with pytest.raises(TypeError, match="use GWSSimulator"):
            getattr(fake.faults, control)()
    with pytest.raises(TypeError, match="use GWSSimulator"):
        fake.faults.hold_connects(1.0)
    assert fake.faults.active == ()


async def test_a_post_that_gws_refuses_raises_as_gws_session_does(fake: FakeGWS) -> None:
    with pytest.raises(GWSStatusError) as refused:
        await fake.post_operation("/me/outbound-records/11", {"operationName": "RejectRecord"})
    assert refused.value.status_code == 1  # missing parameters
