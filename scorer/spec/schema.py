"""JSON Schema of the endpoint and batch documents, for editors (`configs/schema/`).

Generated from the pydantic models, then widened with the accepted aliases and ignored fields so
that the seed documents' forms validate in an editor as they do in `scorer validate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scorer.spec.aliases import IGNORED_FIELDS
from scorer.spec.models import BatchDeployment, Endpoint, OnlineDeployment

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "configs" / "schema"
_ANY = {"description": "accepted for Azure ML compatibility; ignored by scorer"}


def _widen(schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    props = schema.setdefault("properties", {})
    for key in IGNORED_FIELDS:
        props.setdefault(key, _ANY)
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
    dep["properties"]["model"] = {"anyOf": [
        {"type": "string"}, {"type": "object", "properties": {"path": {"type": "string"}},
                             "required": ["path"], "additionalProperties": False}, {"type": "null"}]}
    scale = defs["ScaleSettings"]["properties"]
    scale["scale_type"] = {"enum": ["auto", "manual"], "description": "older form of type"}
    scale["instance_count"] = {"type": "integer", "minimum": 1, "description": "older place of instance_count"}
    scale["type"] = {"enum": ["default", "target_utilization", "Default", "TargetUtilization"]}
    defs["RequestSettings"]["properties"]["scoring_timeout_ms"] = {
        "type": "integer", "exclusiveMinimum": 0, "description": "older name of request_timeout_ms"}


def endpoint_schema() -> dict[str, Any]:
    schema = _strip_paths(Endpoint.model_json_schema())
    _legacy_deployment(schema["$defs"])
    _widen(schema, {})
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
    schema["properties"]["type"] = {"enum": ["batch", "Batch", "BATCH"], "default": "batch"}
    schema["properties"]["model"] = {"anyOf": [
        {"type": "string"}, {"type": "object", "properties": {"path": {"type": "string"}},
                             "required": ["path"], "additionalProperties": False}, {"type": "null"}]}
    _widen(schema, {
        "code": {"type": "string", "description": "seed form: code folder (added to sys.path)"},
        "entry_script": {"type": "string", "description": "seed form of code_configuration.scoring_script"},
        "endpoint": {"type": "string", "description": "older name of endpoint_name"},
        "settings": {"type": "object", "description": "Azure's newer block: the same keys as the top level"},
        "batch_settings": {"type": "object", "description": "seed form: scale_settings.node_count, "
                           "partitioning_scheme.mini_batch_size, output_configuration.append, error_threshold, "
                           "retry_settings.timeout_in_seconds / max_retries"},
    })
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
