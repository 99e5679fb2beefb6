"""Shared pieces: logging set-up, records, handle ranges, statistics, process figures."""

from __future__ import annotations

import gc
import json
import logging
import math
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import structlog

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"

# Every benchmark record belongs to this application / campaign / calling list.
APPLICATION_ID = 700
CAMPAIGN = "BenchCampaign"
CALLING_LIST = "BenchList"
PASSWORD = "bench-pw"
OUTBOUND_CHANNEL = "/v2/me/outbound"
USER_EVENT_CHANNEL = "/me/internal"


def configure_logging() -> None:
    """Configure logging the way a host would: structlog at WARNING, to stderr.

    The library logs one debug line per cancel; filtering at WARNING makes those calls
    near no-ops, so both sides do comparable work. The CometD client's own (stdlib) logger
    is quietened too: it reports every clean close of the raw baseline as an error.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("aiocometd_noloop").setLevel(logging.CRITICAL)


class Handles:
    """Hands out record handles from a range seeded in the simulator, each once."""

    def __init__(self, first: int, count: int) -> None:
        self._next = first
        self._end = first + count

    def take(self) -> int:
        handle = self._next
        if handle >= self._end:
            raise RuntimeError("the benchmark ran out of seeded records; raise the count")
        self._next += 1
        return handle

    def block(self, count: int) -> tuple[int, int]:
        """Reserve ``count`` consecutive handles; return (first, count)."""
        first = self._next
        if first + count > self._end:
            raise RuntimeError("the benchmark ran out of seeded records; raise the count")
        self._next += count
        return first, count

    def __iter__(self) -> Iterator[int]:
        while self._next < self._end:
            yield self.take()


def write_records(path: Path, count: int, first: int = 1) -> None:
    """A ``--records`` file with ``count`` distinct records (one chain each)."""
    records = [
        {
            "recordHandle": handle,
            "applicationId": APPLICATION_ID,
            "campaignName": CAMPAIGN,
            "callingList": CALLING_LIST,
            "phoneNumber": f"555{handle:07d}",
            "chainId": handle,
        }
        for handle in range(first, first + count)
    ]
    path.write_text(json.dumps(records), encoding="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile (inclusive method); NaN for fewer than two values."""
    if len(values) < 2:
        return math.nan, math.nan
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def rss_bytes() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def socket_count() -> int:
    """Open TCP sockets of this process."""
    process = psutil.Process()
    try:
        connections = process.net_connections(kind="tcp")
    except AttributeError:  # psutil < 6
        connections = process.connections(kind="tcp")
    return len(connections)


MB = 1024 * 1024
