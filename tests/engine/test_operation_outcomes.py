"""Every operation's failure kinds, and exactly one outcome per accepted request under
duplicated, reordered and dropped notifications: engine behaviour, on FakeGWS (the
simulator's OCS) and the virtual clock. The operations are tests/integration's."""

from __future__ import annotations

import anyio
import pluggy
import pytest

from gws_outbound_plugin import FailureReason, OperationFailed, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config
from tests.integration.test_operations import (
    ALL_OPERATIONS,
    OperationRecorder,
    _operation_name,
    _start_session,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("operation", sorted(ALL_OPERATIONS))
async def test_failure_kinds(
    fake: FakeGWS,
    pm: pluggy.PluginManager,
    ops: OperationRecorder,
    device_path: str,
    operation: str,
) -> None:
    """rejected (statusCode), rejected (CometD ErrorMessage, on either channel), OCS error,
    timed out: one outcome each, never an acknowledgement."""
    config = fake_config(ack_timeout=0.3)
    factory, needs_session = ALL_OPERATIONS[operation]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        if needs_session:
            await _start_session(plugin, device_path)
            ops.clear()
        name = _operation_name(factory(device_path, 0))
        fake.faults.status_code(2, "not valid now", operation=name)
        with pytest.raises(OperationFailed) as info:
            await plugin.perform(factory(device_path, 0))
        assert (info.value.failure.reason, info.value.failure.status_code) == (
            FailureReason.REJECTED,
            2,
        )
        fake.faults.cometd_error(
            code=4, message="Voice service is not available at this time", operation=name
        )
        with pytest.raises(OperationFailed) as info:
            await plugin.perform(factory(device_path, 1))
        assert info.value.failure.reason is FailureReason.REJECTED
        assert info.value.failure.message == "Voice service is not available at this time"
        assert info.value.failure.status_code == 4
        fake.faults.cometd_error(
            code=7, message="on the other channel", channel="/me/internal", operation=name
        )
        with pytest.raises(OperationFailed) as info:
            await plugin.perform(factory(device_path, 2))
        assert info.value.failure.message == "on the other channel"
        fake.faults.ocs_error(number=217, message="refused by OCS", operation=name)
        with pytest.raises(OperationFailed) as info:
            await plugin.perform(factory(device_path, 3))
        assert (info.value.failure.reason, info.value.failure.error_number) == (
            FailureReason.OCS_ERROR,
            217,
        )
        fake.faults.drop_notifications("both", operation=name)
        with pytest.raises(OperationFailed) as info:
            await plugin.perform(factory(device_path, 4))
        assert info.value.failure.reason is FailureReason.TIMED_OUT
        await plugin.wait_hooks_idle(5)
    assert len(ops.failures) == 5 and ops.acks == []
    assert {failure.operation for failure in ops.failures} == {name}


@pytest.mark.parametrize("operation", sorted(ALL_OPERATIONS))
@pytest.mark.parametrize("fault", ["duplicate", "reverse", "drop_outbound", "drop_user_event"])
async def test_one_outcome_under_notification_faults(
    fake: FakeGWS,
    pm: pluggy.PluginManager,
    ops: OperationRecorder,
    device_path: str,
    operation: str,
    fault: str,
) -> None:
    config = fake_config(ack_timeout=1.0)
    factory, needs_session = ALL_OPERATIONS[operation]
    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        if needs_session:
            await _start_session(plugin, device_path)
        name = _operation_name(factory(device_path, 0))
        if fault == "duplicate":
            fake.faults.duplicate_notifications(count=None, operation=name)
        elif fault == "reverse":
            fake.faults.reverse_notifications(count=None, operation=name)
        elif fault == "drop_outbound":
            fake.faults.drop_notifications("outbound", count=None, operation=name)
        else:
            fake.faults.drop_notifications("user_event", count=None, operation=name)
        count = 1 if needs_session or operation == "StartPreviewSession" else 3
        requests = [factory(device_path, n) for n in range(count)]
        tickets = [plugin.submit(request) for request in requests]
        outcomes = []
        for ticket in tickets:
            with anyio.fail_after(5):
                try:
                    outcomes.append(await ticket)
                except OperationFailed as error:
                    outcomes.append(error.failure)
        await plugin.wait_hooks_idle(5)
    for request in requests:
        assert len(ops.outcomes_for(request.reference_id)) == 1
    assert all(ack.request is not None for ack in ops.acks)
