"""The static part of the OpenAPI document served at /openapi.json (open, like health);
serving.openapi_live adds what depends on the live deployments and the auth mode."""

from __future__ import annotations

from typing import Any

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

_SCORE = {
    "summary": "Score with the MLflow scoring protocol",
    "parameters": [
        {"name": "azureml-model-deployment", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "pin a deployment (0% traffic included)"},
        {"name": "x-request-id", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/MlflowRequest"}},
        "text/csv": {"schema": {"type": "string", "description": "a header line of column names, then rows"}}}},
    "responses": {"200": {"description": "predictions", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"predictions": {}}}}}},
        **{str(s): _ERR for s in (400, 401, 404, 408, 413, 415, 424, 429, 503)}},
    "security": [{"bearer": []}],
}

# Request bodies, so that a schema-driven fuzzer (schemathesis) reaches the handlers' checks.
_CELL: dict[str, Any] = {"nullable": True, "description": "a value: number, string, boolean, or a list for "
                         "array-typed columns"}
_NAME = {"type": "string", "description": "a column name"}
_SPLIT = {"type": "object", "required": ["data"], "additionalProperties": False, "properties": {
    "columns": {"type": "array", "items": _NAME},
    "index": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}},
    "data": {"type": "array", "items": {"type": "array", "items": _CELL}, "description": "rows"}}}
_RECORDS = {"type": "array", "items": {"type": "object", "additionalProperties": _CELL}}
_TENSORS = {"oneOf": [{"type": "array", "items": _CELL},
                      {"type": "object", "additionalProperties": {"type": "array", "items": _CELL}}],
            "description": "a tensor (nested lists) or named tensors (an object of column: values)"}
_PARAMS = {"type": "object", "additionalProperties": True, "description": "inference parameters (the model's "
           "params schema)"}


def _one_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [name], "additionalProperties": False,
            "properties": {name: schema, "params": _PARAMS}}


_V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                 "FP64", "BYTES"]
SCHEMAS: dict[str, Any] = {
    "MlflowRequest": {
        "description": "exactly one of dataframe_split, dataframe_records, instances, inputs (or Azure ML's "
                       "input_data); optional params. Limits: docs/protocol-limits.md",
        "oneOf": [_one_format("dataframe_split", _SPLIT), _one_format("dataframe_records", _RECORDS),
                  _one_format("instances", _TENSORS), _one_format("inputs", _TENSORS),
                  _one_format("input_data", {"oneOf": [_SPLIT, _TENSORS]})]},
    "V2InferenceRequest": {
        "type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "shape": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": _V2_DATATYPES},
                    "parameters": {"type": "object", "properties": {
                        "binary_data_size": {"type": "integer", "minimum": 0}}},
                    "data": {"type": "array", "description": "row-major values, flat or nested"}}}},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "parameters": {"type": "object"}}}}},
        "description": "JSON tensors; binary tensors follow the JSON part when Inference-Header-Content-Length "
                       "gives its length (tritonclient's binary extension)"},
}

_V2ERR = {"description": "error", "content": {"application/json": {"schema": {"type": "object", "properties": {
    "error": {"type": "string"}, "error_code": {"type": "string"}}}}}}
_MODEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the endpoint (routed by traffic) or a deployment (pinned)"}
_V2 = {"parameters": [_MODEL_NAME], "security": [{"bearer": []}]}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "the model's current version (registry version or 12-hex content hash)"}
_V2_META = {"200": {"description": "ok"}, "404": _V2ERR}
_V2_MODEL: dict[str, dict[str, Any]] = {
    "": {"get": {**_V2, "summary": "V2 model metadata", "responses": _V2_META}},
    "/ready": {"get": {**_V2, "summary": "V2 model readiness", "responses": {**_V2_META, "503": _V2ERR}}},
    "/infer": {"post": {**_V2, "summary": "V2 inference", "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/V2InferenceRequest"}}}},
        "responses": {"200": {"description": "output tensors"}, **{str(s): _V2ERR for s in (400, 404, 424)}}}},
    "/config": {"get": {**_V2, "summary": "Triton model configuration", "responses": _V2_META}},
    "/stats": {"get": {**_V2, "summary": "Triton inference statistics", "responses": _V2_META}},
}
_ADMIN = {"security": [{"bearer": []}], "description": "admin key (SCORER_ADMIN_KEY)",
          "responses": {"200": {"description": "the /admin/endpoint document"}, "400": _ERR, "401": _ERR,
                        "403": _ERR}}
_SHARES = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "scorer online endpoint", "version": "1"},
    "paths": {
        "/score": {"post": _SCORE},
        "/invocations": {"post": _SCORE},
        "/ping": {"get": {"summary": "liveness", "responses": {"200": {"description": "alive"}}}},
        "/health": {"get": {"summary": "liveness", "responses": {"200": {"description": "alive"}}}},
        "/ready": {"get": {"summary": "every deployment with traffic has a ready replica",
                           "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        "/version": {"get": {"summary": "MLflow version", "responses": {"200": {"description": "version"}}}},
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (scorer_*)", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/v2": {"get": {"summary": "V2 server metadata", "responses": {"200": {"description": "metadata"}}}},
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": {"200": {"description": "live"}}}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness", "responses": {
            "200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        "/v2/models/{name}": {"get": {**_V2, "summary": "V2 model metadata: the signature as inputs and outputs",
                                      "responses": {"200": {"description": "metadata"}, "404": _V2ERR}}},
        "/v2/models/{name}/ready": {"get": {**_V2, "summary": "V2 model readiness", "responses": {
            "200": {"description": "ready"}, "503": {"description": "not ready"}, "404": _V2ERR}}},
        "/v2/models/{name}/infer": {"post": {**_V2, "summary": "V2 inference (JSON or binary tensors)",
                                             "requestBody": {"required": True, "content": {
                                                 "application/json": {"schema": {
                                                     "$ref": "#/components/schemas/V2InferenceRequest"}}}},
                                             "responses": {"200": {"description": "output tensors"},
                                                           **{str(s): _V2ERR for s in (400, 401, 404, 408, 424,
                                                                                       429, 503)}}}},
        **{f"/v2/models/{{name}}/versions/{{version}}{tail}": {
            method: {**op, "summary": f"{op['summary']} of one version (the current one, else 404)",
                     "parameters": [_MODEL_NAME, _VERSION]}
            for method, op in _V2_MODEL[tail].items()} for tail in _V2_MODEL},
        **{f"/v2/models/{{name}}{tail}": ops for tail, ops in _V2_MODEL.items() if tail in ("/config", "/stats")},
        "/v2/models/stats": {"get": {**_V2, "parameters": [], "summary": "Triton statistics of every deployment",
                                     "responses": {"200": {"description": "model_stats"}, "401": _V2ERR}}},
        "/v2/repository/index": {"post": {
            **_V2, "parameters": [], "summary": "Triton repository index: the endpoint and its deployments",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
            "responses": {"200": {"description": "[{name, version, state}]"}, "400": _V2ERR, "401": _V2ERR}}},
        "/admin/endpoint": {"get": {**_ADMIN, "summary": "endpoint state"}},
        "/admin/traffic": {"put": {**_ADMIN, "summary": "set traffic {deployment: percent}",
                                   "requestBody": _SHARES}},
        "/admin/mirror": {"put": {**_ADMIN, "summary": "set mirror traffic {deployment: percent}",
                                  "requestBody": _SHARES}},
        "/admin/reload": {"post": {**_ADMIN, "summary": "re-read the endpoint files without downtime"}},
        "/admin/deployments/{name}/scale": {"post": {
            **_ADMIN, "summary": "set replicas (or the autoscaler's floor)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"instances": {"type": "integer", "minimum": 0}}}}}}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "properties": {
            "error_code": {"type": "string"}, "message": {"type": "string"}}}, **SCHEMAS},
    },
}
