"""Client mistakes are 400 naming the problem; a raising model is 424; never a 500 or a traceback."""

from __future__ import annotations

import json
import socket

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


def _cell(value: object, row: int = 0, col: int = 0) -> bytes:
    """A valid dataframe_split body for blue whose one cell is the raw JSON text `value`."""
    body = split_body(2)
    body["dataframe_split"]["data"][row][col] = "@cell@"
    return json.dumps(body).encode().replace(b'"@cell@"', str(value).encode())


def _columns(value: object) -> dict:  # type: ignore[type-arg]
    body = split_body(2)
    body["dataframe_split"]["columns"][0] = value
    return body


# Hand-made bodies that answered 500 (or 424 for a client's mistake): each is a 400 naming the field.
MALFORMED = {
    "open_brackets": (b"[" * 100_000, ["nested", "depth"]),
    "deep_object": (b'{"inputs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, ["nested", "depth"]),
    "deep_with_nan": (b'{"inputs": [NaN, ' + b"[" * 995 + b"]" * 995 + b"]}", ["nested", "depth"]),
    "column_is_a_list": (_columns(["mean_radius"]), ["dataframe_split.columns[0]", "list"]),
    "column_is_a_dict": (_columns({"a": 1}), ["dataframe_split.columns[0]", "object"]),
    "columns_is_a_dict": ({"dataframe_split": {"columns": {"a": 1}, "data": [[1.0]]}}, ["dataframe_split.columns"]),
    "400_digit_number": (_cell("1" + "0" * 400), ["dataframe_split.data[0][0]", "out of range", "10000"]),
    "400_digit_negative": (_cell("-" + "9" * 400), ["dataframe_split.data[0][0]", "out of range"]),
    "big_number_with_nan": (_cell("1" + "0" * 400).replace(b"]]", b", NaN]]", 1), ["out of range"]),
    "deep_cell": (_cell("[" * 900 + "1" + "]" * 900), ["dataframe_split.data[0][0]"]),
    "nested_cell": (_cell("[[[[[[1.5]]]]]]"), ["dataframe_split.data[0][0]", "mean_radius"]),
    "record_deep_cell": (b'{"dataframe_records": [{"mean_radius": ' + b"[" * 900 + b"]" * 900 + b"}]}",
                         ["dataframe_records[0]"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("route", ["/score", "/invocations"])
def test_malformed_bodies_are_400_naming_the_field(client, case: str, route: str) -> None:
    body, words = MALFORMED[case]
    r = client.post(route, content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                    headers={"Content-Type": "application/json", "azureml-model-deployment": "blue"})
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    for w in words:
        assert w.lower() in doc["message"].lower(), doc["message"]
    assert len(doc["message"]) < 1000, doc["message"]  # the value is truncated in the message
    _no_traceback(r)


def test_deep_nesting_in_split_data_is_400_not_424(client) -> None:
    for dep, body in (("mixed", b'{"dataframe_split": {"columns": ["x", "name"], "data": [[0.5, '
                       + b"[" * 60 + b'"a"' + b"]" * 60 + b"]]}}"),
                      ("blue", _cell("[" * 60 + "1" + "]" * 60))):
        r = client.post("/score", content=body, headers={"Content-Type": "application/json",
                                                         "azureml-model-deployment": dep})
        assert r.status_code == 400, r.text
        assert "dataframe_split.data[0]" in r.json()["message"], r.text


def test_huge_numbers_within_float_range_still_score(client) -> None:
    """Numbers past 64 bits but within float range are floats (as orjson and MLflow read them)."""
    r = client.post("/score", content=_cell("1" + "0" * 30),
                    headers={"Content-Type": "application/json", "azureml-model-deployment": "blue"})
    assert r.status_code == 200, r.text
    r = client.post("/score", content=_cell("1e300"),
                    headers={"Content-Type": "application/json", "azureml-model-deployment": "blue"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_answer_before_the_whole_body_says_connection_close(server, framing: str) -> None:
    """The server closes a connection whose body it did not read; the answer must say so, or the
    client's next request on it meets a reset instead of a reply."""
    host, port = server.url.rsplit("//", 1)[1].split(":")
    auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
    length = "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {MAX_BODY + 1}"
    head = (f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"azureml-model-deployment: blue\r\n{auth}{length}\r\n\r\n").encode()
    part = b"1," * (MAX_BODY // 2 + 10)
    if framing == "chunked":
        part = f"{len(part):x}\r\n".encode() + part + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + part)  # the body is not finished: the answer comes first
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status, _, rest = data.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), data[:300]
    assert b"connection: close" in rest.split(b"\r\n\r\n")[0].lower(), data[:300]


def _exchange(server, payload: bytes, answers: int) -> list[tuple[bytes, bytes]]:  # type: ignore[no-untyped-def]
    """Send raw bytes in one write; read `answers` whole HTTP answers (status line, body)."""
    host, port = server.url.rsplit("//", 1)[1].split(":")
    out: list[tuple[bytes, bytes]] = []
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while len(out) < answers:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                assert chunk, f"connection closed after {len(out)} answers: {data[:300]!r}"
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(data) < length:
                data += s.recv(65536)
            out.append((head.split(b"\r\n")[0], data[:length]))
            data = data[length:]
    return out


def test_whole_bodies_in_one_write_are_read_whole(server) -> None:  # type: ignore[no-untyped-def]
    """A body that is all in when the request starts is read without waiting (no timer): a chunked
    body in three chunks and two pipelined requests, each in a single write, are scored whole and
    answered in order."""
    auth = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
    head = ("POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"azureml-model-deployment: blue\r\n{auth}")
    one, two = json.dumps(split_body(1)).encode(), json.dumps(split_body(2)).encode()
    thirds = [one[:10], one[10:50], one[50:]]
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in thirds) + b"0\r\n\r\n"
    [(status, body)] = _exchange(server, f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunked, 1)
    assert status.startswith(b"HTTP/1.1 200"), body
    assert len(json.loads(body)["predictions"]) == 1
    pipelined = b"".join(f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in (two, one))
    answers = _exchange(server, pipelined, 2)
    assert [s[:12] for s, _ in answers] == [b"HTTP/1.1 200"] * 2, answers
    assert [len(json.loads(b)["predictions"]) for _, b in answers] == [2, 1]
