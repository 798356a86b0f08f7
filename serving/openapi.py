"""The OpenAPI document served at /openapi.json (open, like health)."""

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
        "application/json": {"schema": {"type": "object", "description":
                             "one of dataframe_split, dataframe_records, instances, inputs, input_data; "
                             "optional params"}},
        "text/csv": {"schema": {"type": "string"}}}},
    "responses": {"200": {"description": "predictions", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"predictions": {}}}}}},
        **{str(s): _ERR for s in (400, 401, 404, 408, 413, 415, 424, 429, 503)}},
    "security": [{"bearer": []}],
}

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
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "properties": {
            "error_code": {"type": "string"}, "message": {"type": "string"}}}},
    },
}
