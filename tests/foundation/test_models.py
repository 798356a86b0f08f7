"""Model references resolved against a real SQLite registry holding the trained demo models."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from scorer.models import ModelNotFound, load_model, parse_model_ref, requirement_mismatches, resolve
from scorer.scoring_script import ScriptError, load_scoring_script


@pytest.mark.parametrize("raw,uri", [
    ("models:/demo/3", "models:/demo/3"),
    ("models:/demo/latest", "models:/demo/latest"),
    ("models:/demo@champion", "models:/demo@champion"),
    ("ws:/thatmodel:1", "models:/thatmodel/1"),
    ("azureml:credit:7", "models:/credit/7"),
    ("azureml:credit@latest", "models:/credit/latest"),
    ("runs:/0123abc/model", "runs:/0123abc/model"),
    ("./model", "./model"),
])
def test_reference_forms(raw, uri):
    assert parse_model_ref(raw).uri == uri


@pytest.mark.parametrize("raw", ["models:/x", "ws:/x", "azureml:x", "runs:/only", "models:/a/b/c", "models:/a/"])
def test_malformed_references_name_the_accepted_forms(raw):
    with pytest.raises(ValueError, match="models:/NAME/VERSION"):
        parse_model_ref(raw)


@pytest.fixture(scope="module")
def registry(demo_registry: str) -> MlflowClient:
    return MlflowClient()


@pytest.mark.parametrize("raw,version", [
    ("models:/demo-classifier/1", "1"),
    ("models:/demo-classifier/2", "2"),
    ("models:/demo-classifier@blue", "1"),
    ("models:/demo-classifier@green", "2"),
    ("models:/demo-classifier/latest", "2"),
    ("ws:/demo-classifier:1", "1"),
    ("azureml:demo-classifier:2", "2"),
    ("azureml:demo-classifier@latest", "2"),
])
def test_registry_forms_resolve_to_pinned_versions_and_load(registry, raw, version):
    loaded = load_model(raw)
    assert loaded.version == version
    assert loaded.resolved.uri == f"models:/demo-classifier/{version}"
    assert (loaded.path / "MLmodel").is_file()
    assert loaded.input_columns[:2] == ["mean_radius", "mean_texture"] and len(loaded.input_columns) == 30
    predictions = loaded.predict(loaded.input_example)
    assert len(predictions) == len(loaded.input_example) and set(predictions) <= {0, 1}


def test_runs_and_path_forms(registry):
    mv = registry.get_model_version("demo-classifier", "1")
    by_run = load_model(f"runs:/{mv.run_id}/model")
    assert by_run.version == mv.run_id
    by_path = load_model(str(by_run.path))
    assert by_path.version != str(by_run.path) and len(by_path.version) == 12  # a content hash, not a path
    example = by_run.input_example
    assert list(by_run.predict(example)) == list(by_path.predict(example))


def test_versions_of_the_two_models_differ(registry):
    lr, rf = load_model("models:/demo-classifier@blue"), load_model("models:/demo-classifier@green")
    assert type(lr.pyfunc.get_raw_model()).__name__ == "Pipeline"
    assert type(rf.pyfunc.get_raw_model()).__name__ == "RandomForestClassifier"
    assert len(rf.pyfunc.get_raw_model().estimators_) == 100


@pytest.mark.parametrize("raw,fragment", [
    ("models:/demo-classifier/9", "version 9 of registered model 'demo-classifier' not found in sqlite:"),
    ("models:/demo-classifier@nope", "alias 'nope' of registered model 'demo-classifier' not found"),
    ("models:/no-such-model/1", "registered model 'no-such-model' not found"),
    ("models:/no-such-model/latest", "registered model 'no-such-model' not found"),
    ("models:/demo-classifer/1", "registered model 'demo-classifer' not found in sqlite:"),
    ("runs:/deadbeef/model", "runs:/deadbeef/model: not found in sqlite:"),
    ("/definitely/not/here", "no MLflow model at /definitely/not/here"),
])
def test_missing_models_give_one_clear_line(registry, raw, fragment):
    with pytest.raises(ModelNotFound) as info:
        resolve(raw)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_training_is_idempotent(demo_registry, registry):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "training"))
    import train

    sys.path.pop(0)
    before = len(registry.search_model_versions("name='demo-classifier'"))
    assert train.main([]) == 0
    assert len(registry.search_model_versions("name='demo-classifier'")) == before == 2


def test_requirement_mismatch_warns_but_loads(registry, tmp_path, caplog):
    src = load_model("models:/demo-classifier/1").path
    copy = tmp_path / "m"
    import shutil

    shutil.copytree(src, copy)
    (copy / "requirements.txt").write_text("scikit-learn==0.0.1\nmlflow==0.0.2\n")
    assert requirement_mismatches(copy)[0].startswith("scikit-learn==0.0.1 (installed ")
    with caplog.at_level(logging.WARNING, logger="scorer.models"):
        loaded = load_model(str(copy))
    assert loaded.predict(loaded.input_example) is not None
    assert "other package versions" in caplog.text


def test_tracking_uri_is_the_session_registry(registry):
    assert mlflow.get_tracking_uri().startswith("sqlite:") or "sqlite" in MlflowClient()._tracking_client.tracking_uri


# --- scoring scripts ------------------------------------------------------------------------------

def test_scoring_script_contract(tmp_path, monkeypatch):
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    (tmp_path / "helper.py").write_text("FACTOR = 3\n")
    (tmp_path / "score.py").write_text(
        "import os\nimport helper\nstate = {}\n"
        "def init():\n    state['dir'] = os.environ['AZUREML_MODEL_DIR']\n"
        "def run(data):\n    return {'echo': data, 'factor': helper.FACTOR, 'dir': state['dir']}\n")
    script = load_scoring_script(tmp_path, "score.py", model_dir=tmp_path / "model")
    assert script.run("x") == {"echo": "x", "factor": 3, "dir": str(tmp_path / "model")}


@pytest.mark.parametrize("body,fragment", [
    ("def run(data):\n    return data\n", "has no init()"),
    ("def init():\n    pass\n", "has no run()"),
    ("raise RuntimeError('boom at import')\n", "failed to import: RuntimeError: boom at import"),
    ("def init():\n    raise ValueError('no weights')\ndef run(d):\n    return d\n", "init() raised ValueError"),
])
def test_bad_scoring_scripts_are_clear_errors(tmp_path, body, fragment):
    (tmp_path / "score.py").write_text(body)
    with pytest.raises(ScriptError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_scoring_script(tmp_path, "score.py")


def test_missing_scoring_script(tmp_path):
    with pytest.raises(ScriptError, match="does not exist"):
        load_scoring_script(tmp_path, "nope.py")


def test_input_example_without_loading_the_model(registry):
    from scorer.models import load_input_example

    example = load_input_example("models:/demo-classifier@green")
    assert list(example.columns) == load_model("models:/demo-classifier/2").input_columns
    assert len(example) == 5
