"""Turning section results into rows (figure, plugin, raw, ratio, target, PASS/MISS)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

import psutil


@dataclass
class Row:
    section: str
    figure: str
    plugin: float
    raw: float | None
    unit: str
    ratio: float | None = None
    target: str = ""
    status: str = ""  # PASS / MISS / "" (informational)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(plugin: float, raw: float | None) -> float | None:
    if raw is None or raw == 0 or math.isnan(raw):
        return None
    return plugin / raw


def _status(ok: bool) -> str:
    return "PASS" if ok else "MISS"


#: Throughput over the naive raw client wanted at each concurrency (issue 19).
E2E_OVER_NAIVE = {"1": 1.05, "10": 1.5, "100": 1.5}
#: ... and over the careful raw client (same libraries and tricks, no plugin layer).
E2E_OVER_CAREFUL = 0.9


def rows_e2e(e2e: dict[str, Any]) -> list[Row]:
    """Each side's median; the ratio is the median of the per-round ratios (see _e2e.run)."""
    rows = []
    for concurrency, entry in e2e.items():
        p, r = entry["plugin"], entry["raw"]
        c = entry.get("careful")
        paired = entry["paired_ratio"]
        section = f"e2e c={concurrency}"
        ratio = paired["cancels_per_s"]["median"]
        wanted = E2E_OVER_NAIVE.get(concurrency, 1.0)
        rows.append(
            Row(
                section,
                "throughput vs naive raw",
                p["cancels_per_s"],
                r["cancels_per_s"],
                "cancels/s",
                ratio,
                f">= {wanted:g}x raw",
                _status(ratio >= wanted),
            )
        )
        if c is not None:
            careful = entry["paired_ratio_careful"]["cancels_per_s"]["median"]
            rows.append(
                Row(
                    section,
                    "throughput vs careful raw",
                    p["cancels_per_s"],
                    c["cancels_per_s"],
                    "cancels/s",
                    careful,
                    f">= {E2E_OVER_CAREFUL:g}x careful",
                    _status(careful >= E2E_OVER_CAREFUL),
                )
            )
        rows.append(
            Row(section, "p50 latency", p["p50_ms"], r["p50_ms"], "ms", paired["p50_ms"]["median"])
        )
        p99 = Row(
            section, "p99 latency", p["p99_ms"], r["p99_ms"], "ms", paired["p99_ms"]["median"]
        )
        if concurrency == "1":
            p99.target = "<= raw + 1 ms"
            p99.status = _status(p["p99_ms"] - r["p99_ms"] <= 1.0)
        rows.append(p99)
        cpu = paired["cpu_us_per_cancel"]["median"]
        rows.append(
            Row(
                section,
                "client CPU per cancel",
                p["cpu_us_per_cancel"],
                r["cpu_us_per_cancel"],
                "us",
                cpu,
                "<= naive raw",
                _status(cpu <= 1.0),
            )
        )
        if c is not None:
            rows.append(
                Row(
                    section,
                    "client CPU vs careful raw",
                    p["cpu_us_per_cancel"],
                    c["cpu_us_per_cancel"],
                    "us",
                    entry["paired_ratio_careful"]["cpu_us_per_cancel"]["median"],
                )
            )
    return rows


def rows_fanout(fanout: dict[str, Any]) -> list[Row]:
    rows = []
    for kind in ("sync", "async"):
        entries = [entry for entry in fanout.values() if entry["kind"] == kind]
        for entry in entries:
            rows.append(
                Row(
                    f"fan-out {kind}",
                    f"{entry['implementations']} impls, per event",
                    entry["isolated_us_per_event"],
                    entry["bare_us_per_event"],
                    "us",
                    entry["ratio"],
                    "<= 2x bare",
                    _status(entry["ratio"] <= 2.0),
                )
            )
        if len(entries) > 1:
            # What each further implementation adds (the slope from fewest to most).
            low, high = entries[0], entries[-1]
            extra = high["implementations"] - low["implementations"]
            plugin = (high["isolated_us_per_event"] - low["isolated_us_per_event"]) / extra
            raw = (high["bare_us_per_event"] - low["bare_us_per_event"]) / extra
            rows.append(
                Row(f"fan-out {kind}", "each further impl", plugin, raw, "us", _ratio(plugin, raw))
            )
    return rows


def rows_memory(memory: dict[str, Any]) -> list[Row]:
    rows = []
    pending = memory.get("pending")
    if pending:
        p, r = pending["plugin"], pending["raw"]
        n = f"{p['pending']:,}"
        rows.append(
            Row(
                "memory",
                f"RSS, {n} pending",
                p["rss_mb"],
                r["rss_mb"],
                "MB",
                _ratio(p["rss_mb"], r["rss_mb"]),
                "< 30 MB",
                _status(p["rss_mb"] < 30),
            )
        )
        rows.append(
            Row(
                "memory",
                f"traced, {n} pending",
                p["traced_mb"],
                r["traced_mb"],
                "MB",
                _ratio(p["traced_mb"], r["traced_mb"]),
                "< 30 MB",
                _status(p["traced_mb"] < 30),
            )
        )
    drift = memory.get("drift")
    if drift:
        p, r = drift["plugin"], drift["raw"]
        full, raw_full = p.get("window_full"), r.get("window_full")
        if full and raw_full:
            rows.append(
                Row(
                    "memory",
                    f"RSS drift over {(full['high'] - full['low']) // 1000}k done, window full",
                    full["drift_pct"],
                    raw_full["drift_pct"],
                    "%",
                    None,
                    "< 5 %",
                    _status(full["drift_pct"] < 5),
                )
            )
        rows.append(
            Row(
                "memory",
                f"RSS drift {p['low'] // 1000}k->{p['high'] // 1000}k done",
                p["drift_pct"],
                r["drift_pct"],
                "%",
                None,
                *(("-", "") if full else ("< 5 %", _status(p["drift_pct"] < 5))),
            )
        )
        rows.append(
            Row(
                "memory",
                f"RSS at {p['high'] // 1000}k done",
                p["rss_high_mb"],
                r["rss_high_mb"],
                "MB",
                _ratio(p["rss_high_mb"], r["rss_high_mb"]),
            )
        )
    sweep = memory.get("sweep")
    if sweep:
        per_thousand = sweep["ms"] / sweep["cancels"] * 1000
        rows.append(
            Row(
                "memory",
                f"late-window sweep, per 1k cancels (of {sweep['cancels'] // 1000}k)",
                per_thousand,
                None,
                "ms",
                None,
                "< 2 ms",
                _status(per_thousand < 2),
            )
        )
    return rows


def rows_startup(startup: dict[str, Any]) -> list[Row]:
    ratio = _ratio(startup["plugin_ms"], startup["raw_ms"])
    return [
        Row(
            "startup",
            "enter -> ready (median)",
            startup["plugin_ms"],
            startup["raw_ms"],
            "ms",
            ratio,
            "< 1000 ms",
            _status(startup["plugin_ms"] < 1000),
        )
    ]


def rows_sessions(sessions: dict[str, Any]) -> list[Row]:
    rows = []
    for n, entry in sessions.items():
        p, r = entry["plugin"], entry["raw"]
        section = f"sessions n={n}"
        rows.append(
            Row(
                section,
                "RSS per idle session",
                p["rss_per_session_mb"],
                r["rss_per_session_mb"],
                "MB",
                _ratio(p["rss_per_session_mb"], r["rss_per_session_mb"]),
                "< 2 MB, <= raw",
                _status(
                    p["rss_per_session_mb"] < 2
                    and p["rss_per_session_mb"] <= r["rss_per_session_mb"]
                ),
            )
        )
        rows.append(
            Row(
                section,
                "sockets per idle session",
                p["sockets_per_session"],
                r["sockets_per_session"],
                "",
                _ratio(p["sockets_per_session"], r["sockets_per_session"]),
                "<= 3",
                _status(p["sockets_per_session"] <= 3),
            )
        )
        startup = Row(
            section,
            "startup of all",
            p["startup_all_ms"],
            r["startup_all_ms"],
            "ms",
            _ratio(p["startup_all_ms"], r["startup_all_ms"]),
        )
        if int(n) >= 100:
            startup.target = "<= 0.5x raw"
            startup.status = _status(p["startup_all_ms"] <= 0.5 * r["startup_all_ms"])
        rows.append(startup)
        rows.append(
            Row(
                section,
                "p50 latency, others idle",
                p["p50_ms"],
                r["p50_ms"],
                "ms",
                _ratio(p["p50_ms"], r["p50_ms"]),
            )
        )
        rows.append(
            Row(
                section,
                "p99 latency, others idle",
                p["p99_ms"],
                r["p99_ms"],
                "ms",
                _ratio(p["p99_ms"], r["p99_ms"]),
            )
        )
    return rows


def _number(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("%",):
        return f"{value:+.1f} %"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def table(rows: list[Row]) -> str:
    header = ("section", "figure", "plugin", "raw", "plugin/raw", "target", "result")
    cells = [
        (
            row.section,
            row.figure,
            _number(row.plugin, row.unit),
            _number(row.raw, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}x",
            row.target or "-",
            row.status or "info",
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *cells]) for i in range(len(header))]
    right = {2, 3, 4}

    def fmt(line: tuple[str, ...]) -> str:
        return "  ".join(
            (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
            for i, cell in enumerate(line)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in cells)])


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| section | figure | plugin | raw | plugin/raw | target | result |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.section} | {row.figure} | {_number(row.plugin, row.unit)} | "
            f"{_number(row.raw, row.unit)} | {ratio} | {row.target or '-'} | "
            f"{row.status or 'info'} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
