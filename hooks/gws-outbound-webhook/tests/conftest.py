pytest_plugins = ["gws_outbound_plugin.testing"]
