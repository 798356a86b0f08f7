"""Online benchmark: scorer (batching off and on) against `mlflow models serve --env-manager local`
with as many workers as scorer has replicas, one-row requests, at 1/8/32/64 connections, driven by
wrk (Debian's package: `apt-get install wrk`), plus the router-overhead figure (1 connection,
scorer against in-process `pyfunc.predict` of the same row, and against the flavor's predict without
MLflow's schema enforcement, as a replica calls it). `make bench-online`.

    python benchmarks/online.py --models 1,2 --connections 1,8,32,64 --duration 20

Results: benchmarks/results/online.json and online.png. Needs the demo models in the registry
(`make train`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
LUA = REPO / "benchmarks" / "wrk" / "post.lua"


def wrk(url: str, path: str, body: Path, connections: int, seconds: float, key: str = "-",
        deployment: str = "-", prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """wrk's figures; `prefix` runs it through a wrapper (`ip netns exec NS`: another network namespace)."""
    threads = max(1, min(connections, 2))
    cmd = [*prefix, "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(LUA), url, "--", path, str(body), key, deployment]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = stats["non2xx"] + stats["connect_errors"] + stats["read_errors"] + stats["timeouts"]
    return stats


def endpoint_yaml(folder: Path, model: str, replicas: int, batching: bool) -> Path:
    batch = "batching: {max_batch_size: 64, max_batch_wait_ms: 2}\n    " if batching else ""  # issue 12's settings
    path = folder / f"bench-{'on' if batching else 'off'}-{model.replace('/', '_').replace(':', '')}.yaml"
    path.write_text(
        "name: bench\nauth_mode: key\ntraffic: {main: 100}\ndeployments:\n  main:\n"
        f"    model: {model}\n    instance_count: {replicas}\n    {batch}"
        "request_settings: {request_timeout_ms: 10000, max_concurrent_requests_per_instance: 64, "
        "max_queue_wait_ms: 5000}\n")
    return path


def _p50_p99(call: Any, n: int) -> dict[str, float]:
    for _ in range(50):
        call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(0.99 * len(times)) - 1]}


def in_process_latency(model_ref: str, body: Path, n: int = 2000) -> dict[str, Any]:
    """In-process `pyfunc.predict` of the request's rows (issue 12's baseline: MLflow's schema
    enforcement included), and, for an all-double signature, the flavor's predict on the frame
    scorer's parser builds (no enforcement: what a replica itself calls), so that the router's and
    replica's own cost can be told from the enforcement scorer skips."""
    import pandas as pd

    from scorer.models import load_model
    from scorer.models.runtime import MlflowRuntime

    model = load_model(model_ref)
    split = json.loads(body.read_text())["dataframe_split"]
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    out: dict[str, Any] = _p50_p99(lambda: model.predict(frame), n)
    runtime = MlflowRuntime(model.pyfunc, model_ref)
    if runtime.double_columns:
        exact = frame[list(runtime.double_columns)].astype("float64")
        out["exact"] = _p50_p99(lambda: runtime.predict_exact(exact), n)
    return out


def one_row_body(model_ref: str, folder: Path, rows: int = 1) -> Path:
    """A `dataframe_split` body of `rows` rows (the input example's rows, repeated)."""
    import pandas as pd

    from scorer.models import load_input_example

    example = load_input_example(model_ref)
    assert isinstance(example, pd.DataFrame), f"{model_ref} has no tabular input example"
    frame = pd.concat([example] * (rows // len(example) + 1), ignore_index=True).head(rows)
    path = folder / ("one-row.json" if rows == 1 else f"rows-{rows}.json")
    path.write_text(json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}))
    return path


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in results})
    rows = {r["rows"] for r in results}
    size = "" if rows == {1} else f", {'/'.join(map(str, sorted(rows)))} rows a request"
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for server in sorted({r["server"] for r in results if r["model"] == model}):
            pts = sorted((r for r in results if r["model"] == model and r["server"] == server),
                         key=lambda r: r["connections"])
            x = [r["connections"] for r in pts]
            axes[row][0].plot(x, [r["rps"] for r in pts], marker="o", label=server)
            axes[row][1].plot(x, [r["p99_us"] / 1e3 for r in pts], marker="x", label=f"{server} p99")
        axes[row][0].set(title=f"{model}{size}: throughput", xlabel="connections", ylabel="requests/s", xscale="log",
                         yscale="log")
        axes[row][1].set(title=f"{model}{size}: p99 latency", xlabel="connections", ylabel="ms", xscale="log",
                         yscale="log")
        for ax in axes[row]:
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="1,2", help="demo-classifier versions (1 LR, 2 RF(100))")
    p.add_argument("--connections", default="1,8,32,64")
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--replicas", type=int, default=os.cpu_count() or 2)
    p.add_argument("--servers", default="scorer,scorer-batching,mlflow")
    p.add_argument("--rows", default="1", help="rows per request, e.g. 1,100,1000 (rows/s reported)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("benchmarks/online.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from scorer.bench.processes import start_mlflow, start_scorer
    from scorer.models import resolve

    conns = [int(c) for c in args.connections.split(",")]
    servers = args.servers.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    overhead: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for version in args.models.split(","):
            model = f"models:/demo-classifier/{version}"
            bodies = {int(n): one_row_body(model, folder, int(n)) for n in args.rows.split(",")}
            body = bodies.get(1) or next(iter(bodies.values()))
            for server in servers:
                if server == "mlflow":
                    proc = start_mlflow(resolve(model).local_path, args.replicas, folder)
                    proc.wait_ready("/ping")
                    key, path = "-", "/invocations"
                else:
                    proc = start_scorer([str(endpoint_yaml(folder, model, args.replicas, server != "scorer"))],
                                        folder)
                    proc.wait_ready("/ready")
                    key, path = proc.env["SCORER_API_KEY"], "/score"
                try:
                    wrk(proc.url, path, body, max(conns), min(5, args.duration), key)  # warm-up
                    for rows, rows_body in bodies.items():
                        for c in conns:
                            stats = wrk(proc.url, path, rows_body, c, args.duration, key)
                            stats.update(model=model, server=server, connections=c, generator="wrk", rows=rows,
                                         rows_per_s=stats["rps"] * rows)
                            results.append(stats)
                            print(f"{model} {server:16} rows={rows:<5} c={c:<3} {stats['rps']:9.0f} rps "
                                  f"{stats['rows_per_s']:10.0f} rows/s  p50 {stats['p50_us'] / 1e3:7.2f} ms  "
                                  f"p99 {stats['p99_us'] / 1e3:8.2f} ms  errors {stats['errors']}", flush=True)
                finally:
                    proc.stop()
            local = in_process_latency(model, body)
            overhead[model] = {"in_process": local}
            for name in ("scorer", "scorer-batching"):
                one = next((r for r in results if r["model"] == model and r["server"] == name
                            and r["connections"] == 1 and r["rows"] == 1), None)
                if one is not None:
                    overhead[model][name] = {"c1_p50_ms": one["p50_us"] / 1e3, "c1_p99_ms": one["p99_us"] / 1e3,
                                             "over_in_process_p50_ms": one["p50_us"] / 1e3 - local["p50_ms"]}
                    if "exact" in local:
                        overhead[model][name]["over_exact_p50_ms"] = one["p50_us"] / 1e3 - local["exact"]["p50_ms"]
            exact = f", without MLflow's enforcement {local['exact']['p50_ms']:.3f} ms" if "exact" in local else ""
            print(f"{model}: in-process predict p50 {local['p50_ms']:.3f} ms{exact}; overhead {overhead[model]}")
    ratios = {}
    for r in results:
        if r["server"] == "mlflow":
            continue
        ml = next((m for m in results if m["server"] == "mlflow" and m["model"] == r["model"]
                   and m["connections"] == r["connections"] and m["rows"] == r["rows"]), None)
        if ml:
            ratios[f"{r['model']} {r['server']} rows={r['rows']} c={r['connections']}"] = {
                "throughput_x": r["rps"] / ml["rps"], "p99_fraction": r["p99_us"] / ml["p99_us"]}
    doc = {"machine": {"cpus": os.cpu_count()}, "replicas": args.replicas, "results": results,
           "router_overhead": overhead, "ratios_vs_mlflow": ratios}
    (out / "online.json").write_text(json.dumps(doc, indent=2) + "\n")
    fewest = min((r["rows"] for r in results), default=1)  # --rows 100,1000 has no one-row runs to draw
    plot([r for r in results if r["rows"] == fewest], out / "online.png")
    for k, v in ratios.items():
        print(f"{k}: {v['throughput_x']:.1f}x mlflow throughput, p99 {v['p99_fraction']:.2f} of mlflow's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
