"""An Azure ML example served as written: MLflow's no-code deployment (`online/ncd/`) of
Azure/azureml-examples, its endpoint file and deployment file given together, its own model folder,
and its own `sample-request-sklearn.json` posted to `/score`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.online.conftest import API_KEYS, start_server, stop_server

NCD = Path(__file__).resolve().parent.parent / "fixtures" / "azureml" / "online" / "ncd"


def test_the_no_code_sklearn_example_serves_its_sample_request(work_dir: Path) -> None:
    srv = start_server(NCD / "create-endpoint.yaml", work_dir, {"SCORER_API_KEY": API_KEYS[0]},
                       deployments=[NCD / "sklearn-deployment.yaml"])
    srv.headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    try:
        with srv.client() as c:
            body = (NCD / "sample-request-sklearn.json").read_bytes()
            r = c.post("/score", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            predictions = r.json()["predictions"] if isinstance(r.json(), dict) else r.json()
            assert len(predictions) == len(json.loads(body)["input_data"]["data"]) == 2
            assert all(isinstance(p, float) for p in predictions)
            assert r.headers["azureml-model-deployment"] == "sklearn-deployment"
            version = r.headers["x-model-version"]
            assert "/" not in version and len(version) == 12  # a content hash, never the folder path
    finally:
        stop_server(srv)
