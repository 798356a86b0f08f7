"""The batch benchmark runs end to end on a small data set: scorer, Ray Data and the pandas loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.soak  # 7 processes, 4 of them starting Ray, on 2 cores: `make soak` (CI stays under 20 min)
def test_batch_benchmark_small(demo_registry, tmp_path):
    out = tmp_path / "batch.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "batch_bench.py"), "--rows", "20000", "--files", "2",
         "--scale", "2", "--mini-batch", "5000", "--models", f"models:/{demo_registry}/2", "--no-warmup",
         "--work", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    cells = {(c["format"], c["tool"]): c["median"] for c in report["cells"]}
    assert set(cells) == {(f, t) for f in ("parquet", "csv") for t in ("scorer", "loop", "raydata")}
    for m in cells.values():
        assert m["rows"] == 20000 and m["whole_s"] > m["scoring_s"] > 0 and m["peak_mb"] > 50
    assert cells[("parquet", "scorer")]["ray_init_s"] > 0 and "beyond_ray_init_s" in cells[("parquet", "scorer")]
    assert cells[("csv", "raydata")]["ray_init_s"] > 0
    assert report["models"][0]["label"] == "RandomForestClassifier(100)"
    assert report["scale"]["median"]["rows"] == 40000
    goals = {g["goal"]: g for g in report["goals"]}
    assert goals["driver peak at 2x rows / at 1x (Parquet)"]["value"] > 0
    assert goals["RandomForestClassifier(100) csv: whole process vs pandas loop"]["value"] > 0
    assert "Issue 12 goal 4" in done.stdout
