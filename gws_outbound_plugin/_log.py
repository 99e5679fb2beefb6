"""The library's loggers: structlog when the host configured it, stdlib ``logging`` otherwise.

structlog's unconfigured default prints every event, debug included, to **stdout**, which mixes
a library's chatter into a host's own output. So the library never logs through an
unconfigured structlog: each call of a :func:`get_logger` logger checks
``structlog.is_configured()`` and

* when the host configured structlog, logs through ``structlog.get_logger(name)`` exactly as
  before (every level, the host's processors, renderer and destination);
* otherwise hands the event to the stdlib logger of the same name (``gws_outbound_plugin.…``),
  as one line ``event key=value …``. The library installs no handler: with no logging
  configuration at all, Python's last-resort handler prints WARNING and above to stderr and
  nothing else; a host that calls ``logging.basicConfig(level=logging.DEBUG)`` (or configures
  the ``gws_outbound_plugin`` logger) gets everything.

The library never configures structlog or stdlib logging itself, and a log call of the
library never raises: a host's processor, handler or filter that raises loses that event only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Final

import structlog

from ._redact import redact_exception

__all__ = ["LibraryLogger", "get_logger"]

_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class LibraryLogger:
    """A logger with structlog's calling convention (``logger.info("event", key=value)``)
    that decides at each call where the event goes (see the module's docstring)."""

    __slots__ = ("_context", "_name", "_stdlib", "_structlog")

    def __init__(self, name: str, context: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = dict(context or {})
        self._structlog: Any = structlog.get_logger(name)
        self._stdlib = logging.getLogger(name)

    def __repr__(self) -> str:
        return f"<LibraryLogger {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    def bind(self, **values: Any) -> LibraryLogger:
        """A logger that adds ``values`` to every event it logs."""
        return LibraryLogger(self._name, {**self._context, **values})

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def msg(self, event: str, **fields: Any) -> None:
        self._log("msg", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    warn = warning

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the exception being handled (``exc_info=True`` unless given)."""
        fields.setdefault("exc_info", True)
        self._log("exception", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._log("critical", event, fields)

    fatal = critical

    def _log(self, method: str, event: str, fields: dict[str, Any]) -> None:
        # A log call never raises: the host's pipeline (a structlog processor, a stdlib
        # handler or filter) is not ours to crash on, and a log call that raised would stop
        # whatever the library was doing (a half-started plugin, a dead CometD listener, an
        # outcome decided and never reported). Not even a ``BaseException`` (pytest's
        # ``fail()`` in a host's test processor): only KeyboardInterrupt and SystemExit.
        try:
            self._emit(method, event, fields)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: S110 - the event is lost, nothing else
            pass

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        if fields.get("exc_info"):
            fields["exc_info"] = _redacted_exc_info(fields["exc_info"])
        if structlog.is_configured():
            target = self._structlog.bind(**self._context) if self._context else self._structlog
            getattr(target, method)(event, **fields)
            return
        level = _LEVELS[method]
        stdlib = self._stdlib
        if not stdlib.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        values = {**self._context, **fields} if self._context else fields
        text = event
        if values:
            text += " " + " ".join(f"{key}={_short(value)}" for key, value in values.items())
        stdlib.log(
            level,
            "%s",
            text,
            exc_info=exc_info,
            stack_info=stack_info,
            extra={"gws_event": event, "gws_fields": values},
            stacklevel=4,
        )


def _redacted_exc_info(exc_info: Any) -> Any:
    """``exc_info`` as given, unless the text of the exception it names holds a secret: then
    the exception with its texts redacted (the traceback and type names unchanged), so that
    neither the host's structlog pipeline nor a stdlib formatter renders the secret."""
    if exc_info is True:
        error = sys.exc_info()[1]
    elif isinstance(exc_info, BaseException):
        error = exc_info
    elif isinstance(exc_info, tuple) and len(exc_info) == 3:
        error = exc_info[1]
    else:
        return exc_info
    if not isinstance(error, BaseException):
        return exc_info
    redacted = redact_exception(error)
    if redacted is error:
        return exc_info
    return (type(redacted), redacted, redacted.__traceback__)


def _short(value: object) -> str:
    text = value if isinstance(value, str) and value and " " not in value else repr(value)
    return text if len(text) <= 500 else text[:497] + "..."


def get_logger(name: str) -> LibraryLogger:
    """The logger of module ``name`` (use ``get_logger(__name__)``).

    Logs through structlog when the application configured structlog, through the stdlib
    logger ``name`` otherwise: an application that configures no logging sees the library's
    warnings and errors on stderr and nothing else.
    """
    return LibraryLogger(name)
