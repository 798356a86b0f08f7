"""Azure ML's own example files (tests/fixtures/azureml, MIT) as written: `scorer validate`
accepts every endpoint and deployment it can run and refuses the rest in one line each; `$schema`
decides what a file is; files given together are read the way `serve` reads them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scorer.spec import SpecError, detect_kind, load_any, load_endpoint
from scorer.validate import run_validate

REPO = Path(__file__).resolve().parents[2]
AZURE = REPO / "tests" / "fixtures" / "azureml"

# Accepted before this change (16) and after.
ACCEPTED_BEFORE = [
    "online/deploy-with-packages/custom-model/model-deployment.yml",
    "online/deploy-with-packages/mlflow-model/model-deployment.yml",
    "online/managed/binary-payloads/binary-payloads-deployment.yml",
    "online/managed/inference-schema/deployment-numpy.yml",
    "online/managed/inference-schema/deployment-pandas.yml",
    "online/managed/inference-schema/deployment-standard.yml",
    "online/managed/keyvault/keyvault-deployment.yml",
    "online/managed/openapi/deployment.yml",
    "online/managed/sample/blue-deployment-with-curated-env.yml",
    "online/managed/sample/blue-deployment-with-registered-assets.yml",
    "online/managed/sample/blue-deployment.yml",
    "online/managed/sample/green-deployment-with-curated-env.yml",
    "online/managed/sample/green-deployment-with-registered-assets.yml",
    "online/managed/sample/green-deployment.yml",
    "online/managed/vnet/mlflow/blue-deployment-vnet.yml",
    "online/managed/vnet/sample/blue-deployment-vnet.yml",
]
# Refused before only because of scorer bugs (39).
FIXED = [
    "batch/deploy-models/custom-outputs-parquet/deployment.yml",
    "batch/deploy-models/custom-outputs-parquet/endpoint.yml",
    "batch/deploy-models/heart-classifier-mlflow/deployment-custom/deployment.yml",
    "batch/deploy-models/heart-classifier-mlflow/deployment-simple/deployment.yml",
    "batch/deploy-models/heart-classifier-mlflow/endpoint.yml",
    "batch/deploy-models/huggingface-text-summarization/deployment.yml",
    "batch/deploy-models/huggingface-text-summarization/endpoint.yml",
    "batch/deploy-models/imagenet-classifier/deployment-by-batch.yml",
    "batch/deploy-models/imagenet-classifier/deployment-by-file.yml",
    "batch/deploy-models/imagenet-classifier/endpoint.yml",
    "batch/deploy-models/mnist-classifier/deployment-keras/deployment.yml",
    "batch/deploy-models/mnist-classifier/deployment-torch/deployment.yml",
    "batch/deploy-models/mnist-classifier/endpoint.yml",
    "batch/deploy-models/openai-embeddings/deployment.yml",
    "batch/deploy-models/openai-embeddings/endpoint.yml",
    "batch/deploy-pipelines/batch-scoring-with-preprocessing/endpoint.yml",
    "batch/deploy-pipelines/hello-batch/endpoint.yml",
    "batch/deploy-pipelines/training-with-components/endpoint.yml",
    "online/custom-container/r/multimodel-plumber/r-endpoint.yml",
    "online/custom-container/tfserving/half-plus-two/tfserving-endpoint.yml",
    "online/custom-container/torchserve/densenet/torchserve-endpoint.yml",
    "online/deploy-with-packages/custom-model/endpoint.yml",
    "online/deploy-with-packages/mlflow-model/endpoint.yml",
    "online/kubernetes/kubernetes-blue-deployment.yml",
    "online/kubernetes/kubernetes-endpoint.yml",
    "online/kubernetes/kubernetes-green-deployment.yml",
    "online/managed/managed-identities/1-sai-create-endpoint.yml",
    "online/managed/managed-identities/1-uai-create-endpoint.yml",
    "online/managed/managed-identities/2-sai-deployment.yml",
    "online/managed/managed-identities/2-uai-deployment.yml",
    "online/managed/sample/endpoint.yml",
    "online/managed/vnet/mlflow/endpoint.yml",
    "online/managed/vnet/sample/endpoint.yml",
    "online/ncd/create-endpoint.yaml",
    "online/ncd/lightgbm-deployment.yaml",
    "online/ncd/sklearn-deployment-with-script.yaml",
    "online/ncd/sklearn-deployment.yaml",
    "online/triton/single-model/create-managed-deployment.yaml",
    "online/triton/single-model/create-managed-endpoint.yaml",
]
# Refused, rightly: (file, what the one line says).
REFUSED = [
    ("batch/deploy-pipelines/batch-scoring-with-preprocessing/deployment.yml", "pipeline"),
    ("batch/deploy-pipelines/hello-batch/deployment-from-job.yml", "pipeline"),
    ("batch/deploy-pipelines/hello-batch/deployment.yml", "pipeline"),
    ("batch/deploy-pipelines/training-with-components/deployment-onehot/deployment.yml", "pipeline"),
    ("batch/deploy-pipelines/training-with-components/deployment-ordinal/deployment.yml", "pipeline"),
    ("online/custom-container/minimal/multimodel/minimal-multimodel-deployment.yml", "template"),
    ("online/custom-container/minimal/multimodel/minimal-multimodel-endpoint.yml", "template"),
    ("online/custom-container/minimal/single-model/conda-in-dockerfile/"
     "minimal-single-model-conda-in-dockerfile-deployment.yml", "template"),
    ("online/custom-container/minimal/single-model/conda-in-dockerfile/"
     "minimal-single-model-conda-in-dockerfile-endpoint.yml", "template"),
    ("online/custom-container/minimal/single-model/minimal-single-model-endpoint.yml", "template"),
    ("online/custom-container/minimal/single-model/pip-in-dockerfile/"
     "minimal-single-model-pip-in-dockerfile-deployment.yml", "template"),
    ("online/custom-container/mlflow/multideployment-scikit/mlflow-deployment.yml", "template"),
    ("online/custom-container/mlflow/multideployment-scikit/mlflow-endpoint.yml", "template"),
    ("online/custom-container/r/multimodel-plumber/r-deployment.yml", "template"),
    ("online/custom-container/tfserving/half-plus-two-integrated/half-plus-two-integrated-deployment.yml", "template"),
    ("online/custom-container/tfserving/half-plus-two/tfserving-deployment.yml", "template"),
    ("online/custom-container/torchserve/densenet/torchserve-deployment.yml", "template"),
    ("online/custom-container/triton/single-model/triton-cc-deployment.yml", "template"),
    ("online/custom-container/triton/single-model/triton-cc-endpoint.yml", "template"),
    ("online/deploy-with-packages/custom-model/deployment.yml", "package"),
    ("online/deploy-with-packages/mlflow-model/deployment.yml", "package"),
    ("online/managed/minimal/single-model-registered/deployment.yml", "template"),
]
REASONS = {"pipeline": "pipeline-component batch deployment", "package": "model: missing", "template": "{{"}


def validate(*names: str, root: Path = AZURE) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_validate([str(root / n) for n in names], out, err, offline=True)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_the_lists_cover_all_77_files():
    # the endpoint and deployment files; the one model folder copied for serving (online/ncd/) is not one
    files = sorted(str(p.relative_to(AZURE)) for p in AZURE.rglob("*.y*ml") if p.parent.name != "model")
    pinned = ACCEPTED_BEFORE + FIXED + [f for f, _ in REFUSED]
    assert len(files) == 77 and sorted(pinned) == files
    assert (len(ACCEPTED_BEFORE), len(FIXED), len(REFUSED)) == (16, 39, 22)
    assert "MIT License" in (AZURE / "LICENSE").read_text()


@pytest.mark.parametrize("name", ACCEPTED_BEFORE + FIXED)
def test_azure_files_scorer_can_run_validate(name):
    code, out, err = validate(name)
    assert code == 0, err
    assert out.startswith(f"{AZURE / name}: ok, ")


@pytest.mark.parametrize("name, reason", REFUSED)
def test_azure_files_scorer_cannot_run_are_refused_in_one_line(name, reason):
    code, out, err = validate(name)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(AZURE / name)), err
    assert REASONS[reason] in lines[0], lines[0]


def test_what_each_azure_file_is():
    kinds = {name: load_any(AZURE / name).kind for name in (
        "online/kubernetes/kubernetes-blue-deployment.yml", "online/managed/managed-identities/2-sai-deployment.yml",
        "online/managed/sample/endpoint.yml", "batch/deploy-models/mnist-classifier/endpoint.yml",
        "batch/deploy-models/mnist-classifier/deployment-torch/deployment.yml")}
    assert list(kinds.values()) == ["online_deployment", "online_deployment", "endpoint", "batch_endpoint",
                                    "batch_deployment"]
    ncd = load_any(AZURE / "online/ncd/sklearn-deployment.yaml").spec  # MLflow's no-code deployment
    assert ncd.model == str(AZURE / "online/ncd/sklearn-diabetes/model")
    k8s = load_any(AZURE / "online/kubernetes/kubernetes-blue-deployment.yml").spec
    assert k8s.type == "kubernetes" and k8s.resources.limits == {"cpu": "0.2", "memory": "200Mi"}
    torch = load_any(AZURE / "batch/deploy-models/mnist-classifier/deployment-torch/deployment.yml").spec
    assert torch.type == "batch" and torch.max_concurrency_per_instance == 2


def test_files_given_together_are_read_as_serve_reads_them():
    code, out, err = validate("online/kubernetes/kubernetes-endpoint.yml",
                              "online/kubernetes/kubernetes-blue-deployment.yml",
                              "online/kubernetes/kubernetes-green-deployment.yml",
                              "batch/deploy-models/mnist-classifier/endpoint.yml",
                              "batch/deploy-models/mnist-classifier/deployment-torch/deployment.yml")
    assert code == 0, err
    assert "deployment 'blue':" in out and "deployment 'green':" in out
    assert "kubernetes-blue-deployment.yml: ok, online deployment, read with" in out
    assert "mnist-classifier/endpoint.yml: ok, batch endpoint" in out
    assert "deployment-torch/deployment.yml: ok, batch deployment" in out


def test_a_deployment_without_endpoint_name_joins_the_only_endpoint(tmp_path):
    write(tmp_path, "ep.yaml", "name: ep\ntraffic: {blue: 100}\n")
    write(tmp_path, "blue.yaml", "name: blue\nmodel: models:/m/1\n")
    write(tmp_path, "other.yaml", "name: red\nendpoint_name: elsewhere\nmodel: models:/m/1\n")
    code, out, err = validate("ep.yaml", "blue.yaml", "other.yaml", root=tmp_path)
    assert code == 0, err
    assert f"{tmp_path / 'ep.yaml'}: ok, endpoint (with {tmp_path / 'blue.yaml'})" in out
    assert "traffic: blue 100%" in out
    assert f"{tmp_path / 'other.yaml'}: ok, online deployment" in out  # names another endpoint: alone
    write(tmp_path, "ep.yaml", "name: ep\ntraffic: {blue: 50, green: 50}\n")
    code, out, err = validate("ep.yaml", "blue.yaml", root=tmp_path)
    assert code == 2 and "no deployment named 'green'" in err


def test_schema_decides_and_an_unknown_schema_warns(tmp_path):
    azure = "https://azuremlschemas.azureedge.net/latest/"
    assert detect_kind({"$schema": azure + "managedOnlineDeployment.schema.json", "name": "x"}) == "online_deployment"
    assert detect_kind({"$schema": azure + "kubernetesOnlineEndpoint.schema.json", "model": "m"}) == "endpoint"
    assert detect_kind({"$schema": azure + "batchEndpoint.schema.json", "name": "x"}) == "batch_endpoint"
    assert detect_kind({"$schema": azure + "modelBatchDeployment.schema.json"}) == "batch_deployment"
    assert detect_kind({"$schema": "../configs/schema/batch.schema.json", "name": "x"}) == "batch_deployment"
    assert detect_kind({"$schema": "./deployment.schema.json", "name": "x"}) == "online_deployment"
    assert detect_kind({"type": "kubernetes", "resources": {"requests": {"cpu": 1}}}) == "online_deployment"
    assert detect_kind({"name": "blue", "model": "models:/m/1"}) == "online_deployment"
    assert detect_kind({"name": "ep", "auth_mode": "key"}) == "endpoint"
    path = write(tmp_path, "odd.yaml", "$schema: https://example.com/thing.json\nname: ep\nauth_mode: key\n")
    loaded = load_any(path)
    assert loaded.kind == "endpoint"
    assert any("unknown $schema" in str(w) and ":1:" in str(w) for w in loaded.warnings), loaded.warnings


def test_inline_models(tmp_path):
    by_name = load_any(write(tmp_path, "d.yaml", """
        name: blue
        model: {name: credit, version: 3, type: mlflow_model}
    """)).spec
    assert by_name.model == "azureml:credit:3"
    with pytest.raises(SpecError, match="model.weights: unknown field in an inline model"):
        load_any(write(tmp_path, "d.yaml", "name: blue\nmodel: {path: m, weights: x}\n"))


def test_serve_refuses_an_endpoint_without_deployments_in_one_line(tmp_path):
    path = write(tmp_path, "ep.yaml", "name: ep\nauth_mode: key\n")
    with pytest.raises(SpecError, match="deployments: empty"):
        load_endpoint(path)
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "serve", str(path), "--port", "9"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "deployments: empty" in lines[0], out.stderr
