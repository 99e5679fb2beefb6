"""gws_outbound_plugin: cancel Genesys outbound records through GWS and hear back as hooks.

Everything public is importable from here; the modules starting with ``_`` are private.
"""

from . import hookspecs as hookspecs
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
from ._exceptions import NotRunningError as NotRunningError
from ._exceptions import PluginLoadError as PluginLoadError
from ._manager import PluginInfo as PluginInfo
from ._manager import describe_plugins as describe_plugins
from ._manager import load_entrypoint_plugins as load_entrypoint_plugins
from ._manager import make_plugin_manager as make_plugin_manager
from ._models import CancelFailure as CancelFailure
from ._models import CancelRequest as CancelRequest
from ._models import ChainAttribute as ChainAttribute
from ._models import EventMetrics as EventMetrics
from ._models import FailureReason as FailureReason
from ._models import RecordCancelAck as RecordCancelAck
from ._models import UserEvent as UserEvent
from ._models import to_jsonable as to_jsonable
from ._plugin import CORE_PLUGIN_NAME as CORE_PLUGIN_NAME
from ._plugin import OutboundPlugin as OutboundPlugin
from ._redact import REDACTED as REDACTED
from ._redact import RedactingLogFilter as RedactingLogFilter
from ._redact import SecretRedactor as SecretRedactor
from ._redact import redact_secrets as redact_secrets
from ._redact import redact_secrets_and_pii as redact_secrets_and_pii
from ._ticket import CancelTicket as CancelTicket
from .hookspecs import PROJECT_NAME as PROJECT_NAME
from .hookspecs import hookimpl as hookimpl
from .hookspecs import hookspec as hookspec

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The simulator (an aiohttp web server) is imported only when used.
    if name == "simulator":
        import importlib

        return importlib.import_module(".simulator", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CORE_PLUGIN_NAME",
    "PROJECT_NAME",
    "REDACTED",
    "CancelFailed",
    "CancelFailure",
    "CancelRequest",
    "CancelTicket",
    "ChainAttribute",
    "CometDState",
    "ConfigError",
    "EventMetrics",
    "FailureReason",
    "GWSAuthenticationError",
    "GWSConfig",
    "GWSError",
    "GWSOutboundError",
    "GWSStatusError",
    "GWSTransportError",
    "HookDispatcher",
    "InvalidCancelRequest",
    "NotRunningError",
    "OutboundPlugin",
    "PluginInfo",
    "PluginLoadError",
    "RecordCancelAck",
    "RedactingLogFilter",
    "SecretRedactor",
    "UserEvent",
    "__version__",
    "describe_plugins",
    "hookimpl",
    "hookspec",
    "hookspecs",
    "load_entrypoint_plugins",
    "make_plugin_manager",
    "redact_secrets",
    "redact_secrets_and_pii",
    "simulator",
    "to_jsonable",
]
