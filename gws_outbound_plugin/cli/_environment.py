"""The process's setup: structlog's output (the CLI is an application: it may configure it) and the
GWS configuration, with the password prompt.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog

from .._config import _REQUIRED, GWSConfig, _keywords_hint
from .._exceptions import ConfigError
from ._common import _Interrupted, _isatty, _UsageError


def _without_keywords_hint(message: str) -> str:
    """``from_env()``'s message without the keywords it suggests for missing variables: the
    CLI's user sets variables and options, from_env()'s keywords are not theirs."""
    for size in range(len(_REQUIRED), 0, -1):
        for missing in itertools.combinations(_REQUIRED, size):
            message = message.replace(_keywords_hint(missing), "")
    return message


def _drop_event(_logger: Any, _method: str, _event: Any) -> Any:
    """The only processor when no log level was asked for: every event is dropped."""
    raise structlog.DropEvent


def configure_logging(level: str | None, *, json_logs: bool, stream: TextIO | None = None) -> None:
    """Send structlog's output to stderr (the CLI is an application: it may configure it).

    ``level=None``: no log line at all. By default the CLI prints one line per outcome or
    error itself (with the detail that matters), and logs only when a level is asked for.
    """
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
    ]
    if level is None:
        processors = [_drop_event]
    elif json_logs:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.CRITICAL if level is None else getattr(logging, level.upper())
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def load_config(
    environ: Mapping[str, str],
    *,
    stdin: TextIO,
    prompt: Callable[[str], str] = getpass.getpass,
    base_url: str | None = None,
    has_terminal: Callable[[], bool] | None = None,
) -> GWSConfig:
    """``GWSConfig.from_env`` (``base_url`` overrides ``GWS_BASE_URL``), prompting for the
    password when it is missing and there is a terminal: stdin, or the process's controlling
    terminal when stdin is piped (``getpass`` then reads ``/dev/tty``, as ``ssh`` and
    ``sudo`` do).

    Called before the event loop starts, so Ctrl-C at the prompt interrupts it at once.
    """
    overrides: dict[str, Any] = {}
    if base_url is not None:
        overrides["base_url"] = base_url
    terminal = _isatty(stdin) or (has_terminal or _has_controlling_terminal)()
    if not environ.get("GWS_PASSWORD") and environ.get("GWS_USERNAME") and terminal:
        try:
            password = prompt(f"GWS password for {environ['GWS_USERNAME']}: ")
        except EOFError:
            raise _UsageError("no password given (end of input at the prompt)") from None
        except KeyboardInterrupt:
            raise _Interrupted("interrupted at the password prompt; nothing was sent") from None
        if not password:
            raise _UsageError("no password given")
        overrides["password"] = password
    try:
        return GWSConfig.from_env(environ, **overrides)
    except ConfigError as error:
        message = _without_keywords_hint(str(error))
        hint = ""
        if "GWS_PASSWORD" in message and not environ.get("GWS_USERNAME") and terminal:
            # The prompt needs the user name: asking for a password alone would be wrong.
            hint = " (set GWS_USERNAME: the password is then asked for on the terminal)"
        elif "GWS_PASSWORD" in message:
            hint = (
                " (set GWS_PASSWORD in the environment: there is no terminal to prompt on, "
                'e.g. GWS_PASSWORD="$(cat ~/.gws-password)" gws-outbound ...)'
            )
        if re.search(r"\bmissing (?:[A-Z_]+, )*GWS_BASE_URL\b", message):
            hint += (
                "; give the GWS node as GWS_BASE_URL or --base-url URL (e.g. "
                "--base-url http://127.0.0.1:8090 for `gws-outbound simulate`)"
            )
        raise _UsageError(f"{message}{hint}") from None


def _has_controlling_terminal() -> bool:
    """Whether the process has a controlling terminal to prompt on (``/dev/tty``)."""
    if os.name != "posix":
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True
