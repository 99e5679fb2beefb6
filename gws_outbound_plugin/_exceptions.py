"""The exception tree of gws_outbound_plugin.

::

    GWSOutboundError
    ├── ConfigError (ValueError)          bad GWSConfig / environment
    ├── InvalidOperationRequest (ValueError)  a request failed validation; nothing was sent
    │   └── InvalidCancelRequest          a CancelRequest failed validation
    ├── NotRunningError                   the plugin is not (or no longer) started
    ├── PluginLoadError                   an entry-point plugin failed to load (strict loading)
    ├── OperationFailed                   an accepted operation ended in failure (.failure)
    │   └── CancelFailed                  an accepted cancel ended in failure (.failure)
    └── GWSError                          talking to GWS failed
        ├── GWSAuthenticationError        credentials refused (HTTP 401 / statusCode 20)
        ├── GWSStatusError                GWS answered a statusCode other than 0
        └── GWSTransportError             no usable answer (for an operation: not processed)
            └── GWSNoAnswerError          an operation may have been processed; not resent
                                          (defined in _session.py)

No exception message ever contains the password, an ``Authorization`` header, a cookie or the
CSRF token.

Every exception of the package, and a host's subclass of one, survives
``pickle.loads(pickle.dumps(error))`` (a process pool, a ``multiprocessing`` log handler):
the same class, message and attributes (``.failure`` included).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._pickling import reduce_exception

if TYPE_CHECKING:
    from ._payloads import CancelFailure, OperationFailure

__all__ = [
    "CancelFailed",
    "ConfigError",
    "GWSAuthenticationError",
    "GWSError",
    "GWSOutboundError",
    "GWSStatusError",
    "GWSTransportError",
    "InvalidCancelRequest",
    "InvalidOperationRequest",
    "NotRunningError",
    "OperationFailed",
    "PluginLoadError",
]


class GWSOutboundError(Exception):
    """Root of every exception raised by gws_outbound_plugin."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt without calling __init__ (whose arguments are not ``args``).
        return reduce_exception(self)


class ConfigError(GWSOutboundError, ValueError):
    """A configuration value is missing or invalid."""


class InvalidOperationRequest(GWSOutboundError, ValueError):
    """A request failed validation. Nothing was sent to GWS.

    The message reads ``invalid <operationName> request: <field>: <problem>; ...``.

    :ivar errors: one entry per bad field, ``{field name: what is wrong}``, with the field named
        as the caller named it (snake_case for the constructor, GWS camelCase for ``from_bus``).
    :ivar operation: the GWS ``operationName`` of the request, or ``None`` when it could not
        be told (a bus event without a known ``operationName``).
    """

    _label: str | None = None

    def __init__(self, errors: Mapping[str, str], *, operation: str | None = None) -> None:
        self.errors: dict[str, str] = dict(errors)
        self.operation = operation
        detail = "; ".join(f"{name}: {problem}" for name, problem in self.errors.items())
        label = self._label or operation or "operation"
        super().__init__(f"invalid {label} request: {detail}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the bad fields, in the order they were checked."""
        return tuple(self.errors)


class InvalidCancelRequest(InvalidOperationRequest):
    """A cancel request failed validation. Nothing was sent to GWS.

    The message reads ``invalid cancel request: <field>: <problem>; ...``.

    :ivar errors: one entry per bad field, ``{field name: what is wrong}``, with the field named
        as the caller named it (snake_case for the constructor, GWS camelCase for ``from_bus``).
    """

    _label = "cancel"

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(errors, operation="CancelRecord")


class NotRunningError(GWSOutboundError, RuntimeError):
    """The plugin was used outside its ``async with`` block (not started, or closed)."""


class PluginLoadError(GWSOutboundError):
    """A plugin announced under the ``gws_outbound`` entry-point group failed to import or to
    validate, and the host asked for strict loading. ``.plugin_name`` names it."""

    def __init__(self, plugin_name: str, problem: str) -> None:
        self.plugin_name = plugin_name
        super().__init__(f"plugin {plugin_name!r} failed to load: {problem}")


class OperationFailed(GWSOutboundError):
    """An accepted operation ended in failure; ``.failure`` is the :class:`OperationFailure`
    (a :class:`CancelFailure` for a cancel: both have ``operation``, ``request``, ``reason``,
    ``status_code``, ``error_number``, ``message``, ``user_data`` and ``describe()``)."""

    def __init__(self, failure: OperationFailure | CancelFailure) -> None:
        self.failure: OperationFailure | CancelFailure = failure
        super().__init__(failure.describe())


class CancelFailed(OperationFailed):
    """An accepted cancel ended in failure; ``.failure`` is the :class:`CancelFailure`."""

    def __init__(self, failure: CancelFailure) -> None:
        super().__init__(failure)
        self.failure: CancelFailure = failure


class GWSError(GWSOutboundError):
    """A request to GWS failed."""


class GWSAuthenticationError(GWSError):
    """GWS refused the credentials (HTTP 401 or ``statusCode`` 20), even after logging in again."""


class GWSStatusError(GWSError):
    """GWS answered with a ``statusCode`` other than 0.

    :ivar status_code: the GWS ``statusCode``.
    :ivar status_message: the GWS ``statusMessage`` (may be empty).
    """

    def __init__(self, status_code: int, status_message: str, *, http_status: int = 200) -> None:
        self.status_code = status_code
        self.status_message = status_message
        self.http_status = http_status
        super().__init__(f"GWS statusCode {status_code}: {status_message or '(no message)'}")


class GWSTransportError(GWSError):
    """No usable answer from GWS: connection error, timeout or HTTP 5xx, after the retries."""
