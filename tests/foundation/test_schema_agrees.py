"""`configs/schema/*.json` and `scorer validate` give the same answer on every probe, except the
rules a JSON Schema cannot express (traffic sums, cross-references), which the schema names in
its `description`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scorer.spec import SpecError, load_any

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = {name: json.loads((REPO / "configs" / "schema" / f"{name}.schema.json").read_text())
           for name in ("endpoint", "deployment", "batch")}


def endpoint(**dep: Any) -> dict[str, Any]:
    return {"name": "ep", "deployments": {"blue": {"model": "models:/m/1", **dep}}}


def ep(**top: Any) -> dict[str, Any]:
    return {**endpoint(), **top}


def batch(**fields: Any) -> dict[str, Any]:
    return {"name": "b", "type": "batch", "model": "models:/m/1", **fields}


def deployment(**fields: Any) -> dict[str, Any]:
    return {"name": "blue", "endpoint_name": "ep", "model": "models:/m/1", **fields}


PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("instance_count as text", "endpoint", endpoint(instance_count="2")),
    ("instance_count as bool", "endpoint", endpoint(instance_count=True)),
    ("instance_count over the cap", "endpoint", endpoint(instance_count=2000)),
    ("request_timeout_ms as text", "endpoint", endpoint(request_settings={"request_timeout_ms": "5000"})),
    ("polling_interval as text", "endpoint", endpoint(scale_settings={"polling_interval": "10"})),
    ("polling_interval as int", "endpoint", endpoint(scale_settings={"polling_interval": 10})),
    ("auth_mode Key", "endpoint", ep(auth_mode="Key")),
    ("auth_mode AAD_Token", "endpoint", ep(auth_mode="AAD_Token")),
    ("auth_mode password", "endpoint", ep(auth_mode="password")),
    ("traffic as text", "endpoint", ep(traffic={"blue": "100"})),
    ("traffic as float", "endpoint", ep(traffic={"blue": 99.5})),
    ("endpoint without deployments", "endpoint", {"name": "ep", "auth_mode": "key"}),
    ("deployment with no model and no code", "endpoint", {"name": "ep", "deployments": {"blue": {}}}),
    ("script without a scoring_script", "endpoint",
     {"name": "ep", "deployments": {"blue": {"code_configuration": {"code": "src"}}}}),
    ("scoring script, no model", "endpoint",
     {"name": "ep", "deployments": {"blue": {"code_configuration": {"code": "src", "scoring_script": "s.py"}}}}),
    ("seed code + entry_script", "endpoint",
     {"name": "ep", "deployments": {"blue": {"code": "src", "entry_script": "src/s.py"}}}),
    ("scale type TargetUtilization", "endpoint", endpoint(scale_settings={"type": "TargetUtilization"})),
    ("scale type Target_Utilization", "endpoint", endpoint(scale_settings={"type": "Target_Utilization"})),
    ("scale_type Manual", "endpoint", endpoint(scale_settings={"scale_type": "Manual"})),
    ("environment variable as number", "endpoint", endpoint(environment_variables={"A": 1, "B": True})),
    ("environment variable as list", "endpoint", endpoint(environment_variables={"A": [1]})),
    ("inline model", "endpoint", {"name": "ep", "deployments": {"blue": {
        "model": {"name": "m", "version": 2, "path": "m", "type": "mlflow_model"}}}}),
    ("inline model by name", "endpoint", {"name": "ep", "deployments": {"blue": {
        "model": {"name": "m", "version": 2}}}}),
    ("inline model with a typo", "endpoint", {"name": "ep", "deployments": {"blue": {
        "model": {"path": "m", "verison": 2}}}}),
    ("kubernetes deployment", "endpoint", endpoint(type="Kubernetes", resources={
        "requests": {"cpu": "0.1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": 1}})),
    ("deployment file without endpoint_name", "deployment", {"name": "blue", "model": "models:/m/1"}),
    ("deployment file", "deployment", deployment(instance_count=2)),
    ("deployment file, instance_count as text", "deployment", deployment(instance_count="2")),
    ("deployment file, no model", "deployment", {"name": "blue", "endpoint_name": "ep"}),
    ("batch type model", "batch", batch(type="model")),
    ("batch type Model", "batch", batch(type="Model")),
    ("batch type pipeline", "batch", batch(type="pipeline")),
    ("batch logging_level WARNING", "batch", batch(logging_level="WARNING")),
    ("batch output_action APPEND_ROW", "batch", batch(output_action="APPEND_ROW")),
    ("batch mini_batch_size as text", "batch", batch(mini_batch_size="100")),
    ("batch max_concurrency as text", "batch", batch(max_concurrency_per_instance="2")),
    ("batch instance_count over the cap", "batch", batch(resources={"instance_count": 5000})),
    ("batch without model or script", "batch", {"name": "b", "type": "batch"}),
    ("batch code without script", "batch", {"name": "b", "type": "batch", "code": "src"}),
    ("batch inline model", "batch", batch(model={"name": "m", "version": 1, "path": "m"})),
    ("batch settings block", "batch", batch(settings={"mini_batch_size": 10, "logging_level": "info"})),
]
# What a JSON Schema cannot say: each is refused by validate and named in the schema's descriptions.
CROSS_FIELD: list[tuple[str, str, dict[str, Any], str]] = [
    ("traffic to an unknown deployment", "endpoint", ep(traffic={"green": 100}), "name deployments"),
    ("traffic summing to 90", "endpoint", ep(traffic={"blue": 90}), "sum to 100"),
    ("mirror of a live deployment", "endpoint", ep(traffic={"blue": 100}, mirror_traffic={"blue": 10}),
     "0 live traffic"),
    ("min_instances over instance_count", "endpoint", endpoint(scale_settings={"min_instances": 3}),
     "min_instances <= instance_count"),
]


def validates(tmp_path: Path, kind: str, doc: dict[str, Any]) -> bool:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_any(path)
    except SpecError:
        return False
    assert loaded.kind == {"endpoint": "endpoint", "deployment": "online_deployment",
                           "batch": "batch_deployment"}[kind]
    return True


@pytest.mark.parametrize("title, kind, doc", PROBES, ids=[p[0] for p in PROBES])
def test_schema_and_validate_agree(tmp_path, title, kind, doc):
    by_schema = jsonschema.Draft202012Validator(SCHEMAS[kind]).is_valid(doc)
    assert validates(tmp_path, kind, doc) == by_schema, f"{title}: schema says {by_schema}"


@pytest.mark.parametrize("title, kind, doc, said", CROSS_FIELD, ids=[p[0] for p in CROSS_FIELD])
def test_what_the_schema_cannot_check_it_says(tmp_path, title, kind, doc, said):
    assert jsonschema.Draft202012Validator(SCHEMAS[kind]).is_valid(doc)
    assert not validates(tmp_path, kind, doc)
    assert said in json.dumps(SCHEMAS[kind]), f"{title}: the schema does not say {said!r}"


def test_the_shipped_and_seed_files_pass_both():
    checks = {"endpoint": ["configs/endpoints/demo.yaml", "configs/seeds/realtime-endpoint.yaml"],
              "batch": ["configs/batch/demo-batch.yaml", "configs/seeds/batch-deployment.yaml"]}
    for kind, files in checks.items():
        for f in files:
            jsonschema.validate(yaml.safe_load((REPO / f).read_text()), SCHEMAS[kind])
            load_any(REPO / f)
