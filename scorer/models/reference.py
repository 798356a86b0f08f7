"""Model references as users write them, mapped to what MLflow understands. No MLflow import here:
`scorer validate --offline` checks the form of a reference without touching a registry.

Only the forms scorer adds (`ws:`, `azureml:`), the registry forms it pins and local paths are
treated specially; every other URI (`models:/m-ID`, `s3://`, `gs://`, `dbfs:/`, `wasbs://`,
`mlflow-artifacts:/`, ...) is handed to MLflow's own resolution as written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

FORMS = (
    "a local path, file:///PATH, runs:/RUN_ID/PATH, models:/NAME/VERSION, models:/NAME@ALIAS, "
    "models:/NAME/latest, models:/m-MODEL_ID, ws:/NAME:VERSION, azureml:NAME:VERSION, azureml:NAME@latest, "
    "or any other URI MLflow loads (s3://, gs://, dbfs:/, ...)"
)

_NAME = r"[^/@:\s][^/@:]*"
_RUNS = re.compile(r"^runs:/(?P<run>[^/\s]+)/(?P<path>.+)$")
_MODELS_VERSION = re.compile(rf"^models:/(?P<name>{_NAME})/(?P<version>\d+|latest)$")
_MODELS_ALIAS = re.compile(rf"^models:/(?P<name>{_NAME})@(?P<alias>[\w-]+)$")
_MODELS_STAGE = re.compile(rf"^models:/(?P<name>{_NAME})/(?P<stage>[A-Za-z]\w*)$")  # deprecated stages
_LOGGED = re.compile(r"^models:/(?P<id>m-[\w-]+)$")  # what MLflow 3's log_model returns
_WS = re.compile(rf"^ws:/(?P<name>{_NAME}):(?P<version>\d+)$")
_AZUREML_VERSION = re.compile(rf"^azureml:(?P<name>{_NAME}):(?P<version>\d+)$")
_AZUREML_LABEL = re.compile(rf"^azureml:(?P<name>{_NAME})@(?P<alias>[\w-]+)$")
_URI = re.compile(r"^[a-zA-Z][\w+.-]*:/")
_OURS = ("runs:", "models:", "ws:", "azureml:")

Kind = Literal["path", "runs", "registry", "logged", "uri"]


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. `uri` is the MLflow URI; `path` is set for local folders.

    kind: `path` (local folder), `runs` (runs:/), `registry` (a registered name with a version or
    alias scorer pins), `logged` (an MLflow 3 logged model, models:/m-ID), `uri` (anything else,
    handed to MLflow as written)."""

    raw: str
    kind: Kind
    uri: str
    name: str | None = None
    version: str | None = None  # digits or "latest"
    alias: str | None = None
    path: str | None = None
    model_id: str | None = None


def _local_file_path(raw: str) -> str | None:
    """The local path of `file:///PATH` or `file:/PATH`; None for `file://HOST/...` (MLflow fetches those)."""
    parts = urlsplit(raw)
    if parts.netloc:
        return None
    return url2pathname(unquote(parts.path))


def parse_model_ref(raw: str) -> ModelRef:
    """Parse one reference; raises ValueError naming the accepted forms."""
    raw = raw.strip()
    if not raw:
        raise ValueError(f"empty model reference; expected {FORMS}")
    if _RUNS.match(raw):
        return ModelRef(raw, "runs", raw)
    for pattern in (_MODELS_VERSION, _WS, _AZUREML_VERSION):
        if m := pattern.match(raw):
            name, version = m["name"], m["version"]
            return ModelRef(raw, "registry", f"models:/{name}/{version}", name=name, version=version)
    for pattern in (_MODELS_ALIAS, _AZUREML_LABEL):
        if m := pattern.match(raw):
            name, alias = m["name"], m["alias"]
            if alias == "latest":
                return ModelRef(raw, "registry", f"models:/{name}/latest", name=name, version="latest")
            return ModelRef(raw, "registry", f"models:/{name}@{alias}", name=name, alias=alias)
    if m := _LOGGED.match(raw):
        return ModelRef(raw, "logged", raw, model_id=m["id"])
    if m := _MODELS_STAGE.match(raw):
        return ModelRef(raw, "uri", raw, name=m["name"])
    if raw.lower().startswith("file:"):
        path = _local_file_path(raw)
        if path is None:
            return ModelRef(raw, "uri", raw)
        if not path:
            raise ValueError(f"empty model reference; expected {FORMS}")
        return ModelRef(raw, "path", path, path=path)
    if raw.startswith(_OURS) and not raw.startswith("azureml://"):
        raise ValueError(f"malformed model reference {raw!r}; expected {FORMS}")
    if _URI.match(raw):
        return ModelRef(raw, "uri", raw)
    return ModelRef(raw, "path", raw, path=raw)
