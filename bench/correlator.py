"""The pure correlator's CPU per cancel: accept, sending, posted and both CometD messages.

    python -m bench.correlator            # CPU time per cancel, the least of 7 runs
    python -m bench.correlator --profile  # and a cProfile listing
    python -m bench.correlator --sweep 20000,80000  # the sweep that forgets N cancels' facts

No event loop, no I/O: only the correlator (its parsing, fingerprints, matching, outcomes).
Not part of ``make bench``; a profiling aid, like ``bench.overhead``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

from bench._common import APPLICATION_ID, CALLING_LIST, CAMPAIGN
from bench.overhead import notifications
from gws_outbound_plugin import CancelRequest
from gws_outbound_plugin._correlator import Correlator
from gws_outbound_plugin._effects import Limits, PostResult
from gws_outbound_plugin._recent import SWEEPS

Message = dict[str, Any]

DEVICE_PATH = "/devices/bench-1"


def _cancels(count: int, first: int) -> list[tuple[CancelRequest, tuple[Message, Message]]]:
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
    return requests


def _answer(
    correlator: Correlator, requests: list[tuple[CancelRequest, tuple[Message, Message]]]
) -> None:
    for request, (outbound, user_event) in requests:
        token, _ = correlator.accept(request)
        correlator.sending(token)
        correlator.posted(token, PostResult.ACCEPTED)
        correlator.message(outbound)
        correlator.message(user_event)


def run(count: int, first: int) -> float:
    """CPU microseconds per cancel for ``count`` cancels of handles from ``first`` on."""
    correlator = Correlator(Limits(deadline=60.0))
    requests = _cancels(count, first)
    started = time.process_time()
    _answer(correlator, requests)
    return (time.process_time() - started) / count * 1e6


def sweep_ms(count: int) -> float:
    """CPU milliseconds of the one sweep that forgets what ``count`` finished cancels left
    (their reference ids and their answers' fingerprints, all from one generation)."""
    correlator = Correlator(Limits(deadline=60.0))
    _answer(correlator, _cancels(count, 1))
    for _ in range(SWEEPS):
        correlator.timer_expired(("sweep",))
    started = time.process_time()
    correlator.timer_expired(("sweep",))  # the generation of those facts ends now
    elapsed = time.process_time() - started
    if correlator.state_sizes()["reserved"]:
        raise RuntimeError("the sweep kept facts it should have dropped")
    return elapsed * 1000


def main(count: int, runs: int, profile: bool, sweeps: list[int]) -> None:
    for facts in sweeps:
        print(f"late-window sweep forgetting {facts:,} cancels: {sweep_ms(facts):.1f} ms CPU")
    if sweeps:
        return
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
    parser.add_argument(
        "--sweep",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        metavar="N[,N...]",
        help="instead, time the late-window sweep that forgets N finished cancels",
    )
    arguments = parser.parse_args()
    main(arguments.count, arguments.runs, arguments.profile, arguments.sweep)
