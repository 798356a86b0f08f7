"""The design's error table: one exception type carrying status, MLflow error_code and message."""

from __future__ import annotations

import orjson

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
    408: "REQUEST_TIMEOUT",
    409: "RESOURCE_CONFLICT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    424: "MODEL_ERROR",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}

# MLflow's error_class for its client error codes (mlflow.error_classification.ErrorClass), so that
# an answer carries the same error_code and error_class as `mlflow models serve`'s
CLASSES = {
    "BAD_REQUEST": "INVALID_PARAMETER_VALUE",
    "INVALID_PARAMETER_VALUE": "INVALID_PARAMETER_VALUE",
}

MAX_MESSAGE = 2000


class ScoringError(Exception):
    """An answer that is not a prediction; `status` picks the row of the error table."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, error_class: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = clip(message)
        self.code = code or CODES.get(status, "INTERNAL_ERROR")
        self.headers = headers or {}
        self.error_class = error_class

    def body(self) -> bytes:
        return error_body(self.code, self.message, self.error_class)


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    message = message.strip()
    return message if len(message) <= limit else message[: limit - 15] + " ... (clipped)"


def error_body(code: str, message: str, error_class: str | None = None) -> bytes:
    """MLflow's error document: error_code, message, and error_class where MLflow gives one."""
    doc = {"error_code": code, "message": message}
    cls = error_class or CLASSES.get(code)
    if cls:
        doc["error_class"] = cls
    return orjson.dumps(doc)


def as_mlflow(status: int, payload: bytes) -> tuple[int, bytes]:
    """/invocations answers a model that raised as `mlflow models serve` does: 400 BAD_REQUEST (the
    Azure-style 424 MODEL_ERROR stays on /score). Other answers pass unchanged."""
    if status != 424:
        return status, payload
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return status, payload
    if not isinstance(doc, dict) or doc.get("error_code") != "MODEL_ERROR":
        return status, payload
    return 400, error_body("BAD_REQUEST", str(doc.get("message", "")))

