"""The design's error table: one exception type carrying status, MLflow error_code and message."""

from __future__ import annotations

import orjson
from starlette.responses import Response

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
    408: "REQUEST_TIMEOUT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    424: "MODEL_ERROR",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}

MAX_MESSAGE = 2000


class ScoringError(Exception):
    """An answer that is not a prediction; `status` picks the row of the error table."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = clip(message)
        self.code = code or CODES.get(status, "INTERNAL_ERROR")
        self.headers = headers or {}


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    message = message.strip()
    return message if len(message) <= limit else message[: limit - 15] + " ... (clipped)"


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error_code": code, "message": message})


def error_response(err: ScoringError, headers: dict[str, str] | None = None) -> Response:
    h = dict(err.headers)
    if headers:
        h.update(headers)
    return Response(error_body(err.code, err.message), status_code=err.status,
                    media_type="application/json", headers=h)
