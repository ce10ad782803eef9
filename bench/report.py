"""Medians over repeats, added latency (relay minus direct, same repeat), the table and JSON."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.scenarios import RunRecord
from bench.stats import median

PERCENTILES = ("p50", "p90", "p99")
CPU_COLUMNS = ("relay", "relay2", "accounts", "billing", "ours_total", "postgres", "nats",
               "fake", "loadgen")  # fmt: skip


def _pick(summary: dict[str, Any], metric: str, pct: str) -> float | None:
    values = summary.get(metric)
    return None if not values else float(values[pct])


def _median_of(records: list[RunRecord], metric: str, pct: str) -> float | None:
    found = [v for r in records if (v := _pick(r.summary, metric, pct)) is not None]
    return round(median(found), 3) if found else None


def added(side: list[RunRecord], direct: list[RunRecord], metric: str, pct: str) -> float | None:
    """Median over repeats of (side − direct) for the same repeat number."""
    by_repeat = {r.repeat: r for r in direct}
    deltas = []
    for record in side:
        base = by_repeat.get(record.repeat)
        if base is None:
            continue
        ours, theirs = _pick(record.summary, metric, pct), _pick(base.summary, metric, pct)
        if ours is not None and theirs is not None:
            deltas.append(ours - theirs)
    return round(median(deltas), 3) if deltas else None


def aggregate(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per (scenario, concurrency, side), medians over repeats."""
    groups: dict[tuple[str, int, str], list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[(record.scenario, record.concurrency, record.side)].append(record)
    rows = []
    for (scenario, concurrency, side), runs in groups.items():
        direct = groups.get((scenario, concurrency, "direct"), [])
        row: dict[str, Any] = {
            "scenario": scenario, "concurrency": concurrency, "side": side,
            "repeats": len(runs),
            "rps": round(median([float(r.summary["rps"]) for r in runs]), 1),
            "errors": sum(int(r.summary["errors"]) for r in runs),
            "error_kinds": _error_kinds(runs),
        }  # fmt: skip
        for metric in ("latency_ms", "ttft_ms", "overhead_ms", "chunk_delay_ms",
                       "held_chunk_delay_ms"):  # fmt: skip
            values = {p: _median_of(runs, metric, p) for p in PERCENTILES}
            row[metric] = values if any(v is not None for v in values.values()) else None
        if side != "direct" and direct:
            row["added_latency_ms"] = {p: added(runs, direct, "latency_ms", p)
                                       for p in PERCENTILES}  # fmt: skip
            if runs[0].summary.get("ttft_ms"):
                row["added_ttft_ms"] = {p: added(runs, direct, "ttft_ms", p)
                                        for p in PERCENTILES}  # fmt: skip
        names = {name for r in runs for name in r.cpu_ms_per_request}
        row["cpu_ms_per_request"] = {
            name: round(median([r.cpu_ms_per_request.get(name, 0.0) for r in runs]), 4)
            for name in sorted(names)
        }
        row["peak_rss_mb"] = {
            name: max(r.peak_rss_mb.get(name, 0.0) for r in runs)
            for name in sorted({n for r in runs for n in r.peak_rss_mb})
        }
        rows.append(row)
    return rows


def _error_kinds(runs: list[RunRecord]) -> dict[str, int]:
    kinds: dict[str, int] = defaultdict(int)
    for run in runs:
        for kind, count in run.summary.get("error_kinds", {}).items():
            kinds[kind] += int(count)
    return dict(kinds)


def _fmt(value: float | None, width: int = 7, digits: int = 2) -> str:
    """Right-aligned in `width`; large values drop decimals, and always one leading space."""
    if value is None:
        return f"{'-':>{width}}"
    if abs(value) >= 10 ** (width - digits - 2):
        digits = 0
    text = f"{value:.{digits}f}"
    return f"{text:>{width}}" if len(text) < width else f" {text}"


def _get(row: dict[str, Any], metric: str, pct: str) -> float | None:
    values = row.get(metric)
    return None if not values else values.get(pct)


def table(rows: list[dict[str, Any]]) -> str:
    """The human table: latency/TTFT in ms, CPU in ms per request (= CPU s per 1,000 req)."""
    head = (f"{'scenario':<13}{'conc':>5} {'side':<9}{'rps':>9}{'p50':>8}{'p90':>8}{'p99':>8}"
            f"{'+p50':>8}{'+p99':>8}{'ttft50':>8}{'ttft99':>8}{'+ttft99':>8}{'ovh50':>7}"
            f"{'ovh99':>7}{'err':>6} | cpu ms/req: {'relay':>6}{'acct':>6}{'bill':>6}"
            f"{'ours':>6}{'pg':>6}{'load':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in rows:
        cpu = row["cpu_ms_per_request"]
        relay_cpu = cpu.get("relay", 0.0) + cpu.get("relay2", 0.0)
        lines.append(
            f"{row['scenario']:<13}{row['concurrency']:>5} {row['side']:<9}{row['rps']:>9.1f}"
            f"{_fmt(_get(row, 'latency_ms', 'p50'), 8)}{_fmt(_get(row, 'latency_ms', 'p90'), 8)}"
            f"{_fmt(_get(row, 'latency_ms', 'p99'), 8)}"
            f"{_fmt(_get(row, 'added_latency_ms', 'p50'), 8)}"
            f"{_fmt(_get(row, 'added_latency_ms', 'p99'), 8)}"
            f"{_fmt(_get(row, 'ttft_ms', 'p50'), 8)}{_fmt(_get(row, 'ttft_ms', 'p99'), 8)}"
            f"{_fmt(_get(row, 'added_ttft_ms', 'p99'), 8)}"
            f"{_fmt(_get(row, 'overhead_ms', 'p50'), 7)}{_fmt(_get(row, 'overhead_ms', 'p99'), 7)}"
            f"{row['errors']:>6} |             {_fmt(relay_cpu, 6)}"
            f"{_fmt(cpu.get('accounts'), 6)}{_fmt(cpu.get('billing'), 6)}"
            f"{_fmt(cpu.get('ours_total'), 6)}{_fmt(cpu.get('postgres'), 6)}"
            f"{_fmt(cpu.get('loadgen'), 6)}"
        )  # fmt: skip
        if row["scenario"] == "slow-streams":
            rss = row["peak_rss_mb"]
            lines.append(f"{'':<28}chunk delay p50/p99: "
                         f"{_fmt(_get(row, 'chunk_delay_ms', 'p50'))} /"
                         f"{_fmt(_get(row, 'chunk_delay_ms', 'p99'))} ms, once all open "
                         f"{_fmt(_get(row, 'held_chunk_delay_ms', 'p50'))} /"
                         f"{_fmt(_get(row, 'held_chunk_delay_ms', 'p99'))} ms; peak RSS relay "
                         f"{rss.get('relay', 0.0):.0f} MiB")  # fmt: skip
        if row["error_kinds"]:
            kinds = "; ".join(f"{k} x{v}" for k, v in list(row["error_kinds"].items())[:3])
            lines.append(f"{'':<28}errors: {kinds}")
    return "\n".join(lines)


def rss_table(peaks: dict[str, int]) -> str:
    parts = [f"{name} {value / 2**20:.0f} MiB" for name, value in sorted(peaks.items())]
    return "peak RSS over the whole bench: " + ", ".join(parts)
