"""The latency plot: p50 / p90 / p99 against concurrency, direct vs through the system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTTED = ("chat", "stream16")
STYLES = {"p50": "-", "p90": "--", "p99": ":"}
COLOURS = {"direct": "tab:gray", "relay": "tab:blue"}


def write_plot(rows: list[dict[str, Any]], path: Path) -> str:
    """Write the PNG (matplotlib, headless); returns a line for the bench's notes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in PLOTTED if any(r["scenario"] == s for r in rows)]
    if not scenarios:
        return "latency.png skipped: no chat or stream16 rows"
    figure, _ = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.5))
    for ax, scenario in zip(figure.axes, scenarios, strict=True):
        for side, colour in COLOURS.items():
            points = sorted(
                (r["concurrency"], r["latency_ms"])
                for r in rows
                if r["scenario"] == scenario and r["side"] == side and r["latency_ms"]
            )
            if not points:
                continue
            levels = [c for c, _ in points]
            for pct, style in STYLES.items():
                values = [max(float(lat[pct]), 0.01) for _, lat in points]
                ax.plot(levels, values, style, marker="o", color=colour, label=f"{side} {pct}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{scenario}: end-to-end latency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"wrote {path}"
