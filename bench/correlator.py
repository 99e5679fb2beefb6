"""The pure correlator's CPU per cancel: accept, sending, posted and both CometD messages.

    python -m bench.correlator            # CPU time per cancel, the least of 7 runs
    python -m bench.correlator --profile  # and a cProfile listing

No event loop, no I/O: only the correlator (its parsing, fingerprints, matching, outcomes).
Not part of ``make bench``; a profiling aid, like ``bench.overhead``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench._common import APPLICATION_ID, CALLING_LIST, CAMPAIGN
from bench.overhead import notifications
from gws_outbound_plugin import CancelRequest
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import Limits, PostResult

DEVICE_PATH = "/devices/bench-1"


def run(count: int, first: int) -> float:
    """CPU microseconds per cancel for ``count`` cancels of handles from ``first`` on."""
    correlator = Correlator(Limits(deadline=60.0))
    requests = []
    for handle in range(first, first + count):
        request = CancelRequest(
            record_handle=handle,
            application_id=APPLICATION_ID,
            campaign_name=CAMPAIGN,
            calling_list=CALLING_LIST,
            device_path=DEVICE_PATH,
            reference_id=f"bench-{handle}",
        )
        body = {
            "referenceId": request.reference_id,
            "callingList": CALLING_LIST,
            "applicationId": APPLICATION_ID,
            "campaignName": CAMPAIGN,
        }
        requests.append((request, notifications(handle, body)))
    started = time.process_time()
    for request, (outbound, user_event) in requests:
        token, _ = correlator.accept(request)
        correlator.sending(token)
        correlator.posted(token, PostResult.ACCEPTED)
        correlator.message(outbound)
        correlator.message(user_event)
    return (time.process_time() - started) / count * 1e6


def main(count: int, runs: int, profile: bool) -> None:
    run(1000, 1)
    best = min(run(count, 1_000_000 * index) for index in range(1, runs + 1))
    print(f"correlator CPU per cancel (least of {runs} runs of {count:,}): {best:.1f} us")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(count, 100_000_000)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.correlator", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="cancels per run")
    parser.add_argument("--runs", type=int, default=7, help="runs (the least is reported)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    arguments = parser.parse_args()
    main(arguments.count, arguments.runs, arguments.profile)
