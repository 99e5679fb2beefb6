"""``python -m bench``: every section, one table, one JSON file."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _e2e, _fanout, _report, _sessions
from bench._common import RESULTS_DIR, Handles, configure_logging
from bench._sim import SimulatorProcess
from bench._worker import run_job
from bench.correlator import sweep_ms
from gws_outbound_plugin import GWSConfig, OutboundPlugin, make_plugin_manager

SECTIONS = ("e2e", "fanout", "memory", "startup", "sessions")
SESSION_SIZES = (1, 10, 100, 1000)


@dataclass
class Plan:
    """How much work each section does (``--quick`` shrinks it for iteration)."""

    # concurrency -> (cancels per run, A/B pairs); concurrency 100 swings most between runs
    e2e_counts: dict[int, tuple[int, int]] = field(
        default_factory=lambda: {1: (150, 10), 10: (300, 10), 100: (300, 12)}
    )
    e2e_warmup: int = 100
    fanout_repeats: int = 21
    fanout_budget: float = 0.02
    pending: int = 10_000
    drift_low: int = 10_000
    drift_high: int = 50_000
    drift_step: int = 5_000
    drift_settle: bool = True  # also the drift over drift_span cancels once late_window is full
    drift_span: int = 40_000
    startup_repeats: int = 7
    session_latency_samples: int = 200
    session_idle_seconds: float = 2.0


QUICK = Plan(
    e2e_counts={1: (100, 3), 10: (200, 3), 100: (300, 3)},
    e2e_warmup=50,
    fanout_repeats=5,
    fanout_budget=0.01,
    pending=2_000,
    drift_low=2_000,
    drift_high=6_000,
    drift_step=1_000,
    drift_settle=False,
    startup_repeats=3,
    session_latency_samples=50,
    session_idle_seconds=1.0,
)


def _say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def run_e2e(plan: Plan) -> dict[str, Any]:
    records = _e2e.records_needed(plan.e2e_counts, plan.e2e_warmup)
    with SimulatorProcess(_e2e.USERS, records) as sim:
        return asyncio.run(_e2e.run(sim, Handles(1, records), plan.e2e_counts, plan.e2e_warmup))


def run_fanout(plan: Plan) -> dict[str, Any]:
    return asyncio.run(_fanout.run(plan.fanout_repeats, plan.fanout_budget))


def drift_settle_seconds() -> float:
    """1.5 times the default outcome bound: the facts a finished request leaves live up to
    1.25 times that (``late_window``), and the sweep that drops them runs every quarter."""
    plugin = OutboundPlugin(
        make_plugin_manager(load_entrypoints=False),
        GWSConfig(base_url="http://127.0.0.1:1", username="u", password="p"),
    )
    return 1.5 * plugin.outcome_bound


def run_memory(plan: Plan) -> dict[str, Any]:
    per_pending = 2 * (plan.pending + 300) + 100
    settle_s = drift_settle_seconds() if plan.drift_settle else None
    per_drift = plan.drift_high + 100
    if settle_s is not None:  # enough records for 2,000 cancels/s until the window is full
        # (the plugin's drift job ran 1,500/s on a quiet machine and ran out at 1,000/s)
        per_drift = max(per_drift, int(settle_s * 2_000) + plan.drift_span + 2 * plan.drift_step)
    records = 2 * (per_pending + per_drift)
    results: dict[str, Any] = {"pending": {}, "drift": {}}
    with SimulatorProcess(("mem-plugin", "mem-raw"), records) as sim:
        first = 1
        for kind in ("plugin", "raw"):
            _say(f"memory: {plan.pending:,} pending, {kind}")
            results["pending"][kind] = run_job(
                {
                    "section": "pending",
                    "kind": kind,
                    "base_url": sim.base_url,
                    "user": f"mem-{kind}",
                    "first_handle": first,
                    "count": per_pending,
                    "pending": plan.pending,
                }
            )
            first += per_pending
        for kind in ("plugin", "raw"):
            _say(f"memory: drift over {plan.drift_high:,} cancels, {kind}")
            results["drift"][kind] = run_job(
                {
                    "section": "drift",
                    "kind": kind,
                    "base_url": sim.base_url,
                    "user": f"mem-{kind}",
                    "first_handle": first,
                    "count": per_drift,
                    "low": plan.drift_low,
                    "high": plan.drift_high,
                    "step": plan.drift_step,
                    "settle_s": settle_s,
                    "span": plan.drift_span,
                }
            )
            first += per_drift
    cancels = 40_000 if plan.drift_settle else 4_000
    _say(f"memory: the late-window sweep of {cancels:,} cancels' facts")
    results["sweep"] = {"cancels": cancels, "ms": min(sweep_ms(cancels) for _ in range(3))}
    return results


def _session_users() -> list[str]:
    return [f"agent{index:03d}" for index in range(max(SESSION_SIZES) + 1)]


def run_startup(plan: Plan) -> dict[str, Any]:
    with SimulatorProcess(["bench-start"], 10) as sim:
        return asyncio.run(_sessions.startup(sim, "bench-start", plan.startup_repeats))


def run_sessions(plan: Plan) -> dict[str, Any]:
    users = _session_users()
    per_job = plan.session_latency_samples + 10
    records = per_job * 2 * len(SESSION_SIZES)
    results: dict[str, Any] = {}
    with SimulatorProcess(users, records) as sim:
        first = 1
        for n in SESSION_SIZES:
            results[str(n)] = {}
            for kind in ("plugin", "raw"):
                _say(f"sessions: {n} x {kind}")
                results[str(n)][kind] = run_job(
                    {
                        "section": "sessions",
                        "kind": kind,
                        "base_url": sim.base_url,
                        "users": users[1 : n + 1],
                        "warm_user": users[0],
                        "first_handle": first,
                        "count": per_job,
                        "latency_samples": plan.session_latency_samples,
                        "idle_seconds": plan.session_idle_seconds,
                    }
                )
                first += per_job
    return results


RUNNERS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "e2e": run_e2e,
    "fanout": run_fanout,
    "memory": run_memory,
    "startup": run_startup,
    "sessions": run_sessions,
}
ROWS: dict[str, Callable[[dict[str, Any]], list[_report.Row]]] = {
    "e2e": _report.rows_e2e,
    "fanout": _report.rows_fanout,
    "memory": _report.rows_memory,
    "startup": _report.rows_startup,
    "sessions": _report.rows_sessions,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The plugin's cost against the raw httpx + aiocometd stack, in one run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="much less work per section (for iterating)"
    )
    parser.add_argument(
        "--only",
        metavar="SECTION[,SECTION...]",
        help=f"run only these sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="where to write the results (default: bench/results/latest.json for a full run, "
        "bench/results/partial.json with --quick or --only)",
    )
    args = parser.parse_args(argv)
    if args.only:
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {SECTIONS}")
        args.sections = [name for name in SECTIONS if name in chosen]
    else:
        args.sections = list(SECTIONS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    plan = QUICK if args.quick else Plan()
    full = not args.quick and not args.only
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "quick": args.quick,
            "sections": args.sections,
            "machine": _report.machine(),
            "plan": plan.__dict__,
            "seconds": {},
        }
    }
    rows: list[_report.Row] = []
    for name in args.sections:
        _say(f"{name}: running")
        section_started = time.perf_counter()
        results[name] = RUNNERS[name](plan)
        seconds = time.perf_counter() - section_started
        results["meta"]["seconds"][name] = round(seconds, 1)
        _say(f"{name}: done in {seconds:.0f} s")
        rows.extend(ROWS[name](results[name]))
    total = time.perf_counter() - started
    results["meta"]["seconds"]["total"] = round(total, 1)
    results["meta"]["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["rows"] = [row.as_dict() for row in rows]
    misses = [row for row in rows if row.status == "MISS"]
    results["summary"] = {
        "checks": sum(1 for row in rows if row.status),
        "misses": [f"{row.section}: {row.figure}" for row in misses],
    }
    path = args.json or RESULTS_DIR / ("latest.json" if full else "partial.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    machine = results["meta"]["machine"]
    print(
        f"gws_outbound_plugin benchmarks: plugin against raw httpx + aiocometd-noloop, "
        f"same run, alternating A/B, medians\n"
        f"{machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; load average {machine['load_average_at_start']} at "
        f"start, {machine['load_average_at_end']} at end\n"
    )
    print(_report.table(rows))
    checks = results["summary"]["checks"]
    print(
        f"\n{checks - len(misses)}/{checks} targets met"
        + (f"; missed: {'; '.join(results['summary']['misses'])}" if misses else "")
        + f". Total {total:.0f} s. Results: {path}"
    )
    return 0
