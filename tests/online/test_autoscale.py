"""The autoscaler on a real server with real replicas: scale up under load and back down after
`scale_down_delay` with no failed request, the four hooks (webhook against a real local receiver
that checks the signature, command environment, python callable, a failing hook), manual scale
through the API and `scorer scale`, and decisions in /admin/endpoint and /metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.online.conftest import ADMIN_KEY, REPO, Server, admin, start_server, stop_server, wait_for

WEBHOOK_SECRET = "webhook-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SLEEP_BODY = {"dataframe_split": {"columns": ["seconds"], "data": [[0.02]]}}


class Receiver:
    """A tiny webhook receiver on 127.0.0.1 that checks X-Scorer-Signature."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, self.headers.get("X-Scorer-Signature", ""))
                calls.append({"body": json.loads(body), "valid": valid})
                self.send_response(200 if valid else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/scale"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def scaled(work_dir: Path, test_models: dict[str, Path], receiver: Receiver) -> Iterator[Server]:
    root = work_dir / "autoscale"
    root.mkdir(exist_ok=True)
    (root / "scorer_test_hooks.py").write_text(
        "import json\n\ndef scale(decision):\n"
        "    with open('python-hook.jsonl', 'a') as f:\n"
        "        f.write(json.dumps([decision.deployment, decision.current, decision.desired]) + '\\n')\n")
    sleeper = test_models["sleeper"]
    auto = ("scale_settings: {type: target_utilization, min_instances: 1, max_instances: %d, "
            "target_utilization_percentage: 50, polling_interval: 1, scale_down_delay: %g, hook: '%s'}")
    rs = "request_settings: {request_timeout_ms: 10000, max_concurrent_requests_per_instance: 2, " \
         "max_queue_wait_ms: 5000}"
    endpoint = root / "autoscale.yaml"
    endpoint.write_text(f"""
name: autoscale
auth_mode: none
traffic: {{auto: 100}}
deployments:
  auto:
    model: {sleeper}
    {auto % (3, 3, 'local')}
    {rs}
  hooked:
    model: {sleeper}
    {auto % (3, 300, 'webhook:' + receiver.url)}
  commanded:
    model: {sleeper}
    {auto % (3, 300, 'command:env | grep ^SCORER_ > command-hook.env')}
  failing:
    model: {sleeper}
    {auto % (3, 300, 'command:echo hook says no; exit 3')}
  pyhook:
    model: {sleeper}
    {auto % (3, 300, 'python:scorer_test_hooks:scale')}
  fixed:
    model: {sleeper}
    scale_settings: {{min_instances: 1, max_instances: 2}}
  plain:
    model: {sleeper}
""")
    srv = start_server(endpoint, root, {"SCORER_ADMIN_KEY": ADMIN_KEY, "SCORER_WEBHOOK_SECRET": WEBHOOK_SECRET,
                                        "SCORER_HOOK_TIMEOUT_S": "3"})
    yield srv
    stop_server(srv)


def scale(server: Server, name: str, n: int) -> httpx.Response:
    return httpx.post(f"{server.url}/admin/deployments/{name}/scale", json={"instances": n}, headers=ADMIN,
                      timeout=10)


def ready_count(server: Server, name: str) -> int:
    return sum(1 for r in admin(server)["deployments"][name]["replicas"] if r["state"] == "ready")


def test_webhook_hook_is_signed_and_gets_the_facts(scaled: Server, receiver: Receiver) -> None:
    r = scale(scaled, "hooked", 2)
    assert r.status_code == 200, r.text
    call = wait_for(lambda: receiver.calls and receiver.calls[-1], timeout=10)
    assert call["valid"]
    body = call["body"]
    assert {k: body[k] for k in ("endpoint", "deployment", "current", "desired")} == \
        {"endpoint": "autoscale", "deployment": "hooked", "current": 1, "desired": 2}
    assert "utilization" in body and body["timestamp"] > 0 and "floor" in body["reason"]
    dep = wait_for(lambda: (d := admin(scaled)["deployments"]["hooked"])["scale_events"][-1]["outcome"] == "ok"
                   and d, timeout=10)
    assert dep["desired_replicas"] == 2
    assert len(dep["replicas"]) == 1  # the webhook acts elsewhere; no local replica was started
    ev = dep["scale_events"][-1]
    assert (ev["from"], ev["to"], ev["hook"]) == (1, 2, f"webhook:{receiver.url}") and ev["time"] > 0


def test_command_hook_environment(scaled: Server) -> None:
    assert scale(scaled, "commanded", 3).status_code == 200
    env_file = Path(scaled.log).parent / "command-hook.env"
    wait_for(lambda: env_file.is_file() and "SCORER_DESIRED" in env_file.read_text(), timeout=10)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert env["SCORER_ENDPOINT"] == "autoscale" and env["SCORER_DEPLOYMENT"] == "commanded"
    assert (env["SCORER_CURRENT"], env["SCORER_DESIRED"]) == ("1", "3")
    float(env["SCORER_UTILIZATION"])


def test_python_hook(scaled: Server) -> None:
    assert scale(scaled, "pyhook", 2).status_code == 200
    out = Path(scaled.log).parent / "python-hook.jsonl"
    wait_for(lambda: out.is_file() and out.read_text().strip(), timeout=10)
    assert json.loads(out.read_text().splitlines()[-1]) == ["pyhook", 1, 2]


def test_failing_hook_is_recorded_retried_and_serving_continues(scaled: Server) -> None:
    assert scale(scaled, "failing", 2).status_code == 200
    ev = wait_for(lambda: (e := admin(scaled)["deployments"]["failing"]["scale_events"])
                  and e[-1]["outcome"].startswith("failed") and e[-1], timeout=15)
    assert "exited with 3" in ev["outcome"] and "hook says no" in ev["outcome"]
    # called again at a later interval
    wait_for(lambda: admin(scaled)["deployments"]["failing"]["scale_events"][-1].get("calls", 0) >= 2, timeout=20)
    with httpx.Client(base_url=scaled.url, timeout=10) as c:
        for name in ("failing", "auto"):
            r = c.post("/score", json=SLEEP_BODY, headers={"azureml-model-deployment": name})
            assert r.status_code == 200, r.text
        assert c.get("/ready").status_code == 200
    assert "scale hook" in scaled.logs() and "serving continues" in scaled.logs()


def test_manual_scale_default_deployment_and_cli(scaled: Server) -> None:
    r = scale(scaled, "fixed", 3)
    assert r.status_code == 400 and "max_instances" in r.json()["message"] and "(2)" in r.json()["message"]
    r = scale(scaled, "fixed", 0)
    assert r.status_code == 400
    assert scale(scaled, "nope", 1).status_code == 404
    assert httpx.post(f"{scaled.url}/admin/deployments/fixed/scale", json={"instances": 2},
                      timeout=10).status_code == 401
    r = scale(scaled, "fixed", 2)
    assert r.status_code == 200 and r.json()["deployments"]["fixed"]["desired_replicas"] == 2
    wait_for(lambda: ready_count(scaled, "fixed") == 2, timeout=60)
    env = {**os.environ, "SCORER_ADMIN_KEY": ADMIN_KEY}
    cli = [sys.executable, "-m", "scorer.cli", "scale", scaled.url, "fixed"]
    done = subprocess.run([*cli, "1"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployments"]["fixed"]["desired_replicas"] == 1
    wait_for(lambda: len(admin(scaled)["deployments"]["fixed"]["replicas"]) == 1, timeout=30)
    bad = subprocess.run([*cli, "5"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "max_instances" in bad.stderr
    nokey = subprocess.run([*cli, "1"], env={**env, "SCORER_ADMIN_KEY": ""}, cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert nokey.returncode == 2 and "SCORER_ADMIN_KEY" in nokey.stderr
    events = admin(scaled)["deployments"]["fixed"]["scale_events"]
    assert [(e["from"], e["to"], e["reason"]) for e in events[-2:]] == [(1, 2, "manual"), (2, 1, "manual")]


def test_manual_scale_above_instance_count_without_max_instances(scaled: Server) -> None:
    """A fixed deployment without max_instances can be scaled past instance_count, within the
    instance limit and the local replicas-per-CPU cap (each named when crossed)."""
    r = scale(scaled, "plain", 2)
    assert r.status_code == 200, r.text
    wait_for(lambda: ready_count(scaled, "plain") == 2, timeout=60)
    r = scale(scaled, "plain", 5000)
    assert r.status_code == 400 and "SCORER_MAX_INSTANCES" in r.json()["message"], r.text
    r = scale(scaled, "plain", 1000)
    assert r.status_code == 400 and "SCORER_MAX_REPLICAS_PER_CPU" in r.json()["message"], r.text
    assert scale(scaled, "plain", 1).status_code == 200


class Load:
    """`clients` threads posting to /score until stopped (bounded by `limit` seconds); counts failures."""

    def __init__(self, url: str, clients: int, pause: float = 0.0, limit: float = 60) -> None:
        self.url, self.pause, self.limit = url, pause, limit
        self.stop_event = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        with httpx.Client(base_url=self.url, timeout=15) as c:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/score", json=SLEEP_BODY)
                    good, why = r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    good, why = False, repr(exc)
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed.append(why)
                if self.pause:
                    time.sleep(self.pause)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(20)


@pytest.mark.slow
def test_scales_up_under_load_and_back_down_without_failed_requests(scaled: Server) -> None:
    assert ready_count(scaled, "auto") == 1
    # 3 clients: ~2.7 requests in flight + queued on 2 slots (1 replica x 2), under the bound of 4
    load = Load(scaled.url, clients=3)
    try:
        t0 = time.monotonic()
        wait_for(lambda: ready_count(scaled, "auto") == 3, timeout=45, interval=0.2)
        up_seconds = time.monotonic() - t0
        time.sleep(1.5)  # and it stays there while the load lasts
        assert admin(scaled)["deployments"]["auto"]["desired_replicas"] == 3
    finally:
        load.stop()
    assert not load.failed, load.failed[:5]
    assert load.ok > 50
    events = admin(scaled)["deployments"]["auto"]["scale_events"]
    ups = [(e["from"], e["to"]) for e in events if e["to"] > e["from"]]
    assert ups[:2] == [(1, 2), (2, 3)], events  # never more than doubling
    assert all(e["outcome"] == "ok" and e["hook"] == "local" for e in events)

    # a light load continues while replicas drain: scaling down fails no request
    light = Load(scaled.url, clients=1, pause=0.03)
    try:
        t1 = time.monotonic()
        dep = wait_for(lambda: (d := admin(scaled)["deployments"]["auto"])["desired_replicas"] == 1
                       and len(d["replicas"]) == 1 and d, timeout=30, interval=0.2)
        down_seconds = time.monotonic() - t1
    finally:
        light.stop()
    assert not light.failed, light.failed[:5]
    assert light.ok > 20
    downs = [(e["from"], e["to"]) for e in dep["scale_events"] if e["to"] < e["from"]]
    assert downs == [(3, 2), (2, 1)]  # at most halving, one step per scale_down_delay
    assert down_seconds >= 5, "two steps of scale_down_delay 3 s"
    assert dep["replicas"][0]["state"] == "ready"
    metrics = httpx.get(f"{scaled.url}/metrics", timeout=10).text
    assert 'scorer_autoscale_desired_replicas{deployment="auto"} 1.0' in metrics
    assert 'scorer_autoscale_decisions_total{deployment="auto",direction="up"} 2.0' in metrics
    assert 'scorer_autoscale_decisions_total{deployment="auto",direction="down"} 2.0' in metrics
    assert "autoscale up 1 -> 2" in scaled.logs() and "drained and stopped" in scaled.logs()
    print(f"3 ready after {up_seconds:.1f}s of load; back to 1 after {down_seconds:.1f}s")


@pytest.mark.soak
def test_soak_repeated_ramps_fail_no_request(scaled: Server) -> None:
    """About 2.5 minutes of load swinging between heavy, light and none: every request answers 200
    and the deployment ends back at min_instances."""
    failed, ok = [], 0
    for _cycle in range(6):
        for clients, pause, seconds in ((4, 0.0, 8), (1, 0.03, 8), (0, 0.0, 9)):
            if clients:
                load = Load(scaled.url, clients=clients, pause=pause, limit=seconds + 5)
                time.sleep(seconds)
                load.stop()
                failed += load.failed
                ok += load.ok
            else:
                time.sleep(seconds)
    assert not failed, failed[:5]
    assert ok > 1000
    wait_for(lambda: len(admin(scaled)["deployments"]["auto"]["replicas"]) == 1, timeout=30)
