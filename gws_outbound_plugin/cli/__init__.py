"""``gws-outbound``: the command line of gws_outbound_plugin.

Commands: ``simulate`` (the embedded GWS simulator); the operations on outbound records and
campaigns against the configured GWS, each from options or JSON lines on stdin, on one GWS
session (``cancel``, ``reject``, ``complete``, ``do-not-call``, ``reschedule``, ``update``,
``chained``, ``add-record``, ``preview``, and ``request`` for any operation as raw JSON);
``plugins`` (installed plugins, their hooks and every load failure); ``tail`` (live events);
``new-plugin`` (a plugin project from the template). Results go to stdout, logs, progress and
diagnostics to stderr. The command line is an application entry point, so it is the one place
that configures structlog (``_environment``).

Modules by job: ``_commands`` (the operation commands and how their options are read from the
request field table), ``_parser``, ``_arguments`` (the requests a command line gives),
``_format`` (pure formatters), ``_environment`` (logging and configuration), ``_run`` (the
operation commands' run), ``_lifecycle`` (what ``_run`` and ``_tail`` share), ``_plugins``,
``_tail``, ``_new_plugin`` and ``_main``.
"""

from ._main import main

__all__ = ["main"]
