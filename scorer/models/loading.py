"""Load a resolved MLflow model as pyfunc, with what the server and batch runner need to know."""

from __future__ import annotations

import logging
import platform
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
        return signature_columns(self.signature)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.pyfunc.predict(data, params=params) if params else self.pyfunc.predict(data)


def signature_columns(signature: Any | None) -> list[str] | None:
    """Column names of a tabular signature, in order; None without a signature or names."""
    if signature is None or signature.inputs is None:
        return None
    names = signature.inputs.input_names()
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None


def required_columns(schema: Any | None) -> list[str]:
    """The columns a signature's inputs require (`required: false` ones may be absent, as MLflow's
    enforcement allows); empty for no schema or one without names. Serving and batch both ask here."""
    try:
        if schema is None or not schema.has_input_names():
            return []
        return [c.name for c in schema.inputs if getattr(c, "required", True)]
    except Exception:
        return []


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


def load_pyfunc(model_dir: Path, name: str, check_requirements: bool = True) -> tuple[Any, Any | None]:
    """(pyfunc model, input example or None) of a local model folder. Requirement differences warn,
    they do not fail; an unreadable input example only costs the warm-up."""
    import mlflow.pyfunc

    if check_requirements:
        mismatches = requirement_mismatches(model_dir)
        if mismatches:
            log.warning("model %s was saved with other package versions: %s", name, ", ".join(mismatches))
    # MLflow's own load-time checks repeat scorer's requirement check (about 1 s a load, every
    # replica and batch actor); the Python version check, the other one they make, is below
    pyfunc = mlflow.pyfunc.load_model(str(model_dir), suppress_warnings=True)
    if check_requirements:
        saved = (pyfunc.metadata.flavors.get("python_function") or {}).get("python_version")
        running = platform.python_version()
        if saved and str(saved).split(".")[:2] != running.split(".")[:2]:
            log.warning("model %s was saved with Python %s; this is Python %s and it may not load or "
                        "predict alike", name, saved, running)
    example = None
    try:
        example = pyfunc.metadata.load_input_example(str(model_dir))
    except Exception as exc:
        log.warning("model %s: input example not loaded (%s); no warm-up", name, exc)
    return pyfunc, example


def load_model(reference: str | ModelRef | ResolvedModel) -> LoadedModel:
    """Resolve (if needed) and load. Requirement differences warn; they do not fail."""
    resolved = reference if isinstance(reference, ResolvedModel) else resolve(reference)
    pyfunc, example = load_pyfunc(resolved.local_path, resolved.ref.raw)
    return LoadedModel(resolved, pyfunc, pyfunc.metadata.signature, example)
