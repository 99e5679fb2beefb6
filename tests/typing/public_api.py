"""What a type checker sees of the public calls (checked by tests/unit/test_public_types.py
with ``mypy --strict``; never imported at run time)."""

from __future__ import annotations

from typing import assert_type

from gws_outbound_plugin import (
    CancelRequest,
    CancelTicket,
    OperationAck,
    OperationTicket,
    OutboundPlugin,
    RecordCancelAck,
    RejectRecordRequest,
)


async def typed_calls(
    plugin: OutboundPlugin, cancel: CancelRequest, reject: RejectRecordRequest
) -> None:
    assert_type(plugin.submit(cancel), CancelTicket)
    assert_type(plugin.submit(reject), OperationTicket[OperationAck])
    assert_type(await plugin.perform(cancel), RecordCancelAck)
    assert_type(await plugin.perform(reject), OperationAck)
    assert_type(await plugin.cancel(cancel), RecordCancelAck)
    assert_type(await plugin.submit(reject), OperationAck)
    assert_type(plugin.submit(cancel).result(1.0), RecordCancelAck)
    assert_type(plugin.submit(reject).result(1.0), OperationAck)
