"""Look a reference up in the tracking server and registry without downloading anything, and explain a
miss in one line with a did-you-mean (registered names, aliases, versions). Shared by `resolve` and by
`scorer validate`, so both say the same thing about the same typo."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from typing import Any

from scorer.environment import configure
from scorer.models.reference import ModelRef

SUGGEST_MAX_NAMES = 1000  # registered model names scanned for a did-you-mean (one page)
LIST_MAX = 10  # versions or aliases listed in a message


class ModelNotFound(Exception):
    """A reference that names nothing: one line saying what was looked up and where."""


def first_line(exc: BaseException) -> str:
    """An exception as one line: MLflow's own message when it has one, else `Type: message`."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else ""
    if hasattr(exc, "error_code"):  # MlflowException and its subclasses already say what failed
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:LIST_MAX])
    return shown + (f", ... ({len(items)} in all)" if len(items) > LIST_MAX else "")


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate (case-insensitive), or None when none is close."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


class Registry:
    """The configured tracking server and registry, asked once per question."""

    def __init__(self) -> None:
        tracking = configure()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.where = os.environ.get("MLFLOW_REGISTRY_URI", tracking)
        self.tracking = tracking  # runs and logged models live here, registered models in `where`
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            found = self.client.search_registered_models(max_results=SUGGEST_MAX_NAMES)
            self._names = [m.name for m in found]
        return self._names

    def _registered(self, ref: ModelRef) -> Any:
        """The registered model, or ModelNotFound naming the closest registered name."""
        from mlflow.exceptions import MlflowException

        assert ref.name is not None
        try:
            return self.client.get_registered_model(ref.name)
        except MlflowException as exc:
            if not _not_found(exc):
                raise ModelNotFound(f"model {ref.raw}: the registry at {self.where} did not answer "
                                    f"({first_line(exc)})") from None
        close = did_you_mean(ref.name, self.names())
        hint = f" (did you mean {close!r}?)" if close else ""
        raise ModelNotFound(f"model {ref.raw}: registered model {ref.name!r} not found in {self.where}{hint}")

    def _versions(self, name: str) -> list[str]:
        found = self.client.search_model_versions(f"name='{name}'")
        return sorted((str(v.version) for v in found), key=int)

    def model_version(self, ref: ModelRef) -> Any:
        """The ModelVersion a registry reference means now (aliases and `latest` pinned)."""
        from mlflow.exceptions import MlflowException

        assert ref.name is not None
        registered = self._registered(ref)
        if ref.alias:
            aliases = dict(getattr(registered, "aliases", None) or {})
            if ref.alias not in aliases:
                close = did_you_mean(ref.alias, aliases)
                hint = f"did you mean {close!r}? " if close else ""
                have = f"aliases: {_listing(sorted(aliases))}" if aliases else "it has no aliases"
                raise ModelNotFound(f"model {ref.raw}: alias {ref.alias!r} of registered model {ref.name!r} "
                                    f"not found in {self.where} ({hint}{have})")
            return self.client.get_model_version(ref.name, str(aliases[ref.alias]))
        versions = self._versions(ref.name)
        if not versions:
            raise ModelNotFound(f"model {ref.raw}: registered model {ref.name!r} has no versions in {self.where}")
        if ref.version == "latest":
            return self.client.get_model_version(ref.name, versions[-1])
        if str(int(str(ref.version))) not in versions:
            raise ModelNotFound(f"model {ref.raw}: version {ref.version} of registered model {ref.name!r} "
                                f"not found in {self.where} (versions: {_listing(versions)})")
        try:
            return self.client.get_model_version(ref.name, str(int(str(ref.version))))
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: version {ref.version} of registered model {ref.name!r} "
                                f"not found in {self.where} ({first_line(exc)})") from None

    def stage_version(self, ref: ModelRef) -> Any:
        """models:/NAME/STAGE (MLflow's deprecated stages), pinned by MLflow's own rule."""
        from mlflow.exceptions import MlflowException

        assert ref.name is not None
        self._registered(ref)
        stage = ref.raw.rsplit("/", 1)[1]
        try:
            latest = self.client.get_latest_versions(ref.name, [stage])
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: {first_line(exc)}") from None
        if not latest:
            raise ModelNotFound(f"model {ref.raw}: registered model {ref.name!r} has no version in stage "
                                f"{stage!r} in {self.where} (versions: {_listing(self._versions(ref.name))})")
        return max(latest, key=lambda v: int(v.version))

    def run(self, ref: ModelRef, check_files: bool) -> str:
        """The run id of a runs:/ reference; with check_files, that the path holds an MLmodel file."""
        from mlflow.exceptions import MlflowException

        run_id, _, path = ref.raw.removeprefix("runs:/").partition("/")
        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            raise ModelNotFound(f"model {ref.raw}: not found in {self.tracking} ({first_line(exc)})") from None
        if check_files:
            try:
                listed = [f.path.rsplit("/", 1)[-1] for f in self.client.list_artifacts(run_id, path.rstrip("/"))]
            except Exception as exc:  # an unreachable artifact store is the user's to fix: one line
                raise ModelNotFound(f"model {ref.raw}: artifacts of run {run_id} not readable "
                                    f"({first_line(exc)})") from None
            if "MLmodel" not in listed:
                raise ModelNotFound(f"model {ref.raw}: run {run_id} has no MLflow model at {path!r} in {self.tracking}")
        return run_id

    def logged(self, ref: ModelRef) -> Any:
        """The MLflow 3 logged model a models:/m-ID reference names."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_logged_model(str(ref.model_id))
        except MlflowException as exc:
            if not _not_found(exc):
                raise ModelNotFound(f"model {ref.raw}: {first_line(exc)}") from None
        raise ModelNotFound(f"model {ref.raw}: logged model {ref.model_id!r} not found in {self.tracking}")
