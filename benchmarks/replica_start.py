"""Replica cold start and memory: `scorer serve` with one replica, then scaled up through the admin
API, so the first replica (which pays for the forkserver's imports) and the later ones (forked from
it: the model load and warm-up only) are timed apart. Memory per replica is its USS (pages it does
not share with the forkserver) and RSS.

    python benchmarks/replica_start.py --model models:/demo-classifier/2 --scale-to 3

Results: benchmarks/results/replica_start.json. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _replicas(url: str, admin: str) -> list[dict[str, Any]]:
    import httpx

    doc = httpx.get(f"{url}/admin/endpoint", headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    return list(doc["deployments"]["main"]["replicas"])


def measure(model: str, scale_to: int, out_dir: Path) -> dict[str, Any]:
    import httpx
    import psutil

    from scorer.bench.processes import start_scorer

    endpoint = out_dir / "replica-start.yaml"
    endpoint.write_text(f"name: start\nauth_mode: key\ntraffic: {{main: 100}}\ndeployments:\n  main:\n"
                        f"    model: {model}\n    instance_count: 1\n")
    admin = secrets.token_urlsafe(16)
    os.environ["SCORER_ADMIN_KEY"] = admin
    t0 = time.perf_counter()
    server = start_scorer([str(endpoint)], out_dir)
    try:
        server.wait_ready("/ready", 300)
        to_ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        r = httpx.post(f"{server.url}/admin/deployments/main/scale", json={"instances": scale_to},
                       headers={"Authorization": f"Bearer {admin}"}, timeout=120)
        r.raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reps = _replicas(server.url, admin)
            if len(reps) == scale_to and all(x["ready"] for x in reps):
                break
            time.sleep(0.1)
        scaled = time.perf_counter() - t1
        rows = []
        for rep in _replicas(server.url, admin):
            info = psutil.Process(rep["pid"]).memory_full_info()
            rows.append({"pid": rep["pid"], "start_seconds": rep["start_seconds"],
                         "uss_mib": round(info.uss / 2**20, 1), "rss_mib": round(info.rss / 2**20, 1)})
        return {"model": model, "server_to_ready_s": round(to_ready, 3), "scale_to": scale_to,
                "scale_up_to_all_ready_s": round(scaled, 3), "replicas": rows}
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models:/demo-classifier/1")
    p.add_argument("--scale-to", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args()
    os.chdir(REPO)  # the demo registry (.scorer/) is relative to the repository
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.model, args.scale_to, Path(tmp))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "replica_start.json").write_text(json.dumps(result, indent=2))
    print(f"{result['model']}: server to ready {result['server_to_ready_s']} s; scale 1 -> {args.scale_to}: "
          f"{result['scale_up_to_all_ready_s']} s until all ready")
    for row in result["replicas"]:
        print(f"  replica pid {row['pid']}: start {row['start_seconds']} s, USS {row['uss_mib']} MiB, "
              f"RSS {row['rss_mib']} MiB")


if __name__ == "__main__":
    main()
