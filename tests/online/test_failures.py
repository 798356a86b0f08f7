"""Replica death (kill -9) under load, probes, and deployments that cannot start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.online.conftest import ASSETS, admin, wait_for
from tests.online.data import split_body

BLUE = {"azureml-model-deployment": "blue"}


def _replicas(server, name: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return admin(server)["deployments"][name]["replicas"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_kill_9_of_one_replica_under_load_fails_no_request(server) -> None:
    wait_for(lambda: all(r["ready"] for r in _replicas(server, "blue")))
    victim = _replicas(server, "blue")[0]["pid"]
    statuses: list[int] = []
    done = threading.Event()
    started = threading.Barrier(5)

    def load() -> None:
        with httpx.Client(base_url=server.url, headers={**server.headers, **BLUE}, timeout=30) as c:
            started.wait()
            for i in range(80):
                statuses.append(c.post("/score", json=split_body(1, start=i)).status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    wait_for(lambda: len(statuses) >= 40, timeout=30, interval=0.005)
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(60)
    done.set()
    assert len(statuses) == 320
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    pids = wait_for(lambda: [r["pid"] for r in _replicas(server, "blue")
                             if r["ready"]] if all(r["ready"] for r in _replicas(server, "blue")) else None,
                    timeout=30)
    assert victim not in pids and len(pids) == 2
    assert admin(server)["deployments"]["blue"]["restarts"].get("died", 0) >= 1


@pytest.mark.slow
def test_failed_probes_take_a_replica_out_and_restart_it(server, client) -> None:
    pin = {"azureml-model-deployment": "probed"}
    wait_for(lambda: all(r["ready"] for r in _replicas(server, "probed")))
    pid = _replicas(server, "probed")[0]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not _replicas(server, "probed")[0]["ready"], timeout=10, interval=0.05)
        r = client.post("/score", json=split_body(1), headers=pin)
        assert r.status_code == 503  # readiness failed: no requests go to it
        wait_for(lambda: _replicas(server, "probed")[0]["pid"] != pid and _replicas(server, "probed")[0]["ready"],
                 timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert admin(server)["deployments"]["probed"]["restarts"].get("liveness", 0) >= 1
    assert client.post("/score", json=split_body(1), headers=pin).status_code == 200


def _serve_once(tmp_path: Path, yaml_text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    endpoint = tmp_path / "endpoint.yaml"
    endpoint.write_text(yaml_text)
    return subprocess.run([sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", "1"],
                          cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_crashing_scoring_script_with_traffic_exits_with_one_clear_line(tmp_path) -> None:
    state = tmp_path / ".scorer"
    out = _serve_once(tmp_path, f"""
name: crash
traffic: {{crasher: 100}}
deployments:
  crasher:
    code_configuration: {{code: {ASSETS / 'script_crash'}, scoring_script: score.py}}
""", {"SCORER_API_KEY": "", "SCORER_STATE_DIR": str(state)})
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("scorer serve: deployment crasher:"), out.stderr
    assert "init() raised RuntimeError: cannot open the feature store" in last
    assert "Traceback" not in out.stderr
    # key mode without SCORER_API_KEY generated a private keys file and printed the key once
    assert "generated API keys" in out.stdout
    assert oct((state / "keys.json").stat().st_mode & 0o777) == "0o600"


def test_unresolvable_model_with_traffic_exits_with_one_clear_line(tmp_path) -> None:
    out = _serve_once(tmp_path, """
name: missing
auth_mode: none
deployments:
  blue:
    model: models:/no-such-model@champion
""", {})
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("scorer serve: deployment blue: model models:/no-such-model@champion"), out.stderr
    assert "auth_mode is none" in out.stderr  # the warning for auth none


def test_printed_curl_works_as_pasted(server) -> None:
    lines = [ln for ln in server.out.read_text().splitlines() if ln.startswith("try:")]
    assert lines, server.out.read_text()
    cmd = lines[0].removeprefix("try:").strip()
    env = {**os.environ, "SCORER_API_KEY": server.headers["Authorization"].removeprefix("Bearer ")}
    out = subprocess.run(["bash", "-c", cmd + " -w '\\n%{http_code}'"], env=env, capture_output=True, text=True,
                         timeout=30)
    body, code = out.stdout.strip().rsplit("\n", 1)
    assert code == "200", out.stdout
    assert '"predictions"' in body
