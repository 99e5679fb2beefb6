"""gws_outbound_plugin: cancel Genesys outbound records through GWS and hear back as hooks.

Everything public is importable from here; the modules starting with ``_`` are private.
"""

from typing import TYPE_CHECKING

# The names of the submodule hookspecs, imported by every plugin, are bound at once (it needs
# pluggy only); the others are imported on first use (PEP 562), so that importing the package
# (a plugin's `from gws_outbound_plugin import hookimpl`, the command line's `--version` and
# `--help`) does not import the engine, httpx and aiocometd.
from . import hookspecs as hookspecs
from .hookspecs import PROJECT_NAME as PROJECT_NAME
from .hookspecs import hookimpl as hookimpl
from .hookspecs import hookspec as hookspec

if TYPE_CHECKING:
    from . import simulator as simulator
    from ._builders import build_ack as build_ack
    from ._builders import preview_record_from_outbound as preview_record_from_outbound
    from ._builders import unsolicited_from_user_event as unsolicited_from_user_event
    from ._cometd import CometDState as CometDState
    from ._config import GWSConfig as GWSConfig
    from ._dispatcher import HookDispatcher as HookDispatcher
    from ._exceptions import CancelFailed as CancelFailed
    from ._exceptions import ConfigError as ConfigError
    from ._exceptions import GWSAuthenticationError as GWSAuthenticationError
    from ._exceptions import GWSError as GWSError
    from ._exceptions import GWSOutboundError as GWSOutboundError
    from ._exceptions import GWSStatusError as GWSStatusError
    from ._exceptions import GWSTransportError as GWSTransportError
    from ._exceptions import InvalidCancelRequest as InvalidCancelRequest
    from ._exceptions import InvalidOperationRequest as InvalidOperationRequest
    from ._exceptions import NotRunningError as NotRunningError
    from ._exceptions import OperationFailed as OperationFailed
    from ._exceptions import PluginLoadError as PluginLoadError
    from ._http_link import HTTPCometDTransport as HTTPCometDTransport
    from ._log import get_logger as get_logger
    from ._manager import GWSPluginManager as GWSPluginManager
    from ._manager import PluginInfo as PluginInfo
    from ._manager import PluginLoadFailure as PluginLoadFailure
    from ._manager import close_plugins as close_plugins
    from ._manager import describe_plugins as describe_plugins
    from ._manager import load_entrypoint_plugins as load_entrypoint_plugins
    from ._manager import make_plugin_manager as make_plugin_manager
    from ._manager import plugin_load_failures as plugin_load_failures
    from ._payloads import CampaignStatus as CampaignStatus
    from ._payloads import CampaignStatusEvent as CampaignStatusEvent
    from ._payloads import CancelFailure as CancelFailure
    from ._payloads import EventMetrics as EventMetrics
    from ._payloads import FailureReason as FailureReason
    from ._payloads import OperationAck as OperationAck
    from ._payloads import OperationFailure as OperationFailure
    from ._payloads import PreviewRecordEvent as PreviewRecordEvent
    from ._payloads import RecordCancelAck as RecordCancelAck
    from ._payloads import RecordCancelledEvent as RecordCancelledEvent
    from ._payloads import ScheduledCallEvent as ScheduledCallEvent
    from ._payloads import UserEvent as UserEvent
    from ._payloads import to_jsonable as to_jsonable
    from ._plugin import CORE_PLUGIN_NAME as CORE_PLUGIN_NAME
    from ._plugin import OutboundPlugin as OutboundPlugin
    from ._redact import REDACTED as REDACTED
    from ._redact import RedactingLogFilter as RedactingLogFilter
    from ._redact import SecretRedactor as SecretRedactor
    from ._redact import redact_secrets as redact_secrets
    from ._redact import redact_secrets_and_pii as redact_secrets_and_pii
    from ._requests import OPERATION_TYPES as OPERATION_TYPES
    from ._requests import AddRecordRequest as AddRecordRequest
    from ._requests import CallbackType as CallbackType
    from ._requests import CancelRecordRequest as CancelRecordRequest
    from ._requests import CancelRequest as CancelRequest
    from ._requests import ChainAttribute as ChainAttribute
    from ._requests import CompleteRecordRequest as CompleteRecordRequest
    from ._requests import DoNotCallPhoneRequest as DoNotCallPhoneRequest
    from ._requests import DoNotCallRecordRequest as DoNotCallRecordRequest
    from ._requests import EndPreviewSessionRequest as EndPreviewSessionRequest
    from ._requests import GetChainedRecordRequest as GetChainedRecordRequest
    from ._requests import GetPreviewRecordRequest as GetPreviewRecordRequest
    from ._requests import OperationRequest as OperationRequest
    from ._requests import PhoneType as PhoneType
    from ._requests import RejectRecordRequest as RejectRecordRequest
    from ._requests import RescheduleRecordRequest as RescheduleRecordRequest
    from ._requests import StartPreviewSessionRequest as StartPreviewSessionRequest
    from ._requests import UpdateRecordRequest as UpdateRecordRequest
    from ._requests import request_from_bus as request_from_bus
    from ._resend import announce_resend as announce_resend
    from ._retry import RetryPolicy as RetryPolicy
    from ._seam import NotificationSource as NotificationSource
    from ._seam import OperationPoster as OperationPoster
    from ._seam import OutboundTransport as OutboundTransport
    from ._seam import SessionEvents as SessionEvents
    from ._session import GWSNoAnswerError as GWSNoAnswerError
    from ._ticket import CancelTicket as CancelTicket
    from ._ticket import OperationTicket as OperationTicket

__version__ = "0.1.0"

#: Where each public name is defined, for the names imported on first use.
_LAZY: dict[str, str] = {
    "build_ack": "._builders",
    "preview_record_from_outbound": "._builders",
    "unsolicited_from_user_event": "._builders",
    "CometDState": "._cometd",
    "GWSConfig": "._config",
    "HookDispatcher": "._dispatcher",
    "CancelFailed": "._exceptions",
    "ConfigError": "._exceptions",
    "GWSAuthenticationError": "._exceptions",
    "GWSError": "._exceptions",
    "GWSOutboundError": "._exceptions",
    "GWSStatusError": "._exceptions",
    "GWSTransportError": "._exceptions",
    "InvalidCancelRequest": "._exceptions",
    "InvalidOperationRequest": "._exceptions",
    "NotRunningError": "._exceptions",
    "OperationFailed": "._exceptions",
    "PluginLoadError": "._exceptions",
    "HTTPCometDTransport": "._http_link",
    "get_logger": "._log",
    "GWSPluginManager": "._manager",
    "PluginInfo": "._manager",
    "PluginLoadFailure": "._manager",
    "close_plugins": "._manager",
    "describe_plugins": "._manager",
    "load_entrypoint_plugins": "._manager",
    "make_plugin_manager": "._manager",
    "plugin_load_failures": "._manager",
    "CampaignStatus": "._payloads",
    "CampaignStatusEvent": "._payloads",
    "CancelFailure": "._payloads",
    "EventMetrics": "._payloads",
    "FailureReason": "._payloads",
    "OperationAck": "._payloads",
    "OperationFailure": "._payloads",
    "PreviewRecordEvent": "._payloads",
    "RecordCancelAck": "._payloads",
    "RecordCancelledEvent": "._payloads",
    "ScheduledCallEvent": "._payloads",
    "UserEvent": "._payloads",
    "to_jsonable": "._payloads",
    "CORE_PLUGIN_NAME": "._plugin",
    "OutboundPlugin": "._plugin",
    "REDACTED": "._redact",
    "RedactingLogFilter": "._redact",
    "SecretRedactor": "._redact",
    "redact_secrets": "._redact",
    "redact_secrets_and_pii": "._redact",
    "OPERATION_TYPES": "._requests",
    "AddRecordRequest": "._requests",
    "CallbackType": "._requests",
    "CancelRecordRequest": "._requests",
    "CancelRequest": "._requests",
    "ChainAttribute": "._requests",
    "CompleteRecordRequest": "._requests",
    "DoNotCallPhoneRequest": "._requests",
    "DoNotCallRecordRequest": "._requests",
    "EndPreviewSessionRequest": "._requests",
    "GetChainedRecordRequest": "._requests",
    "GetPreviewRecordRequest": "._requests",
    "OperationRequest": "._requests",
    "PhoneType": "._requests",
    "RejectRecordRequest": "._requests",
    "RescheduleRecordRequest": "._requests",
    "StartPreviewSessionRequest": "._requests",
    "UpdateRecordRequest": "._requests",
    "request_from_bus": "._requests",
    "announce_resend": "._resend",
    "RetryPolicy": "._retry",
    "NotificationSource": "._seam",
    "OperationPoster": "._seam",
    "OutboundTransport": "._seam",
    "SessionEvents": "._seam",
    "GWSNoAnswerError": "._session",
    "CancelTicket": "._ticket",
    "OperationTicket": "._ticket",
}


def __getattr__(name: str) -> object:
    import importlib

    if name == "simulator":  # the embedded simulator (an aiohttp web server)
        return importlib.import_module(".simulator", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CORE_PLUGIN_NAME",
    "OPERATION_TYPES",
    "PROJECT_NAME",
    "REDACTED",
    "AddRecordRequest",
    "CallbackType",
    "CampaignStatus",
    "CampaignStatusEvent",
    "CancelFailed",
    "CancelFailure",
    "CancelRecordRequest",
    "CancelRequest",
    "CancelTicket",
    "ChainAttribute",
    "CometDState",
    "CompleteRecordRequest",
    "ConfigError",
    "DoNotCallPhoneRequest",
    "DoNotCallRecordRequest",
    "EndPreviewSessionRequest",
    "EventMetrics",
    "FailureReason",
    "GWSAuthenticationError",
    "GWSConfig",
    "GWSError",
    "GWSNoAnswerError",
    "GWSOutboundError",
    "GWSPluginManager",
    "GWSStatusError",
    "GWSTransportError",
    "GetChainedRecordRequest",
    "GetPreviewRecordRequest",
    "HTTPCometDTransport",
    "HookDispatcher",
    "InvalidCancelRequest",
    "InvalidOperationRequest",
    "NotRunningError",
    "NotificationSource",
    "OperationAck",
    "OperationFailed",
    "OperationFailure",
    "OperationPoster",
    "OperationRequest",
    "OperationTicket",
    "OutboundPlugin",
    "OutboundTransport",
    "PhoneType",
    "PluginInfo",
    "PluginLoadError",
    "PluginLoadFailure",
    "PreviewRecordEvent",
    "RecordCancelAck",
    "RecordCancelledEvent",
    "RedactingLogFilter",
    "RejectRecordRequest",
    "RescheduleRecordRequest",
    "RetryPolicy",
    "ScheduledCallEvent",
    "SecretRedactor",
    "SessionEvents",
    "StartPreviewSessionRequest",
    "UpdateRecordRequest",
    "UserEvent",
    "__version__",
    "announce_resend",
    "build_ack",
    "close_plugins",
    "describe_plugins",
    "get_logger",
    "hookimpl",
    "hookspec",
    "hookspecs",
    "load_entrypoint_plugins",
    "make_plugin_manager",
    "plugin_load_failures",
    "preview_record_from_outbound",
    "redact_secrets",
    "redact_secrets_and_pii",
    "request_from_bus",
    "simulator",
    "to_jsonable",
    "unsolicited_from_user_event",
]
