"""The OpenAPI document as served: the static one (serving.openapi) plus, built at request time, each
live deployment's MLflow signature and input example, an operationId on every operation, and
security that matches the endpoint's auth mode. A reload changes it on the next request."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.openapi import OPENAPI

if TYPE_CHECKING:
    from serving.state import EndpointState

# MLflow column types -> JSON Schema
_TYPES: dict[str, dict[str, Any]] = {
    "double": {"type": "number"}, "float": {"type": "number"}, "long": {"type": "integer"},
    "integer": {"type": "integer"}, "boolean": {"type": "boolean"}, "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"}, "datetime": {"type": "string", "format": "date-time"},
}
_OPEN_PATHS = {"/ping", "/health", "/ready", "/version", "/openapi.json", "/metrics", "/v2", "/v2/health/live",
               "/v2/health/ready"}
_cache: dict[tuple[str, str], tuple[dict[str, Any] | None, Any]] = {}


def _type(t: Any) -> dict[str, Any]:
    name = getattr(t, "name", None) or str(t)
    if hasattr(t, "dtype") and not hasattr(t, "name"):  # mlflow.types.schema.Array
        return {"type": "array", "items": _type(t.dtype)}
    return dict(_TYPES.get(str(name).lower(), {}))


def signature_schema(model_path: str) -> dict[str, Any] | None:
    """The request body a model with a column signature takes, typed by column; None without one."""
    try:
        from mlflow.models import Model

        sig = Model.load(model_path).signature
    except Exception:
        return None
    if sig is None or sig.inputs is None or sig.inputs.is_tensor_spec() or not sig.inputs.has_input_names():
        return None
    props, required = {}, []
    for col in sig.inputs.inputs:
        props[str(col.name)] = {**_type(col.type), **({} if col.required else {"nullable": True})}
        if col.required:
            required.append(str(col.name))
    names = list(props)
    record = {"type": "object", "required": required, "properties": props, "additionalProperties": True}
    columns = {"type": "object", "required": required, "additionalProperties": True,
               "properties": {n: {"type": "array", "items": s} for n, s in props.items()}}
    split = {"type": "object", "required": ["columns", "data"], "properties": {
        "columns": {"type": "array", "items": {"type": "string"}, "example": names},
        "index": {"type": "array", "items": {}},
        "data": {"type": "array", "items": {"type": "array", "items": {}}}}}
    params: dict[str, Any] = {"type": "object", "additionalProperties": True}
    if sig.params:
        params["properties"] = {p.name: {**_type(p.dtype), "default": _jsonable(p.default)} for p in sig.params.params}
    wrap = [("dataframe_split", split), ("dataframe_records", {"type": "array", "items": record}),
            ("instances", {"type": "array", "items": record}), ("inputs", columns),
            ("input_data", split)]
    return {"oneOf": [{"type": "object", "required": [k], "additionalProperties": False,
                       "properties": {k: v, "params": params}} for k, v in wrap]}


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return None


def input_example(model_path: str) -> Any:
    """The model's serving input example (serving_input_example.json), or None."""
    path = Path(model_path) / "serving_input_example.json"
    try:
        return json.loads(path.read_text()) if path.is_file() and path.stat().st_size < 1_000_000 else None
    except (OSError, ValueError):
        return None


def _model_parts(name: str, version: str, model_path: str | None) -> tuple[dict[str, Any] | None, Any]:
    key = (name, version)
    if key not in _cache:
        _cache[key] = (signature_schema(model_path), input_example(model_path)) if model_path else (None, None)
    return _cache[key]


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).strip("/").replace(".", "_").replace("-", "_").split("/")
    return "_".join([method, *(w for w in words if w)]) or method


def document(state: EndpointState) -> dict[str, Any]:
    """The OpenAPI document of the endpoint as it is now (its deployments' signatures and examples)."""
    deployments, auth_mode = state.deployments, state.spec.auth_mode
    doc = copy.deepcopy(OPENAPI)
    schemas = doc["components"]["schemas"]
    branches: list[dict[str, Any]] = []
    examples: dict[str, Any] = {}
    by_schema: dict[str, list[str]] = {}
    generic = False
    for name, dep in sorted(deployments.items()):
        cfg = dep.cfg
        schema, example = _model_parts(name, dep.version, cfg.model_path)
        if example is not None:
            examples[name] = {"summary": f"input example of deployment {name}", "value": example}
        if schema is None:
            generic = True
            continue
        by_schema.setdefault(json.dumps(schema, sort_keys=True), []).append(name)
    for i, (text, names) in enumerate(by_schema.items()):
        key = f"Signature{i}"
        schemas[key] = {**json.loads(text), "title": f"deployments {', '.join(names)}",
                        "description": f"the MLflow signature of deployment(s) {', '.join(names)}"}
        branches.append({"$ref": f"#/components/schemas/{key}"})
    if generic or not branches:
        branches.append({"$ref": "#/components/schemas/MlflowRequest"})
    body: dict[str, Any] = {"schema": branches[0] if len(branches) == 1 else {"oneOf": branches}}
    if examples:
        body["examples"] = examples
    for path in ("/score", "/invocations"):
        op = doc["paths"][path]["post"] = copy.deepcopy(doc["paths"][path]["post"])
        op["requestBody"]["content"]["application/json"] = copy.deepcopy(body)
    for path, ops in doc["paths"].items():
        for method in ops:
            op = ops[method] = copy.deepcopy(ops[method])  # operations may share one dict in OPENAPI
            op["operationId"] = _operation_id(method, path)
            admin = path.startswith("/admin")  # the admin key (SCORER_ADMIN_KEY) whatever the auth mode
            op["security"] = [{"bearer": []}] if admin or (path not in _OPEN_PATHS and auth_mode != "none") else []
    return doc
