"""Offline checks of rendered manifests: built-in kinds against kubernetes-validate's bundled
schemas (strict), Ray kinds against the vendored KubeRay CRDs' openAPIV3Schema (made strict)."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "tests" / "fixtures" / "kuberay"
CRDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)


def manifests(folder: Path) -> dict[str, dict[str, Any]]:
    """Relative path -> document, for every YAML file under `folder`."""
    return {str(p.relative_to(folder)): read(p) for p in sorted(folder.rglob("*.yaml"))}


def _strict(schema: Any) -> Any:
    """Every object schema with `properties` refuses other keys unless the CRD keeps unknown
    fields: the API server would prune them (a silent typo), `kubectl --validate=strict` refuses."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str, version: str = "v1") -> jsonschema.Draft7Validator:
    crd = read(KUBERAY / CRDS[kind])
    assert crd["spec"]["names"]["kind"] == kind
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))
    return jsonschema.Draft7Validator(schema)


def ray_errors(doc: dict[str, Any]) -> list[str]:
    group, _, version = doc["apiVersion"].partition("/")
    assert group == "ray.io", doc["apiVersion"]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(doc["kind"], version).iter_errors(doc)]


def kubernetes_validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """The `kubernetes-validate --strict` command line, as a user runs it, on every file at once."""
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
