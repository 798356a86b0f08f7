"""The cost of the cross-host path: local replicas against Ray replicas, on one host and on another.

The same endpoint served three ways, one-row requests driven by wrk, p50/p99/rps at 1 and 64
connections, with ratios against the first:

  local    local replicas (forkserver children over Unix sockets);
  ray      Ray replicas (`scorer serve --address`: actors reached over TCP frames with the HMAC
           handshake and heartbeat) on a local single-node Ray on 127.0.0.1;
  cluster  Ray replicas on ANOTHER "host": a two-node Ray cluster made of network namespaces
           (tests/multihost/cluster.py), the head with no CPU so that every actor lands on node 2;
           the router and wrk run in the head's namespace (the machine's root namespace has no route
           to the cluster's bridge), so every request crosses the veths and the bridge.

The three routers run at once and the wrk runs are interleaved over `--rounds` rounds (medians in
the table), so that the load of a shared machine weighs on every row alike.

    python benchmarks/cross_host.py --duration 10 --rounds 2      # make bench-cross-host

`cluster` needs root with `ip netns` and mount namespaces: `--namespaces auto` (default) runs it
when they work and otherwise prints why it is skipped; `yes` fails without them; `no` skips it.
Results: benchmarks/results/cross_host.json. Needs wrk and the demo models (`make train`), or
`--model` naming any model reference. Traffic stays on 127.0.0.1 and the cluster's private /24;
the local Ray is started and shut down here; the cluster's processes (only those in its
namespaces) are killed at the end (never `ray stop`). Every step is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
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

READY_TIMEOUT_S = 180  # a router's replicas ready (Ray actors import MLflow on a loaded machine)


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

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scorer serve exited with {proc.returncode}: see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url, key
        time.sleep(0.25)
    stop(proc)
    raise RuntimeError(f"scorer serve not ready after {READY_TIMEOUT_S} s: see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclasses.dataclass(frozen=True)
class Served:
    """One running router: where wrk reaches it (`prefix`: the namespace wrk must run in)."""

    placement: str
    url: str
    key: str
    prefix: tuple[str, ...] = ()


def serve_local(stack: contextlib.ExitStack, endpoint: Path, folder: Path) -> Served:
    proc, url, key = start(endpoint, folder, None)
    stack.callback(stop, proc)
    return Served("local", url, key)


def serve_ray(stack: contextlib.ExitStack, endpoint: Path, folder: Path, replicas: int) -> Served:
    """A single-node Ray on 127.0.0.1 in this process (shut down on the way out) and a router on it."""
    import ray

    ray.init(address="local", num_cpus=max(2, replicas), include_dashboard=False,
             _node_ip_address="127.0.0.1", logging_level=logging.WARNING, log_to_driver=False)
    stack.callback(ray.shutdown)
    proc, url, key = start(endpoint, folder, str(ray.get_runtime_context().gcs_address))
    stack.callback(stop, proc)
    return Served("ray", url, key)


# Runs in the head's namespace: the router's /ready, then its admin document until every replica is
# ready on the node we want (argv: url, admin key, node ip, replicas, seconds).
WAIT_PLACED = """
import json, sys, time, httpx
url, admin, ip, want, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
deadline, doc = time.monotonic() + seconds, {}
while time.monotonic() < deadline:
    try:
        if httpx.get(url + "/ready", timeout=2).status_code == 200:
            doc = httpx.get(url + "/admin/endpoint", headers={"Authorization": "Bearer " + admin}, timeout=5).json()
            reps = doc["deployments"]["main"]["replicas"]
            if sum(r.get("state") == "ready" and r.get("where") == ip for r in reps) >= want:
                print(json.dumps({"ok": True, "replicas": reps})); sys.exit(0)
    except (httpx.HTTPError, KeyError, ValueError):
        pass
    time.sleep(0.5)
print(json.dumps({"ok": False, "doc": doc}))
"""


def serve_cluster(stack: contextlib.ExitStack, endpoint: Path, folder: Path, replicas: int,
                  ) -> tuple[Served, dict[str, Any]]:
    """A two-node namespace cluster whose head has no CPU, a router in the head's namespace, and
    every replica on node 2 (checked in the admin document)."""
    from scorer.bench.processes import free_port
    from tests.multihost.cluster import NetnsCluster

    cluster = stack.enter_context(NetnsCluster(2))  # close() kills only this cluster's processes
    cluster.up().start_ray(cpus=max(1, math.ceil(replicas * 0.5)), head_cpus=0, timeout=READY_TIMEOUT_S)
    head, remote = cluster.head, cluster.nodes[1]
    port, key, admin = free_port(), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--host", "127.0.0.1", "--port",
           str(port), "--address", cluster.address]
    log = folder / "serve-cluster.log"
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cluster.node_command(head, cmd), cwd=os.getcwd(), stdout=out, stderr=subprocess.STDOUT,
                                env={**cluster.env(), "SCORER_API_KEY": key, "SCORER_ADMIN_KEY": admin},
                                start_new_session=True)
    stack.callback(stop, proc)
    wait = [sys.executable, "-c", WAIT_PLACED, url, admin, remote.ip, str(replicas), str(READY_TIMEOUT_S)]
    done = subprocess.run(cluster.node_command(head, wait), env=cluster.env(), capture_output=True, text=True,
                          timeout=READY_TIMEOUT_S + 30, cwd=str(REPO))
    lines = done.stdout.strip().splitlines()
    placed: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False}
    if not placed["ok"]:
        raise RuntimeError(f"replicas not all ready on node 2 ({remote.ip}): {placed}\n{done.stderr[-1500:]}"
                           f"\n{log.read_text(errors='replace')[-3000:]}")
    info = {"timings": cluster.timings, "router_ready_s": round(time.monotonic() - t0, 1), "router_node": head.ip,
            "replica_node": remote.ip, "replicas_where": [r.get("where") for r in placed["replicas"]]}
    print(f"cluster: Ray up in {cluster.timings.get('ray_up_s')} s; router ready with {replicas} replica(s) "
          f"on node 2 ({remote.ip}) in {info['router_ready_s']} s", flush=True)
    return Served("cluster", url, key, ("ip", "netns", "exec", head.name)), info


def measure(servers: list[Served], body: Path, conns: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every router warmed up, then `rounds` rounds, each one wrk run per connection count and
    router, interleaved (the order reversed every other round) so that the shared machine's load
    drifts over all rows alike rather than over one."""
    for s in servers:
        wrk(s.url, "/score", body, max(conns), min(3, args.duration), s.key, prefix=s.prefix)
    runs = []
    for rnd in range(args.rounds):
        order = servers if rnd % 2 == 0 else servers[::-1]
        for c in conns:
            for s in order:
                stats = wrk(s.url, "/score", body, c, args.duration, s.key, prefix=s.prefix)
                stats.update(placement=s.placement, connections=c, round=rnd, model=args.model)
                runs.append(stats)
                print(f"round {rnd} {s.placement:7} c={c:<3} {stats['rps']:8.0f} rps  p50 {stats['p50_us'] / 1e3:7.3f} "
                      f"ms  p99 {stats['p99_us'] / 1e3:8.3f} ms  errors {stats['errors']}", flush=True)
    return runs


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per placement and connection count: the median over rounds of p50, p99 and rps."""
    out = []
    for key in dict.fromkeys((r["placement"], r["connections"]) for r in runs):
        rows = [r for r in runs if (r["placement"], r["connections"]) == key]
        out.append({"placement": key[0], "connections": key[1], "rounds": len(rows),
                    "p50_us": statistics.median(r["p50_us"] for r in rows),
                    "p99_us": statistics.median(r["p99_us"] for r in rows),
                    "rps": statistics.median(r["rps"] for r in rows),
                    "requests": sum(r["requests"] for r in rows), "errors": sum(r["errors"] for r in rows)})
    return out


def ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Each placement against `local` at the same connection count."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        loc = next((x for x in results if x["placement"] == "local" and x["connections"] == r["connections"]), None)
        if r["placement"] == "local" or loc is None:
            continue
        out.setdefault(r["placement"], {})[f"c={r['connections']}"] = {
            "p50_ratio": r["p50_us"] / loc["p50_us"], "p99_ratio": r["p99_us"] / loc["p99_us"],
            "rps_ratio": r["rps"] / loc["rps"], "p50_extra_ms": (r["p50_us"] - loc["p50_us"]) / 1e3,
            "p99_extra_ms": (r["p99_us"] - loc["p99_us"]) / 1e3}
    return out


def table(results: list[dict[str, Any]], vs: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [f"{'placement':9} {'conns':>5} {'rps':>8} {'p50 ms':>8} {'p99 ms':>9} {'p50 x':>6} {'p99 x':>6} "
             f"{'rps x':>6} {'errors':>6}"]
    for r in results:
        v = vs.get(r["placement"], {}).get(f"c={r['connections']}")
        rx = (f"{v['p50_ratio']:6.2f} {v['p99_ratio']:6.2f} {v['rps_ratio']:6.2f}" if v
              else f"{'1':>6} {'1':>6} {'1':>6}")
        lines.append(f"{r['placement']:9} {r['connections']:>5} {r['rps']:8.0f} {r['p50_us'] / 1e3:8.3f} "
                     f"{r['p99_us'] / 1e3:9.3f} {rx} {r['errors']:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--model", default="models:/demo-classifier/1")
    p.add_argument("--connections", default="1,64")
    p.add_argument("--duration", type=float, default=10, help="seconds of wrk per row and connection count")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the table gives their medians")
    p.add_argument("--namespaces", choices=("auto", "yes", "no"), default="auto",
                   help="the `cluster` row (two network-namespace hosts; root only): auto runs it when possible")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("benchmarks/cross_host.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    skipped = "--namespaces no" if args.namespaces == "no" else None
    if skipped is None:
        from tests.multihost.cluster import unavailable

        if (why := unavailable()) is not None:
            if args.namespaces == "yes":
                print(f"--namespaces yes: {why}", file=sys.stderr)
                return 2
            skipped = why
    if skipped:
        print(f"cluster row skipped: {skipped}", flush=True)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(143)  # unwinds: servers stopped, the local Ray shut down, the cluster closed

    signal.signal(signal.SIGTERM, on_term)
    conns = [int(c) for c in args.connections.split(",")]
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    cluster_info: dict[str, Any] = {"skipped": skipped} if skipped else {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        body = one_row_body(args.model, folder)
        endpoint = endpoint_yaml(folder, args.model, args.replicas)
        servers = [serve_local(stack, endpoint, folder), serve_ray(stack, endpoint, folder, args.replicas)]
        if not skipped:
            served, cluster_info = serve_cluster(stack, endpoint, folder, args.replicas)
            servers.append(served)
        runs = measure(servers, body, conns, args)
    results = medians(runs)
    vs = ratios(results)
    print(table(results, vs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"date": started.isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
           "command": " ".join(["python", "benchmarks/cross_host.py", *(argv if argv is not None else sys.argv[1:])]),
           "replicas": args.replicas, "duration_s": args.duration, "cluster": cluster_info,
           "rounds": args.rounds, "results": results, "vs_local": vs, "runs": runs}
    (out / "cross_host.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
