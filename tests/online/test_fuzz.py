"""Mutation fuzz of every scoring route: one part of a valid body (a JSON field, a CSV cell, a V2
header) replaced by an arbitrary value must never answer 5xx, and the server must stay up.

Bounded for CI: SCORER_FUZZ_EXAMPLES cases a route (default 300), at most SCORER_FUZZ_SECONDS (8 s)
a route. `make fuzz` runs 10,000 a route, and schemathesis against /openapi.json (its test is skipped
where schemathesis is not installed: it comes with the `fuzz` extra).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.online.data import bodies, demo_rows

EXAMPLES = int(os.environ.get("SCORER_FUZZ_EXAMPLES", "300"))
SECONDS = float(os.environ.get("SCORER_FUZZ_SECONDS", "8"))  # per route in CI; `make fuzz` lifts it
MARK = "@@mutated@@"
FIELDS = ["dataframe_split", "dataframe_records", "instances", "inputs", "input_data", "params", "columns",
          "index", "data", "name", "shape", "datatype", "parameters", "binary_data_size", "x", "mean_radius"]


def _deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# Raw JSON texts: what json.dumps makes of arbitrary values, plus what it cannot make (very deep
# nesting, huge numbers written out) and what only a lenient parser accepts (NaN, Infinity).
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**400, 10**400), st.floats(),
                    st.text(max_size=12), st.sampled_from(FIELDS + ["FP64", "FP16", "BF16", "BYTES", "INT64"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), inner,
                                                 max_size=4)), max_leaves=10)
raw = st.one_of(
    values.map(json.dumps),
    st.integers(1, 1500).map(_deep),
    st.integers(1, 1500).map(lambda d: _deep(d, "{}")),
    st.integers(300, 4000).map(lambda n: "9" * n),
    st.integers(300, 4000).map(lambda n: "-1" + "0" * n + ".5"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "[]", "{}", '""']),
)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                derandomize=os.environ.get("SCORER_FUZZ_RANDOM", "") == "")


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits (the root included)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):  # the first rows stand for the rest
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: Any, path: tuple[Any, ...], text: str, drop: bool = False) -> bytes:
    """The document as JSON with the value at `path` replaced by the raw JSON `text` (or removed)."""
    if not path:
        return text.encode()
    doc = json.loads(json.dumps(doc))
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if drop:
        del parent[path[-1]]
        return json.dumps(doc).encode()
    parent[path[-1]] = MARK
    return json.dumps(doc).encode().replace(json.dumps(MARK).encode(), text.encode(), 1)


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, Any]) -> httpx.Response:
    """One POST; retried once when an idle keep-alive connection was closed under it (a client race,
    not an answer: a server that went away fails the retry and the final liveness check)."""
    try:
        return client.post(url, content=body, headers=headers)
    except httpx.TransportError:
        time.sleep(0.2)
        return client.post(url, content=body, headers=headers)


class Tally:
    """5xx answers seen by one fuzz run (collected, not raised, so a run counts them all)."""

    def __init__(self, name: str, deadline: float) -> None:
        self.name, self.deadline, self.cases, self.bad = name, time.monotonic() + deadline, 0, []

    def check(self, r: httpx.Response, what: str) -> None:
        self.cases += 1
        if r.status_code >= 500:
            self.bad.append(f"{r.status_code} {what[:300]} -> {r.text[:300]}")

    def over(self) -> bool:
        return time.monotonic() > self.deadline

    def verdict(self, server, client) -> None:  # type: ignore[no-untyped-def]
        print(f"fuzz {self.name}: {len(self.bad)} x 5xx in {self.cases} cases")
        assert server.proc.poll() is None, "the server exited"
        r = client.post("/score", content=bodies(demo_rows(2))["dataframe_split"][1],
                        headers={"Content-Type": "application/json", "azureml-model-deployment": "blue"})
        assert r.status_code == 200, r.text
        assert not self.bad, f"{len(self.bad)} of {self.cases} cases answered 5xx:\n" + "\n".join(self.bad[:20])


# -- valid bodies ---------------------------------------------------------------------------------
def _mlflow_valid() -> list[tuple[str, str, Any]]:
    """(deployment, content type, JSON document or CSV text) for every MLflow format."""
    import pandas as pd

    mixed = pd.DataFrame({"x": [0.1, 0.6], "name": ["a", "b"]})
    out: list[tuple[str, str, Any]] = []
    for dep, df in (("blue", demo_rows(2)), ("mixed", mixed)):
        for fmt, (ct, body) in bodies(df).items():
            if ct == "application/json":
                out.append((dep, ct, json.loads(body)))
            elif fmt == "csv":
                out.append((dep, ct, body.decode()))
        split = json.loads(df.to_json(orient="split"))
        out.append((dep, "application/json", {"input_data": split}))
    out.append(("mixed", "application/json",
                {"dataframe_split": json.loads(mixed.to_json(orient="split", index=False)), "params": {"scale": 2.0}}))
    out.append(("script", "application/json", {"a": [1, 2], "fail": False}))
    return out


def _csv_mutation(text: str, line: int, cell: int, value: str) -> bytes:
    rows = text.splitlines()
    cells = rows[line % len(rows)].split(",")
    cells[cell % len(cells)] = value
    rows[line % len(rows)] = ",".join(cells)
    return "\n".join(rows).encode()


@pytest.mark.parametrize("route", ["/score", "/invocations"])
def test_mlflow_mutations_never_5xx(server, client, route: str) -> None:
    valid = _mlflow_valid()
    tally = Tally(route, SECONDS)

    @FUZZ
    @given(data=st.data(), pick=st.integers(0, len(valid) - 1), text=raw, drop=st.booleans())
    def one(data: st.DataObject, pick: int, text: str, drop: bool) -> None:
        if tally.over():
            return
        dep, ct, doc = valid[pick]
        if ct.startswith("text/csv"):
            body = _csv_mutation(doc, data.draw(st.integers(0, 3)), data.draw(st.integers(0, 40)),
                                 data.draw(st.one_of(st.text(max_size=20), st.just(text))))
        else:
            path = data.draw(st.sampled_from(paths(doc)))
            body = mutate(doc, path, text, drop=drop and bool(path))
        r = post(client, route, body, {"Content-Type": ct, "azureml-model-deployment": dep})
        tally.check(r, f"{dep} {body[:200]!r}")

    one()
    tally.verdict(server, client)


def _v2_valid(n: int = 2) -> list[dict[str, Any]]:
    x = demo_rows(n)
    one_2d = {"inputs": [{"name": "features", "shape": [n, x.shape[1]], "datatype": "FP64",
                          "data": x.to_numpy().tolist()}], "id": "r1"}
    by_column = {"inputs": [{"name": c, "shape": [n], "datatype": "FP64", "data": x[c].tolist()}
                            for c in list(x.columns)[:30]]}
    return [one_2d, by_column]


def _v2_binary(n: int = 2) -> tuple[dict[str, Any], bytes]:
    """tritonclient's layout: the JSON header, then the tensor bytes (little-endian)."""
    x = np.ascontiguousarray(demo_rows(n).to_numpy(dtype=np.float64))
    blob = x.tobytes()
    header = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP64",
                          "parameters": {"binary_data_size": len(blob)}}],
              "outputs": [{"name": "predictions", "parameters": {"binary_data": False}}]}
    return header, blob


def test_v2_json_mutations_never_5xx(server, client) -> None:
    valid = _v2_valid()
    tally = Tally("v2 json", SECONDS)

    @FUZZ
    @given(data=st.data(), pick=st.integers(0, len(valid) - 1), text=raw, drop=st.booleans(),
           model=st.sampled_from(["blue", "tests", "mixed", "script"]))
    def one(data: st.DataObject, pick: int, text: str, drop: bool, model: str) -> None:
        if tally.over():
            return
        doc = valid[pick]
        path = data.draw(st.sampled_from(paths(doc)))
        body = mutate(doc, path, text, drop=drop and bool(path))
        r = post(client, f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
        tally.check(r, f"{model} {body[:200]!r}")
        if r.status_code != 200 and "error" not in r.json():
            tally.bad.append(f"not V2-shaped: {r.status_code} {r.text[:200]}")

    one()
    tally.verdict(server, client)


length_headers = st.one_of(
    st.integers(-5, 10**6).map(str), st.integers(1, 6000).map(lambda n: "9" * n), st.text(max_size=8),
    st.sampled_from(["²", "١٢", "0x10", " 12", "+12", "1e3", ""]))


def test_v2_binary_mutations_never_5xx(server, client) -> None:
    header, blob = _v2_binary()
    tally = Tally("v2 binary", SECONDS)

    @FUZZ
    @given(data=st.data(), text=raw, drop=st.booleans(), where=st.sampled_from(["json", "length", "blob"]),
           ct=st.sampled_from([None, "application/octet-stream", "application/json"]))
    def one(data: st.DataObject, text: str, drop: bool, where: str, ct: str | None) -> None:
        if tally.over():
            return
        head, tail, length = json.dumps(header).encode(), blob, None
        if where == "json":
            path = data.draw(st.sampled_from(paths(header)))
            head = mutate(header, path, text, drop=drop and bool(path))
        elif where == "length":
            length = data.draw(length_headers)
        else:
            tail = blob[: data.draw(st.integers(0, len(blob) + 8))] + data.draw(st.binary(max_size=16))
        value = str(len(head)) if length is None else "".join(
            c for c in length if " " <= c <= "~" or "\xa0" <= c <= "\xff").strip()
        headers: dict[str, Any] = {"Inference-Header-Content-Length": value.encode("latin-1")} if value else {}
        if ct:
            headers["Content-Type"] = ct
        r = post(client, "/v2/models/blue/infer", head + tail, headers)
        tally.check(r, f"{headers} {head[:200]!r}")

    one()
    tally.verdict(server, client)


def test_schemathesis_finds_no_server_error(server) -> None:
    """schemathesis against /openapi.json (`make fuzz`); needs the request schemas to reach the handlers."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    bad: list[str] = []
    cases = [0]
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + SECONDS * 4

    def run(operation: Any) -> None:
        @settings(max_examples=max(10, EXAMPLES // 10), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def one(case: Any) -> None:
            if time.monotonic() > deadline:
                return
            cases[0] += 1
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = "blue"
            response = case.call(base_url=server.url, headers=dict(server.headers))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as exc:
                bad.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:300]}")

        one()

    for op in schema.get_all_operations():
        operation = op.ok()
        if not operation.path.startswith("/admin"):
            run(operation)
    print(f"schemathesis: {len(bad)} server errors in {cases[0]} cases; statuses {sorted(statuses.items())}")
    assert server.proc.poll() is None
    assert not bad, "\n".join(bad[:20])
