"""Reload without downtime: a model-version swap under a 32-client load fails no request; a failing
reload keeps the old model; runtime traffic survives a reload; SIGHUP reloads too."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.online.conftest import (
    ADMIN_KEY,
    API_KEYS,
    ASSETS,
    Server,
    admin,
    admin_put,
    start_server,
    stop_server,
    wait_for,
)
from tests.online.data import split_body


def _write(path: Path, registry: str, version: int, traffic: str = "{blue: 100, spare: 0}",
           extra: str = "") -> None:
    path.write_text(f"""
name: reloads
auth_mode: key
traffic: {traffic}
deployments:
  blue:
    model: models:/{registry}/{version}
    request_settings: {{max_concurrent_requests_per_instance: 32, max_queue_wait_ms: 3000}}
  spare:
    model: models:/{registry}/1
{extra}""")


@pytest.fixture(scope="module")
def reload_server(work_dir: Path, demo_registry: str) -> Iterator[tuple[Server, Path]]:
    path = work_dir / "reloads.yaml"
    _write(path, demo_registry, 1)
    srv = start_server(path, work_dir, {"SCORER_API_KEY": API_KEYS[0], "SCORER_ADMIN_KEY": ADMIN_KEY})
    srv.headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    yield srv, path
    stop_server(srv)


def _reload(srv: Server) -> httpx.Response:
    return httpx.post(f"{srv.url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)


def test_version_swap_under_load_fails_no_request(reload_server, demo_registry: str) -> None:
    srv, path = reload_server
    failures: list[str] = []
    versions: list[str] = []
    done = threading.Event()

    def client() -> None:
        with srv.client() as c:
            for i in range(2000):  # bounded; stops soon after the reload
                r = c.post("/score", json=split_body(1, i % 50))
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                versions.append(r.headers.get("x-model-version", "?"))
                if done.is_set() and i >= 5:
                    return

    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(versions) > 100, timeout=30, interval=0.02)
        _write(path, demo_registry, 2)
        r = _reload(srv)
        assert r.status_code == 200, r.text
        assert r.json()["deployments"]["blue"]["model_version"] == "2"
        n = len(versions)
        wait_for(lambda: len(versions) > n + 100, timeout=30, interval=0.02)
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert failures == []
    assert versions[0] == "1" and versions[-1] == "2"
    wait_for(lambda: len(admin(srv)["deployments"]["blue"]["replicas"]) == 1)


@pytest.mark.parametrize("route", ["/score", "/v2/models/reloads/infer"])
def test_a_body_that_arrives_after_the_swap_goes_to_the_new_deployment(reload_server, demo_registry: str,
                                                                        route: str) -> None:
    """A request picks its deployment when its head arrives. When a reload swaps that deployment
    out and stops it while the body is still on its way, the request goes to the new deployment:
    it is not lost to a 503 of the stopped one."""
    srv, path = reload_server
    old = admin(srv)["deployments"]["blue"]["model_version"]
    new = "1" if old == "2" else "2"
    split = split_body(1, 3)["dataframe_split"]
    tensors = [{"name": c, "shape": [1], "datatype": "FP64", "data": [split["data"][0][i]]}
               for i, c in enumerate(split["columns"])]
    doc = split_body(1, 3) if route == "/score" else {"inputs": tensors}
    body = json.dumps(doc).encode()
    url = urlsplit(srv.url)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(f"POST {route} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nAuthorization: {srv.headers['Authorization']}\r\n"
                     "Connection: close\r\n\r\n".encode())
        time.sleep(0.5)  # the router has the head: it chose `blue`, the old one, and waits for the body
        stopped = srv.logs().count("drained and stopped")
        _write(path, demo_registry, int(new))
        assert _reload(srv).status_code == 200
        assert wait_for(lambda: srv.logs().count("drained and stopped") > stopped, timeout=60), "old blue never stopped"
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200"), answer[:500]
    assert f"x-model-version: {new}" in head.lower(), head


def test_failing_reload_keeps_the_old_model(reload_server, demo_registry: str) -> None:
    srv, path = reload_server
    before = admin(srv)["deployments"]["blue"]["model_version"]
    _write(path, demo_registry, 99)
    r = _reload(srv)
    assert r.status_code == 400 and "blue" in r.json()["message"] and "nothing changed" in r.json()["message"]
    _write(path, demo_registry, int(before), extra=f"""  crasher:
    code_configuration: {{code: {ASSETS / 'script_crash'}, scoring_script: score.py}}
""")
    r = _reload(srv)
    assert r.status_code == 424 and "init() raised" in r.json()["message"], r.text
    doc = admin(srv)
    assert "crasher" not in doc["deployments"] and doc["deployments"]["blue"]["model_version"] == before
    with srv.client() as c:
        r = c.post("/score", json=split_body(1))
        assert r.status_code == 200 and r.headers["x-model-version"] == before
    _write(path, demo_registry, int(before))


def test_runtime_traffic_survives_and_sighup_reloads(reload_server, demo_registry: str) -> None:
    srv, path = reload_server
    version = int(admin(srv)["deployments"]["blue"]["model_version"])
    assert admin_put(srv, "/admin/traffic", {"blue": 50, "spare": 50}).status_code == 200
    assert _reload(srv).status_code == 200  # the file's traffic did not change: the runtime one stays
    assert admin(srv)["traffic"] == {"blue": 50, "spare": 50}
    _write(path, demo_registry, version, traffic="{blue: 80, spare: 20}")
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: admin(srv)["traffic"] == {"blue": 80, "spare": 20}, timeout=30)
    assert srv.proc.poll() is None



def test_reload_moves_the_autoscaler_to_the_new_deployment(work_dir: Path, demo_registry: str) -> None:
    """An autoscaled deployment changed by reload is scaled on its new replicas, not the retired ones."""
    path = work_dir / "auto-reload.yaml"

    def write(version: int) -> None:
        path.write_text(f"""
name: autoreload
auth_mode: none
deployments:
  auto:
    model: models:/{demo_registry}/{version}
    scale_settings: {{type: target_utilization, min_instances: 1, max_instances: 2, polling_interval: 1,
                      scale_down_delay: 300}}
""")

    write(1)
    srv = start_server(path, work_dir, {"SCORER_ADMIN_KEY": ADMIN_KEY})
    try:
        write(2)
        assert _reload(srv).status_code == 200
        assert admin(srv)["deployments"]["auto"]["model_version"] == "2"
        r = httpx.post(f"{srv.url}/admin/deployments/auto/scale", json={"instances": 2},
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        assert r.status_code == 200, r.text

        def ready() -> int:
            return sum(1 for rep in admin(srv)["deployments"]["auto"]["replicas"] if rep["state"] == "ready")

        assert wait_for(lambda: ready() == 2, 30), admin(srv)["deployments"]["auto"]
    finally:
        stop_server(srv)


def test_reload_updates_deployment_info_and_openapi(reload_server, demo_registry: str, test_models) -> None:
    """scorer_deployment_info and /openapi.json follow a reload: a removed deployment's series goes, an
    added deployment's signature joins /score's oneOf."""
    from tests.online.test_metrics import info_series

    srv, path = reload_server
    version = admin(srv)["deployments"]["blue"]["model_version"]

    def score_schema() -> str:
        return str(httpx.get(f"{srv.url}/openapi.json").json()["paths"]["/score"]["post"]["requestBody"])

    assert "mixed" not in score_schema()
    _write(path, demo_registry, int(version), extra=f"  mixed:\n    model: {test_models['mixed']}\n")
    try:
        assert _reload(srv).status_code == 200
        info = info_series(srv.url)
        assert info["mixed"] == (str(test_models["mixed"]), admin(srv)["deployments"]["mixed"]["model_version"])
        assert info["blue"] == (f"models:/{demo_registry}/{version}", version)
        assert "mixed" in score_schema()
    finally:
        _write(path, demo_registry, int(version))
        assert _reload(srv).status_code == 200
    assert set(info_series(srv.url)) == {"blue", "spare"}
    assert "mixed" not in score_schema()


def test_sigterm_right_after_a_reload_stops_the_retired_deployment_and_exits_0(work_dir: Path,
                                                                               demo_registry: str) -> None:
    """The deployment a reload retired drains in the background. A SIGTERM meanwhile used to leave its
    supervisor running: it restarted the replicas the shutdown had taken down, and the router never
    exited (a pod would sit out its whole grace period, then be killed)."""
    import psutil

    path = work_dir / "retire.yaml"
    _write(path, demo_registry, 1)
    srv = start_server(path, work_dir, {"SCORER_API_KEY": API_KEYS[0], "SCORER_ADMIN_KEY": ADMIN_KEY})
    try:
        _write(path, demo_registry, 2)
        assert _reload(srv).status_code == 200  # blue (version 1) now drains for about 0.5 s
        children = psutil.Process(srv.proc.pid).children(recursive=True)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.pid for p in alive]
    assert "restarting" not in srv.logs(), srv.logs()[-2000:]
