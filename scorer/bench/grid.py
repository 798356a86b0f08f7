"""One locust run per concurrency level, headless and bounded in time, read back from its CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass
class Level:
    target: str
    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # "HTTP 429" -> count

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = ";".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
        return out


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_level(prefix: Path, target: str, users: int) -> Level:
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    agg = next(r for r in rows if r["Name"] == "Aggregated")
    errors: dict[str, int] = {}
    failures_csv = Path(f"{prefix}_failures.csv")
    if failures_csv.exists():
        with open(failures_csv, newline="") as f:
            for r in csv.DictReader(f):
                key = r["Error"].strip()
                key = key.split("(")[-1].strip("')\"") if key.startswith(("CatchResponseError", "HTTPError")) else key
                errors[key] = errors.get(key, 0) + int(r["Occurrences"])
    return Level(target, users, int(agg["Request Count"]), int(agg["Failure Count"]), _float(agg["Requests/s"]),
                 _float(agg["50%"]), _float(agg["95%"]), _float(agg["99%"]), errors)


def run_level(url: str, path: str, data: Path, users: int, seconds: float, out_dir: Path, target: str,
              env: dict[str, str], rows: int = 1, deployment: str = "") -> Level:
    """Run locust headless for `seconds` at `users` concurrent users (each sends back to back)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / f"{target}_u{users}"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
           "-u", str(users), "-r", str(users), "-t", f"{max(1, round(seconds))}s", "--stop-timeout", "5",
           "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary", "--loglevel", "WARNING",
           "--data", str(data), "--rows", str(rows), "--path", path]
    if deployment:
        cmd += ["--deployment", deployment]
    with open(f"{prefix}.log", "wb") as log:
        subprocess.run(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log,
                       timeout=seconds + 60, check=False)
    return read_level(prefix, target, users)
