"""`scorer batch --address` on a real multi-node Ray cluster (network namespaces, see cluster.py):
actors on every node, output exactly once and in order, a model that reaches a node without a
shared /tmp, and Ray token authentication (a driver without the cluster's token is refused)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.multihost.cluster import REPO, NetnsCluster

pytestmark = pytest.mark.multihost


def _job(cluster: NetnsCluster, model: str, rows: int, mini_batch: int, actors_per_node: int,
         name: str, env: dict[str, str] | None = None) -> tuple[Path, Path, Path]:
    """Deployment, input and output paths, all in the cluster's shared folder (every node sees it)."""
    folder = cluster.shared / name
    folder.mkdir()
    pd.DataFrame({"x": np.arange(rows, dtype=float)}).to_csv(folder / "x.csv", index=False)
    doc = {"name": name, "type": "batch", "model": model, "mini_batch_size": mini_batch,
           "resources": {"instance_count": len(cluster.nodes)},
           "max_concurrency_per_instance": actors_per_node,
           "retry_settings": {"max_retries": 2, "timeout": 60}, "error_threshold": 0, "logging_level": "info",
           "environment_variables": env or {}}
    (folder / "deploy.yaml").write_text(yaml.safe_dump(doc))
    return folder / "deploy.yaml", folder / "x.csv", folder / "out"


def run_batch(cluster: NetnsCluster, deploy: Path, data: Path, out: Path, token: bool = True,
              extra_env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`scorer batch --address HEAD:6379` as a driver in the head's namespace."""
    cmd = [sys.executable, "-m", "scorer.cli", "batch", str(deploy), "--input", str(data), "--output", str(out),
           "--address", cluster.address]
    env = {**cluster.env(token), **(extra_env or {})}
    return subprocess.run(cluster.node_command(cluster.head, cmd), env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))


def check_exactly_once_in_order(out: Path, rows: int) -> None:
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == rows
    assert (pred["row"].to_numpy() == np.arange(rows)).all(), "rows out of order, lost or repeated"
    assert np.allclose(pred["prediction"].to_numpy(), 2 * np.arange(rows))


def test_batch_on_two_nodes(two_nodes: NetnsCluster, driver_only_model: str) -> None:
    worker = two_nodes.nodes[1]
    # the worker node really has a private /tmp: the driver's model folder does not exist there
    seen = two_nodes.python(f"import os; print(os.path.exists({driver_only_model!r}))", node=worker)
    assert seen.stdout.strip() == "False", seen.stderr[-1000:]

    rows = 3000
    deploy, data, out = _job(two_nodes, driver_only_model, rows, mini_batch=100, actors_per_node=2, name="job")
    t0 = time.monotonic()
    done = run_batch(two_nodes, deploy, data, out)
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "job_summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["items"] == {"total": rows, "succeeded": rows, "failed": 0}
    assert summary["mini_batches"]["total"] == 30
    # actors on both nodes (SPREAD, and 4 actors of 0.5 CPU fill two 1-CPU nodes)
    assert set(summary["pool"]["actors_by_node_ip"]) == {n.ip for n in two_nodes.nodes}
    assert summary["pool"]["nodes"] == 2
    check_exactly_once_in_order(out, rows)
    print(f"\ncluster up: {two_nodes.timings}; batch job wall {wall:.1f} s; durations {summary['durations']}")


def test_driver_without_token_is_refused(two_nodes: NetnsCluster, driver_only_model: str) -> None:
    deploy, data, out = _job(two_nodes, driver_only_model, 10, mini_batch=5, actors_per_node=1, name="notoken")
    t0 = time.monotonic()
    # Ray retries a refused connection for about 20 s; two tries are enough to see the refusal
    done = run_batch(two_nodes, deploy, data, out, token=False, timeout=120,
                     extra_env={"RAY_gcs_server_port_wait_time_s": "2", "TMPDIR": str(two_nodes.shared)})
    assert done.returncode == 4, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("scorer batch:")]
    assert said and "refused this driver's token" in said[-1], done.stderr[-2000:]
    assert not (out / "predictions.csv").exists()
    assert list(two_nodes.shared.glob("scorer-batch-error-*.log")), "the traceback goes to TMPDIR"
    assert time.monotonic() - t0 < 120
