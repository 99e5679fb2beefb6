"""``gws-outbound``'s entry point, as the console script names it
(``gws_outbound_plugin._cli:main``): the command line is the package
:mod:`gws_outbound_plugin.cli`."""

from .cli import main

__all__ = ["main"]
