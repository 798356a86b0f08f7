"""The driver killed (kill -9, SIGTERM) and resumed; a simulated two-node cluster. Subprocesses
connect to the session's Ray with --address, so that only the cluster test starts another Ray."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.batch.conftest import commits, run_cli, spawn, summary, wait_for, write_x, write_yaml

pytestmark = pytest.mark.slow

N = 3000


def _job(tmp_path: Path, models: dict, **extra) -> tuple[Path, Path, Path]:
    src = write_x(tmp_path / "x.csv", np.arange(N))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=50,
                     resources={"instance_count": 2}, environment_variables={"TEST_DELAY": "0.1"}, **extra)
    return src, dep, tmp_path / "out"


def _exactly_once(out: Path, name: str = "predictions.csv") -> None:
    got = pd.read_parquet(out / name) if name.endswith(".parquet") else pd.read_csv(out / name)
    assert got["row"].tolist() == list(range(N))  # every row, once, in order
    assert got["prediction"].tolist() == [2.0 * i for i in range(N)]


def test_driver_kill_9_then_resume_gives_exactly_once_output(ray_session, models, tmp_path) -> None:
    src, dep, out = _job(tmp_path, models)
    proc = spawn("batch", str(dep), "--input", str(src), "--output", str(out), "--address", ray_session)
    try:
        wait_for(lambda: commits(out) >= 6 or proc.poll() is not None, 60, "six commits")
        proc.kill()
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "job_summary.json").exists()
    done_before = commits(out)
    assert 6 <= done_before < N // 50
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out), "--resume") == 0
    _exactly_once(out)
    s = summary(out)
    assert s["resumed"] and s["resumed_after_mini_batches"] >= done_before
    assert s["items"]["total"] == N and s["mini_batches"]["total"] == N // 50


@pytest.mark.parametrize("name", ["predictions.csv", "predictions.parquet"])
def test_sigterm_stops_cleanly_with_130_then_resume(ray_session, models, tmp_path, name) -> None:
    src, dep, out = _job(tmp_path, models, output_file_name=name)
    args = ["batch", str(dep), "--input", str(src), "--output", str(out)]
    proc = spawn(*args, "--address", ray_session)
    try:
        wait_for(lambda: commits(out) >= 3 or proc.poll() is not None, 60, "three commits")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    s = summary(out)
    assert s["status"] == "interrupted" and s["exit_code"] == 130
    assert run_cli(*args) == 2  # a previous job is there: refused without --resume
    assert not (out / "predictions.parquet").exists()  # Parquet appears whole, at the end
    assert run_cli(*args, "--resume") == 0
    _exactly_once(out, name)
    assert summary(out)["status"] == "completed"


def test_two_node_simulated_cluster(models, tmp_path) -> None:
    from ray.cluster_utils import Cluster

    cluster = None
    for attempt in range(2):  # a loaded CI box can miss Ray's fixed 30 s raylet start window once
        cluster = Cluster()
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False)
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            break
        except Exception:
            cluster.shutdown()
            if attempt:
                raise
    assert cluster is not None
    try:
        src = write_x(tmp_path / "x.parquet", np.arange(2000))
        dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100,
                         resources={"instance_count": 2}, output_file_name="p.parquet")
        out = tmp_path / "out"
        proc = spawn("batch", str(dep), "--input", str(src), "--output", str(out), "--address", cluster.address)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        s = summary(out)
        assert s["pool"]["actors"] == 2 and s["pool"]["nodes"] == 2
        assert s["ray_address"] == cluster.address and cluster.address.startswith("127.0.0.1:")
        got = pd.read_parquet(out / "p.parquet")
        assert got["row"].tolist() == list(range(2000))
        assert json.loads((out / "job_summary.json").read_text())["status"] == "completed"
    finally:
        cluster.shutdown()
