"""What a benchmark run leaves behind: results.csv, results.json, report.png and a terminal table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from scorer.bench.figures import Level

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ["target", "users", "seconds", "requests", "ok", "failures", "rejected", "rps", "error_rate",
           "reject_rate", "p50_ms", "p95_ms", "p99_ms", "errors", "flag"]


def ratios(levels: list[Level]) -> dict[int, dict[str, float]]:
    """Per user count: scorer's throughput over mlflow's and mlflow's p99 over scorer's.

    Only where neither level is flagged: a ratio of rejections is no comparison."""
    by = {(lv.target, lv.users): lv for lv in levels}
    out = {}
    for (target, users), lv in by.items():
        other = by.get(("mlflow", users))
        if target != "scorer" or other is None or lv.flag or other.flag:
            continue
        if other.rps > 0 and lv.p99_ms > 0:
            out[users] = {"throughput_ratio": lv.rps / other.rps, "p99_ratio": other.p99_ms / lv.p99_ms}
    return out


def write(levels: list[Level], out_dir: Path, meta: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for lv in levels:  # a figure that could not be measured (no 2xx answer) is left empty
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                             for k, v in lv.row().items()})
    doc = {"meta": meta, "levels": [lv.row() | {"errors": lv.errors} for lv in levels],
           "ratios": {str(k): v for k, v in ratios(levels).items()}}
    (out_dir / "results.json").write_text(json.dumps(_finite(doc), indent=2, default=str) + "\n")
    plot(levels, out_dir / "report.png", str(meta.get("title", "scorer bench")))


def _finite(doc: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured (no successful answer) becomes null."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_finite(v) for v in doc]
    return doc


def figure(levels: list[Level], title: str) -> Figure:
    """Throughput of successful answers from 0, latency of successful answers; flagged levels in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    for target in sorted({lv.target for lv in levels}):
        pts = sorted((lv for lv in levels if lv.target == target), key=lambda lv: lv.users)
        users = [lv.users for lv in pts]
        ax_rps.plot(users, [lv.rps for lv in pts], marker="o", label=target)
        ax_lat.plot(users, [lv.p50_ms for lv in pts], marker="o", label=f"{target} p50")
        ax_lat.plot(users, [lv.p99_ms for lv in pts], marker="x", linestyle="--", label=f"{target} p99")
        bad = [lv for lv in pts if lv.flag]
        if bad:
            ax_rps.scatter([lv.users for lv in bad], [lv.rps for lv in bad], s=120, facecolors="none",
                           edgecolors="red", zorder=3, label=f"{target} flagged")
    ax_rps.set(xlabel="concurrent users", ylabel="successful answers / s", title="throughput (2xx only)",
               xscale="log")
    ax_rps.set_ylim(bottom=0)
    shown = [v for lv in levels for v in (lv.p50_ms, lv.p99_ms) if math.isfinite(v)]  # NaN: no 2xx answer
    positive = bool(shown) and min(shown) > 0
    ax_lat.set(xlabel="concurrent users", ylabel="latency of 2xx answers (ms)", title="latency", xscale="log",
               yscale="log" if positive else "linear")
    ticks = sorted({lv.users for lv in levels})
    for ax in (ax_rps, ax_lat):
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot(levels: list[Level], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig = figure(levels, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ms(value: float) -> str:
    """0.1 ms below 100 ms, whole milliseconds above."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def show(levels: list[Level], console: Console | None = None) -> None:
    """The table on stdout; piped output gets 120 columns so that no figure is cut short."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    table = Table(title="scorer bench (rps and latency: 2xx answers only)")
    for col in ("target", "users", "rps", "p50 ms", "p95 ms", "p99 ms", "requests", "err %", "429 %", "flagged"):
        table.add_column(col, justify="left" if col == "target" else "right", no_wrap=True)
    for lv in levels:
        table.add_row(lv.target, str(lv.users), f"{lv.rps:.1f}", ms(lv.p50_ms), ms(lv.p95_ms), ms(lv.p99_ms),
                      str(lv.requests), f"{lv.error_rate:.1%}", f"{lv.reject_rate:.1%}",
                      "[red]yes[/red]" if lv.flag else "")
    console.print(table)
    for lv in levels:
        if lv.flag:
            console.print(f"[red]flagged[/red]: {lv.target} at {lv.users} users: {lv.flag}")
    for users, r in ratios(levels).items():
        console.print(f"{users:>4} users: scorer/mlflow throughput {r['throughput_ratio']:.1f}x, "
                      f"mlflow/scorer p99 {r['p99_ratio']:.1f}x")
