"""scorer against its peers on the same model, same machine, same run, same load tool (wrk): one
table of rps and p50/p99 at 1 and 64 connections, with ratios against `mlflow models serve`.

  scorer      `scorer serve`, 2 replicas, batching 64 rows / 2 ms, on its MLflow route
              (`/invocations`) and its V2 route (`/v2/models/peers/infer`);
  mlflow      `mlflow models serve --env-manager local -w 2` (the baseline);
  mlserver    MLServer 1.7 + mlserver-mlflow, 2 parallel workers, adaptive batching 64 / 2 ms, on its
              V2 route and on mlserver-mlflow's `/invocations` (custom handlers are not batched);
  ray-serve   Ray Serve, a deployment of 2 replicas with `@serve.batch(64, 0.002 s)` taking the same
              `dataframe_split` body, on its own local Ray (127.0.0.1, no dashboard).

    python benchmarks/peers.py --duration 10      # make bench-peers

MLServer 1.7 and Ray Serve cannot share our venv (MLServer pins fastapi<0.116, Ray Serve wants
>=0.133), so each gets a venv of its own under `.peers-venv/` (ignored by git), made by pip on the
first run with the mlflow and scikit-learn of constraints.txt (the model must load) and, for
MLServer, `uvloop<0.22` (its parallel workers break with 0.22). The model (`--model`, default the
demo LR of `make train`) is downloaded from our registry once into `.peers-venv/models/`. A peer
that cannot be installed or started is reported as such; the others are still measured.

Every server listens on 127.0.0.1 only, runs in a process group of its own and is stopped by
killing that group (plus any process left holding this run's Ray temp folder); never `ray stop`.
Every load run is bounded (`--duration`, at most 60 s). Results: benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
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
from scorer.bench.processes import Server, free_port, start_mlflow, start_scorer  # noqa: E402

MAX_BATCH, BATCH_WAIT_S = 64, 0.002  # the same batching for scorer, MLServer and Ray Serve
READY_TIMEOUT_S = 240  # a server answering a real request (two workers import MLflow on 2 busy cores)
PIP_TIMEOUT_S = 1800
V2_NAME = "peers"  # scorer's endpoint name, which is also its V2 model name


def pinned(name: str) -> str:
    """`name==version` from constraints.txt, so the peers load the model with what trained it."""
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    return name


def requirements() -> dict[str, list[str]]:
    ray = pinned("ray").replace("ray==", "ray[serve]==")
    common = [pinned("mlflow"), pinned("scikit-learn")]
    return {"mlserver": ["mlserver==1.7.*", "mlserver-mlflow==1.7.*", "uvloop<0.22", *common],
            "ray": [ray, *common, "-c", str(REPO / "constraints.txt")]}  # Ray Serve fits our pins


def ensure_venv(root: Path, name: str, reqs: list[str]) -> Path:
    """`root/name/bin/python` with `reqs` installed; pip runs only when the list changed (a stamp)."""
    venv = root / name
    stamp = venv / ".peers-stamp"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == json.dumps(reqs):
        return python
    print(f"peers: installing {' '.join(reqs)} into {venv} (once; a few minutes)", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    log = venv / "pip-install.log"
    with open(log, "wb") as out:
        done = subprocess.run([str(python), "-m", "pip", "install", "--progress-bar", "off", *reqs],
                              stdout=out, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"pip install failed (see {log}): {' | '.join(tail)}")
    stamp.write_text(json.dumps(reqs))
    return python


def local_model(model: str, root: Path) -> Path:
    """The model's files in a folder of our own, downloaded from the registry on the first run."""
    from scorer.models import resolve

    resolved = resolve(model)
    dest = root / "models" / f"{resolved.ref.name or 'model'}-{resolved.version}"
    if not (dest / "MLmodel").is_file():
        tmp = dest.with_name(dest.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(resolved.local_path, tmp)
        tmp.rename(dest)
    return dest


def v2_body(split_body: Path, folder: Path) -> Path:
    """The same row as V2 inputs: one FP64 tensor of shape [1] per signature column."""
    split = json.loads(split_body.read_text())["dataframe_split"]
    inputs = [{"name": col, "shape": [1], "datatype": "FP64", "data": [float(split["data"][0][i])]}
              for i, col in enumerate(split["columns"])]
    path = folder / "one-row-v2.json"
    path.write_text(json.dumps({"inputs": inputs}))
    return path


def spawn(name: str, cmd: list[str], folder: Path, path: str, env: dict[str, str] | None = None) -> Server:
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True, cwd=folder)
    return Server(name, "", path, proc, log)


def start_mlserver(python: Path, model_dir: Path, folder: Path, workers: int) -> Server:
    """`mlserver start` on a settings.json + model-settings.json written here."""
    root = folder / "mlserver"
    (root / "demo-classifier").mkdir(parents=True, exist_ok=True)
    port = free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "metrics_dir": str(root / "metrics"), "parallel_workers": workers, "debug": False}))
    (root / "demo-classifier" / "model-settings.json").write_text(json.dumps({
        "name": "demo-classifier", "implementation": "mlserver_mlflow.MLflowRuntime",
        "max_batch_size": MAX_BATCH, "max_batch_time": BATCH_WAIT_S, "parameters": {"uri": str(model_dir)}}))
    bin_dir = python.parent
    server = spawn("mlserver", [str(bin_dir / "mlserver"), "start", str(root)], folder,
                   "/v2/models/demo-classifier/infer",
                   {"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])})
    server.url = f"http://127.0.0.1:{port}"
    return server


RAY_APP = '''"""Ray Serve app of benchmarks/peers.py: argv model_dir port replicas max_batch wait_s temp_dir."""
import os, signal, sys, threading
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray
from ray._private import ray_constants
ray_constants.ENABLE_RAY_CLUSTER = False  # keep Ray on 127.0.0.1
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

MODEL_DIR, PORT, REPLICAS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAX_BATCH, WAIT_S, TEMP = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]


@serve.deployment(num_replicas=REPLICAS, max_ongoing_requests=MAX_BATCH, ray_actor_options={"num_cpus": 0.5})
class Scorer:
    def __init__(self, model_dir):
        import mlflow.pyfunc
        self.model = mlflow.pyfunc.load_model(model_dir)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=WAIT_S)
    async def predict(self, splits):
        import pandas as pd
        frame = pd.DataFrame([row for s in splits for row in s["data"]], columns=splits[0]["columns"])
        out = list(self.model.predict(frame).tolist())
        answers, at = [], 0
        for s in splits:
            answers.append(out[at:at + len(s["data"])])
            at += len(s["data"])
        return answers

    async def __call__(self, request: Request):
        body = await request.json()
        return JSONResponse({"predictions": await self.predict(body["dataframe_split"])})


stop = threading.Event()
ray.init(address="local", num_cpus=max(2, REPLICAS), include_dashboard=False, _node_ip_address="127.0.0.1",
         _temp_dir=TEMP, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": PORT})
serve.run(Scorer.bind(MODEL_DIR), route_prefix="/")
signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init, which installs its own handler
print("ready", flush=True)
stop.wait()
serve.shutdown()
ray.shutdown()
'''


def start_ray_serve(python: Path, model_dir: Path, folder: Path, replicas: int, temp: Path) -> Server:
    app = folder / "ray_serve_app.py"
    app.write_text(RAY_APP)
    port = free_port()
    server = spawn("ray-serve", [str(python), str(app), str(model_dir), str(port), str(replicas), str(MAX_BATCH),
                                 str(BATCH_WAIT_S), str(temp)], folder, "/")
    server.url = f"http://127.0.0.1:{port}"
    return server


def wait_answer(server: Server, path: str, body: Path, headers: dict[str, str]) -> Any:
    """Polls with a real scoring request until one is answered 200; returns the answer."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode} before it answered; "
                               f"see {server.log}")
        try:
            r = httpx.post(server.url + path, content=body.read_bytes(), timeout=10,
                           headers={"Content-Type": "application/json", **headers})
            if r.status_code == 200:
                return r.json()
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} gave no 200 on {path} within {READY_TIMEOUT_S} s (last: {last}); "
                       f"see {server.log}")


def kill_leftovers(marker: str) -> None:
    """SIGKILL any process whose command line names this run's own Ray temp folder (none should be)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)


def drive(server: Server, label: str, route: str, path: str, body: Path, key: str, conns: list[int],
          seconds: float) -> list[dict[str, Any]]:
    """A short warm-up at the most connections, then one wrk run per connection count."""
    wrk(server.url, path, body, max(conns), min(3.0, seconds), key)
    rows = []
    for c in conns:
        stats = wrk(server.url, path, body, c, seconds, key)
        stats.update(server=label, route=route, connections=c)
        rows.append(stats)
        print(f"{label:10} {route:26} c={c:<3} {stats['rps']:8.0f} rps  p50 {stats['p50_us'] / 1e3:7.2f} ms  "
              f"p99 {stats['p99_us'] / 1e3:8.2f} ms  errors {stats['errors']}", flush=True)
    return rows


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // (1024 * 1024) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None)
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": mem, "load_avg_at_start": os.getloadavg(),  # 1/5/15 min
            "python": platform.python_version(), "kernel": platform.release()}


def table(rows: list[dict[str, Any]], conns: list[int]) -> str:
    """Markdown: one line per server and route; ratios of rps against mlflow serve's at each level."""
    base = {r["connections"]: r["rps"] for r in rows if r["server"] == "mlflow"}
    head = "| server | route |" + "".join(f" c={c} rps | p50 / p99 ms |" for c in conns)
    head += "".join(f" x mlflow c={c} |" for c in conns) + " non-2xx |"
    lines = [head, "|---|---|" + "---:|---|" * len(conns) + "---:|" * len(conns) + "---:|"]
    keys = list(dict.fromkeys((r["server"], r["route"]) for r in rows))
    for server, route in keys:
        mine = {r["connections"]: r for r in rows if r["server"] == server and r["route"] == route}
        line = f"| {server} | `{route}` |"
        for c in conns:
            r = mine.get(c)
            line += (f" {r['rps']:,.0f} | {r['p50_us'] / 1e3:.2f} / {r['p99_us'] / 1e3:.1f} |" if r else " - | - |")
        for c in conns:
            r = mine.get(c)
            line += f" {r['rps'] / base[c]:.2f}x |" if r and base.get(c) else " - |"
        line += f" {sum(r['errors'] for r in mine.values())} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models:/demo-classifier/1", help="model reference (default: the demo LR)")
    p.add_argument("--connections", default="1,64")
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run (1 to 60)")
    p.add_argument("--replicas", type=int, default=2, help="scorer replicas = mlflow/MLServer workers = Ray replicas")
    p.add_argument("--servers", default="mlflow,scorer,mlserver,ray-serve")
    p.add_argument("--venvs", default=str(REPO / ".peers-venv"), help="where the peers' venvs and model live")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("benchmarks/peers.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    seconds = min(60.0, max(1.0, args.duration))
    conns = [int(c) for c in args.connections.split(",")]
    servers = args.servers.split(",")
    root = Path(args.venvs)
    root.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    host = machine()  # the load average before our own servers add to it
    rows: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    answers: dict[str, Any] = {}
    reqs = requirements()
    model_dir = local_model(args.model, root)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        folder = Path(tmp)
        split_body = one_row_body(args.model, folder)
        v2 = v2_body(split_body, folder)
        for name in servers:
            ray_temp = Path(tempfile.mkdtemp(prefix="prs-", dir="/tmp"))  # short: Ray's socket paths
            server: Server | None = None
            try:
                if name == "mlflow":
                    server = start_mlflow(model_dir, args.replicas, folder)
                    routes = [("/invocations", "/invocations", split_body, "-")]
                elif name == "scorer":
                    endpoint = folder / "peers.yaml"
                    endpoint.write_text(
                        f"name: {V2_NAME}\nauth_mode: key\ntraffic: {{main: 100}}\ndeployments:\n  main:\n"
                        f"    model: {args.model}\n    instance_count: {args.replicas}\n"
                        f"    batching: {{max_batch_size: {MAX_BATCH}, max_batch_wait_ms: {BATCH_WAIT_S * 1e3:g}}}\n"
                        "    request_settings: {request_timeout_ms: 10000, max_concurrent_requests_per_instance: 64, "
                        "max_queue_wait_ms: 5000}\n")
                    server = start_scorer([str(endpoint)], folder)
                    key = server.env["SCORER_API_KEY"]
                    routes = [("/invocations", "/invocations", split_body, key),
                              ("V2", f"/v2/models/{V2_NAME}/infer", v2, key)]
                elif name == "mlserver":
                    python = ensure_venv(root, "mlserver", reqs["mlserver"])
                    server = start_mlserver(python, model_dir, folder, args.replicas)
                    routes = [("V2", "/v2/models/demo-classifier/infer", v2, "-"),
                              ("/invocations", "/invocations", split_body, "-")]
                elif name == "ray-serve":
                    python = ensure_venv(root, "ray", reqs["ray"])
                    server = start_ray_serve(python, model_dir, folder, args.replicas, ray_temp)
                    routes = [("/ (dataframe_split)", "/", split_body, "-")]
                else:
                    raise ValueError(f"unknown server {name!r}")
                for route, path, body, key in routes:
                    headers = {} if key == "-" else {"Authorization": f"Bearer {key}"}
                    answers[f"{name} {route}"] = wait_answer(server, path, body, headers)
                for route, path, body, key in routes:
                    rows += drive(server, name, route, path, body, key, conns, seconds)
            except Exception as exc:  # a peer that fails is reported, the others still run
                why = f"{type(exc).__name__}: {exc}"
                unavailable[name] = why
                print(f"peers: {name} NOT MEASURED: {why}", file=sys.stderr, flush=True)
            finally:
                if server is not None:
                    server.stop()
                    shutil.copy(server.log, out / f"peers-{name}.log")
                kill_leftovers(str(ray_temp))
                shutil.rmtree(ray_temp, ignore_errors=True)
    md = table(rows, conns)
    host["load_avg_at_end"] = os.getloadavg()
    doc = {"date": started.isoformat(timespec="seconds"), "machine": host, "model": args.model,
           "replicas": args.replicas, "batching": {"max_batch_size": MAX_BATCH, "max_wait_s": BATCH_WAIT_S},
           "duration_s": seconds, "connections": conns, "command": " ".join(["python", "benchmarks/peers.py",
                                                                             *(argv or sys.argv[1:])]),
           "versions": reqs, "results": rows, "unavailable": unavailable, "first_answers": answers, "table": md}
    (out / "peers.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\n{args.model}, {args.replicas} replicas/workers, batching {MAX_BATCH} / {BATCH_WAIT_S * 1e3:g} ms, "
          f"wrk {seconds:g} s per level, {started:%Y-%m-%d} on {doc['machine']['cpus']} cores "
          f"({doc['machine']['cpu']}):\n")
    print(md)
    for name, why in unavailable.items():
        print(f"\n{name}: NOT MEASURED: {why}")
    return 1 if unavailable else 0


if __name__ == "__main__":
    sys.exit(main())
