"""``python -m gws_outbound_plugin.simulator``: see :func:`gws_outbound_plugin.simulator.main`."""

from gws_outbound_plugin.simulator import main

if __name__ == "__main__":
    raise SystemExit(main())
