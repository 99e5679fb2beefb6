"""Benchmarks: the plugin's cost against the raw stack it is built on, measured in one run.

``python -m bench`` (or ``make bench``) starts the GWS simulator in its own process on
loopback, runs every section with the plugin and a raw baseline (httpx + aiocometd-noloop
only) side by side, prints a table and writes ``bench/results/latest.json``.
See ``BENCHMARKS.md`` for the method and the latest results.
"""
