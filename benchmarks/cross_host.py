"""The cost of the cross-host path: the same endpoint with local replicas (forkserver children over
Unix sockets) and with Ray replicas (`scorer serve --address`: actors reached over TCP frames with
the HMAC handshake and heartbeat), on a local single-node Ray on 127.0.0.1. One-row requests,
driven by wrk, p50/p99 at 1 and 64 connections.

    python benchmarks/cross_host.py --duration 10 --replicas 2

Results: benchmarks/results/cross_host.json. Needs wrk and the demo models (`make train`), or
`--model` naming any model reference. Traffic stays on 127.0.0.1; the local Ray is started here
and shut down at the end (never `ray stop`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.online import one_row_body, wrk  # noqa: E402


def endpoint_yaml(folder: Path, model: str, replicas: int) -> Path:
    path = folder / "cross-host.yaml"
    path.write_text(
        "name: crosshost\nauth_mode: key\ntraffic: {main: 100}\ndeployments:\n  main:\n"
        f"    model: {model}\n    instance_count: {replicas}\n    resources: {{requests: {{cpu: 500m}}}}\n"
        "    request_settings: {request_timeout_ms: 10000, max_concurrent_requests_per_instance: 64, "
        "max_queue_wait_ms: 5000}\n")
    return path


def start(endpoint: Path, folder: Path, address: str | None) -> tuple[subprocess.Popen[bytes], str, str]:
    from scorer.bench.processes import free_port

    port, key = free_port(), secrets.token_urlsafe(24)
    cmd = [sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--host", "127.0.0.1", "--port", str(port)]
    if address:
        cmd += ["--address", address]
    log = folder / f"serve-{'ray' if address else 'local'}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "SCORER_API_KEY": key})
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scorer serve exited with {proc.returncode}: see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url, key
        time.sleep(0.25)
    stop(proc)
    raise RuntimeError(f"scorer serve not ready after 180 s: see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models:/demo-classifier/1")
    p.add_argument("--connections", default="1,64")
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("benchmarks/cross_host.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    import ray

    ray.init(address="local", num_cpus=max(2, args.replicas), include_dashboard=False,
             _node_ip_address="127.0.0.1", logging_level=logging.WARNING, log_to_driver=False)
    address = str(ray.get_runtime_context().gcs_address)
    conns = [int(c) for c in args.connections.split(",")]
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            body = one_row_body(args.model, folder)
            endpoint = endpoint_yaml(folder, args.model, args.replicas)
            for placement in ("local", "ray"):
                proc, url, key = start(endpoint, folder, address if placement == "ray" else None)
                try:
                    wrk(url, "/score", body, max(conns), min(3, args.duration), key)  # warm-up
                    for c in conns:
                        stats = wrk(url, "/score", body, c, args.duration, key)
                        stats.update(placement=placement, connections=c, model=args.model)
                        results.append(stats)
                        print(f"{placement:5} c={c:<3} {stats['rps']:8.0f} rps  p50 {stats['p50_us'] / 1e3:7.3f} ms  "
                              f"p99 {stats['p99_us'] / 1e3:8.3f} ms  errors {stats['errors']}", flush=True)
                finally:
                    stop(proc)
    finally:
        ray.shutdown()
    extra = {}
    for c in conns:
        loc = next(r for r in results if r["placement"] == "local" and r["connections"] == c)
        ray_ = next(r for r in results if r["placement"] == "ray" and r["connections"] == c)
        extra[f"c={c}"] = {"p50_extra_ms": (ray_["p50_us"] - loc["p50_us"]) / 1e3,
                           "p99_extra_ms": (ray_["p99_us"] - loc["p99_us"]) / 1e3,
                           "throughput_ratio": ray_["rps"] / loc["rps"]}
        e = extra[f"c={c}"]
        print(f"c={c}: Ray replicas cost {e['p50_extra_ms']:+.3f} ms at p50, {e['p99_extra_ms']:+.3f} ms at p99; "
              f"throughput x{e['throughput_ratio']:.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": {"cpus": os.cpu_count()}, "replicas": args.replicas, "duration_s": args.duration,
           "results": results, "ray_vs_local": extra}
    (out / "cross_host.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
