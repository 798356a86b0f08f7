"""One model runtime for serving and batch: load an MLflow model or an Azure scoring script once,
then predict on what a request or a mini-batch holds, and encode the answer.

The replica (`serving/worker/`) and the batch actor (`batch/worker.py`) both score through it, so a
model loads, warns and predicts the same way in both. What stays with each caller is its codec:
serving parses request bodies and maps errors to statuses; batch reads Arrow and shapes columns.
Nothing is checked per call: whatever depends on the model alone is settled at load.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

from scorer.models.loading import load_pyfunc, signature_columns
from scorer.scoring_script import ScoringScript, add_code_path, load_scoring_script

log = logging.getLogger("scorer.models")


class ModelRuntime(ABC):
    """What scores: loaded once, then `predict` per request or mini-batch, `encode` for the wire."""

    name: str  # the model or script as the user wrote it (for logs)
    input_example: Any | None = None  # the model's input example (a pandas frame, usually): the warm-up

    @property
    def signature(self) -> Any | None:
        """The MLflow `ModelSignature`, or None (a scoring script has none)."""
        return None

    @property
    def input_schema(self) -> Any | None:
        """The signature's input `Schema`, or None."""
        return None

    @property
    def input_columns(self) -> list[str] | None:
        """Column names of a tabular signature, in order; None when there is none."""
        return signature_columns(self.signature)

    @property
    def double_columns(self) -> tuple[str, ...] | None:
        """The columns of an all-`double` signature, in order, else None (see `predict_exact`)."""
        return None

    @abstractmethod
    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's raw output for `data` (a pandas frame for a tabular model)."""

    def predict_exact(self, frame: Any) -> Any:
        """`predict` for a frame already in the form the model's signature asks for."""
        return self.predict(frame)

    @abstractmethod
    def encode(self, raw: Any) -> bytes:
        """`raw` (what `predict` returned) as the JSON bytes an online client gets."""

    def warm_up(self, example: Any | None = None) -> bool:
        """Predict and encode the input example once, so that the first real call does not pay for
        lazy imports and caches. False when there is nothing to warm up on."""
        example = self.input_example if example is None else example
        if example is None:
            return False
        self.encode(self.predict(example))
        return True


class MlflowRuntime(ModelRuntime):
    """An MLflow pyfunc model; predictions are encoded by MLflow itself, as `mlflow models serve` does."""

    def __init__(self, pyfunc: Any, name: str, input_example: Any | None = None) -> None:
        from mlflow.pyfunc import scoring_server

        self.pyfunc = pyfunc  # mlflow.pyfunc.PyFuncModel
        self.name = name
        self.input_example = input_example
        self.metadata = pyfunc.metadata  # mlflow.models.Model
        self._signature = self.metadata.signature
        self._schema = self.metadata.get_input_schema()
        self._to_json: Callable[..., None] = scoring_server.predictions_to_json
        self._exact = self._exact_predict_fn()
        self._doubles = _double_columns(self._schema)

    @classmethod
    def load(cls, model_dir: str | Path, *, name: str | None = None, code_dir: str | Path | None = None,
             check_requirements: bool = True) -> MlflowRuntime:
        """Load the model in a local folder (with an MLmodel file). `code_dir` goes first on sys.path
        so the model's own code imports; requirement differences warn, they do not fail."""
        if code_dir:
            add_code_path(Path(code_dir))
        label = name or str(model_dir)
        pyfunc, example = load_pyfunc(Path(model_dir), label, check_requirements=check_requirements)
        return cls(pyfunc, label, example)

    @property
    def signature(self) -> Any | None:
        return self._signature

    @property
    def input_schema(self) -> Any | None:
        return self._schema

    @property
    def double_columns(self) -> tuple[str, ...] | None:
        return self._doubles

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.pyfunc.predict(data, params=params) if params else self.pyfunc.predict(data)

    def predict_exact(self, frame: Any) -> Any:
        """`predict` without MLflow's schema enforcement, for a frame that already is what the
        enforcement returns: the signature's columns, in its order, with its types, checked by the
        caller's own parser. Measured: the enforcement is about 60 % of a one-row LR predict."""
        return self._exact(frame) if self._exact is not None else self.predict(frame)

    def _exact_predict_fn(self) -> Callable[[Any], Any] | None:
        """The flavor's own predict function, called as `PyFuncModel.predict` calls it after the
        enforcement; None where MLflow does more than enforce the input schema (a params schema
        supplies defaults; type-hint signatures validate and convert inside the model)."""
        md = self.metadata
        try:
            if (self._schema is None or md.get_params_schema() is not None
                    or md._is_signature_from_type_hint() or md._is_type_hint_from_example()):
                return None
            fn: Callable[..., Any] = self.pyfunc._predict_fn
            arg = inspect.signature(fn).parameters.get("params")
        except (AttributeError, TypeError, ValueError):  # a pyfunc without these internals: the normal path
            return None
        if arg is not None and arg.kind != inspect.Parameter.VAR_KEYWORD:
            return lambda frame: fn(frame, params=None)
        return fn

    def encode(self, raw: Any) -> bytes:
        out = StringIO()
        self._to_json(raw, out)
        return out.getvalue().encode()


def _double_columns(schema: Any) -> tuple[str, ...] | None:
    """The column names, in order, when the signature is all required `double` columns (a frame of
    just those float64 columns, in that order, is what MLflow's enforcement returns as is)."""
    try:
        from mlflow.types import ColSpec, DataType

        if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
            return None
        names = []
        for c in schema.inputs:
            if not isinstance(c, ColSpec) or c.type != DataType.double or not c.required:
                return None
            names.append(str(c.name))
        return tuple(names)
    except Exception:
        return None


class ScriptRuntime(ModelRuntime):
    """An Azure ML scoring script: `init()` ran at load, `run(data)` scores. It gets what the caller
    hands it: the request body as a string online, a pandas frame or a list of paths in batch."""

    def __init__(self, script: ScoringScript, name: str) -> None:
        self.script = script
        self.name = name
        self._run: Callable[[Any], Any] = script.module.run

    @classmethod
    def load(cls, code_dir: str | Path, script: str, model_dir: str | Path | None = None) -> ScriptRuntime:
        """Import the script from its folder (first on sys.path) and call its `init()` once."""
        loaded = load_scoring_script(Path(code_dir), script, Path(model_dir) if model_dir else None)
        return cls(loaded, script)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._run(data)

    def encode(self, raw: Any) -> bytes:
        """JSON; numpy arrays and frames as lists. TypeError or ValueError when it is not JSON."""
        import orjson

        try:
            return orjson.dumps(raw, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(raw, default=_plain).encode()


def load_runtime(*, model_dir: str | Path | None, code_dir: str | Path | None = None, script: str | None = None,
                 name: str | None = None, check_requirements: bool = True) -> ModelRuntime:
    """The scoring script when there is one (the model folder is then only its AZUREML_MODEL_DIR),
    else the MLflow model in `model_dir`. Raises with a one-line message when either fails."""
    if script and code_dir:
        return ScriptRuntime.load(code_dir, script, model_dir)
    if not model_dir:
        raise ValueError("neither a model nor a scoring script to load")
    return MlflowRuntime.load(model_dir, name=name, code_dir=code_dir, check_requirements=check_requirements)


def _plain(obj: Any) -> Any:
    """What `json.dumps` cannot take, made plain: arrays to lists, frames to records."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict(orient="records")
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")
