"""A bounded hypothesis fuzz of the scoring routes: whatever the body, never a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

COLUMNS = ["mean_radius", "mean_texture", "x", "name", "seconds"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                    st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(COLUMNS + ["data", "columns"]), inner, max_size=4)),
    max_leaves=12)
mlflow_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"dataframe_split": st.fixed_dictionaries(
        {"columns": st.lists(st.sampled_from(COLUMNS), max_size=4),
         "data": st.lists(st.lists(scalars, max_size=4), max_size=3)})}),
    st.fixed_dictionaries({"dataframe_records": st.lists(st.dictionaries(st.sampled_from(COLUMNS), scalars),
                                                          max_size=3)}),
    st.fixed_dictionaries({"inputs": json_values}, optional={"params": json_values}),
)
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(COLUMNS + ["features"]), "shape": st.lists(st.integers(-1, 4), max_size=3),
     "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "XX"]), "data": json_values},
    optional={"parameters": st.dictionaries(st.sampled_from(["binary_data_size"]), scalars, max_size=1)})
v2_bodies = st.one_of(json_values, st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)},
                                                         optional={"id": json_values}))
DEPLOYMENTS = st.sampled_from([None, "blue", "green", "mixed", "raiser", "script"])
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("route", ["/score", "/invocations"])
@FUZZ
@given(body=mlflow_bodies, deployment=DEPLOYMENTS)
def test_mlflow_routes_never_5xx(client, route: str, body: object, deployment: str | None) -> None:
    headers = {"azureml-model-deployment": deployment} if deployment else {}
    r = client.post(route, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    assert r.status_code < 500, r.text


@FUZZ
@given(body=v2_bodies, model=st.sampled_from(["tests", "blue", "mixed", "script", "nope"]))
def test_v2_infer_never_5xx(client, body: object, model: str) -> None:
    r = client.post(f"/v2/models/{model}/infer", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    assert "error" in r.json() or r.status_code == 200
