"""MLflow protocol parity: the same body gives the same status and JSON as `mlflow models serve`."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from tests.online.data import bodies, demo_rows


def _post(url: str, ct: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": ct, **(headers or {})}, timeout=30)


def _ours(server, deployment: str, ct: str, body: bytes, path: str = "/invocations") -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{server.url}{path}", content=body, timeout=30, headers={
        "Content-Type": ct, "azureml-model-deployment": deployment, **server.headers})


MIXED = pd.DataFrame({"x": [0.1, 0.6, 0.9, 0.35], "name": ["a", "b", "c", "d"]})


@pytest.mark.parametrize("fmt", list(bodies(MIXED)))
@pytest.mark.parametrize("model", ["blue", "mixed"])
def test_parity_with_mlflow_models_serve(server, mlflow_servers, fmt: str, model: str) -> None:
    df = demo_rows(7, start=40) if model == "blue" else MIXED
    ct, body = bodies(df)[fmt]
    theirs = _post(mlflow_servers[model], ct, body)
    ours = _ours(server, model, ct, body)
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    assert ours.json() == theirs.json()
    assert ours.content == theirs.content.strip() or json.loads(ours.content) == json.loads(theirs.content)
    assert ours.headers["content-type"].startswith("application/json")


def test_parity_with_params(server, mlflow_servers) -> None:
    body = json.dumps({"dataframe_split": json.loads(MIXED.to_json(orient="split", index=False)),
                       "params": {"scale": 3.0}}).encode()
    theirs = _post(mlflow_servers["mixed"], "application/json", body)
    ours = _ours(server, "mixed", "application/json", body)
    assert theirs.status_code == ours.status_code == 200
    assert ours.json() == theirs.json()
    assert ours.json()["predictions"][1]["score"] == pytest.approx(0.6)


def test_score_and_invocations_are_the_same_route(server) -> None:
    ct, body = bodies(demo_rows(3))["dataframe_split"]
    a = _ours(server, "blue", ct, body, "/score")
    b = _ours(server, "blue", ct, body, "/invocations")
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()


def test_azure_input_data_wrapper(server) -> None:
    df = demo_rows(4, start=10)
    split = json.loads(df.to_json(orient="split", index=False))
    plain = _ours(server, "blue", "application/json", json.dumps({"dataframe_split": split}).encode())
    wrapped = _ours(server, "blue", "application/json", json.dumps({"input_data": split}).encode())
    assert wrapped.status_code == 200, wrapped.text
    assert wrapped.json() == plain.json()
    tensors = {c: df[c].tolist() for c in df.columns}
    as_inputs = _ours(server, "blue", "application/json", json.dumps({"input_data": tensors}).encode())
    assert as_inputs.status_code == 200, as_inputs.text
    assert as_inputs.json() == plain.json()


def test_version_matches_mlflow(server, mlflow_servers) -> None:
    theirs = httpx.get(f"{mlflow_servers['blue']}/version").text
    ours = httpx.get(f"{server.url}/version").text
    assert ours == theirs


def test_scoring_script_gets_the_body_string(server) -> None:
    r = _ours(server, "script", "application/json", b'{"a": [1, 2]}')
    assert r.status_code == 200, r.text
    assert r.json() == {"echo": {"a": [1, 2]}, "greeting": "hello", "type": "str"}
    assert r.headers["azureml-model-deployment"] == "script"
