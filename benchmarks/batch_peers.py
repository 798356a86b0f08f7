"""The two baselines of `benchmarks/batch_bench.py`, each run as a process of its own so that its
whole process (interpreter, imports, model load, Ray start) is timed as scorer's is:

  loop     the script a user would write instead of scorer: import mlflow, load the model, then for
           each file in sorted order read it (pyarrow.parquet / pandas.read_csv), predict, and append
           `file,row,prediction` rows to one CSV. Scoring phase: after the model load to the end.
  raydata  Ray Data `map_batches` on a local Ray started with the `ray.init` options a Ray Data user
           has (`batch.pool.start_ray` with SCORER_BATCH_LEAN_RAY=0: 127.0.0.1 only, no dashboard,
           quiet, telemetry off; not scorer's lean start, which leaves out processes through Ray
           internals): read_parquet / read_csv, a fixed pool of 2 actors
           with num_cpus=0.5 each, batches of 100k rows, pandas format, write_csv. Scoring phase:
           after ray.init to the end (the actors start inside it, as Ray Data starts them lazily).

    python benchmarks/batch_peers.py loop --model PATH --input DIR --format parquet --output FILE

`--model` is a local MLflow model folder (the parent resolves the registry reference once). The last
line on stdout is `batch-peer-result: {json}` with the phase times; the parent checks the row count
in the output itself.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before any import that matters: the child's own view of its start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
RESULT_TAG = "batch-peer-result: "


def _inputs(folder: Path, fmt: str) -> list[Path]:
    files = sorted(folder.glob(f"*.{fmt}"))
    if not files:
        raise SystemExit(f"no *.{fmt} files in {folder}")
    return files


def run_loop(model_path: str, folder: Path, fmt: str, out: Path) -> dict[str, Any]:
    """The single-process pandas loop."""
    import mlflow.pyfunc
    import pandas as pd
    import pyarrow.parquet as pq

    t_import = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_path)
    t_load = time.perf_counter()
    rows = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        f.write("file,row,prediction\n")
        for path in _inputs(folder, fmt):
            frame = pq.read_table(path).to_pandas() if fmt == "parquet" else pd.read_csv(path)
            pred = model.predict(frame)
            pd.DataFrame({"file": path.name, "row": range(len(frame)), "prediction": pred}).to_csv(
                f, header=False, index=False)
            rows += len(frame)
    end = time.perf_counter()
    return {"rows": rows, "import_s": t_import - T0, "load_s": t_load - t_import, "scoring_s": end - t_load,
            "total_s": end - T0}


class Predictor:
    """Ray Data's callable class: the model is loaded once per actor."""

    def __init__(self, path: str) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(path)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        paths = batch.pop("path")
        return pd.DataFrame({"file": paths.map(os.path.basename), "prediction": self.model.predict(batch)})


def run_raydata(model_path: str, folder: Path, fmt: str, out: Path, actors: int, batch_size: int,
                num_cpus: float) -> dict[str, Any]:
    """Ray Data map_batches over a fixed pool of `actors` (`ActorPoolStrategy(size=n)`: in Ray 2.60
    `concurrency=n` is deprecated in favour of it, and means the same fixed pool)."""
    sys.path.insert(0, str(REPO))
    import ray
    import ray.data

    from batch.pool import start_ray

    t_import = time.perf_counter()
    os.environ.setdefault("SCORER_BATCH_LEAN_RAY", "0")  # the public ray.init options only (docstring)
    start_ray(None, debug=False)
    t_ray = time.perf_counter()
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        files = [str(p) for p in _inputs(folder, fmt)]
        read = ray.data.read_parquet if fmt == "parquet" else ray.data.read_csv
        ds = read(files, include_paths=True)
        ds = ds.map_batches(Predictor, fn_constructor_args=(model_path,), batch_size=batch_size,
                            batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=actors),
                            num_cpus=num_cpus)
        ds.write_csv(str(out))
    finally:
        ray.shutdown()
    end = time.perf_counter()
    return {"import_s": t_import - T0, "ray_init_s": t_ray - t_import, "scoring_s": end - t_ray,
            "total_s": end - T0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a baseline of the batch benchmark, in a process of its own")
    p.add_argument("tool", choices=["loop", "raydata"])
    p.add_argument("--model", required=True, help="local MLflow model folder")
    p.add_argument("--input", required=True, help="folder of input files")
    p.add_argument("--format", choices=["parquet", "csv"], required=True)
    p.add_argument("--output", required=True, help="loop: the CSV file; raydata: a new folder")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100_000)
    p.add_argument("--num-cpus", type=float, default=0.5)
    args = p.parse_args(argv)
    if args.tool == "loop":
        result = run_loop(args.model, Path(args.input), args.format, Path(args.output))
    else:
        result = run_raydata(args.model, Path(args.input), args.format, Path(args.output), args.actors,
                             args.batch_size, args.num_cpus)
    print(RESULT_TAG + json.dumps({"tool": args.tool, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
