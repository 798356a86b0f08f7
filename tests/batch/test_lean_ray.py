"""A job's own local Ray (batch/lean_ray.py): started without the dashboard, the autoscaler monitor
and (unless logs go to the driver) the log monitor, and still a Ray that runs actors and, with
`--debug`, shows their output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.batch.conftest import REPO

# in a fresh interpreter: the test session's own Ray must not be the one inspected
PROBE = """
import json, sys
import psutil, ray
from batch.pool import start_ray

debug = sys.argv[1] == "debug"
started, _ = start_ray(None, debug)
node = ray._private.worker._global_node

@ray.remote(num_cpus=0.5)
class Echo:
    def say(self, text):
        print(text, flush=True)
        return text.upper()

answer = ray.get(Echo.remote().say.remote("lean-ray-probe"))
if debug:
    import time
    time.sleep(2)  # the log monitor forwards worker output about once a second
names = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True) if p.is_running()]
kinds = {kind: any(marker in n for n in names) for kind, marker in
         {"dashboard": "dashboard/dashboard.py", "autoscaler_monitor": "autoscaler/_private/monitor.py",
          "log_monitor": "_private/log_monitor.py", "raylet": "raylet/raylet",
          "gcs": "gcs/gcs_server"}.items()}
ray.shutdown()
print("RESULT " + json.dumps({"started": started, "answer": answer, "kinds": kinds}))
"""


def _probe(mode: str, **env: str) -> tuple[dict[str, object], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=str(REPO), capture_output=True, text=True,
                          timeout=180, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), done.stdout + done.stderr


def test_a_local_job_starts_ray_without_the_processes_it_never_uses() -> None:
    result, output = _probe("quiet")
    assert result["started"] is True and result["answer"] == "LEAN-RAY-PROBE"
    assert result["kinds"] == {"dashboard": False, "autoscaler_monitor": False, "log_monitor": False,
                               "raylet": True, "gcs": True}
    assert "lean-ray-probe" not in output  # log_to_driver is off: nothing forwarded


def test_debug_keeps_the_log_monitor_so_actor_output_reaches_the_driver() -> None:
    result, output = _probe("debug")
    assert result["kinds"]["log_monitor"] is True
    assert result["kinds"]["dashboard"] is False and result["kinds"]["autoscaler_monitor"] is False
    assert "lean-ray-probe" in output


def test_the_knob_starts_ray_as_ray_init_does() -> None:
    result, _ = _probe("quiet", SCORER_BATCH_LEAN_RAY="0")
    assert result["answer"] == "LEAN-RAY-PROBE"
    assert result["kinds"] == {"dashboard": True, "autoscaler_monitor": True, "log_monitor": True,
                               "raylet": True, "gcs": True}


def test_the_stand_ins_last_only_for_the_block() -> None:
    from ray._private import node, services

    from batch.lean_ray import without_unused_processes

    originals = (services.start_api_server, node.Node.start_monitor, services.get_node, node.Node.start_log_monitor)
    with pytest.raises(RuntimeError), without_unused_processes(keep_log_monitor=True) as stood_in:
        assert stood_in == ["start_api_server", "start_monitor", "get_node"]
        assert services.start_api_server is not originals[0] and node.Node.start_monitor is not originals[1]
        assert services.get_node is not originals[2] and node.Node.start_log_monitor is originals[3]
        raise RuntimeError("ray.init failed")
    assert (services.start_api_server, node.Node.start_monitor, services.get_node,
            node.Node.start_log_monitor) == originals


def test_a_ray_laid_out_otherwise_starts_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import node, services

    from batch.lean_ray import without_unused_processes

    monkeypatch.delattr(services, "start_api_server")
    with without_unused_processes(keep_log_monitor=False) as stood_in:
        assert stood_in == ["start_monitor", "get_node", "start_log_monitor"]
        assert not hasattr(services, "start_api_server")
    assert node.Node.start_monitor.__name__ == "start_monitor"
