"""`scorer serve --address` on a real two-node Ray cluster (network namespaces, see cluster.py):
one deployment's replicas are Ray actors on both nodes, the router (in the head's namespace)
speaks authenticated frames to each over TCP, and the model, a folder only the head's /tmp holds,
reaches the other node through Ray's object store. Each replica answers with its node's address."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.multihost.cluster import REPO, NetnsCluster
from tests.multihost.cluster import where_model as saved_where_model

pytestmark = pytest.mark.multihost

API_KEY, ADMIN_KEY = "multihost-key", "multihost-admin"


def _where_model():
    """Defined inside a function so that cloudpickle stores the class by value (actors import no tests)."""
    import mlflow.pyfunc

    class WhereAmI(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import ray

            return [ray.util.get_node_ip_address()] * len(model_input)

    return WhereAmI()


@pytest.fixture(scope="module")
def where_model() -> Iterator[str]:
    with saved_where_model("scmh-where-", _where_model()) as path:
        yield path


# runs in the head's namespace: the router listens on that namespace's 127.0.0.1
CLIENT = """
import json, sys, threading, time, httpx
url, key, admin_key = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.monotonic() + 150
while time.monotonic() < deadline:
    try:
        if httpx.get(url + "/ready", timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.3)
else:
    print(json.dumps({"ready": False})); sys.exit(0)
body = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
answers, statuses = [], []
def client():
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer " + key}, timeout=30) as c:
        for _ in range(25):
            r = c.post("/score", json=body)
            statuses.append(r.status_code)
            if r.status_code == 200:
                answers.append(r.json()["predictions"][0])
threads = [threading.Thread(target=client) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join(120)
doc = httpx.get(url + "/admin/endpoint", headers={"Authorization": "Bearer " + admin_key}, timeout=10).json()
print(json.dumps({"ready": True, "statuses": statuses, "answers": answers, "admin": doc}))
"""


def test_replicas_on_both_nodes_each_answers(two_nodes: NetnsCluster, where_model: str) -> None:
    worker = two_nodes.nodes[1]
    seen = two_nodes.python(f"import os; print(os.path.exists({where_model!r}))", node=worker)
    assert seen.stdout.strip() == "False", seen.stderr[-1000:]

    folder = two_nodes.shared / "serve"
    folder.mkdir()
    endpoint = folder / "endpoint.yaml"
    endpoint.write_text(f"""
name: spread
auth_mode: key
deployments:
  where:
    model: {where_model}
    instance_count: 2
    resources: {{requests: {{cpu: "1"}}}}
    request_settings: {{request_timeout_ms: 10000, max_concurrent_requests_per_instance: 4}}
""")
    port = 18000 + int(two_nodes.tag, 16) % 1000
    env = {**two_nodes.env(), "SCORER_API_KEY": API_KEY, "SCORER_ADMIN_KEY": ADMIN_KEY,
           "SCORER_CLUSTER_SECRET": "multihost-secret"}
    out, err = folder / "serve.out", folder / "serve.err"
    cmd = [sys.executable, "-m", "scorer.cli", "serve", str(endpoint), "--port", str(port),
           "--address", two_nodes.address]
    t0 = time.monotonic()
    router = subprocess.Popen(two_nodes.node_command(two_nodes.head, cmd), env=env, cwd=str(folder),
                              stdout=out.open("wb"), stderr=err.open("wb"))
    try:
        done = subprocess.run(two_nodes.node_command(two_nodes.head, [sys.executable, "-c", CLIENT,
                                                                      f"http://127.0.0.1:{port}", API_KEY, ADMIN_KEY]),
                              env=two_nodes.env(), capture_output=True, text=True, timeout=240, cwd=str(REPO))
        wall = time.monotonic() - t0
        logs = out.read_text(errors="replace") + err.read_text(errors="replace")
        assert done.returncode == 0, f"{done.stderr[-2000:]}\n{logs[-3000:]}"
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["ready"], logs[-4000:]
        ips = {n.ip for n in two_nodes.nodes}
        replicas = result["admin"]["deployments"]["where"]["replicas"]
        assert {r["where"] for r in replicas} == ips, replicas
        assert all(r["state"] == "ready" for r in replicas), replicas
        assert set(result["statuses"]) == {200}, result["statuses"]
        assert set(result["answers"]) == ips, "each node's replica answers with its own address"
        assert "multihost-secret" not in logs
        print(f"\ncluster up: {two_nodes.timings}; router ready and 200 requests answered in {wall:.1f} s")
    finally:
        router.terminate()
        try:
            router.wait(20)
        except subprocess.TimeoutExpired:
            router.kill()
