"""Autoscaler at work: replicas and latency over time while the load ramps up and back down.

Starts `scorer serve` on 127.0.0.1 with one deployment (a model that sleeps 20 ms a request,
`target_utilization` 1..4 replicas at 50 %, 2 concurrent requests per replica, polling every 1 s,
scale-down delay 5 s, local hook), drives it with asyncio httpx clients following a schedule of
client counts, samples `/admin/endpoint` every 0.25 s, and plots replicas (ready and desired) and
latency (p50/p95 per second) over time with matplotlib (Agg).

    python benchmarks/autoscale_ramp.py --out docs/autoscaling.png

Also writes the samples as JSON next to the PNG (benchmarks/results/autoscale_ramp.json by default).
Bounded: the whole run lasts the schedule (about 75 s) plus the server's start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
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
ADMIN_KEY = "autoscale-ramp-admin"
BODY = {"dataframe_split": {"columns": ["seconds"], "data": [[0.02]]}}
# (from second, clients): up in steps, a plateau, down, then idle so that the scale-down shows
SCHEDULE = [(0, 1), (8, 3), (16, 5), (26, 8), (40, 3), (48, 0)]
END = 75.0

SLEEPER = '''
import time
import mlflow
from mlflow.pyfunc import PythonModel


class Sleeper(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(float(model_input["seconds"].max()))
        return model_input["seconds"].tolist()


mlflow.models.set_model(Sleeper())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(root: Path) -> Path:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    code = root / "sleeper_model.py"
    code.write_text(SLEEPER)
    example = pd.DataFrame({"seconds": [0.0]})
    path = root / "sleeper"
    mlflow.pyfunc.save_model(str(path), python_model=str(code), signature=infer_signature(example),
                             input_example=example)
    return path


def clients_at(t: float) -> int:
    n = 0
    for start, count in SCHEDULE:
        if t >= start:
            n = count
    return n


async def drive(url: str, t0: float, latencies: list[tuple[float, float, int]]) -> None:
    import httpx

    async def client(i: int, c: httpx.AsyncClient) -> None:
        while (t := time.monotonic() - t0) < END:
            if i >= clients_at(t):
                await asyncio.sleep(0.05)
                continue
            start = time.monotonic()
            try:
                r = await c.post("/score", json=BODY)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append((start - t0, time.monotonic() - start, status))

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=15, limits=limits) as c:
        await asyncio.gather(*(client(i, c) for i in range(max(n for _, n in SCHEDULE))))


async def watch(url: str, t0: float, samples: list[dict[str, Any]]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=5, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        while (t := time.monotonic() - t0) < END:
            try:
                dep = (await c.get("/admin/endpoint")).json()["deployments"]["ramp"]
                states = [r["state"] for r in dep["replicas"]]
                samples.append({"t": t, "ready": states.count("ready"), "starting": states.count("starting"),
                                "draining": states.count("draining"), "desired": dep["desired_replicas"],
                                "clients": clients_at(t)})
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            await asyncio.sleep(0.25)


def plot(samples: list[dict[str, Any]], latencies: list[tuple[float, float, int]], events: list[dict[str, Any]],
         out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    t = [s["t"] for s in samples]
    ax1.step(t, [s["clients"] for s in samples], where="post", color="0.6", label="clients (concurrent)")
    ax1.step(t, [s["desired"] for s in samples], where="post", color="tab:orange", label="desired replicas")
    ax1.step(t, [s["ready"] for s in samples], where="post", color="tab:blue", lw=2, label="ready replicas")
    ax1.set_ylabel("count")
    ax1.set_title("scorer autoscaler: target 50 %, 2 requests/replica, 1..4 replicas, poll 1 s, "
                  "scale-down delay 5 s", fontsize=9)
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    by_second: dict[int, list[float]] = {}
    for start, lat, status in latencies:
        if status == 200:
            by_second.setdefault(int(start), []).append(lat * 1000)
    secs = sorted(by_second)
    p50 = [statistics.median(by_second[s]) for s in secs]
    p95 = [sorted(by_second[s])[int(0.95 * (len(by_second[s]) - 1))] for s in secs]
    ax2.plot(secs, p50, color="tab:green", label="p50 latency")
    ax2.plot(secs, p95, color="tab:red", label="p95 latency")
    ax2.axhline(20, color="0.6", ls=":", label="model time (20 ms)")
    ax2.set_ylabel("ms")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        for e in events:
            ax.axvline(e["t"], color="tab:orange" if e["to"] > e["from"] else "tab:purple", alpha=0.25, lw=1)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs" / "autoscaling.png"))
    p.add_argument("--data", default=str(REPO / "benchmarks" / "results" / "autoscale_ramp.json"))
    args = p.parse_args()
    import httpx

    with tempfile.TemporaryDirectory(prefix="scorer-ramp-") as d:
        root = Path(d)
        model = make_model(root)
        endpoint = root / "ramp.yaml"
        endpoint.write_text(f"""
name: ramp
auth_mode: none
traffic: {{ramp: 100}}
deployments:
  ramp:
    model: {model}
    scale_settings: {{type: target_utilization, min_instances: 1, max_instances: 4,
                      target_utilization_percentage: 50, polling_interval: 1, scale_down_delay: 5}}
    request_settings: {{request_timeout_ms: 10000, max_concurrent_requests_per_instance: 2,
                        max_queue_wait_ms: 5000}}
""")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (root / "serve.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", str(port)],
                                cwd=root, env={**os.environ, "SCORER_ADMIN_KEY": ADMIN_KEY}, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    print((root / "serve.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            samples: list[dict[str, Any]] = []
            latencies: list[tuple[float, float, int]] = []

            async def run() -> float:
                t0 = time.monotonic()
                await asyncio.gather(drive(url, t0, latencies), watch(url, t0, samples))
                return t0

            wall0 = time.time()
            asyncio.run(run())
            doc = httpx.get(f"{url}/admin/endpoint", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                            timeout=5).json()
            events = [{**e, "t": e["time"] - wall0} for e in doc["deployments"]["ramp"]["scale_events"]]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    statuses: dict[str, int] = {}
    for _, _, s in latencies:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    out = Path(args.out)
    plot(samples, latencies, events, out)
    data = Path(args.data)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps({"schedule": SCHEDULE, "statuses": statuses, "events": events, "samples": samples},
                               indent=1))
    print(f"requests by status: {statuses}")
    for e in events:
        print(f"  t={e['t']:5.1f}s {e['from']} -> {e['to']}: {e['reason']} ({e['outcome']})")
    print(f"wrote {out} and {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
