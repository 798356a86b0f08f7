"""Errors as HTTP answers: the one place a ScoringError becomes a Starlette Response."""

from __future__ import annotations

from starlette.responses import Response

from serving.errors import ScoringError


def error_response(err: ScoringError, headers: dict[str, str] | None = None) -> Response:
    h = dict(err.headers)
    if headers:
        h.update(headers)
    return Response(err.body(), status_code=err.status,
                    media_type="application/json", headers=h)
