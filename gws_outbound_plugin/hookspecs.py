"""Hook specifications of gws_outbound_plugin: what plugin authors implement.

Write a plugin as a module or class with functions named after these hooks, decorated with
:data:`hookimpl`, and register it with the plugin manager (or announce it under the
``gws_outbound`` entry-point group). An implementation may take any subset of a hook's
arguments, by name::

    from gws_outbound_plugin import hookimpl

    @hookimpl
    async def on_record_cancel_acknowledged(ack):
        print("cancelled", ack.record_handle)

How the dispatcher calls ``on_record_cancel_acknowledged``, ``on_cancel_failed`` and
``on_user_event``:

* each implementation on its own, in pluggy's order (``tryfirst`` first, then the most recently
  registered), one event at a time, in the order the events happened;
* ``async def`` implementations are awaited, bounded by ``GWSConfig.hook_timeout``;
  plain functions are called on the event loop thread and must not block;
* an exception or a timeout is logged (``plugin_hook_failed`` / ``plugin_hook_timed_out``,
  with the plugin's name and the hook) and affects neither the other plugins nor the plugin
  core; return values are ignored;
* hook wrappers (``wrapper=True`` / ``hookwrapper=True``) are not supported on these three
  hooks and are refused when the plugin is started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pluggy

if TYPE_CHECKING:
    from ._models import CancelFailure, CancelRequest, RecordCancelAck, UserEvent
    from ._ticket import CancelTicket

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "on_cancel_failed",
    "on_cancel_requested",
    "on_record_cancel_acknowledged",
    "on_user_event",
]

PROJECT_NAME: Final = "gws_outbound"
"""Marker namespace, ``PluginManager`` name and entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (this module)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator for plugin authors: ``@hookimpl def on_record_cancel_acknowledged(ack): ...``."""


@hookspec
def on_cancel_requested(request: CancelRequest) -> CancelTicket | None:
    """A cancel of an outbound record was asked for on the bus.

    Fired by the host: ``pm.hook.on_cancel_requested(request=CancelRequest(...))``, from the
    event loop thread or from any other thread (a GUI host calls it from its UI thread).

    The plugin core implements it ``tryfirst``: it accepts the request, hands it to the
    dispatcher without waiting for the network, and returns a
    :class:`~gws_outbound_plugin.CancelTicket`, so the host's result list starts with the
    ticket. Every accepted request ends in exactly one ``on_record_cancel_acknowledged`` or
    ``on_cancel_failed``. When no core is running the call raises
    :class:`~gws_outbound_plugin.NotRunningError` before any observer sees the request, and
    nothing is sent (with a plugin manager from ``make_plugin_manager()``; a bare
    ``PluginManager`` just returns ``[]``).

    Other implementations observe the request; their return value should be ``None``.

    :param request: the validated :class:`~gws_outbound_plugin.CancelRequest`.

    Must be a plain function (``async def`` is not allowed: it runs in the caller's thread and
    nothing would await it). It must be quick and must not block. An exception raised by an
    observer is logged with the plugin's name and swallowed; the host still gets the ticket
    (pluggy does not call the observers after the one that raised).
    """


@hookspec
def on_record_cancel_acknowledged(ack: RecordCancelAck) -> None:
    """GWS and OCS acknowledged a cancel.

    Fired by the dispatcher exactly once per acknowledged cancel, however many copies of the
    two CometD messages (``OutboundRecordMessage`` ``RecordCancelAcknowledge`` on
    ``/v2/me/outbound`` and the ``DeviceUserEventMessage`` on ``/me/internal``) arrive and in
    whichever order. Also fired for acknowledgements of cancels that another client of the same
    agent made, with ``ack.request`` set to ``None``.

    :param ack: the :class:`~gws_outbound_plugin.RecordCancelAck`, merged from both messages.

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_cancel_failed(failure: CancelFailure) -> None:
    """An accepted cancel failed.

    Fired by the dispatcher exactly once per failed cancel: rejected by GWS (``statusCode``),
    refused by OCS (``GSW_ERROR``), no acknowledgement within ``ack_timeout``, outcome unknown
    after the CometD session was lost, transport failure, authentication failure, or shut down
    before the outcome arrived. ``failure.reason`` says which.

    :param failure: the :class:`~gws_outbound_plugin.CancelFailure`.

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_user_event(event: UserEvent) -> None:
    """A ``DeviceUserEventMessage`` (an OCS user event relayed by GWS) arrived.

    Fired by the dispatcher once per distinct message, for every user event: the ones that
    acknowledge or refuse our cancels (fired before ``on_record_cancel_acknowledged`` /
    ``on_cancel_failed``), and any other OCS event the agent receives (``RecordCancel``,
    ``ScheduledCall``, campaign states, ...).

    :param event: the :class:`~gws_outbound_plugin.UserEvent`; ``event.user_data`` holds the
        raw ``GSW_*`` keys.

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """
