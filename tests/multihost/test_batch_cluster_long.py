"""The long multi-host batch checks (`make multihost`): three nodes, a larger job timed against
the same job on local Ray, and a node lost in the middle of a job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.multihost.cluster import REPO, NetnsCluster
from tests.multihost.test_batch_cluster import _job, check_exactly_once_in_order, run_batch

pytestmark = [pytest.mark.multihost, pytest.mark.soak]


def test_larger_job_on_three_nodes_against_local(three_nodes: NetnsCluster, driver_only_model: str) -> None:
    rows = 200_000
    deploy, data, out = _job(three_nodes, driver_only_model, rows, mini_batch=5000, actors_per_node=2,
                             name="big")
    t0 = time.monotonic()
    done = run_batch(three_nodes, deploy, data, out, timeout=400)
    cluster_wall = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "job_summary.json").read_text())
    assert set(summary["pool"]["actors_by_node_ip"]) == {n.ip for n in three_nodes.nodes}
    check_exactly_once_in_order(out, rows)

    # the same job on local Ray (127.0.0.1, this machine's namespaces), for the figures
    local_out = out.with_name("local-out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    t0 = time.monotonic()
    local = subprocess.run([sys.executable, "-m", "scorer.cli", "batch", str(deploy), "--input", str(data),
                            "--output", str(local_out)], env=env, capture_output=True, text=True, timeout=400,
                           cwd=str(REPO))
    local_wall = time.monotonic() - t0
    assert local.returncode == 0, local.stderr[-3000:]
    check_exactly_once_in_order(local_out, rows)
    local_summary = json.loads((local_out / "job_summary.json").read_text())
    print(f"\ncluster up: {three_nodes.timings}\n3 nodes: wall {cluster_wall:.1f} s, {summary['durations']}, "
          f"actors {summary['pool']}\nlocal: wall {local_wall:.1f} s, {local_summary['durations']}, "
          f"actors {local_summary['pool']}")


def test_node_lost_mid_job(three_nodes: NetnsCluster, driver_only_model: str) -> None:
    """A worker node killed (every process of it, SIGKILL) mid-job: its actors are replaced on the
    nodes left and the output is still exactly once and in order."""
    rows = 6000
    deploy, data, out = _job(three_nodes, driver_only_model, rows, mini_batch=100, actors_per_node=1,
                             name="lost", env={"TEST_DELAY": "0.3"})
    journal = out / ".scorer-batch" / "journal.jsonl"
    lost = three_nodes.nodes[2]

    def kill_when_started() -> None:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_text().count('"commit"') >= 5:
                three_nodes.kill_node(lost)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    done = run_batch(three_nodes, deploy, data, out, timeout=400)
    killer.join(timeout=5)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "job_summary.json").read_text())
    assert lost.ip in summary["pool"]["actors_by_node_ip"]
    assert summary["actor_deaths"] >= 1, summary
    assert summary["items"] == {"total": rows, "succeeded": rows, "failed": 0}
    check_exactly_once_in_order(out, rows)
    print(f"\nnode lost: {summary['actor_deaths']} actor deaths, {summary['retries']} retries, "
          f"durations {summary['durations']}")
