"""Hook specifications of gws_outbound_plugin: what plugin authors implement.

Write a plugin as a module or class with functions named after these hooks, decorated with
:data:`hookimpl`, and register it with the plugin manager (or announce it under the
``gws_outbound`` entry-point group). An implementation may take any subset of a hook's
arguments, by name::

    from gws_outbound_plugin import hookimpl

    @hookimpl
    async def on_record_cancel_acknowledged(ack):
        print("cancelled", ack.record_handle)

Two hooks are fired by the host: ``on_cancel_requested`` (a cancel) and
``on_operation_requested`` (any operation, cancel included). Every other hook is fired by the
plugin core, which calls them like this:

* each implementation on its own, in pluggy's order (``tryfirst`` first, then the most recently
  registered), one event at a time, in the order the events happened;
* ``async def`` implementations are awaited, bounded by ``GWSConfig.hook_timeout``;
  plain functions are called on the event loop thread and must not block;
* an exception or a timeout is logged (``plugin_hook_failed`` / ``plugin_hook_timed_out``,
  with the plugin's name and the hook) and affects neither the other plugins nor the plugin
  core; return values are ignored;
* hook wrappers (``wrapper=True`` / ``hookwrapper=True``) are not supported on these hooks
  and are refused when the plugin is started;
* the host's ticket resolves after them, but never later than ``hook_timeout`` after its
  outcome was decided (a slow plugin cannot hold it back); inside a hook, ``await ticket``
  returns as soon as the outcome is decided.

Which hooks fire for what:

=====================================  ==================================================
an accepted cancel acknowledged        ``on_record_cancel_acknowledged`` then
                                       ``on_operation_acknowledged``
an accepted cancel failed              ``on_cancel_failed`` then ``on_operation_failed``
any other operation acknowledged       ``on_operation_acknowledged``
any other operation failed             ``on_operation_failed``
every OCS user event                   ``on_user_event`` (before any of the above)
OCS cancelled a record we hold         ``on_record_cancelled``
a scheduled callback is due            ``on_scheduled_call``
OCS pushed a preview record            ``on_preview_record``
a campaign changed state               ``on_campaign_status``
=====================================  ==================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pluggy

if TYPE_CHECKING:
    from ._payloads import (
        CampaignStatusEvent,
        CancelFailure,
        OperationAck,
        OperationFailure,
        PreviewRecordEvent,
        RecordCancelAck,
        RecordCancelledEvent,
        ScheduledCallEvent,
        UserEvent,
    )
    from ._requests import CancelRequest, OperationRequest
    from ._ticket import CancelTicket, OperationTicket

__all__ = [
    "HOST_FIRED_HOOKS",
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "on_campaign_status",
    "on_cancel_failed",
    "on_cancel_requested",
    "on_connection_state_changed",
    "on_operation_acknowledged",
    "on_operation_failed",
    "on_operation_requested",
    "on_preview_record",
    "on_record_cancel_acknowledged",
    "on_record_cancelled",
    "on_scheduled_call",
    "on_user_event",
]

PROJECT_NAME: Final = "gws_outbound"
"""Marker namespace, ``PluginManager`` name and entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (this module)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: The hooks the host fires (from any thread): plain functions only, no wrappers.
HOST_FIRED_HOOKS: Final = ("on_cancel_requested", "on_operation_requested")
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
    The ticket resolves after the outcome hooks ran, and at the latest ``hook_timeout`` after
    the outcome was decided.

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


@hookspec
def on_operation_requested(request: OperationRequest) -> OperationTicket[Any] | None:
    """An outbound operation (any of them, cancel included) was asked for on the bus.

    Fired by the host: ``pm.hook.on_operation_requested(request=RejectRecordRequest(...))``
    (or any request type; build one from a bus event with ``request_from_bus``), from the event
    loop thread or any other thread. Like ``on_cancel_requested``: the core accepts the request
    without waiting for the network and the result list starts with its
    :class:`~gws_outbound_plugin.OperationTicket[Any]` (a ``CancelTicket`` for a ``CancelRequest``);
    every accepted request ends in exactly one ``on_operation_acknowledged`` or
    ``on_operation_failed``; with no core running it raises ``NotRunningError`` before any
    observer sees the request. A cancel fired here also gets the cancel hooks.

    :param request: one of the request types (``RejectRecordRequest``, ...).

    Must be a plain function; observers should return ``None``; an observer's exception is
    logged and swallowed.
    """


@hookspec
def on_operation_acknowledged(ack: OperationAck) -> None:
    """GWS and OCS acknowledged an operation (any operation, cancel included).

    Fired exactly once per acknowledged request; also for acknowledgements of requests another
    client of the agent made (``ack.request`` is ``None``). ``ack.operation`` is the GWS
    ``operationName``; ``ack.record`` / ``ack.campaign`` / ``ack.records`` / ``ack.empty`` carry
    the result (see the ``OperationAck`` reference).

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_operation_failed(failure: OperationFailure) -> None:
    """An accepted operation failed (any operation, cancel included).

    Fired exactly once per failed request. ``failure.reason`` says why (the same reasons as
    ``on_cancel_failed``), ``failure.operation`` which operation.

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_record_cancelled(event: RecordCancelledEvent) -> None:
    """OCS tells the agent that a record it holds was cancelled by someone else
    (OCS user event ``RecordCancel``; its GWS shape is unconfirmed).

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_scheduled_call(event: ScheduledCallEvent) -> None:
    """A scheduled callback is due: OCS delivers the record (user event ``ScheduledCall``;
    its GWS shape is unconfirmed).

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_preview_record(event: PreviewRecordEvent) -> None:
    """OCS pushed a preview record the agent did not ask for (``OutboundRecordMessage``
    ``PreviewRecord`` without one of our ``referenceId``\\ s). A record asked for with
    ``GetPreviewRecordRequest`` arrives as that request's acknowledgement instead.

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_campaign_status(event: CampaignStatusEvent) -> None:
    """A campaign changed state (OCS user events ``CampaignLoaded``, ``CampaignStarted``,
    ``CampaignStopped``, ``CampaignUnloaded``, ``CampaignModeChanged``; their GWS shape is
    unconfirmed).

    May be ``async def``. The return value is ignored. An exception or a hang (beyond
    ``GWSConfig.hook_timeout`` for ``async def``) is logged with the plugin's name and does not
    reach other plugins or the core.
    """


@hookspec
def on_connection_state_changed(state: str, previous: str) -> None:
    """The connection to GWS's notifications (the CometD session) changed state.

    ``state`` and ``previous`` are ``"connecting"``, ``"connected"``, ``"reconnecting"`` or
    ``"closed"`` (:class:`~gws_outbound_plugin.CometDState` values): ``connecting`` ->
    ``connected`` while the plugin starts, ``connected`` -> ``reconnecting`` when the
    session is lost (no outcome can be heard meanwhile), ``reconnecting`` -> ``connected``
    when it is back, ``-> closed`` when the plugin closes (delivered if the plugin is still
    running its hook calls). Called once per change, in order, on the plugin core's event
    loop; ``OutboundPlugin.connection_state`` is the state now. For a host's "offline"
    display without reading logs.

    May be ``async def``; like the other dispatched hooks, an implementation that raises or
    runs beyond ``hook_timeout`` is logged and affects nobody else.
    """
