"""What every part of the command line shares: exit statuses, the program name, usage errors and
the output context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Final, TextIO

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

PROG: Final = "gws-outbound"
# Stand-in device path used to validate the other fields before GWS tells us the real one.
_PLACEHOLDER_DEVICE: Final = "/devices/placeholder"
_PLUGIN_CLOSE_TIMEOUT: Final = 5.0
#: How long outcomes are awaited before a progress line appears (terminals only).
_PROGRESS_AFTER: Final = 0.3
_PROGRESS_EVERY: Final = 0.25
#: Width of the wrapped command descriptions in --help.
_HELP_WIDTH: Final = 88

_ENVIRONMENT_HELP = """\
configuration (every command that talks to GWS) comes from the environment:
  GWS_BASE_URL       the GWS node, e.g. https://gws.example.com (or --base-url)
  GWS_USERNAME       the agent's user name
  GWS_PASSWORD       the agent's password; when unset you are prompted on the terminal,
                     also when stdin is piped (it is never taken from the command line)
  GWS_ACK_TIMEOUT, GWS_REQUEST_TIMEOUT, GWS_VERIFY_TLS, ... any other GWSConfig field
plugins (loaded by the operation commands, 'plugins' and 'tail --plugins') come from the
'gws_outbound' entry-point group:
  GWS_OUTBOUND_PLUGINS           comma-separated names to load (default: all)
  GWS_OUTBOUND_DISABLE_PLUGINS   comma-separated names never to load

exit status: 0 success (operations: every request acknowledged), 1 failure (operations:
a request failed or an input line was invalid; GWS unreachable or credentials refused;
plugins: a plugin failed to load), 2 usage or configuration error, 130 interrupted
(Ctrl-C)."""


class _UsageError(Exception):
    """A problem with the command line or the configuration: exit status 2."""


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) before anything was sent: exit status 130, one line on stderr."""


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Context:
    def __init__(self, stdout: TextIO, stderr: TextIO, stdin: TextIO, environ: Mapping[str, str]):
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.environ = environ
        self.prog = PROG
        """``gws-outbound <command>``: the prefix of every diagnostic line (as argparse's)."""

    def out(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, text: str) -> None:
        """One diagnostic line: ``gws-outbound <command>: error: <text>``."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.err(f"{self.prog}: error: {text}")

    def note(self, text: str) -> None:
        """One informative line on stderr: ``gws-outbound <command>: <text>``."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.err(f"{self.prog}: {text}")
