"""Batch benchmark: `scorer batch` against Ray Data `map_batches` and a single-process pandas loop,
on the same seeded Parquet data set, in one run (`make bench-batch`).

    python benchmarks/batch_bench.py --rows 2000000 --files 8 --scale 4 --model models:/demo-classifier/1

Reports rows/s (after Ray start-up, which is reported apart), the ratio to the in-process limit
(cores x large-batch pyfunc throughput), and driver peak memory; `--scale 4` repeats scorer with
4x the rows to show the driver's memory stays flat. Results go to benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_data(model_ref: str, rows: int, files: int, folder: Path, seed: int = 7) -> Path:
    """Seeded rows with the model's columns, drawn around its input example, in `files` Parquet files."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scorer.models import load_input_example

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f".rows-{rows}-files-{files}-seed-{seed}"
    if done.exists():
        return folder
    for old in folder.glob("*.parquet"):
        old.unlink()
    example = load_input_example(model_ref)
    assert isinstance(example, pd.DataFrame), "the model needs a tabular input example"
    rng = np.random.default_rng(seed)
    mean, std = example.mean().to_numpy(), example.std().fillna(0).to_numpy() + 1e-3
    per_file = rows // files
    for i in range(files):
        n = per_file if i < files - 1 else rows - per_file * (files - 1)
        values = rng.normal(mean, std, size=(n, len(mean))).astype(example.dtypes.iloc[0])
        pq.write_table(pa.table({c: values[:, j] for j, c in enumerate(example.columns)}),
                       folder / f"part-{i:02d}.parquet")
    done.touch()
    return folder


class PeakRss:
    """Samples a process's resident memory every 50 ms; `peak_mb` after `stop()`."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:
                return
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def in_process_limit(model_ref: str, data: Path) -> dict[str, float]:
    """Large-batch pyfunc throughput in this process, and that times the core count."""
    import pyarrow.parquet as pq

    from scorer.models import load_model

    model = load_model(model_ref)
    frame = pq.read_table(sorted(data.glob("*.parquet"))[0]).to_pandas().head(200_000)
    model.predict(frame.head(100))
    start = time.perf_counter()
    model.predict(frame)
    rate = len(frame) / (time.perf_counter() - start)
    return {"one_core_rows_per_s": rate, "limit_rows_per_s": rate * (os.cpu_count() or 1)}


def run_scorer(deployment: Path, data: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "scorer.cli", "batch", str(deployment), "--input", str(data), "--output", str(out),
           "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss = PeakRss(proc.pid)
    _, err = proc.communicate(timeout=3600)
    wall = time.perf_counter() - start
    peak = rss.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"scorer batch exited {proc.returncode}: {err.decode()[-2000:]}")
    summary = json.loads((out / "job_summary.json").read_text())
    rows = summary["items"]["succeeded"]
    durations = summary["durations"]
    startup = durations["ray_start_s"]
    return {"tool": "scorer batch", "rows": rows, "wall_s": wall, "ray_start_s": startup,
            "pool_start_s": durations["pool_start_s"], "rows_per_s": rows / max(1e-9, wall - startup),
            "scoring_rows_per_s": summary["rows_per_second"], "driver_peak_mb": peak, "summary": summary}


def run_ray_data(model_ref: str, data: Path, out: Path, actors: int) -> dict[str, Any]:
    """Ray Data map_batches over an actor pool of `actors`, num_cpus=0.5 (1.0 deadlocks on 2 cores)."""
    import ray

    from scorer.models import resolve

    local = str(resolve(model_ref).local_path)
    from batch.pool import start_ray  # the same quiet, 127.0.0.1-only local Ray as scorer batch

    t0 = time.perf_counter()
    start_ray(None, debug=False)
    startup = time.perf_counter() - t0

    class Predictor:
        def __init__(self, path: str) -> None:
            import mlflow.pyfunc

            self.model = mlflow.pyfunc.load_model(path)

        def __call__(self, batch: Any) -> Any:
            import pandas as pd

            paths = batch.pop("path")
            return pd.DataFrame({"file": paths.map(os.path.basename), "prediction": self.model.predict(batch)})

    import ray.data

    try:
        start = time.perf_counter()
        ds = ray.data.read_parquet(str(data), include_paths=True)
        ds = ds.map_batches(Predictor, fn_constructor_args=(local,), batch_size=10_000, batch_format="pandas",
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5)
        ds.write_csv(str(out))
        elapsed = time.perf_counter() - start
        rows = sum(len(f.read_bytes().splitlines()) - 1 for f in out.glob("*.csv"))
    finally:
        ray.shutdown()
    return {"tool": "ray data map_batches", "rows": rows, "wall_s": elapsed + startup, "ray_start_s": startup,
            "rows_per_s": rows / elapsed}


def run_pandas(model_ref: str, data: Path, out: Path) -> dict[str, Any]:
    """One process: pyarrow read per file, pyfunc predict, one CSV with file, row, prediction."""
    import pandas as pd
    import pyarrow.parquet as pq

    from scorer.models import load_model

    model = load_model(model_ref)
    start = time.perf_counter()
    rows = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        f.write("file,row,prediction\n")
        for path in sorted(data.glob("*.parquet")):
            frame = pq.read_table(path).to_pandas()
            pred = model.predict(frame)
            pd.DataFrame({"file": path.name, "row": range(len(frame)), "prediction": pred}).to_csv(
                f, header=False, index=False)
            rows += len(frame)
    elapsed = time.perf_counter() - start
    return {"tool": "pandas loop (1 process)", "rows": rows, "wall_s": elapsed, "ray_start_s": 0.0,
            "rows_per_s": rows / elapsed}


def write_deployment(model_ref: str, folder: Path, actors: int, mini_batch: int) -> Path:
    path = folder / "bench-batch.yaml"
    path.write_text(f"name: bench\ntype: batch\nmodel: {model_ref}\nresources: {{instance_count: 1}}\n"
                    f"max_concurrency_per_instance: {actors}\nmini_batch_size: {mini_batch}\n"
                    "output_file_name: predictions.csv\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--scale", type=int, default=4, help="repeat scorer with this many times the rows (1: skip)")
    p.add_argument("--model", default="models:/demo-classifier/1")
    p.add_argument("--actors", type=int, default=os.cpu_count() or 2)
    p.add_argument("--mini-batch", type=int, default=100_000)
    p.add_argument("--skip", default="", help="comma-separated: ray-data,pandas")
    p.add_argument("--work", default=str(REPO / "benchmarks" / "data"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "batch.json"))
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    work = Path(args.work)
    data = make_data(args.model, args.rows, args.files, work / f"rows-{args.rows}")
    limit = in_process_limit(args.model, data)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        deployment = write_deployment(args.model, Path(tmp), args.actors, args.mini_batch)
        results.append(run_scorer(deployment, data, Path(tmp) / "scorer"))
        if "ray-data" not in skip:
            results.append(run_ray_data(args.model, data, Path(tmp) / "raydata", args.actors))
        if "pandas" not in skip:
            results.append(run_pandas(args.model, data, Path(tmp) / "pandas" / "predictions.csv"))
        if args.scale > 1:
            big = make_data(args.model, args.rows * args.scale, args.files, work / f"rows-{args.rows * args.scale}")
            scaled = run_scorer(deployment, big, Path(tmp) / "scorer-big")
            scaled["tool"] = f"scorer batch ({args.scale}x rows)"
            results.append(scaled)
    by_tool = {r["tool"]: r for r in results}
    scorer = by_tool["scorer batch"]
    for r in results:
        r.pop("summary", None)
        r["ratio_to_limit"] = r["rows_per_s"] / limit["limit_rows_per_s"]
        r["scorer_ratio"] = scorer["rows_per_s"] / r["rows_per_s"]
    report = {"model": args.model, "rows": args.rows, "files": args.files, "actors": args.actors,
              "cpus": os.cpu_count(), "in_process": limit, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'tool':32} {'rows':>10} {'rows/s':>12} {'x limit':>8} {'scorer x':>9} {'ray start s':>11} "
          f"{'scoring rows/s':>15} {'peak MB':>8}")
    for r in results:
        scoring = r.get("scoring_rows_per_s") or float("nan")
        print(f"{r['tool']:32} {r['rows']:>10} {r['rows_per_s']:>12,.0f} {r['ratio_to_limit']:>8.2f} "
              f"{r['scorer_ratio']:>9.2f} {r['ray_start_s']:>11.2f} {scoring:>15,.0f} "
              f"{r.get('driver_peak_mb', float('nan')):>8.0f}")
    print("rows/s: rows / (wall time - Ray start-up); scoring rows/s: scorer's own scoring phase "
          "(no pool start-up); scorer x: scorer's rows/s over that tool's")
    print(f"in-process limit: {limit['limit_rows_per_s']:,.0f} rows/s ({os.cpu_count()} cores x "
          f"{limit['one_core_rows_per_s']:,.0f}); results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
