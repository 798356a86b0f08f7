"""The batch benchmark runs end to end on a small data set: scorer, Ray Data and the pandas loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.soak  # 95 s of Ray and Ray Data start-ups on 2 cores: `make soak` (CI stays under 20 min)
def test_batch_benchmark_small(demo_registry, tmp_path):
    out = tmp_path / "batch.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "batch_bench.py"), "--rows", "20000", "--files", "2",
         "--scale", "2", "--mini-batch", "5000", "--work", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True, timeout=400, cwd=REPO, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    tools = {r["tool"]: r for r in report["results"]}
    assert set(tools) == {"scorer batch", "ray data map_batches", "pandas loop (1 process)",
                          "scorer batch (2x rows)"}
    assert tools["scorer batch"]["rows"] == tools["pandas loop (1 process)"]["rows"] == 20000
    assert tools["ray data map_batches"]["rows"] == 20000
    assert tools["scorer batch (2x rows)"]["rows"] == 40000
    for r in report["results"]:
        assert r["rows_per_s"] > 0 and r["ratio_to_limit"] > 0
    assert tools["scorer batch"]["ray_start_s"] > 0 and tools["scorer batch"]["driver_peak_mb"] > 50
    assert report["in_process"]["limit_rows_per_s"] > report["in_process"]["one_core_rows_per_s"] > 0
    assert "in-process limit" in done.stdout
