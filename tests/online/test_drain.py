"""SIGTERM drains: readiness fails at once, in-flight requests finish, replicas stop, exit 0; and the
access log has one line per request with its traceparent."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.online.conftest import API_KEYS, start_server


def test_sigterm_finishes_in_flight_requests_and_exits_0(work_dir: Path, test_models: dict[str, Path]) -> None:
    endpoint = work_dir / "drain.yaml"
    endpoint.write_text(f"""
name: drain
auth_mode: key
deployments:
  sleeper:
    model: {test_models['sleeper']}
    instance_count: 2
    request_settings: {{max_concurrent_requests_per_instance: 4, request_timeout_ms: 10000}}
""")
    srv = start_server(endpoint, work_dir, {"SCORER_API_KEY": API_KEYS[0]})
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    results: list[int] = []

    def slow() -> None:
        body = {"dataframe_split": {"columns": ["seconds"], "data": [[1.5]]}}
        trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        results.append(httpx.post(f"{srv.url}/score", json=body, headers={**headers, **trace}, timeout=30).status_code)

    try:
        with httpx.Client(base_url=srv.url, timeout=5) as probe:  # a kept-alive connection, as a kubelet's
            assert probe.get("/ready").status_code == 200
            threads = [threading.Thread(target=slow) for _ in range(6)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            with contextlib.suppress(httpx.HTTPError):  # a closed listener is not ready too
                assert probe.get("/ready").status_code == 503
            for t in threads:
                t.join(30)
        assert srv.proc.wait(30) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert results == [200] * 6
    log = srv.logs()
    assert "draining" in log
    access = [line for line in log.splitlines() if "scorer.access" in line]  # one line per request
    assert len(access) == 6 and all("deployment=sleeper model_version=" in line and "status=200" in line
                                    and "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736" in line for line in access)


def test_sigint_to_the_router_alone_drains_and_exits_130(work_dir: Path, test_models: dict[str, Path]) -> None:
    """`kill -INT` of the router (not its process group, as Ctrl-C would) stops it as SIGTERM does;
    it used to re-raise SIGINT mid-shutdown and then wait on its replicas for good."""
    endpoint = work_dir / "interrupt.yaml"
    endpoint.write_text(f"""
name: interrupt
auth_mode: none
deployments:
  sleeper:
    model: {test_models['sleeper']}
    instance_count: 2
""")
    srv = start_server(endpoint, work_dir, {})
    try:
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(30) == 130
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert "Traceback" not in srv.logs()
