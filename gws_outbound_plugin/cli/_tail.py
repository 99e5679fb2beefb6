"""``gws-outbound tail``: every event as it comes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import anyio

from .._config import GWSConfig
from .._every_hook import EveryHook
from .._exceptions import GWSOutboundError
from .._manager import close_plugins, make_plugin_manager
from .._plugin import OutboundPlugin
from ..hookspecs import HOST_FIRED_HOOKS
from ._common import _PLUGIN_CLOSE_TIMEOUT, EXIT_FAILED, EXIT_OK, _Context
from ._format import _clock, hook_line, hook_text
from ._lifecycle import _Connecting, _end_gws_session, _start_error, _stop_on_signal
from ._plugins import _load_one_off_plugins, _report_load_failures, _warn_of_hook_failures


def _printed(hook: str, payload: Any) -> bool:
    """Whether ``tail`` prints this call: not the requests a host makes, nor a cancel's
    ``on_operation_*`` hooks (its outcome is printed once, from the cancel hooks), nor the
    connection's start and close (said on stderr): a loss and a return are events."""
    if hook in HOST_FIRED_HOOKS:
        return False
    if hook in ("on_operation_acknowledged", "on_operation_failed"):
        return bool(payload.operation != "CancelRecord")
    if hook == "on_connection_state_changed":
        state, previous = payload["state"], payload["previous"]
        return bool(
            state == "reconnecting" or (state == "connected" and previous == "reconnecting")
        )
    return True


class _TailPrinter(EveryHook):
    """Prints every dispatched hook call; stops the tail when stdout goes away."""

    def __init__(self, ctx: _Context, *, as_json: bool, stop: Callable[[], None]) -> None:
        self._ctx = ctx
        self._json = as_json
        self._stop = stop

    def _hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        payload = next(iter(kwargs.values())) if len(kwargs) == 1 else kwargs
        if _printed(hook, payload):
            self._print(hook, payload, lambda: hook_text(hook, payload))

    def _print(self, hook: str, payload: Any, text: Callable[[], str]) -> None:
        line = hook_line(hook, payload) if self._json else f"{_clock()} {text()}"
        try:
            self._ctx.out(line)
        except (BrokenPipeError, ValueError):  # the reader went away (| head)
            self._stop()


async def _run_tail(args: argparse.Namespace, ctx: _Context, config: GWSConfig) -> int:
    pm = make_plugin_manager(load_entrypoints=args.plugins, environ=ctx.environ)
    _report_load_failures(pm, ctx)
    _load_one_off_plugins(pm, args.one_off_plugins, ctx)
    _warn_of_hook_failures(pm, ctx, args.log_level)
    stopped = anyio.Event()
    pm.register(_TailPrinter(ctx, as_json=args.json, stop=stopped.set), name="tail")
    connecting = _Connecting(ctx.stderr, config)
    connecting.start()
    try:
        async with OutboundPlugin(pm, config) as plugin:
            connecting.stop()
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
        connecting.stop()
        ctx.error(_start_error(error))
        return EXIT_FAILED
    finally:
        connecting.stop()
        await close_plugins(pm, timeout=_PLUGIN_CLOSE_TIMEOUT)
    return EXIT_OK
