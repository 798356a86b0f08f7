"""Batch benchmark, issue 12 goal 4: `scorer batch` against the single-process pandas loop and Ray Data
`map_batches`, each a process of its own timed from spawn to exit, on RF(100) and LR, Parquet and CSV,
plus scorer alone on `--scale` times the rows for the driver's memory, in one run (`make bench-batch`).

    python benchmarks/batch_bench.py                      # 2M rows in 8 files, 8M for the memory goal
    python benchmarks/batch_bench.py --rounds 3           # median of 3 rounds, tools interleaved
    python benchmarks/batch_bench.py --quick              # smoke run: 200k rows, 2x for memory

Tools (see benchmarks/batch_peers.py for the two baselines):
  scorer   `python -m scorer.cli batch bench-batch.yaml --input DIR --output OUT --overwrite`, 2 actors
           (`max_concurrency_per_instance: 2`), `mini_batch_size` 100k rows. Phases from its
           job_summary.json: ray.init (`ray_start_s`), start-up beyond ray.init (`startup_s` - `ray_start_s`;
           `startup_s` runs from the job's start to its first mini-batch), scoring phase (`scoring_s`).
  loop     import mlflow, load the model, read / predict / append CSV rows file by file.
  raydata  ray.init with the public options (127.0.0.1, no dashboard), read_parquet / read_csv,
           map_batches(2 actors, num_cpus=0.5, batches of 100k, pandas), write_csv.

Whole process: spawn to exit, measured here; peak MB: the resident memory of that process (for scorer
and Ray Data the driver), sampled every 50 ms. Every tool's output must hold as many rows as the input
(else the run fails). Before the timed runs, each tool runs once untimed on a small input
(`--no-warmup` to skip) so that none pays the first cold read of the Python packages.
Results: benchmarks/results/batch.json; the data (seeded, cached) in benchmarks/data/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.batch_peers import RESULT_TAG  # noqa: E402

PEERS = REPO / "benchmarks" / "batch_peers.py"
TOOLS = ("scorer", "loop", "raydata")
FORMATS = ("parquet", "csv")
TOOL_NAMES = {"scorer": "scorer batch", "loop": "pandas loop", "raydata": "Ray Data map_batches"}


# ---------------------------------------------------------------------------------------------- data
def make_data(model_ref: str, rows: int, files: int, folder: Path, csv: bool, seed: int = 7) -> Path:
    """Seeded rows with the model's columns, drawn around its input example: `folder/parquet/*.parquet`
    and, with `csv`, the same rows in `folder/csv/*.csv`. Cached by a marker file per format."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from scorer.models import load_input_example

    pq_dir, csv_dir = folder / "parquet", folder / "csv"
    pq_done = folder / f".parquet-rows-{rows}-files-{files}-seed-{seed}"
    if not pq_done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        pq_dir.mkdir(parents=True)
        example = load_input_example(model_ref)
        assert isinstance(example, pd.DataFrame), "the model needs a tabular input example"
        rng = np.random.default_rng(seed)
        mean, std = example.mean().to_numpy(), example.std().fillna(0).to_numpy() + 1e-3
        per_file = rows // files
        for i in range(files):
            n = per_file if i < files - 1 else rows - per_file * (files - 1)
            values = rng.normal(mean, std, size=(n, len(mean))).astype(example.dtypes.iloc[0])
            pq.write_table(pa.table({c: values[:, j] for j, c in enumerate(example.columns)}),
                           pq_dir / f"part-{i:02d}.parquet")
        pq_done.touch()
    csv_done = folder / f".csv-rows-{rows}-files-{files}-seed-{seed}"
    if csv and not csv_done.exists():
        shutil.rmtree(csv_dir, ignore_errors=True)
        csv_dir.mkdir(parents=True)
        for path in sorted(pq_dir.glob("*.parquet")):  # the same rows; pyarrow writes floats that round-trip
            pcsv.write_csv(pq.read_table(path), csv_dir / f"{path.stem}.csv")
        csv_done.touch()
    return folder


def count_rows(path: Path) -> int:
    """Data lines in a CSV file with a header (no newlines inside values: numbers and file names)."""
    lines = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            lines += chunk.count(b"\n")
    return max(0, lines - 1)


# ------------------------------------------------------------------------------------------- processes
class PeakRss:
    """Samples a process's resident memory every 50 ms; the peak in MB from `stop()`. Also the peak
    of its private memory (`RssAnon` of /proc/PID/status, Linux): RSS also counts the shared pages of
    Ray's object store that the driver maps to read results, which grow with the data it has seen."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._status = Path(f"/proc/{pid}/status")
        self.peak = 0
        self.anon_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:
                return
            try:
                for line in self._status.read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        self.anon_peak = max(self.anon_peak, int(line.split()[1]) * 1024)
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run_process(cmd: list[str], timeout: float, log: Path) -> tuple[float, float, float, str]:
    """Run `cmd` in a session of its own: (whole-process seconds, peak RSS MB, peak private MB, stdout); its stdout and
    stderr are kept in `log`. A failure or a timeout (the whole group is killed) raises with stderr's tail."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True)
    rss = PeakRss(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rss.stop()
        err += f"\nran past {timeout:.0f} s and was killed".encode()
    wall = time.perf_counter() - start
    peak = rss.stop()
    anon = rss.anon_peak / 2**20
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"$ " + " ".join(cmd).encode() + b"\n" + out + b"\n--- stderr ---\n" + err)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])}... exited {proc.returncode} (log {log}): "
                           f"{err.decode(errors='replace')[-3000:]}")
    return wall, peak, anon, out.decode(errors="replace")


def write_deployment(model_ref: str, folder: Path, actors: int, mini_batch: int) -> Path:
    path = folder / "bench-batch.yaml"
    path.write_text(f"name: bench-batch\ntype: batch\nmodel: {model_ref}\nresources: {{instance_count: 1}}\n"
                    f"max_concurrency_per_instance: {actors}\nmini_batch_size: {mini_batch}\n"
                    "output_file_name: predictions.csv\n")
    return path


def warm_inputs(folder: Path) -> None:
    """Read every input file once, untimed, so that each tool starts with its input in the page
    cache. This VM's kernel pages out memory untouched for about a minute (DAMON `pageout`), so
    without it the first tool of a cell (always scorer) read from disk what the next ones found
    in memory."""
    buf = bytearray(8 << 20)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def run_tool(tool: str, model: dict[str, str], fmt: str, data: Path, tmp: Path, args: argparse.Namespace,
             expected_rows: int, tag: str) -> dict[str, Any]:
    """One timed run of one tool, its input warm; the output's row count must equal the input's."""
    inputs = data / fmt
    warm_inputs(inputs)
    log = Path(args.logs) / f"{tag}-{model['ref'].replace(':', '').replace('/', '_')}-{fmt}-{tool}.log"
    out = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=tmp))
    try:
        if tool == "scorer":
            deployment = write_deployment(model["ref"], out, args.actors, args.mini_batch)
            cmd = [sys.executable, "-m", "scorer.cli", "batch", str(deployment), "--input", str(inputs),
                   "--output", str(out / "out"), "--overwrite"]
            wall, peak, anon, _ = run_process(cmd, args.timeout, log)
            summary = json.loads((out / "out" / "job_summary.json").read_text())
            d = summary["durations"]
            rows = count_rows(out / "out" / "predictions.csv")
            if summary["items"]["succeeded"] != rows:
                raise RuntimeError(f"scorer: job_summary says {summary['items']['succeeded']} rows, "
                                   f"the output holds {rows}")
            result = {"ray_init_s": d["ray_start_s"], "pool_start_s": d["pool_start_s"], "startup_s": d["startup_s"],
                      "beyond_ray_init_s": d["startup_s"] - d["ray_start_s"], "scoring_s": d["scoring_s"],
                      "total_s": d["total_s"], "job_rows_per_s": summary["rows_per_second"]}
        else:
            target = out / "predictions.csv" if tool == "loop" else out / "out"
            cmd = [sys.executable, str(PEERS), tool, "--model", model["path"], "--input", str(inputs),
                   "--format", fmt, "--output", str(target), "--actors", str(args.actors),
                   "--batch-size", str(args.mini_batch), "--num-cpus", str(args.num_cpus)]
            wall, peak, anon, stdout = run_process(cmd, args.timeout, log)
            lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
            if not lines:
                raise RuntimeError(f"{tool}: no result line on stdout: {stdout[-2000:]}")
            result = json.loads(lines[-1][len(RESULT_TAG):])
            result.pop("tool", None)
            result.pop("rows", None)
            files = [target] if tool == "loop" else sorted(target.glob("*.csv"))
            rows = sum(count_rows(f) for f in files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if rows != expected_rows:
        raise RuntimeError(f"{tool} on {model['label']} {fmt}: {rows} rows out, {expected_rows} in")
    return {"rows": rows, "whole_s": wall, "peak_mb": peak, "private_peak_mb": anon, **result,
            "rows_per_s_whole": rows / wall, "rows_per_s_scoring": rows / result["scoring_s"]}


# ------------------------------------------------------------------------------------------- models
def describe_model(ref: str) -> dict[str, str]:
    """The model's local folder (resolved once; the baselines load it from there) and a label from its
    flavor and estimator, e.g. `RandomForestClassifier(100)`, so the table says what was measured."""
    from scorer.models import resolve

    path = resolve(ref).local_path
    label = ref
    try:
        import yaml

        flavors = yaml.safe_load((path / "MLmodel").read_text()).get("flavors", {})
        if "sklearn" in flavors:
            import mlflow.sklearn

            est = mlflow.sklearn.load_model(str(path))
            last = est.steps[-1][1] if hasattr(est, "steps") else est
            label = type(last).__name__ + (f"({last.n_estimators})" if hasattr(last, "n_estimators") else "")
        else:
            label = "+".join(k for k in flavors if k != "python_function") or "pyfunc"
    except Exception as exc:  # a label only: the benchmark still runs
        print(f"note: cannot label {ref} ({exc})", file=sys.stderr)
    return {"ref": ref, "path": str(path), "label": label}


def roles(models: list[dict[str, str]]) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """(RF, LR) of the goals, by estimator; a model of neither kind fills a role left empty, in order."""
    rf = next((m for m in models if "Forest" in m["label"]), None)
    lr = next((m for m in models if "Logistic" in m["label"]), None)
    rf = rf or next((m for m in models if m is not lr), None)
    lr = lr or next((m for m in models if m is not rf), None)
    return rf, lr


# ------------------------------------------------------------------------------------------- report
def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in samples[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(s[k] for s in samples) for k in keys}


def fmt_num(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(label: str, fmt: str, rows: int, cell: dict[str, dict[str, Any]]) -> None:
    print(f"\n{label}, {fmt}, {rows:,} rows")
    print(f"  {'tool':22} {'whole s':>8} {'scoring s':>9} {'rows/s whole':>13} {'rows/s scoring':>14} "
          f"{'ray.init s':>10} {'beyond init s':>13} {'peak MB':>8}")
    for tool in TOOLS:
        if tool not in cell:
            continue
        m = cell[tool]
        print(f"  {TOOL_NAMES[tool]:22} {m['whole_s']:>8.2f} {m['scoring_s']:>9.2f} {m['rows_per_s_whole']:>13,.0f} "
              f"{m['rows_per_s_scoring']:>14,.0f} {fmt_num(m.get('ray_init_s'), '>10.2f'):>10} "
              f"{fmt_num(m.get('beyond_ray_init_s'), '>13.2f'):>13} {m['peak_mb']:>8.0f}")


def goals(medians: dict[tuple[str, str, str], dict[str, Any]], rf: dict[str, str] | None,
          lr: dict[str, str] | None, formats: list[str], scale: dict[str, Any] | None,
          scale_factor: int) -> list[dict[str, Any]]:
    """Issue 12 goal 4, line by line: measured value, target, met. Parquet first, CSV the same ratios."""
    out: list[dict[str, Any]] = []

    def add(what: str, value: float | None, target: float, higher: bool, unit: str = "x") -> None:
        met = None if value is None else (value >= target if higher else value <= target)
        out.append({"goal": what, "value": value, "target": f"{'>=' if higher else '<='} {target}{unit}",
                    "met": met})

    def ratio(model: dict[str, str] | None, fmt: str, base: str, key: str) -> float | None:
        if model is None:
            return None
        a, b = medians.get((model["ref"], fmt, base)), medians.get((model["ref"], fmt, "scorer"))
        return a[key] / b[key] if a and b else None

    for fmt in formats:
        rf_name = rf["label"] if rf else "RF"
        s = medians.get((rf["ref"], fmt, "scorer")) if rf else None
        add(f"{rf_name} {fmt}: whole process vs pandas loop", ratio(rf, fmt, "loop", "whole_s"), 1.2, True)
        add(f"{rf_name} {fmt}: scoring phase vs pandas loop", ratio(rf, fmt, "loop", "scoring_s"), 1.8, True)
        add(f"{rf_name} {fmt}: scorer start-up beyond ray.init", s["beyond_ray_init_s"] if s else None, 1.5,
            False, " s")
        add(f"{rf_name} {fmt}: whole process vs Ray Data", ratio(rf, fmt, "raydata", "whole_s"), 3.0,
            True)
        lr_name = lr["label"] if lr else "LR"
        add(f"{lr_name} {fmt}: scoring phase vs pandas loop", ratio(lr, fmt, "loop", "scoring_s"), 1.0, True)
    base = medians.get((rf["ref"], "parquet", "scorer")) if rf else None
    add(f"driver peak at {scale_factor}x rows / at 1x (Parquet)",
        scale["peak_mb"] / base["peak_mb"] if scale and base else None, 1.1, False)
    private = (scale or {}).get("private_peak_mb"), (base or {}).get("private_peak_mb")
    add(f"driver private (RssAnon) peak at {scale_factor}x rows / at 1x (Parquet)",
        private[0] / private[1] if private[0] and private[1] else None, 1.1, False)
    return out


def machine() -> dict[str, Any]:
    """peers.py's description of the machine, with the date and the commit measured."""
    from benchmarks.peers import machine as host

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                                    cwd=REPO).stdout.strip())
    except OSError:
        commit, dirty = "", False
    return {**host(), "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": commit, "git_dirty": dirty}


# ------------------------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rows", type=int, default=None, help="input rows (default 2,000,000; --quick 200,000)")
    p.add_argument("--files", type=int, default=8, help="input files the rows are split into")
    p.add_argument("--scale", type=int, default=None,
                   help="scorer alone on this many times the rows, Parquet, first model "
                        "(default 4; --quick 2; 1: skip)")
    p.add_argument("--models", default="models:/demo-classifier/2,models:/demo-classifier/1",
                   help="comma-separated; the RandomForest one is the RF of the goals, the LogisticRegression the LR")
    p.add_argument("--formats", default="parquet,csv")
    p.add_argument("--rounds", type=int, default=1, help="the matrix this many times, tools interleaved; medians")
    p.add_argument("--skip", default="", help="comma-separated tools or formats to leave out: loop,raydata,csv,...")
    p.add_argument("--quick", action="store_true", help="smoke run: 200k rows, --scale 2")
    p.add_argument("--actors", type=int, default=2, help="scorer actors = Ray Data pool size")
    p.add_argument("--mini-batch", type=int, default=100_000, help="scorer mini_batch_size = Ray Data batch_size")
    p.add_argument("--num-cpus", type=float, default=0.5, help="Ray Data num_cpus per actor")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed run of each tool on a small input")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one tool run may take")
    p.add_argument("--work", default=str(REPO / "benchmarks" / "data"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "batch.json"))
    p.add_argument("--logs", default=None, help="each run's stdout and stderr, emptied at the start "
                   "(default: batch-logs/ next to --out)")
    args = p.parse_args(argv)
    args.rows = args.rows or (200_000 if args.quick else 2_000_000)
    args.scale = args.scale or (2 if args.quick else 4)
    args.logs = args.logs or str(Path(args.out).parent / "batch-logs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    skip = set(filter(None, args.skip.split(",")))
    unknown = skip - set(TOOLS) - set(FORMATS)
    if unknown or "scorer" in skip:
        raise SystemExit(f"--skip takes loop, raydata, parquet, csv (not {sorted(unknown) or 'scorer'})")
    tools = [t for t in TOOLS if t not in skip]
    formats = [f for f in args.formats.split(",") if f and f not in skip]
    if not set(formats) <= set(FORMATS) or not formats:
        raise SystemExit(f"--formats: some of {', '.join(FORMATS)}")
    meta = machine()
    shutil.rmtree(args.logs, ignore_errors=True)
    models = [describe_model(ref) for ref in args.models.split(",") if ref]
    rf, lr = roles(models)
    work = Path(args.work)
    data = make_data(models[0]["ref"], args.rows, args.files, work / f"rows-{args.rows}-files-{args.files}",
                     csv="csv" in formats)
    big_rows = args.rows * args.scale
    big = (make_data(models[0]["ref"], big_rows, args.files, work / f"rows-{big_rows}-files-{args.files}", csv=False)
           if args.scale > 1 else None)
    print(f"{meta['cpus']} CPUs ({meta['cpu']}), load {meta['load_avg_at_start'][0]:.1f}; models: "
          + ", ".join(f"{m['label']} = {m['ref']}" for m in models), flush=True)

    samples: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    scale_samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=work, prefix="run-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_warmup:
            small = make_data(models[0]["ref"], 20_000, 1, work / "warmup", csv=False)
            for tool in tools:
                print(f"warm-up: {tool}", flush=True)
                run_tool(tool, models[0], "parquet", small, tmp, args, 20_000, "warmup")
        for r in range(args.rounds):
            for model in models:
                for fmt in formats:
                    for tool in tools:
                        res = run_tool(tool, model, fmt, data, tmp, args, args.rows, f"round{r + 1}")
                        samples.setdefault((model["ref"], fmt, tool), []).append(res)
                        print(f"round {r + 1}/{args.rounds} {model['label']} {fmt} {tool}: "
                              f"whole {res['whole_s']:.2f} s, scoring {res['scoring_s']:.2f} s, "
                              f"peak {res['peak_mb']:.0f} MB", flush=True)
            if big is not None:
                res = run_tool("scorer", models[0], "parquet", big, tmp, args, big_rows, f"round{r + 1}-{args.scale}x")
                scale_samples.append(res)
                print(f"round {r + 1}/{args.rounds} {models[0]['label']} parquet scorer {args.scale}x rows: "
                      f"whole {res['whole_s']:.2f} s, peak {res['peak_mb']:.0f} MB", flush=True)

    medians = {k: median_of(v) for k, v in samples.items()}
    scale = median_of(scale_samples) if scale_samples else None
    for model in models:
        for fmt in formats:
            print_table(model["label"], fmt, args.rows, {t: medians[(model["ref"], fmt, t)] for t in tools})
    if scale is not None:
        print(f"\n{models[0]['label']}, parquet, {big_rows:,} rows ({args.scale}x): "
              f"scorer whole {scale['whole_s']:.2f} s, scoring {scale['scoring_s']:.2f} s, "
              f"driver peak {scale['peak_mb']:.0f} MB (private {scale.get('private_peak_mb', 0):.0f} MB)")
    scale_for_goal = scale if models[0] is rf else None  # the memory goal is about RF's driver
    goal_rows = goals(medians, rf, lr, formats, scale_for_goal, args.scale)
    print(f"\nIssue 12 goal 4 (medians of {args.rounds} round(s); {args.actors} actors; whole = spawn to exit)")
    for g in goal_rows:
        value = "n/a" if g["value"] is None else f"{g['value']:.2f}"
        verdict = "n/a" if g["met"] is None else ("met" if g["met"] else "NOT met")
        print(f"  {g['goal']:66} {value:>6}  target {g['target']:8}  {verdict}")
    print("ratios: the other tool's time over scorer's (higher is better for scorer); "
          "start-up beyond ray.init = startup_s - ray_start_s of job_summary.json")

    report = {**meta, "params": {k: v for k, v in vars(args).items() if k not in ("work", "out", "logs")},
              "models": models,
              "cells": [{"model": ref, "label": next(m["label"] for m in models if m["ref"] == ref), "format": fmt,
                         "tool": tool, "rows": args.rows, "median": medians[(ref, fmt, tool)], "samples": v}
                        for (ref, fmt, tool), v in samples.items()],
              "scale": {"model": models[0]["ref"], "rows": big_rows, "factor": args.scale, "median": scale,
                        "samples": scale_samples} if scale else None,
              "goals": goal_rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
