"""Resolve a model reference to a pinned version and a local folder, using MLflow's registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scorer.environment import configure, state_dir
from scorer.models.reference import ModelRef, parse_model_ref


class ModelNotFound(Exception):
    """A reference that names nothing: one line saying what was looked up and where."""


@dataclass(frozen=True)
class ResolvedModel:
    """A reference pinned to what it means now: for the registry, a concrete version."""

    ref: ModelRef
    uri: str  # pinned: models:/NAME/3, runs:/ID/path, or the local folder
    version: str  # registry version, run id, or the folder path: what x-model-version reports
    local_path: Path  # a folder holding the MLmodel file

    @property
    def name(self) -> str | None:
        return self.ref.name


def _cache_dir(name: str, version: str) -> Path:
    return state_dir() / "cache" / "models" / name / version


def _download(uri: str, dest: Path) -> Path:
    """Download once into the cache; a finished download is marked so a crash mid-copy is redone."""
    import mlflow.artifacts

    done = dest / ".complete"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    if local != dest and (local / "MLmodel").exists() and not (dest / "MLmodel").exists():
        return local
    done.touch()
    return dest


def resolve(reference: str | ModelRef) -> ResolvedModel:
    """Pin a reference: aliases and `latest` become a version, and the files are made local."""
    ref = parse_model_ref(reference) if isinstance(reference, str) else reference
    if ref.kind == "path":
        path = Path(ref.path or "").expanduser().resolve()
        if not (path / "MLmodel").is_file():
            what = "folder" if path.is_dir() else "path"
            raise ModelNotFound(f"model {ref.raw}: no MLflow model at {path} ({what} has no MLmodel file)")
        return ResolvedModel(ref, str(path), str(path), path)

    tracking = configure()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    where = os.environ.get("MLFLOW_REGISTRY_URI", tracking)
    if ref.kind == "runs":
        run_id = ref.raw.split("/")[1]
        try:
            client.get_run(run_id)
            path = _download(ref.raw, _cache_dir("runs", ref.raw.removeprefix("runs:/").replace("/", "_")))
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: not found in {where} ({_first_line(exc)})") from None
        if not (path / "MLmodel").is_file():
            raise ModelNotFound(f"model {ref.raw}: run {run_id} has no MLflow model at that path in {where}")
        return ResolvedModel(ref, ref.raw, run_id, path)

    assert ref.name is not None
    try:
        if ref.alias:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        elif ref.version == "latest":
            versions = client.search_model_versions(f"name='{ref.name}'")
            if not versions:
                raise ModelNotFound(f"model {ref.raw}: registered model {ref.name!r} has no versions in {where}")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        looked = f"alias {ref.alias!r}" if ref.alias else f"version {ref.version}"
        raise ModelNotFound(
            f"model {ref.raw}: {looked} of registered model {ref.name!r} not found in {where} "
            f"({_first_line(exc)})") from None
    pinned = f"models:/{ref.name}/{mv.version}"
    try:
        path = _download(pinned, _cache_dir(ref.name, str(mv.version)))
    except MlflowException as exc:
        raise ModelNotFound(f"model {ref.raw}: version {mv.version} of {ref.name!r} has no files "
                            f"({_first_line(exc)})") from None
    return ResolvedModel(ref, pinned, str(mv.version), path)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
