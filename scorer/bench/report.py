"""What a benchmark run leaves behind: results.csv, results.json, report.png and a terminal table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scorer.bench.grid import Level

COLUMNS = ["target", "users", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "errors"]


def ratios(levels: list[Level]) -> dict[int, dict[str, float]]:
    """Per user count: scorer's throughput over mlflow's and mlflow's p99 over scorer's."""
    by = {(lv.target, lv.users): lv for lv in levels}
    out = {}
    for (target, users), lv in by.items():
        other = by.get(("mlflow", users))
        if target == "scorer" and other and other.rps > 0 and lv.p99_ms > 0:
            out[users] = {"throughput_ratio": lv.rps / other.rps, "p99_ratio": other.p99_ms / lv.p99_ms}
    return out


def write(levels: list[Level], out_dir: Path, meta: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for lv in levels:
            writer.writerow(lv.row())
    doc = {"meta": meta, "levels": [lv.row() | {"errors": lv.errors} for lv in levels],
           "ratios": {str(k): v for k, v in ratios(levels).items()}}
    (out_dir / "results.json").write_text(json.dumps(_finite(doc), indent=2, default=str) + "\n")
    plot(levels, out_dir / "report.png", meta.get("title", "scorer bench"))


def _finite(doc: Any) -> Any:
    """JSON has no NaN: a figure locust could not measure becomes null."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_finite(v) for v in doc]
    return doc


def plot(levels: list[Level], path: Path, title: str) -> None:
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
    ax_rps.set(xlabel="concurrent users", ylabel="requests / s", title="throughput", xscale="log")
    positive = all(lv.p50_ms > 0 and lv.p99_ms > 0 for lv in levels)
    ax_lat.set(xlabel="concurrent users", ylabel="latency (ms)", title="latency", xscale="log",
               yscale="log" if positive else "linear")
    for ax in (ax_rps, ax_lat):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def show(levels: list[Level], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="scorer bench")
    for col in ("target", "users", "rps", "p50 ms", "p95 ms", "p99 ms", "failures", "errors"):
        table.add_column(col, justify="right" if col not in ("target", "errors") else "left")
    for lv in levels:
        table.add_row(lv.target, str(lv.users), f"{lv.rps:.1f}", f"{lv.p50_ms:g}", f"{lv.p95_ms:g}",
                      f"{lv.p99_ms:g}", str(lv.failures), lv.row()["errors"])
    console.print(table)
    for users, r in ratios(levels).items():
        console.print(f"{users:>4} users: scorer/mlflow throughput {r['throughput_ratio']:.1f}x, "
                      f"mlflow/scorer p99 {r['p99_ratio']:.1f}x")
