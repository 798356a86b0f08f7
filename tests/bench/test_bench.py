"""`scorer bench` and the batch benchmark, run as a user runs them, on a few seconds of load."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from scorer.bench.processes import start_scorer

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "endpoints" / "demo.yaml"


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scorer.cli", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=os.environ.copy())


@pytest.fixture(scope="module")
def demo_server(demo_registry, tmp_path_factory):
    server = start_scorer([str(DEMO)], tmp_path_factory.mktemp("serve"))
    try:
        server.wait_ready("/ready", timeout=120)
        yield server
    finally:
        server.stop()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_bench_url_target_writes_every_output(demo_server, tmp_path, monkeypatch):
    data = tmp_path / "rows.csv"
    columns = ["mean_radius", "mean_texture"]  # replaced below by the model's real columns
    example = httpx.get(demo_server.url + "/ping", timeout=5)
    assert example.status_code == 200
    from scorer.models import load_model

    frame = load_model("models:/demo-classifier@blue").input_example
    frame.to_csv(data, index=False)
    columns = list(frame.columns)
    assert len(columns) == 30
    out = tmp_path / "out"
    monkeypatch.setenv("SCORER_API_KEY", demo_server.env["SCORER_API_KEY"])
    done = bench(demo_server.url, "--data", str(data), "--users", "1,4", "--duration", "2",
                 "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out / "results.csv")
    assert [int(r["users"]) for r in rows] == [1, 4]
    for r in rows:
        assert int(r["requests"]) > 10 and int(r["failures"]) == 0, r
        assert float(r["rps"]) > 5 and 0 < float(r["p50_ms"]) <= float(r["p99_ms"]) < 2000, r
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["target"] == demo_server.url and len(doc["levels"]) == 2
    assert (out / "report.png").stat().st_size > 10_000
    assert (out / "target_u1.html").is_file() and (out / "target_u4.html").is_file()
    assert "rps" in done.stdout or "scorer bench" in done.stdout


def test_bench_counts_failures_by_status(demo_server, tmp_path, monkeypatch):
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([{"not_a_column": 1.0}]))
    monkeypatch.setenv("SCORER_API_KEY", demo_server.env["SCORER_API_KEY"])
    done = bench(demo_server.url, "--data", str(data), "--users", "1", "--duration", "2",
                 "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    row = _rows(tmp_path / "out" / "results.csv")[0]
    assert int(row["failures"]) == int(row["requests"]) > 0
    assert row["errors"].startswith("HTTP 400="), row


def test_bench_rejects_bad_options(tmp_path):
    assert bench("http://127.0.0.1:9", "--output", str(tmp_path)).returncode == 2  # URL without --data
    assert bench("http://127.0.0.1:9", "--data", "x.csv", "--compare-mlflow",
                 "--output", str(tmp_path)).returncode == 2
    assert bench(str(DEMO), "--users", "0,x", "--output", str(tmp_path)).returncode == 2
    assert bench(str(DEMO), "--duration", "1", "--output", str(tmp_path)).returncode == 2


@pytest.mark.slow
def test_bench_compare_mlflow_starts_and_stops_both_servers(demo_registry, tmp_path):
    out = tmp_path / "cmp"
    before = {p.pid for p in psutil.process_iter()}
    done = bench(str(DEMO), "--compare-mlflow", "--users", "2", "--duration", "2", "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out / "results.csv")
    assert {r["target"] for r in rows} == {"scorer", "mlflow"}
    for r in rows:
        assert int(r["requests"]) > 0 and int(r["failures"]) == 0, r
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["mlflow_workers"] == 1 and "2" in doc["ratios"]
    assert "throughput" in done.stdout
    state = os.environ["SCORER_STATE_DIR"]

    def started_by_bench(p: psutil.Process) -> bool:
        cmd = " ".join(p.info["cmdline"] or [])
        return (" serve " in cmd and str(DEMO) in cmd) or ("mlflow" in cmd and state in cmd) or (
            "mlflow.pyfunc.scoring_server" in cmd)

    leftovers = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in before and started_by_bench(p)]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]
