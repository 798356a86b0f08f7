"""Goodput under a flood: 200s per second at the admission bound, then at 10x the bound (429 flood),
then with an unauthenticated flood beside the keyed clients (401 flood), driven by wrk.

    python benchmarks/flood.py --duration 10

The model sleeps `--sleep-ms` per request (a models-from-code pyfunc saved here, so no registry is
needed), 2 replicas x 4 concurrent = 8 in flight + 8 queued = an admission bound of 16.
Results: benchmarks/results/flood.json. The target: goodput under either flood >= 70 % of goodput
at capacity. `PYTHONPATH=/old/checkout python benchmarks/flood.py` measures another version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
LUA = REPO / "benchmarks" / "wrk" / "post.lua"
BOUND = 16
MODEL_CODE = '''
import os, time
import mlflow
from mlflow.pyfunc import PythonModel

DELAY = float(os.environ.get("FLOOD_SLEEP_MS", "5")) / 1000


class Sleep(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(DELAY)
        return model_input["x"].tolist()


mlflow.models.set_model(Sleep())
'''


def wrk(url: str, body: Path, connections: int, seconds: int, key: str) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url,
           "--", "/score", str(body), key, "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    secs = stats["duration_us"] / 1e6
    stats["ok_per_s"] = (stats["requests"] - stats["non2xx"]) / secs
    stats["refused_per_s"] = stats["non2xx"] / secs
    stats["socket_errors"] = stats["connect_errors"] + stats["read_errors"] + stats["timeouts"]
    return stats


def save_model(folder: Path) -> Path:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    code = folder / "sleep_model.py"
    code.write_text(MODEL_CODE)
    example = pd.DataFrame({"x": [1.0]})
    path = folder / "sleep-model"
    mlflow.pyfunc.save_model(str(path), python_model=str(code), signature=infer_signature(example))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per phase")
    p.add_argument("--sleep-ms", type=float, default=5.0, help="the model's time per request")
    p.add_argument("--factor", type=int, default=10, help="flood connections = factor x the bound")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before / after)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("benchmarks/flood.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from scorer.bench.processes import start_scorer

    os.environ["FLOOD_SLEEP_MS"] = str(args.sleep_ms)
    flood = args.factor * BOUND
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = save_model(folder)
        body = folder / "body.json"
        body.write_text(json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}))
        endpoint = folder / "flood.yaml"
        endpoint.write_text(
            "name: flood\nauth_mode: key\ntraffic: {main: 100}\ndeployments:\n  main:\n"
            f"    model: {model}\n    instance_count: 2\n"
            "    request_settings: {request_timeout_ms: 10000, max_concurrent_requests_per_instance: 4, "
            "max_queue_wait_ms: 2000}\n")
        srv = start_scorer([str(endpoint)], folder)
        try:
            srv.wait_ready("/ready")
            key = srv.env["SCORER_API_KEY"]
            wrk(srv.url, body, BOUND, 3, key)  # warm-up
            results["capacity"] = wrk(srv.url, body, BOUND, args.duration, key)
            time.sleep(1)
            results["flood_429"] = wrk(srv.url, body, flood, args.duration, key)
            time.sleep(1)
            keyed: dict[str, Any] = {}
            side = threading.Thread(target=lambda: keyed.update(wrk(srv.url, body, BOUND, args.duration, key)))
            side.start()
            results["flood_401"] = wrk(srv.url, body, flood - BOUND, args.duration, "wrong-key")
            side.join(args.duration + 60)
            results["flood_401_keyed"] = keyed
        finally:
            srv.stop()
    base = results["capacity"]["ok_per_s"]
    summary = {
        "capacity_ok_per_s": base,
        "flood_429_ok_per_s": results["flood_429"]["ok_per_s"],
        "flood_429_refused_per_s": results["flood_429"]["refused_per_s"],
        "flood_401_ok_per_s": results["flood_401_keyed"]["ok_per_s"],
        "flood_401_refused_per_s": results["flood_401"]["refused_per_s"],
    }
    summary["goodput_429_flood_pct"] = 100 * summary["flood_429_ok_per_s"] / base if base else 0.0
    summary["goodput_401_flood_pct"] = 100 * summary["flood_401_ok_per_s"] / base if base else 0.0
    doc = {"label": args.label, "machine": {"cpus": os.cpu_count()}, "bound": BOUND, "flood_connections": flood,
           "sleep_ms": args.sleep_ms, "duration_s": args.duration, "summary": summary, "runs": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"flood{'-' + args.label if args.label else ''}.json"
    (out / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"capacity ({BOUND} connections): {base:8.0f} 200s/s")
    print(f"429 flood ({flood} keyed):       {summary['flood_429_ok_per_s']:8.0f} 200s/s "
          f"({summary['goodput_429_flood_pct']:.0f} %), {summary['flood_429_refused_per_s']:.0f} 429s/s")
    print(f"401 flood ({flood - BOUND} unkeyed + {BOUND} keyed): {summary['flood_401_ok_per_s']:8.0f} 200s/s "
          f"({summary['goodput_401_flood_pct']:.0f} %), {summary['flood_401_refused_per_s']:.0f} 401s/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
