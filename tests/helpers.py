"""Test helpers shared by the integration, fault and interop suites."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from gws_outbound_plugin import (
    CancelFailure,
    CancelRequest,
    RecordCancelAck,
    UserEvent,
    hookimpl,
)

AGENT = "agent1"
PASSWORD = "secret"


@dataclass
class Call:
    hook: str
    payload: Any


@dataclass
class Recorder:
    """Records every hook call the dispatcher makes (a plugin like any other)."""

    calls: list[Call] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def _add(self, hook: str, payload: Any) -> None:
        self.calls.append(Call(hook, payload))
        self._changed.set()
        self._changed = anyio.Event()

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._add("on_record_cancel_acknowledged", ack)

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._add("on_cancel_failed", failure)

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._add("on_user_event", event)

    def named(self, hook: str) -> list[Any]:
        return [call.payload for call in self.calls if call.hook == hook]

    @property
    def acks(self) -> list[RecordCancelAck]:
        return self.named("on_record_cancel_acknowledged")

    @property
    def failures(self) -> list[CancelFailure]:
        return self.named("on_cancel_failed")

    @property
    def user_events(self) -> list[UserEvent]:
        return self.named("on_user_event")

    def outcomes_for(self, reference_id: str) -> list[Call]:
        """Every outcome hook call about one request of ours."""
        return [
            call
            for call in self.calls
            if call.hook in ("on_record_cancel_acknowledged", "on_cancel_failed")
            and call.payload.request is not None
            and call.payload.request.reference_id == reference_id
        ]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self):
                await self._changed.wait()


def make_request(device_path: str, handle: int = 11, **extra: Any) -> CancelRequest:
    return CancelRequest(
        record_handle=handle,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path=device_path,
        **extra,
    )
