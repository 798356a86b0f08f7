"""One locust run per concurrency level, headless and bounded in time, read back once it has ended.

The figures come from the summary the locust file writes after locust stopped every user (see
scorer/bench/locustfile.py), so they equal locust's own HTML report in the same folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scorer.bench.figures import DEFAULT_MAX_FAILURE_PCT, Level, level_from_summary

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STOP_TIMEOUT_S = 5  # users finish the request they are in before locust reports
SPAWN_RATE = 100  # users per second: every level starts its users within a second


def run_level(url: str, path: str, data: Path, users: int, seconds: float, out_dir: Path, target: str,
              env: dict[str, str], rows: int = 1, deployment: str = "",
              max_failure_rate: float = DEFAULT_MAX_FAILURE_PCT / 100) -> Level:
    """Run locust headless for `seconds` at `users` concurrent users (each sends back to back)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / f"{target}_u{users}"
    summary = Path(f"{prefix}_final.json")
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
           "-u", str(users), "-r", str(max(users, SPAWN_RATE)), "-t", f"{max(1, round(seconds))}s",
           "--stop-timeout", str(STOP_TIMEOUT_S), "--html", f"{prefix}.html", "--only-summary",
           "--loglevel", "WARNING", "--data", str(data), "--rows", str(rows), "--path", path,
           "--summary", str(summary)]
    if deployment:
        cmd += ["--deployment", deployment]
    log = Path(f"{prefix}.log")
    try:
        with open(log, "wb") as out:
            subprocess.run(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=out,
                           timeout=seconds + STOP_TIMEOUT_S + 60, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"locust did not finish the {users}-user level against {target}; see {log}") from None
    try:
        doc = json.loads(summary.read_text())
    except (OSError, ValueError):
        raise RuntimeError(f"locust left no final figures for {users} users against {target}; see {log}") from None
    return level_from_summary(doc, target, users, max_failure_rate)
