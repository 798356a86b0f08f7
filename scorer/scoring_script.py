"""Azure ML's scoring-script contract: a file with `init()` and `run()`, loaded from its folder."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


class ScriptError(Exception):
    """The script is missing, does not import, or lacks init()/run(): one line for the user."""


@dataclass
class ScoringScript:
    path: Path
    module: ModuleType  # the user's script, imported; init() has run

    def run(self, data: Any) -> Any:
        return self.module.run(data)


def add_code_path(code_dir: Path) -> None:
    """Put a deployment's code folder first on sys.path (Azure ML does the same)."""
    code = str(Path(code_dir).resolve())
    if code not in sys.path:
        sys.path.insert(0, code)


def load_scoring_script(code_dir: Path, script: str, model_dir: Path | None = None) -> ScoringScript:
    """Import the script, set AZUREML_MODEL_DIR / SCORER_MODEL_DIR, and call its init() once."""
    path = (Path(code_dir) / script).resolve()
    if not path.is_file():
        raise ScriptError(f"scoring script {path} does not exist")
    if model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
        os.environ["SCORER_MODEL_DIR"] = str(model_dir)
    add_code_path(Path(code_dir))
    spec = importlib.util.spec_from_file_location(f"scorer_user_script_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"scoring script {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ScriptError(f"scoring script {path} failed to import: {type(exc).__name__}: {exc}") from exc
    missing = [n for n in ("init", "run") if not callable(getattr(module, n, None))]
    if missing:
        raise ScriptError(f"scoring script {path} has no {' or '.join(f'{n}()' for n in missing)}; "
                          "expected Azure ML's contract: init() once, then run(data) per request or mini-batch")
    if len(inspect.signature(module.run).parameters) < 1:
        raise ScriptError(f"scoring script {path}: run() takes no argument; expected run(data)")
    try:
        module.init()
    except Exception as exc:
        raise ScriptError(f"scoring script {path}: init() raised {type(exc).__name__}: {exc}") from exc
    return ScoringScript(path, module)
