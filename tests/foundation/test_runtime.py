"""The one model runtime (`scorer.models.runtime`) that the replica and the batch actor both load and
predict through: a real MLflow model trained in the session, and real scoring scripts."""

from __future__ import annotations

import logging
import shutil
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scorer.models import resolve
from scorer.models.runtime import MlflowRuntime, ModelRuntime, ScriptRuntime, load_runtime


@pytest.fixture(scope="module")
def blue(demo_registry: str) -> Path:
    """The local folder of demo-classifier v1 (logistic regression, with signature and input example)."""
    return resolve(f"models:/{demo_registry}/1").local_path


def test_mlflow_runtime_predicts_and_encodes_as_mlflow_does(blue: Path) -> None:
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server import predictions_to_json

    rt = load_runtime(model_dir=blue, name="models:/demo-classifier/1")
    assert isinstance(rt, MlflowRuntime)
    reference = mlflow.pyfunc.load_model(str(blue))
    frame = rt.input_example
    assert isinstance(frame, pd.DataFrame) and len(frame) == 5
    assert rt.input_columns == list(frame.columns)
    assert rt.input_schema is not None and rt.input_schema.input_names() == list(frame.columns)
    raw = rt.predict(frame)
    assert np.array_equal(np.asarray(raw), np.asarray(reference.predict(frame)))
    expected = StringIO()
    predictions_to_json(raw, expected)
    assert rt.encode(raw) == expected.getvalue().encode()
    assert rt.warm_up() is True


def test_requirement_mismatch_warns_and_a_broken_example_costs_only_the_warm_up(blue: Path, tmp_path: Path,
                                                                                caplog: pytest.LogCaptureFixture
                                                                                ) -> None:
    copy = tmp_path / "m"
    shutil.copytree(blue, copy)
    (copy / "requirements.txt").write_text("scikit-learn==0.0.1\n")
    for f in copy.glob("input_example.*"):
        f.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="scorer.models"):
        rt = MlflowRuntime.load(copy, name="copied")
    assert "model copied was saved with other package versions: scikit-learn==0.0.1" in caplog.text
    assert "model copied: input example not loaded" in caplog.text
    assert rt.input_example is None and rt.warm_up() is False
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scorer.models"):
        MlflowRuntime.load(copy, name="copied", check_requirements=False)
    assert "other package versions" not in caplog.text


def test_script_runtime_runs_init_once_with_its_folder_on_the_path(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    code = tmp_path / "code"
    code.mkdir()
    (code / "runtime_helper_mod.py").write_text("FACTOR = 3\n")
    (code / "score.py").write_text(
        "import os\nimport numpy as np\nimport runtime_helper_mod\ncalls = []\n"
        "def init():\n    calls.append(os.environ['AZUREML_MODEL_DIR'])\n"
        "def run(data):\n    return {'n': len(calls), 'x': np.arange(runtime_helper_mod.FACTOR), 'echo': data}\n")
    rt = load_runtime(model_dir=tmp_path / "model", code_dir=code, script="score.py")
    assert isinstance(rt, ScriptRuntime) and rt.signature is None and rt.input_columns is None
    out = rt.predict("body")
    assert out["n"] == 1 and rt.predict("again")["n"] == 1  # init() ran once, at load
    assert rt.encode(out) == b'{"n":1,"x":[0,1,2],"echo":"body"}'
    assert rt.encode({"frame": pd.DataFrame({"a": [1]})}) == b'{"frame": [{"a": 1}]}'  # json's fallback
    with pytest.raises(TypeError, match="object is not JSON-serialisable"):
        rt.encode({"x": object()})
    assert rt.warm_up() is False  # a script has no example to warm up on
    assert str(code.resolve()) == sys.path[0]


def test_nothing_to_load_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="neither a model nor a scoring script"):
        load_runtime(model_dir=None)


def test_serving_and_batch_load_through_the_same_runtime(blue: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The replica used to load with mlflow directly (no requirement check); both now share one path."""
    from batch.worker import ScoringWorker, WorkerConfig
    from serving.worker.config import ReplicaConfig
    from serving.worker.load import build_scorer

    copy = tmp_path / "m"
    shutil.copytree(blue, copy)
    (copy / "requirements.txt").write_text("scikit-learn==0.0.1\n")
    with caplog.at_level(logging.WARNING, logger="scorer.models"):
        scorer, example = build_scorer(ReplicaConfig(deployment="d", model_path=str(copy), model_version="1",
                                                     model_ref="models:/demo-classifier/1"))
    assert "model models:/demo-classifier/1 was saved with other package versions" in caplog.text
    worker = ScoringWorker(WorkerConfig(mode="tabular", fmt="csv", schema=None, read_columns=None,
                                        model_columns=None, resolved=resolve(str(copy))))
    assert worker.init_error is None
    assert isinstance(scorer.runtime, ModelRuntime) and type(scorer.runtime) is type(worker.runtime)
    assert worker.runtime is not None
    assert np.array_equal(np.asarray(scorer.predict(example, None)), np.asarray(worker.runtime.predict(example)))


def test_exact_predict_skips_only_mlflows_schema_enforcement(blue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame already in the signature's form goes straight to the flavor's predict, with the same
    answer; everything else still passes through MLflow's enforcement."""
    import mlflow.pyfunc

    rt = load_runtime(model_dir=blue)
    assert isinstance(rt, MlflowRuntime)
    frame = rt.input_example.astype("float64")
    expected = np.asarray(rt.predict(frame))

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("schema enforcement ran")

    monkeypatch.setattr(mlflow.pyfunc, "_validate_prediction_input", refuse)
    assert np.array_equal(np.asarray(rt.predict_exact(frame)), expected)
    with pytest.raises(AssertionError, match="schema enforcement ran"):
        rt.predict(frame)


def test_a_params_schema_keeps_mlflows_own_predict(tmp_path: Path) -> None:
    """MLflow fills a params schema's defaults inside `PyFuncModel.predict`: such a model never skips it."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    y = np.array([0.0, 1.0, 2.0])
    model = LinearRegression().fit(x, y)
    for name, params in (("plain", None), ("with_params", {"k": 1})):
        mlflow.sklearn.save_model(model, str(tmp_path / name), signature=infer_signature(x, y, params=params))
    assert MlflowRuntime.load(tmp_path / "plain")._exact is not None
    with_params = MlflowRuntime.load(tmp_path / "with_params")
    assert with_params._exact is None
    assert np.allclose(np.asarray(with_params.predict_exact(x)), model.predict(x))


def test_a_model_saved_with_another_python_warns_once_in_our_words(blue: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """MLflow's own load-time warnings are off (they repeat our requirement check, ~1 s a load);
    the Python version check they also made is ours now."""
    copy = tmp_path / "m"
    shutil.copytree(blue, copy)
    mlmodel = copy / "MLmodel"
    text = mlmodel.read_text()
    assert "python_version: 3.11" in text
    mlmodel.write_text(text.replace("python_version: 3.11", "python_version: 3.8"))
    with caplog.at_level(logging.WARNING):
        MlflowRuntime.load(copy, name="old")
    ours = [r for r in caplog.records if "was saved with Python 3.8" in r.getMessage()]
    assert len(ours) == 1 and ours[0].name == "scorer.models"
    assert not [r for r in caplog.records if r.name.startswith("mlflow") and "Python" in r.getMessage()]
