"""Load a resolved MLflow model as pyfunc, with what the server and batch runner need to know."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from scorer.models.reference import ModelRef
from scorer.models.registry import ResolvedModel, resolve

log = logging.getLogger("scorer.models")


@dataclass
class LoadedModel:
    resolved: ResolvedModel
    pyfunc: Any  # mlflow.pyfunc.PyFuncModel
    signature: Any | None  # mlflow.models.ModelSignature
    input_example: Any | None  # usually a pandas DataFrame

    @property
    def version(self) -> str:
        return self.resolved.version

    @property
    def path(self) -> Path:
        return self.resolved.local_path

    @property
    def input_columns(self) -> list[str] | None:
        """Column names of a tabular signature, in order; None when the model has none."""
        if self.signature is None or self.signature.inputs is None:
            return None
        names = self.signature.inputs.input_names()
        return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.pyfunc.predict(data, params=params) if params else self.pyfunc.predict(data)


_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def requirement_mismatches(model_dir: Path) -> list[str]:
    """Pinned requirements of the model that differ from what is installed here."""
    req = model_dir / "requirements.txt"
    if not req.is_file():
        return []
    out = []
    for line in req.read_text().splitlines():
        m = _REQ.match(line)
        if not m:
            continue
        name, wanted = m.group(1), m.group(2)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(f"{name}=={wanted} (not installed)")
            continue
        if have != wanted:
            out.append(f"{name}=={wanted} (installed {have})")
    return out


def load_input_example(reference: str | ModelRef | ResolvedModel) -> Any | None:
    """The model's input example, read from its MLmodel metadata without loading the model itself."""
    from mlflow.models import Model

    resolved = reference if isinstance(reference, ResolvedModel) else resolve(reference)
    return Model.load(str(resolved.local_path)).load_input_example(str(resolved.local_path))


def load_model(reference: str | ModelRef | ResolvedModel) -> LoadedModel:
    """Resolve (if needed) and load. Requirement differences warn; they do not fail."""
    import mlflow.pyfunc

    resolved = reference if isinstance(reference, ResolvedModel) else resolve(reference)
    mismatches = requirement_mismatches(resolved.local_path)
    if mismatches:
        log.warning("model %s was saved with other package versions: %s", resolved.ref.raw, ", ".join(mismatches))
    pyfunc = mlflow.pyfunc.load_model(str(resolved.local_path))
    meta = pyfunc.metadata
    example = None
    try:
        example = meta.load_input_example(str(resolved.local_path))
    except Exception as exc:  # an unreadable example only costs the warm-up
        log.warning("model %s: input example not loaded: %s", resolved.ref.raw, exc)
    return LoadedModel(resolved, pyfunc, meta.signature, example)
