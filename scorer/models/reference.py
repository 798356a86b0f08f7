"""Model references as users write them, mapped to what MLflow understands. No MLflow import here:
`scorer validate` checks the form of a reference without touching a registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FORMS = (
    "a local path, runs:/RUN_ID/PATH, models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest, "
    "ws:/NAME:VERSION, azureml:NAME:VERSION or azureml:NAME@latest"
)

_NAME = r"[^/@:\s][^/@:]*"
_RUNS = re.compile(r"^runs:/(?P<run>[^/\s]+)/(?P<path>.+)$")
_MODELS_VERSION = re.compile(rf"^models:/(?P<name>{_NAME})/(?P<version>\d+|latest)$")
_MODELS_ALIAS = re.compile(rf"^models:/(?P<name>{_NAME})@(?P<alias>[\w-]+)$")
_WS = re.compile(rf"^ws:/(?P<name>{_NAME}):(?P<version>\d+)$")
_AZUREML_VERSION = re.compile(rf"^azureml:(?P<name>{_NAME}):(?P<version>\d+)$")
_AZUREML_LABEL = re.compile(rf"^azureml:(?P<name>{_NAME})@(?P<alias>[\w-]+)$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. `uri` is the MLflow URI; `path` is set for local folders."""

    raw: str
    kind: Literal["path", "runs", "registry"]
    uri: str
    name: str | None = None
    version: str | None = None  # digits or "latest"
    alias: str | None = None
    path: str | None = None


def parse_model_ref(raw: str) -> ModelRef:
    """Parse one reference; raises ValueError naming the accepted forms."""
    raw = raw.strip()
    if m := _RUNS.match(raw):
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
    if re.match(r"^[a-zA-Z][\w+.-]*:/", raw) and not raw.startswith("file:"):
        raise ValueError(f"unknown model reference {raw!r}; expected {FORMS}")
    if raw.startswith(("runs:", "models:", "ws:", "azureml:")):
        raise ValueError(f"malformed model reference {raw!r}; expected {FORMS}")
    path = raw.removeprefix("file://") if raw.startswith("file://") else raw.removeprefix("file:")
    if not path:
        raise ValueError(f"empty model reference; expected {FORMS}")
    return ModelRef(raw, "path", path, path=path)
