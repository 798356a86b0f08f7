"""Every URI MLflow loads reaches MLflow (models:/m-ID, runs:/, file://, s3://, ...), and the version
clients see is the registry version, a run or logged-model id, or a short content hash: never a path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from scorer.models import ModelNotFound, content_version, load_model, parse_model_ref, resolve

HASH = re.compile(r"^[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An MLflow 3 logged model in the session's SQLite tracking store, as `log_model` returns it."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from scorer.environment import configure

    configure()
    art = tmp_path_factory.mktemp("logged-artifacts")
    client = MlflowClient()
    exp = client.get_experiment_by_name("uri-forms")
    exp_id = exp.experiment_id if exp else client.create_experiment("uri-forms", artifact_location=art.as_uri())
    x = pd.DataFrame({"a": [0.1, 0.9, 0.2, 0.8, 0.3, 0.7], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
                      "c": [0.5, 0.4, 0.6, 0.3, 0.5, 0.2]})
    y = [0, 1, 0, 1, 0, 1]
    with mlflow.start_run(experiment_id=exp_id) as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, y), name="model", input_example=x.head(2))
    folder = tmp_path_factory.mktemp("saved") / "my model"  # a space: file:// URIs encode it as %20
    mlflow.sklearn.save_model(LogisticRegression().fit(x, y), str(folder), input_example=x.head(2))
    return {"uri": info.model_uri, "id": info.model_id, "run": run.info.run_id, "folder": folder, "x": x}


def test_logged_model_uri_from_log_model_loads(logged):
    assert logged["uri"].startswith("models:/m-")
    loaded = load_model(logged["uri"])
    assert loaded.version == logged["id"] and loaded.resolved.uri == logged["uri"]
    assert list(loaded.predict(logged["x"])) == [0, 1, 0, 1, 0, 1]
    assert load_model(logged["uri"]).path == loaded.path  # fetched once into the cache
    by_run = load_model(f"runs:/{logged['run']}/model")  # the same model through its run
    assert by_run.version == logged["run"]
    assert list(by_run.predict(logged["x"])) == [0, 1, 0, 1, 0, 1]


def test_file_uri_of_a_local_folder(logged):
    folder: Path = logged["folder"]
    uri = folder.as_uri()
    assert "%20" in uri
    by_uri, by_path = load_model(uri), load_model(str(folder))
    assert by_uri.path == by_path.path == folder.resolve()
    assert by_uri.version == by_path.version == content_version(folder)
    assert HASH.match(by_uri.version) and str(folder) not in by_uri.version
    assert list(by_uri.predict(logged["x"])) == [0, 1, 0, 1, 0, 1]


def test_path_version_is_a_content_hash(logged, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(logged["folder"], a)
    shutil.copytree(logged["folder"], b)
    va = resolve(str(a)).version
    assert HASH.match(va) and va == resolve(str(b)).version  # equal copies, equal versions
    (a / "code" / "__pycache__").mkdir(parents=True)
    (a / "code" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0" * 10)
    assert resolve(str(a)).version == va  # importing a model's code does not make it a new version
    (a / "requirements.txt").write_text((a / "requirements.txt").read_text().replace("==", ">="))
    assert resolve(str(a)).version != va


def test_other_uris_are_fetched_by_mlflow_and_stored_by_content(logged, tmp_path):
    """`file://HOST/...` is not special to scorer: MLflow fetches it, as it would s3:// or gs://."""
    copy = tmp_path / "remote"
    shutil.copytree(logged["folder"], copy)
    uri = f"file://localhost{copy}"
    assert parse_model_ref(uri).kind == "uri"
    first = resolve(uri)
    assert first.version == content_version(copy) and first.uri == uri
    assert first.local_path != copy and (first.local_path / "MLmodel").is_file()
    assert resolve(uri).local_path == first.local_path  # same content, same cached folder
    (copy / "requirements.txt").write_text("scikit-learn\n")
    changed = resolve(uri)
    assert changed.version != first.version and changed.local_path != first.local_path
    assert list(load_model(changed).predict(logged["x"])) == [0, 1, 0, 1, 0, 1]


UNREACHABLE = ["s3://some-bucket/models/credit", "gs://some-bucket/models/credit", "dbfs:/models/credit",
               "wasbs://box@acct.blob.core.windows.net/credit", "hdfs://namenode/models/credit"]


@pytest.mark.parametrize("uri", UNREACHABLE)
def test_storage_uris_are_handed_to_mlflow(uri, monkeypatch, tmp_path):
    # nothing here may leave the machine: whichever client MLflow picks, it only sees 127.0.0.1
    for key, value in {"AWS_EC2_METADATA_DISABLED": "true", "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
                       "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "GCE_METADATA_HOST": "127.0.0.1:9",
                       "GCE_METADATA_IP": "127.0.0.1:9", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
                       "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=a;"
                       "AccountKey=eA==;BlobEndpoint=http://127.0.0.1:9/a;",
                       "HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    assert parse_model_ref(uri).kind == "uri"
    with pytest.raises(ModelNotFound) as info:
        resolve(uri)
    message = str(info.value)
    assert message.startswith(f"model {uri}: MLflow could not fetch it (") and "\n" not in message, message
    assert "unknown model reference" not in message


def test_spec_accepts_every_uri_form(tmp_path):
    from scorer.spec import load_any

    forms = [*UNREACHABLE, "models:/m-0123456789abcdef", "models:/credit/Production", "file://host/m",
             "mlflow-artifacts:/0/models/m", "azureml://registries/r/models/credit/versions/1"]
    body = "".join(f"  d{i}:\n    model: {uri}\n" for i, uri in enumerate(forms))
    path = tmp_path / "ep.yaml"
    path.write_text(f"name: ep\ntraffic: {{d0: 100}}\ndeployments:\n{body}")
    spec = load_any(path, check_paths=False).spec
    assert [d.model for d in spec.deployments.values()] == forms


def test_missing_logged_model_is_one_line(logged):
    with pytest.raises(ModelNotFound, match=r"logged model 'm-00000000000000000000000000000000' not found in sqlite:"):
        resolve("models:/m-00000000000000000000000000000000")


def test_serving_and_batch_report_the_version_not_the_folder(logged, demo_registry, tmp_path):
    """serve's endpoint state and batch's job header take the version from the resolved model."""
    from batch.runner import JobArgs, _prepare
    from scorer.spec import load_any, load_batch
    from serving.assemble import build_state
    from serving.replicas.supervisor import Timing

    folder = logged["folder"]
    ep = tmp_path / "ep.yaml"
    ep.write_text(f"name: ep\ntraffic: {{path: 100}}\ndeployments:\n  path: {{model: '{folder}'}}\n"
                  f"  uri: {{model: '{folder.as_uri()}'}}\n  logged: {{model: '{logged['uri']}'}}\n"
                  f"  registry: {{model: 'models:/{demo_registry}@blue'}}\n")
    state, unresolved = build_state(load_any(ep).spec, Timing())
    deployments = state.deployments
    assert not unresolved
    versions = {n: d.version for n, d in deployments.items()}
    assert versions == {"path": content_version(folder), "uri": content_version(folder), "logged": logged["id"],
                        "registry": "1"}
    assert deployments["path"].cfg.model_version == content_version(folder)

    (tmp_path / "in.csv").write_text("a,b,c\n0.1,1.0,0.5\n0.9,0.0,0.3\n")
    bd = tmp_path / "batch.yaml"
    bd.write_text(f"name: b\ntype: batch\nmodel: '{folder}'\n")
    out = tmp_path / "out"
    job = _prepare(JobArgs(deployment=str(bd), inputs=[str(tmp_path / "in.csv")], output=str(out)), out)
    assert job.header["model"]["version"] == content_version(folder)
    assert load_batch(bd).spec.model == str(folder)
