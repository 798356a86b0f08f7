"""Timeouts (408), admission (429 with Retry-After), and 503 for a deployment with no ready replica."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.online.conftest import admin, wait_for

SLEEPER = {"azureml-model-deployment": "sleeper"}


def sleep_body(seconds: float) -> dict:  # type: ignore[type-arg]
    return {"dataframe_split": {"columns": ["seconds"], "data": [[seconds]]}}


def _ready(server, name: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in admin(server)["deployments"][name]["replicas"] if r["ready"])


def test_sleeping_model_times_out_with_408_on_time_and_server_keeps_serving(server, client) -> None:
    wait_for(lambda: _ready(server, "sleeper") == 2)
    before = {r["pid"] for r in admin(server)["deployments"]["sleeper"]["replicas"]}
    t0 = time.monotonic()
    r = client.post("/score", json=sleep_body(4.0), headers=SLEEPER)
    elapsed = time.monotonic() - t0
    assert r.status_code == 408, r.text
    assert r.json()["error_code"] == "REQUEST_TIMEOUT"
    assert 1.0 <= elapsed < 1.1 + 0.15, elapsed  # request_timeout_ms=1000, answered within 100 ms (+ client)
    ok = client.post("/score", json=sleep_body(0.0), headers=SLEEPER)
    assert ok.status_code == 200
    # the replica still running the 4 s request is killed 0.5 s after the deadline and comes back
    wait_for(lambda: {r["pid"] for r in admin(server)["deployments"]["sleeper"]["replicas"]} - before, timeout=20)
    wait_for(lambda: _ready(server, "sleeper") == 2, timeout=20)
    restarts = admin(server)["deployments"]["sleeper"]["restarts"]
    assert restarts.get("timeout", 0) >= 1, restarts


def test_queue_overflow_gives_429_with_retry_after(server) -> None:
    wait_for(lambda: _ready(server, "sleeper") == 2)
    headers = {**server.headers, **SLEEPER}

    clients = [httpx.Client(base_url=server.url, headers=headers, timeout=30) for _ in range(8)]
    for c in clients:  # connections open before the burst, so the 8 requests arrive together
        c.get("/ping")
    go = threading.Barrier(8)

    def one(i: int) -> httpx.Response:
        go.wait()
        return clients[i].post("/score", json=sleep_body(0.8))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for c in clients:
        c.close()
    codes = sorted(r.status_code for r in results)
    # 2 replicas x 1 concurrent = 2 in flight; 2 more may queue but only 300 ms (max_queue_wait_ms),
    # less than the 800 ms the first two take; the other 4 are over the bound of 4 at once.
    assert codes.count(200) == 2, codes
    assert codes.count(429) == 6, codes
    for r in results:
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "1"
            assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_deployment_without_a_ready_replica_is_503(client) -> None:
    r = client.post("/score", json={"x": 1}, headers={"azureml-model-deployment": "crasher"})
    assert r.status_code == 503
    assert r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert r.headers["azureml-model-deployment"] == "crasher"


@pytest.mark.slow
def test_ready_reports_deployments_with_traffic(server) -> None:
    r = httpx.get(f"{server.url}/ready")
    assert r.status_code == 200
    assert r.json()["ready_replicas"]["blue"] == 2
    assert r.json()["ready_replicas"]["crasher"] == 0  # 0% traffic: does not make the endpoint unready
