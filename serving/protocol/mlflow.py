"""The MLflow scoring protocol's codec pieces: media types, the answer (`Reply`), the Azure body
wrapper and the shape of errors (MLflow's status, error_code and error_class; a model that raises
is 424, Azure's /score convention, which the router turns into MLflow's 400 on /invocations; no
answer ever carries a traceback). The replica's parser that uses them is
`serving/worker/mlflow_scorer.py`; the router uses only the media-type checks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving.errors import ScoringError

log = logging.getLogger("scorer.replica")

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass
class Reply:
    status: int
    body: bytes
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class Scorer(Protocol):
    """What a replica serves (an MLflow model or a scoring script): a body in, an answer out."""

    def score(self, body: bytes, content_type: str) -> Reply: ...

    def warm_up(self, example: Any) -> None: ...


def check_media_type(content_type: str | None) -> str:
    """'application/json' or 'text/csv' (the mime part), else ScoringError 415. Cheap: router side."""
    if not content_type:
        raise ScoringError(415, "Content-Type is missing; send application/json or text/csv")
    mime = media_type(content_type)
    if mime not in (JSON, CSV):
        raise ScoringError(415, f"unsupported Content-Type {content_type[:200]!r}; send application/json or text/csv")
    return mime


def media_type(content_type: str) -> str:
    """The mime part, lower-cased; 415 for any parameter but `charset=utf-8` (as MLflow answers)."""
    parts = [p.strip() for p in content_type.split(";")]
    for param in parts[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise ScoringError(415, f"unrecognized Content-Type parameter {key.strip()[:100]!r}")
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ScoringError(415, "only the UTF-8 charset is supported")
    return parts[0].lower()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    # MLflow appends the whole input to some parse errors: keep what names the problem.
    text = str(text).split("\nInput: \n")[0]
    return text.strip()


def _unwrap_azure(doc: dict[str, Any]) -> dict[str, Any]:
    """Azure ML's `{"input_data": ...}`: split-oriented frame (columns/index/data) or tensors."""
    if "input_data" not in doc or any(k in doc for k in FORMATS):
        return doc
    inner = doc.pop("input_data")
    if isinstance(inner, dict) and "data" in inner:
        doc["dataframe_split"] = inner
    else:
        doc["inputs"] = inner
    return doc


def _client_codes(exc: Any) -> tuple[str | None, None, str | None]:
    """(error_code, headers, error_class) of an MlflowException that MLflow answers as a 4xx."""
    code = getattr(exc, "error_code", None)
    if exc.get_http_status_code() >= 500:
        code = None
    return code, None, getattr(exc, "error_class", None) if code else None


def model_error(exc: BaseException) -> ScoringError:
    """424 with Azure's model-error headers; the message is the model's, without a traceback."""
    msg = f"{type(exc).__name__}: {_message(exc)}"
    reason = _first_line(msg).encode("ascii", "replace").decode()[:200]
    return ScoringError(424, f"the model raised {msg}", headers={
        "ms-azureml-model-error-statuscode": "500",
        "ms-azureml-model-error-reason": reason,
    })
