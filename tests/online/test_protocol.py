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


def test_bounded_json_decode_unit(monkeypatch) -> None:
    """One decode for every body: depth limit (knob), numbers as orjson reads them, 400 naming the field."""
    from serving.errors import ScoringError
    from serving.protocol import jsonbody

    monkeypatch.delenv("SCORER_MAX_JSON_DEPTH", raising=False)
    jsonbody.max_depth.cache_clear()
    try:
        assert jsonbody.max_depth() == jsonbody.DEFAULT_MAX_DEPTH == 64
        assert jsonbody.loads(b"[" * 64 + b"]" * 64) is not None
        for body in (b"[" * 65 + b"]" * 65, b"[" * 100_000, b"[NaN, " + b"[" * 2000 + b"]" * 2000 + b"]"):
            with pytest.raises(ScoringError, match="nested too deeply") as err:
                jsonbody.loads(body)
            assert err.value.status == 400
        with pytest.raises(ScoringError, match=r"^a\.b\[1\]\[0\]\[0\].*nested too deeply"):
            jsonbody.loads(b'{"a": {"b": [1, ' + b"[" * 70 + b"]" * 70 + b"]}}")
        with pytest.raises(ScoringError, match=r"^x\[1\]: number 9999.* out of range"):
            jsonbody.loads(b'{"x": [NaN, ' + b"9" * 400 + b"]}")
        assert jsonbody.loads(b"[NaN, 1e400, 18446744073709551616, 5]")[1:] == [float("inf"), 2.0 ** 64, 5]
        monkeypatch.setenv("SCORER_MAX_JSON_DEPTH", "3")
        jsonbody.max_depth.cache_clear()
        assert jsonbody.loads(b"[[[1]]]") == [[[1]]]
        with pytest.raises(ScoringError, match="limit of 3"):
            jsonbody.loads(b"[[[[1]]]]")
    finally:
        jsonbody.max_depth.cache_clear()


def test_malformed_bodies_parity_with_mlflow_models_serve(server, mlflow_servers) -> None:
    """Where `mlflow models serve` answers 400 we answer 400 too; where it answers 5xx for the
    client's mistake, we answer 400 (and nothing it accepts is refused here)."""
    from tests.online.test_errors import MALFORMED

    seen = {}
    for case, (body, _words) in MALFORMED.items():
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        theirs = _post(mlflow_servers["blue"], "application/json", raw)
        ours = _ours(server, "blue", "application/json", raw)
        seen[case] = theirs.status_code
        assert ours.status_code == 400, (case, ours.text)
        assert theirs.status_code == 400 or theirs.status_code >= 500, (case, theirs.status_code)
    print("mlflow models serve:", seen)


def _shape(r: httpx.Response) -> tuple[int, str | None, str | None]:
    """(status, error_code, error_class) of an answer; the codes are None for a non-JSON body."""
    try:
        doc = r.json()
    except ValueError:
        return r.status_code, None, None
    if not isinstance(doc, dict):
        return r.status_code, None, None
    return r.status_code, doc.get("error_code"), doc.get("error_class")


# Where `mlflow models serve` answers 5xx for a client's mistake, or 415 as text/plain: scorer's
# documented answer (docs/serving.md, "Parity with mlflow models serve").
DIFFERENCES: dict[str, tuple[int, str | None, str | None]] = {
    "no_content_type": (415, None, None),  # MLflow: 500 (a KeyError in its handler)
}


def test_invocations_parity_battery(server, mlflow_servers) -> None:
    """Status, error_code and error_class of /invocations equal `mlflow models serve`'s over the battery."""
    from tests.online.parity_cases import CASES

    assert len(CASES) >= 30
    table, wrong = [], []
    for case, (model, ct, body) in CASES.items():
        headers = {} if ct is None else {"Content-Type": ct}
        theirs = httpx.post(f"{mlflow_servers[model]}/invocations", content=body, headers=headers, timeout=30)
        ours = httpx.post(f"{server.url}/invocations", content=body, timeout=30, headers={
            **headers, "azureml-model-deployment": model, **server.headers})
        t, o = _shape(theirs), _shape(ours)
        table.append(f"{case:32} mlflow={t} scorer={o}")
        want = DIFFERENCES.get(case)
        if want is not None:
            assert t[0] >= 500 or (t[0] == 415 and t[1] is None), (case, t)
            ok = o == want
        else:
            ok = o == t and (t[0] != 200 or ours.json() == theirs.json())
        if not ok:
            wrong.append(f"{case}: mlflow {t} scorer {o}: {ours.text[:200]}")
        if o[0] != 200:
            assert "Traceback" not in ours.text and "stack_trace" not in ours.text
    print("\n".join(table))
    assert not wrong, "\n".join(wrong)
