"""`scorer validate` looks every model up in the registry and reports every miss with a did-you-mean;
`--offline` checks the files only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scorer.models import check_references

REPO = Path(__file__).resolve().parents[2]


def test_every_miss_is_reported_with_a_did_you_mean(demo_registry, tmp_path):
    from mlflow.tracking import MlflowClient

    run_id = MlflowClient().get_model_version(demo_registry, "1").run_id
    (tmp_path / "empty").mkdir()
    models = {
        ("deployments", "ok1", "model"): f"models:/{demo_registry}@blue",
        ("deployments", "ok2", "model"): f"runs:/{run_id}/model",
        ("deployments", "ok3", "model"): "s3://bucket/not/checked/offline/or/online",
        ("deployments", "alias", "model"): f"models:/{demo_registry}@bleu",
        ("deployments", "name", "model"): "azureml:demo-clasifier:1",
        ("deployments", "version", "model"): f"ws:/{demo_registry}:7",
        ("deployments", "seed", "model"): "ws:/never-registered:1",  # no test registers it
        ("deployments", "run", "model"): f"runs:/{run_id}/no-model-here",
        ("deployments", "logged", "model"): "models:/m-0123456789abcdef0123456789abcdef",
        ("deployments", "folder", "model"): str(tmp_path / "empty"),
    }
    found = {p.loc[1]: p.message for p in check_references(models)}
    assert set(found) == {"alias", "name", "version", "seed", "run", "logged", "folder"}, found
    assert "alias 'bleu' of registered model 'demo-classifier' not found" in found["alias"]
    assert "did you mean 'blue'? aliases: blue, green" in found["alias"]
    assert "registered model 'demo-clasifier' not found" in found["name"]
    assert "(did you mean 'demo-classifier'?)" in found["name"]
    assert "version 7 of registered model 'demo-classifier' not found" in found["version"]
    assert "(versions: 1, 2)" in found["version"]
    assert "registered model 'never-registered' not found" in found["seed"]
    assert "has no MLflow model at 'no-model-here'" in found["run"]
    assert "logged model 'm-0123456789abcdef0123456789abcdef' not found" in found["logged"]
    assert "no MLmodel file" in found["folder"]
    assert all("\n" not in m for m in found.values())


def test_resolve_explains_a_typo_the_same_way(demo_registry):
    from scorer.models import ModelNotFound, resolve

    with pytest.raises(ModelNotFound, match=r"did you mean 'blue'\? aliases: blue, green"):
        resolve(f"models:/{demo_registry}@bleu")


def scorer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scorer.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_validate_resolves_models_and_offline_skips(demo_registry, tmp_path):
    ep = tmp_path / "ep.yaml"
    ep.write_text(f"name: ep\ntraffic: {{a: 50, b: 50}}\ndeployments:\n"
                  f"  a:\n    model: models:/{demo_registry}@bleu\n"
                  f"  b:\n    model: models:/demo-clasifier/1\n"
                  f"  c:\n    model: models:/{demo_registry}@green\n")
    seeds = ["configs/seeds/realtime-endpoint.yaml", "configs/seeds/batch-deployment.yaml"]
    out = scorer("validate", str(ep), "configs/endpoints/demo.yaml")
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert f"{ep}: invalid (2 problems)" in err
    assert f"{ep}:5: error: deployments.a.model: model models:/{demo_registry}@bleu: alias 'bleu'" in err
    assert f"{ep}:7: error: deployments.b.model: model models:/demo-clasifier/1: registered model " \
           "'demo-clasifier' not found" in err and "did you mean 'demo-classifier'?" in err
    assert "configs/endpoints/demo.yaml: ok, endpoint" in out.stdout
    assert "Traceback" not in err
    # the seeds' models, against a registry of their own (other tests register them in the session's)
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    out = scorer("validate", *seeds, env={"MLFLOW_TRACKING_URI": empty, "MLFLOW_REGISTRY_URI": empty})
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert "realtime-endpoint.yaml:9: error: deployments.blue.model: model ws:/thatmodel:1: registered model " \
           "'thatmodel' not found" in err
    assert "batch-deployment.yaml:6: error: model: model ws:/my-model:1: registered model 'my-model' not found" in err
    assert "Traceback" not in err

    from scorer.validate import run_validate

    out_text, err_text = io.StringIO(), io.StringIO()
    assert run_validate([str(ep), *(str(REPO / s) for s in seeds)], out_text, err_text, offline=True) == 0, \
        err_text.getvalue()
    assert f"{ep}: ok, endpoint" in out_text.getvalue()
