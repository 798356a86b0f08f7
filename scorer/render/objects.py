"""Small builders shared by every manifest: metadata, labels, ConfigMaps, Secrets, volumes."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


def labels(instance: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "scorer", "app.kubernetes.io/instance": instance,
            "app.kubernetes.io/component": component, "app.kubernetes.io/managed-by": "scorer-render"}


def selector(instance: str, component: str) -> dict[str, str]:
    """The stable subset of `labels` that selectors use (selectors are immutable once applied)."""
    return {"app.kubernetes.io/instance": instance, "app.kubernetes.io/component": component}


def meta(name: str, instance: str, component: str, **extra: Any) -> Doc:
    return {"name": name, "labels": labels(instance, component), **extra}


def config_map(name: str, instance: str, component: str, files: list[Path]) -> Doc:
    """The YAML files as they are, one key each (the basename): what the pods read, byte for byte."""
    data = {path.name: path.read_text(encoding="utf-8") for path in files}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, instance, component), "data": data}


def secret(name: str, instance: str, keys: list[str], generate: bool) -> Doc:
    """The keys every pod reads; empty placeholders unless `generate` (never commit a generated one)."""
    values = {k: secrets.token_urlsafe(32) if generate else "" for k in keys}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": meta(name, instance, "keys"), "stringData": values}


def secret_env(secret_name: str, keys: list[str]) -> list[Doc]:
    """Env from the Secret, not optional: a pod waits (CreateContainerConfigError) until it exists,
    so no pod ever serves with keys of its own."""
    return [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": k}}} for k in keys]


def config_volume(volume: str, config_map_name: str) -> Doc:
    return {"name": volume, "configMap": {"name": config_map_name}}


def mount(volume: str, path: str) -> Doc:
    return {"name": volume, "mountPath": path, "readOnly": True}


POD_SECURITY = {"runAsUser": 10001, "runAsNonRoot": True}
"""The image's `scorer` user (Dockerfile)."""
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False}
