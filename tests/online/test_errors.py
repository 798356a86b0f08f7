"""Client mistakes are 400 naming the problem; a raising model is 424; never a 500 or a traceback."""

from __future__ import annotations

import json

import pytest

from tests.online.conftest import MAX_BODY
from tests.online.data import demo_rows, split_body


def _post(client, body, ct: str = "application/json", deployment: str = "blue", **headers):  # type: ignore[no-untyped-def]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/score", content=content, headers={"Content-Type": ct, "azureml-model-deployment": deployment,
                                                             **headers})


def _no_traceback(r) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert "stack_trace" not in r.json()


def _missing_column() -> dict:  # type: ignore[type-arg]
    body = split_body(2)
    body["dataframe_split"]["columns"] = body["dataframe_split"]["columns"][1:]
    body["dataframe_split"]["data"] = [row[1:] for row in body["dataframe_split"]["data"]]
    return body


def _wrong_type() -> dict:  # type: ignore[type-arg]
    body = split_body(2)
    body["dataframe_split"]["data"][0][0] = "not-a-number"
    return body


def _ragged() -> dict:  # type: ignore[type-arg]
    body = split_body(2)
    body["dataframe_split"]["data"][1] = body["dataframe_split"]["data"][1][:5]
    return body


def _record_missing() -> dict:  # type: ignore[type-arg]
    records = json.loads(demo_rows(2).to_json(orient="records"))
    del records[1]["mean_radius"]
    return {"dataframe_records": records}


CASES = {
    "bad_json": (b'{"dataframe_split": {', ["not valid JSON"]),
    "json_list": (b"[1, 2, 3]", ["dictionary", "list"]),
    "unknown_format": ({"dataframe_rows": [[1]]}, ["dataframe_rows", "dataframe_split"]),
    "two_formats": ({"instances": [], "inputs": []}, ["exactly one"]),
    "missing_column": (_missing_column(), ["missing inputs", "mean_radius"]),
    "wrong_type": (_wrong_type(), ["mean_radius"]),
    "ragged_rows": (_ragged(), ["dataframe_split.data[1]", "expected 30"]),
    "record_missing_column": (_record_missing(), ["dataframe_records[1]", "mean_radius"]),
    "params_not_object": ({**split_body(1), "params": [1]}, ["params"]),
    "bad_csv": (b"mean_radius,mean_texture\n1,2,3,4\n\x00", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_client_mistakes_are_400_naming_the_problem(client, case: str) -> None:
    body, words = CASES[case]
    r = _post(client, body, ct="text/csv" if case == "bad_csv" else "application/json")
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    for w in words or []:
        assert w.lower() in doc["message"].lower(), doc["message"]
    _no_traceback(r)
    assert r.headers["azureml-model-deployment"] == "blue"


def test_unsupported_media_type_is_415(client) -> None:
    r = _post(client, b"<xml/>", ct="application/xml")
    assert r.status_code == 415
    assert r.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert _post(client, b"", ct="application/json; charset=latin-1").status_code == 415
    r = client.post("/score", content=b"{}")  # no content type at all
    assert r.status_code == 415


def test_body_over_the_limit_is_413(client) -> None:
    big = b'{"inputs": [' + b"1," * (MAX_BODY // 2) + b"1]}"
    r = _post(client, big)
    assert r.status_code == 413
    assert r.json()["error_code"] == "REQUEST_TOO_LARGE"


def test_body_over_the_limit_without_content_length_is_413(client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * 65536

    r = client.post("/score", content=chunks(), headers={"Content-Type": "application/json",
                                                         "azureml-model-deployment": "blue"})
    assert r.status_code == 413


def test_raising_model_is_424_with_azure_headers(client) -> None:
    r = _post(client, {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}, deployment="raiser")
    assert r.status_code == 424, r.text
    assert r.json()["error_code"] == "MODEL_ERROR"
    assert "feature x must be positive" in r.json()["message"]
    assert r.headers["ms-azureml-model-error-statuscode"] == "500"
    assert "feature x must be positive" in r.headers["ms-azureml-model-error-reason"]
    _no_traceback(r)


def test_raising_scoring_script_is_424(client) -> None:
    r = _post(client, {"fail": True}, deployment="script")
    assert r.status_code == 424
    assert "asked to fail" in r.json()["message"]
    _no_traceback(r)


def test_unknown_route_and_method(client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/score").status_code == 405


def test_server_still_serves_after_errors(client) -> None:
    r = client.post("/score", json={"dataframe_records": json.loads(demo_rows(2).to_json(orient="records"))},
                    headers={"azureml-model-deployment": "blue"})
    assert r.status_code == 200
    assert len(r.json()["predictions"]) == 2


def test_traceparent_reaches_the_log_on_failures(client, server) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = _post(client, {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}, deployment="raiser",
              traceparent=tp, **{"x-request-id": "trace-me-1"})
    assert r.status_code == 424
    import time

    time.sleep(0.2)
    logs = server.logs()
    assert f"request trace-me-1 traceparent {tp}" in logs
