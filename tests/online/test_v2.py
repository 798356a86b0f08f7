"""Open Inference Protocol V2 with a real client (tritonclient.http) against the real server:
metadata, readiness, infer routed by traffic and pinned, binary and JSON tensors, errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as tc
from tritonclient.utils import InferenceServerException

from tests.online.conftest import API_KEYS
from tests.online.data import demo_frame, split_body

AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}


def auth() -> dict[str, str]:
    return dict(AUTH)  # tritonclient writes its own headers into the dict it is given


@pytest.fixture(scope="module")
def triton(server) -> Iterator[tc.InferenceServerClient]:
    c = tc.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def _columns() -> list[str]:
    return list(demo_frame().columns)


def _2d(n: int, binary: bool) -> tc.InferInput:
    x = demo_frame().iloc[:n].to_numpy(dtype=np.float64)
    t = tc.InferInput("features", list(x.shape), "FP64")
    t.set_data_from_numpy(x, binary_data=binary)
    return t


def _expected(client: httpx.Client, deployment: str, n: int) -> list[float]:
    r = client.post("/score", json=split_body(n), headers={"azureml-model-deployment": deployment})
    return r.json()["predictions"]  # type: ignore[no-any-return]


def test_server_and_health(triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta["name"] == "scorer" and "version" in meta


def test_model_metadata_is_the_signature(triton) -> None:
    meta = triton.get_model_metadata("blue", headers=auth())
    assert meta["name"] == "blue" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == _columns()
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"]
    routed = triton.get_model_metadata("tests", headers=auth())
    assert routed["name"] == "tests" and [i["name"] for i in routed["inputs"]] == _columns()
    assert triton.is_model_ready("blue", headers=auth()) and triton.is_model_ready("tests", headers=auth())
    assert not triton.is_model_ready("purple", headers=auth())


@pytest.mark.parametrize("binary", [True, False])
def test_infer_pinned_with_one_2d_input(triton, client, binary: bool) -> None:
    result = triton.infer("green", [_2d(4, binary)], headers=auth())
    out = result.get_response()["outputs"][0]
    assert out["shape"] == [4]
    assert result.as_numpy(out["name"]).tolist() == _expected(client, "green", 4)
    assert result.get_response()["model_name"] == "green"


def test_infer_with_1d_inputs_by_column_name(triton, client) -> None:
    frame = demo_frame().iloc[:3]
    inputs = []
    for col in reversed(frame.columns):  # by name, so any order
        t = tc.InferInput(col, [3], "FP64")
        t.set_data_from_numpy(frame[col].to_numpy(dtype=np.float64), binary_data=col.startswith("mean"))
        inputs.append(t)
    result = triton.infer("blue", inputs, headers=auth(), request_id="abc")
    assert result.get_response()["id"] == "abc"
    out = result.get_response()["outputs"][0]
    assert result.as_numpy(out["name"]).tolist() == _expected(client, "blue", 3)


def test_infer_routed_by_traffic(server) -> None:
    x = demo_frame().iloc[:1].to_numpy(dtype=np.float64)
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}]}
    seen = set()
    for _ in range(10):
        r = httpx.post(f"{server.url}/v2/models/tests/infer", json=body, headers=auth(), timeout=30)
        assert r.status_code == 200, r.text
        seen.add(r.headers["azureml-model-deployment"])
        assert r.json()["model_name"] == "tests"
    assert seen == {"blue", "green"}


def test_errors_are_v2_shaped(triton, server) -> None:
    with pytest.raises(InferenceServerException, match="does not exist"):
        triton.infer("purple", [_2d(1, False)], headers=auth())
    bad = tc.InferInput("features", [1, 3], "FP64")
    bad.set_data_from_numpy(np.zeros((1, 3)), binary_data=False)
    with pytest.raises(InferenceServerException, match="has 3 columns; the signature has 30"):
        triton.infer("blue", [bad], headers=auth())
    cases = [
        ({"inputs": []}, 400, "inputs"),
        ({"inputs": [{"name": "mean_radius", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, 400, "needs 2"),
        ({"inputs": [{"name": "nope", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, 400, "not a signature"),
        ({"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, 400,
         "missing inputs"),
    ]
    for body, status, text in cases:
        r = httpx.post(f"{server.url}/v2/models/blue/infer", json=body, headers=auth(), timeout=30)
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error", "error_code"} and text in r.json()["error"], r.text
    r = httpx.post(f"{server.url}/v2/models/blue/infer", json=cases[0][0], timeout=30)
    assert r.status_code == 401 and "error" in r.json()
    r = httpx.post(f"{server.url}/v2/models/raiser/infer", headers=auth(), timeout=30,
                   json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert r.status_code == 424 and "must be positive" in r.json()["error"]
