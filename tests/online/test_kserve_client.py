"""V2 with the KServe Python client (kserve.InferenceRESTClient): health, readiness, infer with JSON
and binary tensors, and a V2 error. kserve's pins clash with this project's, so the client runs in
its own venv: opt-in, `make kserve-client` (sets SCORER_KSERVE_PYTHON); skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from tests.online.conftest import API_KEYS, ASSETS
from tests.online.data import demo_frame, split_body

PYTHON = os.environ.get("SCORER_KSERVE_PYTHON", "")

pytestmark = pytest.mark.skipif(not PYTHON, reason="opt-in: `make kserve-client` (a venv with kserve)")


def test_kserve_client_health_and_infer(server) -> None:
    rows = demo_frame().iloc[:3].to_numpy().tolist()
    run = subprocess.run([PYTHON, str(ASSETS / "kserve_probe.py"), server.url, API_KEYS[0], "blue", json.dumps(rows)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    expected = httpx.post(f"{server.url}/score", json=split_body(3), timeout=30, headers={
        "Authorization": f"Bearer {API_KEYS[0]}", "azureml-model-deployment": "blue"}).json()["predictions"]
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    for binary in (False, True):
        answer = seen[f"infer_binary={binary}"]
        assert answer["id"] == "k1"  # kserve's InferResponse does not read model_version back
        assert answer["outputs"] == [expected]
    assert "model 'nope' does not exist" in seen["error"] and "404" in seen["error"]
