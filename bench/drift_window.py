"""RSS drift with a short outcome bound: tells ``late_window`` filling up from a leak.

``python -m bench.drift_window [ACK_TIMEOUT [REQUEST_TIMEOUT]]`` (default 2 and 2 seconds, an
outcome bound of about 13 s) runs the memory section's drift job (50,000 cancels at
concurrency 10, RSS every 5,000) for the plugin alone, on the bench's simulator process, and
prints its result as JSON. With the default settings the plugin keeps what it knows of each
finished request for about 71 s, so a fast run ends before that window is full; with a short
one the curve shows whether anything else grows.
"""

from __future__ import annotations

import json
import sys

from bench._sim import SimulatorProcess
from bench._worker import run_job


def main(argv: list[str]) -> int:
    ack_timeout = float(argv[0]) if argv else 2.0
    request_timeout = float(argv[1]) if len(argv) > 1 else 2.0
    with SimulatorProcess(("mem-plugin",), 2 * 50_200) as sim:
        result = run_job(
            {
                "section": "drift",
                "kind": "plugin",
                "base_url": sim.base_url,
                "user": "mem-plugin",
                "first_handle": 1,
                "count": 50_100,
                "low": 10_000,
                "high": 50_000,
                "step": 5_000,
                "plugin_config": {"ack_timeout": ack_timeout, "request_timeout": request_timeout},
            }
        )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
