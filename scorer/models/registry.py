"""Resolve a model reference to a pinned version and a local folder, using MLflow's registry.

Registry forms are pinned to a version; runs:/ and models:/m-ID are fetched once into the cache;
every other URI is handed to MLflow's own download as written, stored by content."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scorer.environment import state_dir
from scorer.models.fingerprint import content_version
from scorer.models.lookup import ModelNotFound, Registry, first_line
from scorer.models.reference import ModelRef, parse_model_ref

__all__ = ["ModelNotFound", "ResolvedModel", "resolve"]


@dataclass(frozen=True)
class ResolvedModel:
    """A reference pinned to what it means now: for the registry, a concrete version."""

    ref: ModelRef
    uri: str  # pinned: models:/NAME/3, runs:/ID/path, models:/m-ID, the URI as written, or the local folder
    # what clients see (x-model-version, /admin/endpoint, V2, metrics, batch journal): the registry
    # version, the run id, the logged model id, or a 12-hex content hash (paths and other URIs)
    version: str
    local_path: Path  # a folder holding the MLmodel file

    @property
    def name(self) -> str | None:
        return self.ref.name


def _cache_root() -> Path:
    return state_dir() / "cache" / "models"


def _cache_dir(name: str, version: str) -> Path:
    return _cache_root() / name / version


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


def _fetch_by_content(ref: ModelRef) -> ResolvedModel:
    """Hand the URI to MLflow; keep the files under their content hash, which is also the version, so
    a changed model at the same URI is a new version and an unchanged one reuses the cached copy."""
    import mlflow.artifacts

    root = _cache_root() / "uri"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(staging)))
        except Exception as exc:  # MLflow's (or its storage plugin's) own words, as one line
            raise ModelNotFound(f"model {ref.raw}: MLflow could not fetch it ({first_line(exc)})") from None
        if not (local / "MLmodel").is_file():
            raise ModelNotFound(f"model {ref.raw}: no MLflow model there (no MLmodel file)")
        version = content_version(local)
        final = root / version
        if not (final / "MLmodel").is_file():
            shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(local, final)
            except OSError as exc:  # another process stored the same content first, or the cache is unwritable
                if not (final / "MLmodel").is_file():
                    raise ModelNotFound(f"model {ref.raw}: cannot store it in {root} ({first_line(exc)})") from None
        return ResolvedModel(ref, ref.uri, version, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _from_registry(ref: ModelRef, registry: Registry) -> ResolvedModel:
    from mlflow.exceptions import MlflowException

    assert ref.name is not None
    mv = registry.stage_version(ref) if ref.kind == "uri" else registry.model_version(ref)
    pinned = f"models:/{ref.name}/{mv.version}"
    try:
        path = _download(pinned, _cache_dir(ref.name, str(mv.version)))
    except MlflowException as exc:
        raise ModelNotFound(f"model {ref.raw}: version {mv.version} of {ref.name!r} has no files "
                            f"({first_line(exc)})") from None
    return ResolvedModel(ref, pinned, str(mv.version), path)


def resolve(reference: str | ModelRef) -> ResolvedModel:
    """Pin a reference: aliases and `latest` become a version, and the files are made local."""
    ref = parse_model_ref(reference) if isinstance(reference, str) else reference
    if ref.kind == "path":
        path = Path(ref.path or "").expanduser().resolve()
        if not (path / "MLmodel").is_file():
            what = "folder" if path.is_dir() else "path"
            raise ModelNotFound(f"model {ref.raw}: no MLflow model at {path} ({what} has no MLmodel file)")
        return ResolvedModel(ref, str(path), content_version(path), path)
    if ref.kind == "uri" and ref.name is None:
        return _fetch_by_content(ref)

    from mlflow.exceptions import MlflowException

    registry = Registry()
    if ref.kind == "runs":
        run_id = registry.run(ref, check_files=False)
        try:
            path = _download(ref.raw, _cache_dir("runs", ref.raw.removeprefix("runs:/").replace("/", "_")))
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: not found in {registry.tracking} ({first_line(exc)})") from None
        if not (path / "MLmodel").is_file():
            raise ModelNotFound(f"model {ref.raw}: run {run_id} has no MLflow model at that path in "
                                f"{registry.tracking}")
        return ResolvedModel(ref, ref.raw, run_id, path)
    if ref.kind == "logged":
        registry.logged(ref)
        try:
            path = _download(ref.uri, _cache_dir("logged", str(ref.model_id)))
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: logged model has no files ({first_line(exc)})") from None
        return ResolvedModel(ref, ref.uri, str(ref.model_id), path)
    return _from_registry(ref, registry)
