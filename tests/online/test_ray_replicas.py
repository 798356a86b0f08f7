"""`scorer serve --address` on a real local single-node Ray (127.0.0.1): replicas are Ray actors
reached over TCP frames; the model (resolved from the registry by the router) travels through
Ray's object store; a killed actor's requests fail over and a new actor replaces it. Also: the
errors of `replica_handle: ray` without a cluster, found before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scorer.bench.processes import free_port
from tests.online.conftest import ADMIN_KEY, API_KEYS, Server, admin, stop_server

# Ray turns 127.0.0.1 into the machine's routable address unless told that clusters are off.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """A local Ray on 127.0.0.1 (the one this session already runs, else one started here and shut
    down after the module; never `ray stop`)."""
    import logging

    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=4, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING, log_to_driver=False)
    yield str(ray.get_runtime_context().gcs_address)
    if started:
        ray.shutdown()


def serve_on_ray(endpoint: Path, workdir: Path, address: str, timeout: float = 180) -> Server:
    port = free_port()
    out, log = workdir / f"serve-{port}.out", workdir / f"serve-{port}.err"
    env = {**os.environ, "SCORER_API_KEY": ",".join(API_KEYS), "SCORER_ADMIN_KEY": ADMIN_KEY,
           "SCORER_CLUSTER_SECRET": "cluster-secret-for-tests"}
    proc = subprocess.Popen([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", str(port),
                             "--address", address], cwd=workdir, env=env, stdout=out.open("wb"),
                            stderr=log.open("wb"))
    server = Server(f"http://127.0.0.1:{port}", proc, log, out, {"Authorization": f"Bearer {API_KEYS[0]}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scorer serve exited with {proc.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"scorer serve not ready in {timeout}s:\n{server.logs()}")


def _actors(prefix: str) -> list[str]:
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "scorer" and a["name"].startswith(prefix))


def _replicas(server: Server) -> list[dict[str, Any]]:
    return list(admin(server)["deployments"]["blue"]["replicas"])


def _load(server: Server, body: dict[str, Any], stop: threading.Event, statuses: Counter[int],
          seconds: float = 40, cap: int = 3000) -> None:
    """One client: requests one after another until `stop`, `seconds` or `cap` requests."""
    deadline = time.monotonic() + seconds
    with server.client() as c:
        for _ in range(cap):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                statuses[c.post("/score", json=body).status_code] += 1
            except httpx.HTTPError:
                statuses[-1] += 1


def test_replicas_as_ray_actors_serve_show_where_and_fail_over(local_ray: str, work_dir: Path, demo_registry: str,
                                                               demo_blue_path: Path,
                                                               test_models: dict[str, Path]) -> None:
    import mlflow.pyfunc
    import pandas as pd
    import ray

    folder = work_dir / "on-ray"
    folder.mkdir()
    endpoint = folder / "endpoint.yaml"
    endpoint.write_text(f"""
name: onray
auth_mode: key
traffic: {{blue: 100}}
deployments:
  blue:
    model: models:/{demo_registry}@blue
    instance_count: 2
    instance_type: Standard_DS3_v2
    resources: {{requests: {{cpu: 500m, memory: 200Mi}}}}
    request_settings: {{request_timeout_ms: 10000, max_concurrent_requests_per_instance: 4}}
  sleeper:
    model: {test_models['sleeper']}
    resources: {{requests: {{cpu: 250m}}}}
    request_settings: {{request_timeout_ms: 1000, kill_after_ms: 500, max_concurrent_requests_per_instance: 1}}
""")
    t0 = time.monotonic()
    server = serve_on_ray(endpoint, folder, local_ray)
    up_s = time.monotonic() - t0
    try:
        assert "instance_type is ignored under --address" in server.logs()
        assert "cluster-secret-for-tests" not in server.logs()
        body = json.loads((demo_blue_path / "serving_input_example.json").read_text())
        split = body["dataframe_split"]
        expected = mlflow.pyfunc.load_model(str(demo_blue_path)).predict(
            pd.DataFrame(split["data"], columns=split["columns"]))
        with server.client() as c:
            r = c.post("/score", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == list(expected), r.text

        reps = _replicas(server)
        assert [x["state"] for x in reps] == ["ready", "ready"], reps
        assert {x["where"] for x in reps} == {"127.0.0.1"}, reps
        names = _actors("scorer:onray:blue:")
        assert len(names) == 2, names

        # kill one actor under a small bounded load: its requests fail over, a new actor replaces it
        victim = ray.get_actor(names[0], namespace="scorer")
        victim_pid = ray.get(victim.pid.remote())
        assert victim_pid in {x["pid"] for x in reps}
        stop, statuses = threading.Event(), Counter[int]()
        clients = [threading.Thread(target=_load, args=(server, body, stop, statuses)) for _ in range(4)]
        for t in clients:
            t.start()
        time.sleep(1.0)
        t_kill = time.monotonic()
        ray.kill(victim, no_restart=True)
        replaced_s = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            reps = _replicas(server)
            if (all(x["state"] == "ready" for x in reps) and victim_pid not in {x["pid"] for x in reps}
                    and len(reps) == 2):
                replaced_s = time.monotonic() - t_kill
                break
            time.sleep(0.2)
        time.sleep(1.0)  # some load on the new replica too
        stop.set()
        for t in clients:
            t.join(60)
        assert replaced_s is not None, f"not replaced: {reps}\n{server.logs()[-3000:]}"
        assert set(statuses) == {200}, f"{statuses}\n{server.logs()[-3000:]}"
        assert sum(statuses.values()) > 20, statuses
        new_names = _actors("scorer:onray:blue:")
        assert names[0] not in new_names and len(new_names) == 2, new_names

        # scale up creates an actor; scale down retires actors with drain: no request fails
        def scale(n: int) -> None:
            r = httpx.post(f"{server.url}/admin/deployments/blue/scale", json={"instances": n},
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
            assert r.status_code == 200, r.text

        scale(3)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(x["state"] == "ready" for x in _replicas(server)) < 3:
            time.sleep(0.2)
        assert len(_actors("scorer:onray:blue:")) == 3 and sum(x["state"] == "ready" for x in _replicas(server)) == 3
        stop, scaled = threading.Event(), Counter[int]()
        clients = [threading.Thread(target=_load, args=(server, body, stop, scaled)) for _ in range(4)]
        for t in clients:
            t.start()
        time.sleep(0.5)
        scale(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(_replicas(server)) != 1 or len(_actors("scorer:onray:blue:")) != 1):
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in clients:
            t.join(60)
        assert len(_replicas(server)) == 1 and len(_actors("scorer:onray:blue:")) == 1, _replicas(server)
        assert set(scaled) == {200} and sum(scaled.values()) > 5, scaled

        # a request still running kill_after_ms past its deadline: the actor is killed through Ray, replaced
        sleeper = _actors("scorer:onray:sleeper:")
        assert len(sleeper) == 1, sleeper
        with server.client() as c:
            r = c.post("/score", json={"dataframe_split": {"columns": ["seconds"], "data": [[60.0]]}},
                       headers={"azureml-model-deployment": "sleeper"})
        assert r.status_code == 408, r.text
        t_timeout = time.monotonic()
        doc: dict[str, Any] = {}
        while time.monotonic() < t_timeout + 60:
            doc = admin(server)["deployments"]["sleeper"]
            if doc["restarts"].get("timeout") and doc["replicas"][0]["state"] == "ready":
                break
            time.sleep(0.2)
        assert doc["restarts"].get("timeout") == 1 and doc["replicas"][0]["state"] == "ready", doc
        timeout_replaced_s = time.monotonic() - t_timeout
        assert _actors("scorer:onray:sleeper:") not in ([], sleeper)
        print(f"\nup {up_s:.1f}s; replacement ready {replaced_s:.1f}s after the kill; {dict(statuses)}; "
              f"stuck replica replaced {timeout_replaced_s:.1f}s after the 408")
    finally:
        stop_server(server)
    # a router that exits takes its actors with it
    deadline = time.monotonic() + 30
    while _actors("scorer:onray:") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _actors("scorer:onray:") == []


@pytest.mark.parametrize(("setting", "message"), [
    ("replica_handle: ray", "replica_handle 'ray' needs a Ray cluster"),
    ("scale_settings: {type: target_utilization, max_instances: 2, hook: ray}", "scale_settings.hook 'ray' asks"),
])
def test_ray_handle_or_hook_without_address_is_exit_2_one_line(work_dir: Path, test_models: dict[str, Path],
                                                              setting: str, message: str) -> None:
    endpoint = work_dir / "ray-no-address.yaml"
    endpoint.write_text(f"""
name: noaddress
auth_mode: key
deployments:
  blue:
    model: {test_models['mixed']}
    {setting}
""")
    done = subprocess.run([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60, cwd=work_dir)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_the_ray_hook_requests_the_replicas_resources_then_scales(local_ray: str, work_dir: Path) -> None:
    """The `ray` scale hook hands Ray's autoscaler one bundle per desired replica (a standing request
    in the cluster's GCS, read back here), then starts or retires replicas as `local` does. Run in a
    driver of its own, as a router is (this test process's Ray state is shared with other modules)."""
    script = f"""
import asyncio, json, logging
import ray
from ray.experimental.internal_kv import _internal_kv_get
from scorer.spec.models import OnlineDeployment
from serving.assemble import ray_bundle
from serving.autoscale.hooks import ScaleRequest, make_hook

ray.init(address={local_ray!r}, namespace="scorer", logging_level=logging.WARNING, log_to_driver=False)
bundle = ray_bundle(OnlineDeployment.model_validate(
    {{"model": "m", "resources": {{"requests": {{"cpu": "500m", "memory": "1Gi"}}}}}}))
scaled = []

async def scale_to(n, reason):
    scaled.append([n, reason])

outcome = asyncio.run(make_hook("ray", scale_to, bundle)(ScaleRequest(
    endpoint="e", deployment="d", current=1, desired=3, utilization=0.9, reason="load", timestamp=0.0)))
stored = json.loads(_internal_kv_get(b"autoscaler_resource_request"))
ray.autoscaler.sdk.request_resources(bundles=[])  # withdraw the standing request
print(json.dumps({{"bundle": bundle, "scaled": scaled, "outcome": outcome, "stored": stored}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=work_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["bundle"] == {"CPU": 0.5, "memory": float(1 << 30)}
    assert doc["scaled"] == [[3, "load"]] and doc["outcome"].startswith("ray: requested 3")
    assert doc["stored"] == [doc["bundle"]] * 3


def test_a_resource_that_is_not_a_quantity_is_exit_2_before_joining(work_dir: Path,
                                                                    test_models: dict[str, Path]) -> None:
    endpoint = work_dir / "ray-bad-cpu.yaml"
    endpoint.write_text(f"""
name: badcpu
auth_mode: key
deployments:
  blue:
    model: {test_models['mixed']}
    resources: {{requests: {{cpu: lots}}}}
""")
    # nothing listens on port 1: the problem is found before the router tries to join
    done = subprocess.run([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", str(free_port()),
                           "--address", "127.0.0.1:1"], capture_output=True, text=True, timeout=60, cwd=work_dir)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "deployments.blue.resources.requests.cpu" in lines[0], done.stderr


def test_scorer_stop_removes_only_that_endpoints_actors(local_ray: str, work_dir: Path) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Idle:
        def ping(self) -> int:
            return 1

    mine = [Idle.options(name=f"scorer:stopme:{d}:0:abcd1234", namespace="scorer").remote()  # type: ignore[attr-defined]
            for d in ("blue", "green")]
    other = Idle.options(name="scorer:stopmenot:blue:0:abcd1234", namespace="scorer").remote()  # type: ignore[attr-defined]
    ray.get([a.ping.remote() for a in [*mine, other]])

    def stop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scorer.cli", "stop", *args, "--address", local_ray],
                              capture_output=True, text=True, timeout=120, cwd=work_dir)

    out = stop("stopme", "--deployment", "green")
    assert out.returncode == 0, out.stderr
    assert "stopped 1 replica actor(s)" in out.stdout
    assert _actors("scorer:stopme:") == ["scorer:stopme:blue:0:abcd1234"]
    out = stop("stopme")
    assert out.returncode == 0 and "stopped 1 replica actor(s)" in out.stdout, out.stdout + out.stderr
    assert _actors("scorer:stopme:") == [] and _actors("scorer:stopmenot:") == ["scorer:stopmenot:blue:0:abcd1234"]
    assert ray.get(other.ping.remote()) == 1
    out = stop("stopme")
    assert out.returncode == 0 and "no replica actors" in out.stdout
    ray.kill(other)
