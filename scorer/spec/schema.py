"""JSON Schema of the endpoint and batch documents, for editors (`configs/schema/`).

Generated from the pydantic models, then widened with the accepted aliases, Azure's spellings and
ignored fields, so that a file passes the schema exactly when `scorer validate` accepts it, except
for the rules a JSON Schema cannot express (traffic sums, names that refer to other entries,
bounds between fields), which the `description`s state (tests/foundation/test_schema_agrees.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from scorer.spec.aliases import IGNORED_FIELDS, INLINE_MODEL_KEYS
from scorer.spec.models import BatchDeployment, Endpoint, OnlineDeployment

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "configs" / "schema"
_ANY = {"description": "accepted for Azure ML compatibility; ignored by scorer"}
_TRAFFIC = ("Integer percents by deployment name. Checked by scorer validate, not by this schema: they sum to "
            "100 (or are all 0, then the endpoint answers 404) and name deployments of this endpoint.")
_MIRROR = ("Optional: one deployment with 0 live traffic, at most 50 percent. Checked by scorer validate, not by "
           "this schema: it names a deployment of this endpoint that has 0 live traffic.")
_DEPLOYMENTS = ("May be empty in an endpoint file (Azure's endpoint files hold none); scorer serve needs at least "
                "one, here or as deployment files given after the endpoint file.")
_SCALE = ("Checked by scorer validate, not by this schema: min_instances <= instance_count <= max_instances.")
_MODEL_OR_SCRIPT = [
    {"required": ["model"], "properties": {"model": {"not": {"type": "null"}}}},
    {"required": ["code_configuration"], "properties": {"code_configuration": {
        "required": ["scoring_script"], "properties": {"scoring_script": {"type": "string", "minLength": 1}}}}},
    {"required": ["code", "entry_script"]},
]


def any_case(*words: str) -> dict[str, Any]:
    """A string equal to one of `words` in any letter case (validate lower-cases these fields)."""
    alts = ["".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words]
    return {"type": "string", "pattern": f"^(?:{'|'.join(alts)})$", "description": " | ".join(words)}


def _model_property() -> dict[str, Any]:
    inline: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "description": "Azure's inline model: the local `path` is the model; without it, `name` and "
                       "`version` name a registered model (azureml:NAME:VERSION)",
        "properties": {"name": {"type": "string"}, "version": {"type": ["string", "integer"]},
                       "path": {"type": "string"}, "type": {"type": "string"}, "description": {"type": "string"},
                       "tags": {"type": "object"}, "properties": {"type": "object"}},
        "anyOf": [{"required": ["path"]}, {"required": ["name", "version"]}],
    }
    assert set(inline["properties"]) == set(INLINE_MODEL_KEYS)
    return {"anyOf": [{"type": "string", "minLength": 1}, inline, {"type": "null"}]}


def _environment_variables(props: dict[str, Any]) -> None:
    props["environment_variables"] = {
        "type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        "description": "values are set as text (true -> 'true', null -> '')"}


def _widen(schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    props = schema.setdefault("properties", {})
    for key in IGNORED_FIELDS:
        props.setdefault(key, _ANY)
    props["$schema"] = {"type": "string", "description": "Azure's or scorer's schema URL: it tells what the file is"}
    props.update(extra)
    return schema


def _strip_paths(schema: Any) -> Any:
    """Paths are absolute after loading; in the file they are strings relative to the YAML."""
    if isinstance(schema, dict):
        if schema.get("format") == "path":
            schema.pop("format")
        return {k: _strip_paths(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_strip_paths(v) for v in schema]
    return schema


def _legacy_deployment(defs: dict[str, Any]) -> None:
    dep = defs["OnlineDeployment"]
    _widen(dep, {
        "code": {"type": "string", "description": "seed form of code_configuration.code"},
        "entry_script": {"type": "string", "description": "seed form of code_configuration.scoring_script"},
        "endpoint": {"type": "string", "description": "older name of endpoint_name"},
    })
    props = dep["properties"]
    props["model"] = _model_property()
    props["type"] = {"anyOf": [any_case("managed", "kubernetes"), {"type": "null"}]}
    _environment_variables(props)
    dep["anyOf"] = _MODEL_OR_SCRIPT
    dep["description"] = "A model reference, or a code_configuration with a scoring_script, or both. " + _SCALE
    scale = defs["ScaleSettings"]
    scale["description"] = _SCALE
    scale["properties"]["scale_type"] = {**any_case("auto", "manual"), "description": "older form of type"}
    scale["properties"]["instance_count"] = {
        "type": "integer", "minimum": 1, "maximum": 1024, "description": "older place of instance_count"}
    scale["properties"]["type"] = any_case("default", "target_utilization", "targetutilization")
    defs["RequestSettings"]["properties"]["scoring_timeout_ms"] = {
        "type": "integer", "exclusiveMinimum": 0, "description": "older name of request_timeout_ms"}


def endpoint_schema() -> dict[str, Any]:
    schema = _strip_paths(Endpoint.model_json_schema())
    _legacy_deployment(schema["$defs"])
    _widen(schema, {})
    props = schema["properties"]
    props["auth_mode"] = any_case("key", "aml_token", "aad_token", "token", "none")
    props["traffic"]["description"] = _TRAFFIC
    props["mirror_traffic"]["description"] = _MIRROR
    props["deployments"]["description"] = _DEPLOYMENTS
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scorer online endpoint"
    return schema


def deployment_schema() -> dict[str, Any]:
    schema = _strip_paths(OnlineDeployment.model_json_schema())
    defs = schema.setdefault("$defs", {})
    defs["OnlineDeployment"] = {k: v for k, v in schema.items() if k != "$defs"}
    _legacy_deployment(defs)
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "scorer online deployment",
           "$defs": defs, **{k: v for k, v in defs.pop("OnlineDeployment").items() if k != "title"}}
    return out


def batch_schema() -> dict[str, Any]:
    schema = _strip_paths(BatchDeployment.model_json_schema())
    props = schema["properties"]
    props["type"] = {**any_case("batch", "model"), "default": "batch",
                     "description": "batch, or Azure's model (modelBatchDeployment); any case"}
    props["model"] = _model_property()
    props["logging_level"] = {**any_case("debug", "info", "warning"), "default": "info"}
    props["output_action"] = {**any_case("append_row", "summary_only"), "default": "append_row"}
    _environment_variables(props)
    _widen(schema, {
        "code": {"type": "string", "description": "seed form: code folder (added to sys.path)"},
        "entry_script": {"type": "string", "description": "seed form of code_configuration.scoring_script"},
        "endpoint": {"type": "string", "description": "older name of endpoint_name"},
        "settings": {"type": "object", "description": "Azure's newer block: the same keys as the top level"},
        "batch_settings": {"type": "object", "description": "seed form: scale_settings.node_count, "
                           "partitioning_scheme.mini_batch_size, output_configuration.append, error_threshold, "
                           "retry_settings.timeout_in_seconds / max_retries"},
    })
    schema["anyOf"] = _MODEL_OR_SCRIPT
    schema["description"] = "A model reference, or a code_configuration with a scoring_script, or both."
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scorer batch deployment"
    return schema


def render() -> dict[str, str]:
    """File name -> content, exactly as committed."""
    docs = {"endpoint.schema.json": endpoint_schema(), "deployment.schema.json": deployment_schema(),
            "batch.schema.json": batch_schema()}
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in docs.items()}


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
