"""`scorer bench` and the batch benchmark, run as a user runs them, on a few seconds of load."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def rows_csv(demo_registry, tmp_path_factory) -> Path:
    """The demo model's input example as a CSV (30 feature columns)."""
    from scorer.models import load_model

    frame = load_model("models:/demo-classifier@blue").input_example
    assert len(frame.columns) == 30
    path = tmp_path_factory.mktemp("data") / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _locust_report(html: Path) -> dict[str, Any]:
    """The figures locust's own HTML report shows (its `window.templateArgs`)."""
    text = html.read_text()
    start = text.index("templateArgs = ") + len("templateArgs = ")
    doc, _ = json.JSONDecoder().raw_decode(text, start)
    return {"requests": doc["requests_statistics"][-1]["num_requests"],
            "failures": doc["requests_statistics"][-1]["num_failures"]}


def test_bench_url_target_writes_every_output(demo_server, rows_csv, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("SCORER_API_KEY", demo_server.env["SCORER_API_KEY"])
    done = bench(demo_server.url, "--data", str(rows_csv), "--users", "1,4", "--duration", "2",
                 "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out / "results.csv")
    assert [int(r["users"]) for r in rows] == [1, 4]
    for r in rows:
        # However slow the machine, every figure is locust's final one: what its own report shows.
        assert _locust_report(out / f"target_u{r['users']}.html") == {
            "requests": int(r["requests"]), "failures": int(r["failures"])}, r
        assert int(r["requests"]) == int(r["ok"]) > 0 and int(r["failures"]) == 0, r
        assert float(r["error_rate"]) == float(r["reject_rate"]) == 0 and r["flag"] == "", r
        assert float(r["rps"]) == pytest.approx(int(r["ok"]) / float(r["seconds"]), rel=1e-3), r
        assert 0 < float(r["p50_ms"]) <= float(r["p95_ms"]) <= float(r["p99_ms"]) < 5000, r
    # 0.1 ms resolution below 100 ms (locust's own percentiles are whole milliseconds there).
    figures = [float(r[k]) for r in rows for k in ("p50_ms", "p95_ms", "p99_ms") if float(r[k]) < 100]
    assert figures and any(f != round(f) for f in figures), figures
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["target"] == demo_server.url and len(doc["levels"]) == 2
    assert (out / "report.png").stat().st_size > 10_000
    assert (out / "target_u1.html").is_file() and (out / "target_u4.html").is_file()
    assert "rps" in done.stdout or "scorer bench" in done.stdout


def test_bench_level_without_success_is_flagged(demo_server, tmp_path, monkeypatch):
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([{"not_a_column": 1.0}]))
    monkeypatch.setenv("SCORER_API_KEY", demo_server.env["SCORER_API_KEY"])
    done = bench(demo_server.url, "--data", str(data), "--users", "1", "--duration", "2",
                 "--output", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr[-3000:]
    row = _rows(tmp_path / "out" / "results.csv")[0]
    assert int(row["failures"]) == int(row["requests"]) > 0 and int(row["ok"]) == 0
    assert float(row["rps"]) == 0 and float(row["error_rate"]) == 1 and float(row["reject_rate"]) == 0
    assert row["errors"].startswith("HTTP 400="), row
    assert "no successful" in row["flag"], row
    assert "flagged" in done.stderr


TINY = """\
name: tiny
auth_mode: key
traffic: {blue: 100}
deployments:
  blue:
    model: models:/demo-classifier@blue
    instance_count: 1
    request_settings: {max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 500}
"""


def test_bench_yaml_past_admission_bound_warns_flags_and_exits_1(rows_csv, tmp_path):
    """Admission bound 2 x 1 x 1 = 2: at 8 users most answers are 429s, which are not throughput."""
    yaml = tmp_path / "tiny.yaml"
    yaml.write_text(TINY)
    out = tmp_path / "out"
    done = bench(str(yaml), "--users", "8", "--data", str(rows_csv), "--duration", "2", "--output", str(out))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "8 users exceed" in done.stderr and "admission bound 2" in done.stderr, done.stderr[-3000:]
    [eight] = _rows(out / "results.csv")
    assert float(eight["reject_rate"]) > 0.01 and eight["flag"], eight
    assert int(eight["rejected"]) == int(eight["errors"].split("HTTP 429=")[1].split(";")[0]), eight
    assert int(eight["ok"]) + int(eight["failures"]) == int(eight["requests"]), eight
    assert float(eight["rps"]) == pytest.approx(int(eight["ok"]) / float(eight["seconds"]), rel=1e-3), eight
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["admission_bound"] == 2
    assert "flagged" in done.stderr


def test_default_levels_stop_at_the_admission_bound(tmp_path):
    from scorer.bench.levels import admission_bound, default_users
    from scorer.spec import load_endpoint

    yaml = tmp_path / "tiny.yaml"
    yaml.write_text(TINY)
    tiny = load_endpoint(yaml, check_paths=False).spec
    demo = load_endpoint(DEMO, check_paths=False).spec
    assert admission_bound(tiny) == ("blue", 2)
    assert admission_bound(demo) == ("blue", 8)  # 2 x 4 x 1; green's is 8 too
    assert default_users(2) == [1, 2]
    assert default_users(8) == [1, 8]
    assert default_users(40) == [1, 8, 32, 40]
    assert default_users(1000) == [1, 8, 32, 64]
    two = yaml.parent / "two.yaml"
    two.write_text(TINY.replace("traffic: {blue: 100}", "traffic: {blue: 50, green: 50}") + """\
  green:
    model: models:/demo-classifier@green
    instance_count: 3
    request_settings: {max_concurrent_requests_per_instance: 2}
""")
    spec = load_endpoint(two, check_paths=False).spec
    assert admission_bound(spec) == ("blue", 2)  # the smallest bound among deployments with traffic
    assert admission_bound(spec, "green") == ("green", 12)


def test_flag_and_percentiles():
    from scorer.bench.figures import flag, percentile

    assert flag(ok=0, requests=0, failures=0, rejected=0, max_failure_rate=0.01) == "no successful request"
    assert flag(ok=99, requests=100, failures=1, rejected=1, max_failure_rate=0.01) == ""  # 1 % is allowed
    assert "429" in flag(ok=98, requests=100, failures=2, rejected=2, max_failure_rate=0.01)
    assert flag(ok=98, requests=100, failures=2, rejected=2, max_failure_rate=0.05) == ""  # the knob
    hist = {1.2: 50, 1.3: 45, 7.9: 4, 250.0: 1}
    assert (percentile(hist, 0.5), percentile(hist, 0.95), percentile(hist, 0.99)) == (1.2, 1.3, 7.9)
    assert percentile(hist, 1.0) == 250.0 and math.isnan(percentile({}, 0.5))


def test_throughput_axis_starts_at_zero():
    from scorer.bench.figures import Level
    from scorer.bench.report import figure

    levels = [Level("scorer", u, requests=100 * u, ok=100 * u, failures=0, rejected=0, seconds=2.0,
                    rps=50.0 * u + 1000, p50_ms=1.2, p95_ms=2.3, p99_ms=3.4) for u in (1, 8)]
    fig = figure(levels, "t")
    assert fig.axes[0].get_ylim()[0] == 0
    nothing = Level("target", 1, requests=9, ok=0, failures=9, rejected=0, seconds=2.0, rps=0.0,
                    p50_ms=math.nan, p95_ms=math.nan, p99_ms=math.nan, flag="no successful request")
    assert figure([nothing], "t").axes[0].get_ylim()[0] == 0  # no latency to plot is no error


def test_bench_rejects_bad_options(tmp_path):
    assert bench("http://127.0.0.1:9", "--output", str(tmp_path)).returncode == 2  # URL without --data
    assert bench("http://127.0.0.1:9", "--data", "x.csv", "--compare-mlflow",
                 "--output", str(tmp_path)).returncode == 2
    assert bench(str(DEMO), "--users", "0,x", "--output", str(tmp_path)).returncode == 2
    assert bench(str(DEMO), "--duration", "1", "--output", str(tmp_path)).returncode == 2
    assert bench(str(DEMO), "--max-failure-pct", "150", "--output", str(tmp_path)).returncode == 2


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
