"""Open Inference Protocol V2 with a real client (tritonclient.http) against the real server:
metadata, readiness, infer routed by traffic and pinned, binary and JSON tensors, errors."""

from __future__ import annotations

import json
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


def _infer(server, body: bytes, headers: dict[str, str | bytes] | None = None,  # type: ignore[no-untyped-def]
           model: str = "blue") -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", content=body, timeout=30,
                      headers={**auth(), **(headers or {})})


def _json_tensor(**change: object) -> bytes:
    x = demo_frame().iloc[:1].to_numpy(dtype=np.float64)
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist(), **change}
    return json.dumps({"inputs": [tensor]}).encode()


def _binary_tensor(datatype: object = "FP64", dtype: str = "<f8") -> tuple[bytes, str]:
    x = demo_frame().iloc[:2].to_numpy().astype(dtype)
    head = json.dumps({"inputs": [{"name": "features", "shape": list(x.shape), "datatype": datatype,
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    return head + x.tobytes(), str(len(head))


# Hand-made V2 requests that answered 500 (or 200 for an unknown datatype): each is a V2-shaped 400.
@pytest.mark.parametrize("datatype", [[1], {}, None, 3, "BF16", "XX", "fp64"])
def test_bad_datatype_is_400_naming_it(server, datatype: object) -> None:
    r = _infer(server, _json_tensor(datatype=datatype))
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "error_code"} and "inputs[0].datatype" in r.json()["error"], r.text
    body, n = _binary_tensor(datatype)
    r = _infer(server, body, {"Inference-Header-Content-Length": n})
    assert r.status_code == 400, r.text
    assert "inputs[0].datatype" in r.json()["error"], r.text


def test_fp16_binary_is_accepted(server, client) -> None:
    body, n = _binary_tensor("FP16", "<f2")
    r = _infer(server, body, {"Inference-Header-Content-Length": n})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["shape"] == [2]


def test_deeply_nested_data_is_400(server) -> None:
    deep = b'{"inputs": [{"name": "features", "shape": [1], "datatype": "FP64", "data": ' + \
        b"[" * 1000 + b"1.0" + b"]" * 1000 + b"}]}"
    r = _infer(server, deep)
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["error"], r.text
    r = _infer(server, _json_tensor(data=[[1.0], [[2.0]]], shape=[2, 1]))
    assert r.status_code == 400 and "inputs[0].data" in r.json()["error"], r.text


@pytest.mark.parametrize("value", ["9" * 5000, "²", "١", "-1", "0x10"])
def test_bad_header_length_is_400(server, value: str) -> None:
    body, _ = _binary_tensor()
    raw = value.encode("latin-1") if value == "²" else value.encode()  # as the server reads it: ² itself
    r = _infer(server, body, {"Inference-Header-Content-Length": raw})
    assert r.status_code == 400, r.text
    assert "Inference-Header-Content-Length" in r.json()["error"], r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "text/csv", "application/json; x=1",
                                          "application/json; charset=latin-1"])
def test_other_media_types_are_v2_shaped_415(server, content_type: str) -> None:
    r = _infer(server, _json_tensor(), {"Content-Type": content_type})
    assert r.status_code == 415, r.text
    assert set(r.json()) == {"error", "error_code"} and r.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    body, n = _binary_tensor()
    r = _infer(server, body, {"Content-Type": "application/octet-stream"})  # binary needs the header length
    assert r.status_code == 415, r.text
    assert "Inference-Header-Content-Length" in r.json()["error"]


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
def test_json_media_types_are_accepted(server, content_type: str | None) -> None:
    r = _infer(server, _json_tensor(), {"Content-Type": content_type} if content_type else {})
    assert r.status_code == 200, r.text
    body, n = _binary_tensor()
    headers = {"Inference-Header-Content-Length": n}
    r = _infer(server, body, {**headers, "Content-Type": content_type or "application/octet-stream"})
    assert r.status_code == 200, r.text


def test_versioned_routes_with_tritonclient(triton, client) -> None:
    """tritonclient's model_version= reaches versions/{v}/...: the current version works, another is a V2 404."""
    assert triton.is_model_ready("blue", model_version="1", headers=auth())
    meta = triton.get_model_metadata("blue", model_version="1", headers=auth())
    assert meta["versions"] == ["1"]
    result = triton.infer("blue", [_2d(3, True)], model_version="1", headers=auth())
    assert result.as_numpy("predictions").tolist() == _expected(client, "blue", 3)
    routed = triton.infer("tests", [_2d(2, False)], model_version="1", headers=auth())
    assert routed.get_response()["model_version"] == "1"
    for call in (lambda: triton.get_model_metadata("blue", model_version="7", headers=auth()),
                 lambda: triton.infer("blue", [_2d(1, True)], model_version="7", headers=auth()),
                 lambda: triton.get_model_config("blue", model_version="7", headers=auth())):
        with pytest.raises(InferenceServerException, match="no version '7'") as err:
            call()
        assert err.value.status() == "404"


def test_versions_are_never_folder_paths(triton, server) -> None:
    """A path-based model's version is its content hash; /admin/endpoint shows the model as written."""
    from tests.online.conftest import admin

    meta = triton.get_model_metadata("mixed", headers=auth())
    (version,) = meta["versions"]
    assert "/" not in version and len(version) == 12, version
    assert triton.is_model_ready("mixed", model_version=version, headers=auth())
    r = httpx.post(f"{server.url}/score", json={"dataframe_split": {"columns": ["x", "name"], "data": [[0.1, "a"]]}},
                   headers={**AUTH, "azureml-model-deployment": "mixed"})
    assert r.headers["x-model-version"] == version
    doc = admin(server)["deployments"]
    assert doc["mixed"]["model_version"] == version and doc["blue"]["model_version"] == "1"
    assert doc["blue"]["model"].startswith("models:/") and ".scorer" not in str(doc["mixed"]["model"])
    assert doc["script"]["model"] is None


def test_triton_extensions_with_tritonclient(triton, client) -> None:
    """Model config, statistics and the repository index: what a tritonclient user calls first."""
    config = triton.get_model_config("blue", headers=auth())
    assert config["name"] == "blue" and config["max_batch_size"] == 0
    assert [i["name"] for i in config["input"]] == _columns()
    assert {i["data_type"] for i in config["input"]} == {"TYPE_FP64"}
    assert triton.get_model_config("mixed", headers=auth())["input"] == [
        {"name": "x", "data_type": "TYPE_FP64", "dims": [-1]},
        {"name": "name", "data_type": "TYPE_STRING", "dims": [-1]}]
    before = triton.get_inference_statistics("blue", headers=auth())["model_stats"][0]
    triton.infer("blue", [_2d(2, True)], headers=auth())
    after = triton.get_inference_statistics("blue", model_version="1", headers=auth())["model_stats"][0]
    assert after["name"] == "blue" and after["version"] == "1"
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    every = triton.get_inference_statistics(headers=auth())["model_stats"]
    assert {"blue", "green", "mixed"} <= {s["name"] for s in every}
    index = triton.get_model_repository_index(headers=auth())
    rows = {r["name"]: r for r in index}
    assert rows["blue"] == {"name": "blue", "version": "1", "state": "READY"}
    assert rows["tests"]["state"] == "READY" and "crasher" in rows
    with pytest.raises(InferenceServerException) as err:
        triton.load_model("blue", headers=auth())
    assert err.value.status() == "404" and "decoding" not in str(err.value)


@pytest.mark.parametrize("method,path", [("GET", "/v2/nothing"), ("GET", "/v2/models/blue/versions"),
                                         ("POST", "/v2/models/blue/ready"), ("DELETE", "/v2/models/blue"),
                                         ("POST", "/v2/repository/models/blue/unload"), ("GET", "/v2/models/x/y/z")])
def test_unknown_v2_routes_are_v2_shaped(server, method: str, path: str) -> None:
    r = httpx.request(method, f"{server.url}{path}", headers=AUTH)
    assert r.status_code in (404, 405), r.text
    doc = r.json()
    assert set(doc) == {"error", "error_code"} and path[:12] in doc["error"], doc


def test_unknown_v2_route_with_tritonclient_names_the_problem(triton) -> None:
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_metadata("blue", model_version="1/../../x", headers=auth())
    assert "decoding the response" not in str(err.value), str(err.value)
