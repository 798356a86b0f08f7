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

_V2ERR = {"description": "error", "content": {"application/json": {"schema": {"type": "object", "properties": {
    "error": {"type": "string"}, "error_code": {"type": "string"}}}}}}
_V2 = {"parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                       "description": "the endpoint (routed by traffic) or a deployment (pinned)"}],
       "security": [{"bearer": []}]}
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
                                             "requestBody": {"required": True, "content": {"application/json": {
                                                 "schema": {"type": "object", "required": ["inputs"]}}}},
                                             "responses": {"200": {"description": "output tensors"},
                                                           **{str(s): _V2ERR for s in (400, 401, 404, 408, 424,
                                                                                       429, 503)}}}},
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
            "error_code": {"type": "string"}, "message": {"type": "string"}}}},
    },
}
