"""Azure ML's online scoring-script contract: `run(raw_data)` gets the body as a string. The script
runs and its answer is encoded through the shared model runtime (`scorer.models.runtime`)."""

from __future__ import annotations

from typing import Any

from scorer.models.runtime import ScriptRuntime
from serving.errors import ScoringError
from serving.protocol.mlflow import Reply, check_media_type, model_error


class ScriptScorer:
    def __init__(self, runtime: ScriptRuntime) -> None:
        self.runtime = runtime

    def score(self, body: bytes, content_type: str) -> Reply:
        check_media_type(content_type)
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScoringError(400, f"body is not valid UTF-8: {exc}") from None
        try:
            result = self.runtime.predict(raw)
        except Exception as exc:
            raise model_error(exc) from None
        if hasattr(result, "status_code") and hasattr(result, "body"):  # a Starlette/Flask-like Response
            media = getattr(result, "media_type", None) or getattr(result, "mimetype", None) or "application/json"
            return Reply(int(result.status_code), bytes(result.body), str(media))
        try:
            out = self.runtime.encode(result)
        except Exception as exc:
            raise ScoringError(424, f"run() returned something that is not JSON-serialisable: {exc}") from None
        return Reply(200, out)

    def warm_up(self, example: Any) -> None:
        return None
