"""``gws-outbound tail``: every event as it comes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import anyio

from .._config import GWSConfig
from .._exceptions import GWSOutboundError
from .._manager import close_plugins, make_plugin_manager
from .._models import CancelFailure, RecordCancelAck, UserEvent
from .._operations import (
    CampaignStatusEvent,
    OperationAck,
    OperationFailure,
    PreviewRecordEvent,
    RecordCancelledEvent,
    ScheduledCallEvent,
)
from .._plugin import OutboundPlugin
from ..hookspecs import hookimpl
from ._common import _PLUGIN_CLOSE_TIMEOUT, EXIT_FAILED, EXIT_OK, _Context
from ._format import (
    _clock,
    _failure_line,
    describe_ack,
    describe_connection,
    describe_operation_ack,
    describe_operation_failure,
    describe_unsolicited,
    describe_user_event,
    hook_line,
)
from ._lifecycle import _end_gws_session, _start_error, _stop_on_signal
from ._plugins import _load_one_off_plugins, _report_load_failures


class _TailPrinter:
    """Prints every dispatched hook call; stops the tail when stdout goes away."""

    def __init__(self, ctx: _Context, *, as_json: bool, stop: Callable[[], None]) -> None:
        self._ctx = ctx
        self._json = as_json
        self._stop = stop

    def _print(self, hook: str, payload: Any, text: Callable[[], str]) -> None:
        line = hook_line(hook, payload) if self._json else f"{_clock()} {text()}"
        try:
            self._ctx.out(line)
        except (BrokenPipeError, ValueError):  # the reader went away (| head)
            self._stop()

    @hookimpl
    def on_user_event(self, event: UserEvent) -> None:
        self._print("on_user_event", event, lambda: describe_user_event(event))

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        self._print("on_record_cancel_acknowledged", ack, lambda: describe_ack(ack))

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._print("on_cancel_failed", failure, lambda: _failure_line(failure))

    # A cancel's outcome also fires the on_operation_* hooks: printed once, above.

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        if ack.operation != "CancelRecord":
            self._print("on_operation_acknowledged", ack, lambda: describe_operation_ack(ack))

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        if failure.operation != "CancelRecord":
            self._print("on_operation_failed", failure, lambda: describe_operation_failure(failure))

    @hookimpl
    def on_record_cancelled(self, event: RecordCancelledEvent) -> None:
        self._print("on_record_cancelled", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_scheduled_call(self, event: ScheduledCallEvent) -> None:
        self._print("on_scheduled_call", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_preview_record(self, event: PreviewRecordEvent) -> None:
        self._print("on_preview_record", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_campaign_status(self, event: CampaignStatusEvent) -> None:
        self._print("on_campaign_status", event, lambda: describe_unsolicited(event))

    @hookimpl
    def on_connection_state_changed(self, state: str, previous: str) -> None:
        # Starting and closing are said on stderr; a loss and a return are events.
        if state == "reconnecting" or (state == "connected" and previous == "reconnecting"):
            change = {"state": state, "previous": previous}
            self._print("on_connection_state_changed", change, lambda: describe_connection(state))


async def _run_tail(args: argparse.Namespace, ctx: _Context, config: GWSConfig) -> int:
    pm = make_plugin_manager(load_entrypoints=args.plugins, environ=ctx.environ)
    _report_load_failures(pm, ctx)
    _load_one_off_plugins(pm, args.one_off_plugins)
    stopped = anyio.Event()
    pm.register(_TailPrinter(ctx, as_json=args.json, stop=stopped.set), name="tail")
    try:
        async with OutboundPlugin(pm, config) as plugin:
            ctx.err(
                f"tailing /v2/me/outbound and /me/internal at {config.base_url} as "
                f"{config.username} (CometD {plugin.cometd_state.value}); press Ctrl-C to stop"
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, stopped)
                await stopped.wait()
                tg.cancel_scope.cancel()
            if args.end_session:
                await _end_gws_session(plugin)
    except GWSOutboundError as error:
        ctx.error(_start_error(error))
        return EXIT_FAILED
    finally:
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
    return EXIT_OK
