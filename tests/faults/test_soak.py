"""Soak: thousands of requests at concurrency 50 with faults from the matrix injected at random.

Half the requests are cancels; the other half are the other record operations (reject,
complete, do-not-call, update, reschedule, chained records), drawn at random: every one must
end in exactly one ``on_operation_*`` outcome, and every cancel also in exactly one cancel hook.

``make test`` runs a short soak (:data:`SHORT_CANCELS`); ``make soak`` runs 5,000 cancels::

    .venv/bin/python -m pytest tests/faults/test_soak.py -m soak --soak-cancels=5000 -s

The report (printed, and written as JSON to ``--soak-report``, by default
``build/soak-report.json`` for a ``--soak-cancels`` run) gives requests, acknowledgements,
failures by reason, lost (requests with no outcome hook), duplicated (outcome hooks beyond one
per request), the faults injected and RSS: peak, after warm-up, final and its trend. The run
fails when anything is lost or duplicated, when an acknowledgement of ours is taken for a
foreign one, or when RSS keeps growing after warm-up.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import pluggy
import psutil
import pytest
import structlog

from gws_outbound_plugin import (
    CallbackType,
    CancelFailure,
    CancelRequest,
    CompleteRecordRequest,
    DoNotCallRecordRequest,
    GetChainedRecordRequest,
    OperationAck,
    OperationFailed,
    OperationFailure,
    OperationTicket,
    OutboundPlugin,
    PhoneType,
    RecordCancelAck,
    RejectRecordRequest,
    RescheduleRecordRequest,
    UpdateRecordRequest,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin.simulator import GWSSimulator, SeedRecord
from tests.faults.conftest import fast_config
from tests.helpers import AGENT, PASSWORD

pytestmark = [pytest.mark.anyio, pytest.mark.soak]

SHORT_CANCELS: Final = 400
FAULT_RATE: Final = 0.05
WARM_UP: Final = 0.2  # share of the run before RSS is taken as the baseline
SEED: Final = 20240611
# RSS may not grow more than this after warm-up (allocator noise and bounded caches
# filling up stay well below it; a per-request leak of 2 KiB over 4,000 cancels does not).
RSS_GROWTH_LIMIT_MB: Final = 8.0
APPLICATION, CAMPAIGN, CALLING_LIST = 134, "SoakCampaign", "SoakList"


def belongs(ack: OperationAck) -> bool:
    """Whether an acknowledgement carries its own request's reference id and record (what
    arrived, not what the request said: the outbound ``record`` and the user event)."""
    request = ack.request
    if ack.reference_id != request.reference_id:
        return False
    handle = getattr(request, "record_handle", None)
    if handle is None or ack.operation == "GetChainedRecord":
        return True
    echoed = {ack.record.get("recordHandle"), ack.user_data.get("GSW_RECORD_HANDLE")} - {None}
    return echoed <= {handle}


@dataclass
class OutcomeCounter:
    """A plugin counting outcome hooks per referenceId (keeps no payloads): the generic
    ``on_operation_*`` hooks for every request, the cancel hooks for cancels."""

    per_reference: collections.Counter[str] = field(default_factory=collections.Counter)
    cancel_hooks: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    operations: collections.Counter[str] = field(default_factory=collections.Counter)
    acks: int = 0
    foreign_acks: int = 0
    misattributed: int = 0
    user_events: int = 0

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        if ack.request is None:
            self.foreign_acks += 1
            return
        if not belongs(ack):
            self.misattributed += 1
        self.acks += 1
        self.operations[ack.operation] += 1
        self.per_reference[ack.request.reference_id] += 1

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        self.reasons[failure.reason.value] += 1
        self.operations[failure.operation] += 1
        self.per_reference[failure.request.reference_id] += 1

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        if ack.request is not None:
            self.cancel_hooks[ack.request.reference_id] += 1

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self.cancel_hooks[failure.request.reference_id] += 1

    @hookimpl
    def on_user_event(self) -> None:
        self.user_events += 1


@dataclass
class LogCounter:
    """A structlog processor that counts events by name and drops them (5,000 cancels would
    otherwise print tens of thousands of lines, and pytest would keep them in memory)."""

    events: collections.Counter[str] = field(default_factory=collections.Counter)

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> Any:
        self.events[str(event_dict.get("event"))] += 1
        raise structlog.DropEvent


def fault_menu(
    sim: GWSSimulator, ack_timeout: float, request_timeout: float
) -> list[tuple[str, Callable[[], None]]]:
    """Per-request faults of the matrix: each arms a rule for the next matching request."""
    faults = sim.faults
    status_codes = [(f"status_code({c})", lambda c=c: faults.status_code(c)) for c in range(1, 20)]
    return [
        *random.Random(SEED).sample(status_codes, 4),
        ("status_code(20) once", lambda: faults.status_code(20)),
        ("http_error(500)", lambda: faults.http_error(500)),
        ("http_error(503) x3", lambda: faults.http_error(503, count=3)),
        ("reset_connection", lambda: faults.reset_connection()),
        ("slow_answer", lambda: faults.slow_answer(request_timeout + 0.3)),
        ("expire_session", lambda: faults.expire_session()),
        ("ocs_error", lambda: faults.ocs_error(number=217, message="Soak OCS error")),
        ("drop both", lambda: faults.drop_notifications("both")),
        ("drop outbound", lambda: faults.drop_notifications("outbound")),
        ("drop user_event", lambda: faults.drop_notifications("user_event")),
        ("duplicate x3", lambda: faults.duplicate_notifications(times=3)),
        ("reverse", lambda: faults.reverse_notifications()),
        ("delay", lambda: faults.delay_notifications(ack_timeout / 4)),
        ("delay past ack_timeout", lambda: faults.delay_notifications(ack_timeout + 0.5)),
    ]


#: The record operations mixed into the soak besides cancels (a record is touched once).
OPERATIONS: Final[tuple[Callable[[int, str], Any], ...]] = (
    lambda handle, device: RejectRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        calling_list=CALLING_LIST,
        device_path=device,
    ),
    lambda handle, device: CompleteRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        calling_list=CALLING_LIST,
        device_path=device,
        call_result="Answer",
    ),
    lambda handle, device: DoNotCallRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        calling_list=CALLING_LIST,
        device_path=device,
    ),
    lambda handle, device: UpdateRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        device_path=device,
        phone_type=PhoneType.MOBILE,
    ),
    lambda handle, device: RescheduleRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        device_path=device,
        callback_type=CallbackType.CAMPAIGN,
        scheduled_time=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
    ),
    lambda handle, device: GetChainedRecordRequest(
        record_handle=handle,
        application_id=APPLICATION,
        campaign_name=CAMPAIGN,
        device_path=device,
    ),
)


def make_request(rng: random.Random, handle: int, device_path: str) -> Any:
    """A cancel half the time, else one of the other record operations."""
    if rng.random() < 0.5:
        return CancelRequest(
            record_handle=handle,
            application_id=APPLICATION,
            campaign_name=CAMPAIGN,
            calling_list=CALLING_LIST,
            device_path=device_path,
            phone_number=str(5_550_000 + handle),
        )
    return rng.choice(OPERATIONS)(handle, device_path)


def rss_mb() -> float:
    rss: int = psutil.Process(os.getpid()).memory_info().rss
    return rss / 2**20


def slope_per_1000(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (MB) per 1,000 cancels."""
    if len(samples) < 2:
        return 0.0
    xs = [x for x, _ in samples]
    ys = [y for _, y in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return cov / var * 1000


@pytest.fixture
def quiet_structlog() -> Iterator[LogCounter]:
    previous = structlog.get_config()
    counter = LogCounter()
    structlog.configure(processors=[counter])
    try:
        yield counter
    finally:
        structlog.configure(**previous)


async def test_soak(
    request: pytest.FixtureRequest, tmp_path: Path, quiet_structlog: LogCounter
) -> None:
    requested = request.config.getoption("soak_cancels", default=None)
    cancels: int = requested or SHORT_CANCELS
    concurrency: int = request.config.getoption("soak_concurrency", default=50) or 50
    report_option = request.config.getoption("soak_report", default=None)
    if report_option:
        report_path = Path(report_option)
    elif requested:
        report_path = Path("build") / "soak-report.json"  # build/ is git-ignored
    else:
        report_path = tmp_path / "soak-report.json"

    rng = random.Random(SEED)
    records = [
        SeedRecord(
            record_handle=handle,
            application_id=APPLICATION,
            campaign_name=CAMPAIGN,
            calling_list=CALLING_LIST,
            phone_number=str(5_550_000 + handle),
            chain_id=handle,
        )
        for handle in range(1, cancels + 1)
    ]
    counter = OutcomeCounter()
    pm: pluggy.PluginManager = make_plugin_manager(load_entrypoints=False)
    pm.register(counter, name="soak-counter")
    injected: collections.Counter[str] = collections.Counter()
    tickets_resolved = {"ack": 0, "failed": 0}
    slow_tickets: list[OperationTicket] = []  # no outcome within the generous bound below
    cancel_references: set[str] = set()
    samples: list[tuple[int, float]] = []
    peak = rss_mb()
    done = 0
    sessionwide_at = {
        int(cancels * 0.35): "forget_cometd_clients",
        int(cancels * 0.7): "expire_sessions",
    }

    async with GWSSimulator(users={AGENT: PASSWORD}, records=records, connect_timeout=5.0) as sim:
        config = fast_config(
            sim.base_url, ack_timeout=2.0, request_timeout=1.0, drain_timeout=3.0, hook_timeout=1.0
        )
        menu = fault_menu(sim, config.ack_timeout, config.request_timeout)
        async with OutboundPlugin(pm, config) as plugin:
            device_path = sim.device_path(AGENT)
            handles = iter(range(1, cancels + 1))
            started = time.monotonic()

            async def host() -> None:
                nonlocal done, peak
                for handle in handles:
                    if rng.random() < FAULT_RATE:
                        name, arm = rng.choice(menu)
                        arm()
                        injected[name] += 1
                    if handle in sessionwide_at:
                        name = sessionwide_at[handle]
                        getattr(sim, name)()
                        injected[name] += 1
                    operation = make_request(rng, handle, device_path)
                    if isinstance(operation, CancelRequest):
                        cancel_references.add(operation.reference_id)
                    ticket = plugin.submit(operation)
                    try:
                        with anyio.fail_after(config.ack_timeout + 3 * config.request_timeout + 10):
                            await ticket
                        tickets_resolved["ack"] += 1
                    except OperationFailed:
                        tickets_resolved["failed"] += 1
                    except TimeoutError:
                        slow_tickets.append(ticket)
                    done += 1
                    if done % max(cancels // 40, 1) == 0:
                        sim.clear_recorded()  # the simulator's own request log is not ours
                        current = rss_mb()
                        peak = max(peak, current)
                        samples.append((done, current))

            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(host)
            elapsed = time.monotonic() - started
            await anyio.sleep(config.ack_timeout)  # stragglers: late and duplicated messages
            stats = dict(plugin.stats)
            pending_at_end = plugin.pending_count
    for ticket in slow_tickets:  # resolved late (an overloaded host): count them now
        if ticket.done():
            tickets_resolved[
                "ack" if isinstance(ticket.outcome, RecordCancelAck | OperationAck) else "failed"
            ] += 1
    unresolved = sum(1 for ticket in slow_tickets if not ticket.done())
    final = rss_mb()
    peak = max(peak, final)

    lost = cancels - len(counter.per_reference)
    duplicated = sum(count - 1 for count in counter.per_reference.values() if count > 1)
    cancel_hooks_wrong = sum(
        1 for reference in cancel_references if counter.cancel_hooks[reference] != 1
    ) + sum(1 for reference in counter.cancel_hooks if reference not in cancel_references)
    warm = [s for s in samples if s[0] >= cancels * WARM_UP]
    baseline = warm[0][1] if warm else final
    growth = final - baseline
    second_half = warm[len(warm) // 2 :]
    report: dict[str, Any] = {
        "command": "python -m pytest tests/faults/test_soak.py -m soak "
        f"--soak-cancels={cancels} --soak-concurrency={concurrency}",
        "cancels": cancels,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "cancels_per_second": round(cancels / elapsed, 1),
        "requests": stats["accepted"],
        "acks": counter.acks,
        "failures_by_reason": dict(sorted(counter.reasons.items())),
        "failures": sum(counter.reasons.values()),
        "requests_by_operation": dict(sorted(counter.operations.items())),
        "cancel_hooks_wrong": cancel_hooks_wrong,
        "lost": lost,
        "duplicated": duplicated,
        "tickets_slow": len(slow_tickets),
        "tickets_unresolved": unresolved,
        "foreign_acks": counter.foreign_acks,
        "misattributed": counter.misattributed,
        "user_events": counter.user_events,
        "late_messages_ignored": stats["late"],
        "duplicate_messages_dropped": stats["duplicates"],
        "faults_injected": dict(sorted(injected.items())),
        "faults_total": sum(injected.values()),
        "rss_mb": {
            "peak": round(peak, 1),
            "after_warm_up": round(baseline, 1),
            "final": round(final, 1),
            "growth_after_warm_up": round(growth, 1),
            "trend_mb_per_1000_cancels": round(slope_per_1000(warm), 2),
            "trend_second_half_mb_per_1000_cancels": round(slope_per_1000(second_half), 2),
            "samples": [(n, round(mb, 1)) for n, mb in samples],
        },
        "log_events": dict(quiet_structlog.events.most_common(12)),
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report, report_path)

    assert counter.acks + sum(counter.reasons.values()) == cancels + duplicated
    assert tickets_resolved["ack"] == counter.acks
    assert tickets_resolved["failed"] == sum(counter.reasons.values())
    assert lost == 0 and unresolved == 0, f"{lost} requests without an outcome hook"
    assert duplicated == 0, f"{duplicated} outcomes beyond one per request"
    assert cancel_hooks_wrong == 0, (
        "a cancel without exactly one cancel hook (or a non-cancel with one)"
    )
    assert len(counter.operations) == len(OPERATIONS) + 1, counter.operations
    assert counter.foreign_acks == 0, "an acknowledgement of ours was taken for a foreign one"
    assert counter.misattributed == 0, "an acknowledgement carried another request's answer"
    assert pending_at_end == 0
    assert stats["accepted"] == cancels
    assert sum(injected.values()) >= cancels * FAULT_RATE / 2
    assert growth <= RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.1f} MB after warm-up"


def print_report(report: dict[str, Any], path: Path) -> None:
    rss = report["rss_mb"]
    rows = [
        ("cancels / concurrency", f"{report['cancels']} / {report['concurrency']}"),
        ("duration", f"{report['seconds']} s ({report['cancels_per_second']} cancels/s)"),
        ("requests accepted", report["requests"]),
        ("acks", report["acks"]),
        *((f"requests: {name}", count) for name, count in report["requests_by_operation"].items()),
        *((f"failures: {reason}", count) for reason, count in report["failures_by_reason"].items()),
        ("lost (no outcome)", report["lost"]),
        ("duplicated (outcomes beyond one)", report["duplicated"]),
        ("foreign acks", report["foreign_acks"]),
        ("misattributed (another request's answer)", report["misattributed"]),
        ("late messages ignored", report["late_messages_ignored"]),
        ("duplicate messages dropped", report["duplicate_messages_dropped"]),
        ("faults injected", report["faults_total"]),
        ("peak RSS", f"{rss['peak']} MB"),
        ("RSS after warm-up", f"{rss['after_warm_up']} MB"),
        ("final RSS", f"{rss['final']} MB"),
        (
            "RSS trend after warm-up",
            f"{rss['growth_after_warm_up']:+} MB "
            f"({rss['trend_mb_per_1000_cancels']:+} MB / 1000 cancels)",
        ),
    ]
    width = max(len(str(name)) for name, _ in rows)
    print(f"\n== gws_outbound soak ({report['command']}) ==")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("  faults: " + ", ".join(f"{k} {v}" for k, v in report["faults_injected"].items()))
    print(f"  report written to {path}")
