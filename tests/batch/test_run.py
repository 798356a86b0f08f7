"""Whole jobs on the session's local Ray, in-process (`scorer.cli.main`), with real MLflow models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import REPO, run_cli, summary, write_x, write_yaml


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_scores_every_row_in_order(ray_session, models, features, tmp_path, fmt) -> None:
    data = tmp_path / "data"
    data.mkdir()
    parts = [features.iloc[:300], features.iloc[300:]]
    for i, part in enumerate(parts):
        p = data / f"part{i}.{fmt}"
        if fmt == "csv":
            part.to_csv(p, index=False)
        elif fmt == "parquet":
            part.reset_index(drop=True).to_parquet(p)
        else:
            part.to_json(p, orient="records", lines=True)
    out_name = "predictions.parquet" if fmt == "parquet" else "predictions.csv"
    dep = write_yaml(tmp_path / "dep.yaml", model="models:/demo-classifier@green", mini_batch_size=64,
                     resources={"instance_count": 2}, output_file_name=out_name)
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(data), "--output", str(out), "--keep-columns", "mean_radius") == 0
    got = pd.read_parquet(out / out_name) if fmt == "parquet" else pd.read_csv(out / out_name)
    assert list(got.columns) == ["file", "row", "mean_radius", "prediction"]
    assert got["file"].tolist() == [f"part0.{fmt}"] * 300 + [f"part1.{fmt}"] * (len(features) - 300)
    assert got["row"].tolist() == list(range(300)) + list(range(len(features) - 300))
    expected = mlflow.pyfunc.load_model("models:/demo-classifier/2").predict(features)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), np.asarray(expected))
    np.testing.assert_allclose(got["mean_radius"].to_numpy(), features["mean_radius"].to_numpy())
    s = summary(out)
    assert s["status"] == "completed" and s["exit_code"] == 0
    assert s["model"]["version"] == "2" and s["model"]["uri"] == "models:/demo-classifier/2"
    assert s["items"] == {"total": len(features), "succeeded": len(features), "failed": 0}
    assert s["mini_batches"]["total"] == 5 + 5 and s["ray_address"].startswith("127.0.0.1:")
    assert (out / "errors.jsonl").read_text() == ""


def test_output_order_survives_random_delays(ray_session, models, tmp_path) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(2000))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=50,
                     resources={"instance_count": 2}, environment_variables={"TEST_DELAY_MAX": "0.05"})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    got = pd.read_csv(out / "predictions.csv")
    assert got["row"].tolist() == list(range(2000))
    assert got["prediction"].tolist() == [2.0 * i for i in range(2000)]


def test_poison_rows_are_isolated_by_splitting(ray_session, models, tmp_path) -> None:
    values = np.arange(1000, dtype=float)
    bad = [3, 404, 405, 999]
    values[bad] = -1
    src = write_x(tmp_path / "x.parquet", values)
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=200,
                     retry_settings={"max_retries": 1, "timeout": 30}, environment_variables={"TEST_POISON": "1"})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    got = pd.read_csv(out / "predictions.csv")
    assert got["row"].tolist() == [i for i in range(1000) if i not in bad]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["file"], e["row"]) for e in errors] == [("x.parquet", i) for i in bad]
    assert "poison row" in errors[0]["error"]
    s = summary(out)
    assert s["status"] == "completed_with_errors" and s["exit_code"] == 0
    assert s["items"] == {"total": 1000, "succeeded": 996, "failed": 4}
    assert s["mini_batches"]["failed"] == 3 and s["mini_batches"]["retried"] == 3
    assert "ValueError" in s["first_errors"]


def test_threshold_crossing_stops_within_seconds(ray_session, models, tmp_path) -> None:
    values = np.arange(4000, dtype=float)
    values[::7] = -1  # poison everywhere
    src = write_x(tmp_path / "x.csv", values)
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100, error_threshold=3,
                     retry_settings={"max_retries": 0, "timeout": 30},
                     environment_variables={"TEST_POISON": "1", "TEST_DELAY": "0.2"})
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 1
    assert time.monotonic() - t0 < 20  # the whole job would take > 40 s of delays
    s = summary(out)
    assert s["status"] == "failed" and s["exit_code"] == 1
    assert s["items"]["failed"] > 3 and s["items"]["total"] < 4000
    assert "ValueError" in s["first_errors"] and "error_threshold" in s["message"]
    assert len((out / "errors.jsonl").read_text().splitlines()) >= 1


def test_sleeping_mini_batch_times_out_and_is_retried(ray_session, models, tmp_path) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(400))
    marker = tmp_path / "marker"
    marker.mkdir()
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100,
                     retry_settings={"max_retries": 2, "timeout": 3},
                     environment_variables={"TEST_SLEEP_ON": "150", "TEST_MARKER_DIR": str(marker)})
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    assert time.monotonic() - t0 < 40
    assert (marker / "slept").exists()
    s = summary(out)
    assert s["timeouts"] == 1 and s["pool"]["replaced"] == 1 and s["mini_batches"]["retried"] == 1
    assert pd.read_csv(out / "predictions.csv")["row"].tolist() == list(range(400))


def test_timeout_after_retries_fails_the_whole_mini_batch(ray_session, models, tmp_path) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(300))
    marker = tmp_path / "marker"
    marker.mkdir()
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100,
                     retry_settings={"max_retries": 0, "timeout": 2},
                     environment_variables={"TEST_SLEEP_ON": "150", "TEST_MARKER_DIR": str(marker)})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["row"] for e in errors] == list(range(100, 200))
    assert errors[0]["error"].startswith("Timeout")
    assert summary(out)["status"] == "completed_with_errors"


def test_actor_killed_mid_job_is_replaced(ray_session, models, tmp_path) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(600))
    marker = tmp_path / "marker"
    marker.mkdir()
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100,
                     resources={"instance_count": 2},
                     environment_variables={"TEST_KILL_ON": "250", "TEST_MARKER_DIR": str(marker)})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    assert (marker / "killed").exists()
    s = summary(out)
    assert s["actor_deaths"] == 1 and s["pool"]["replaced"] == 1 and s["items"]["failed"] == 0
    assert pd.read_csv(out / "predictions.csv")["row"].tolist() == list(range(600))


def test_files_mode_with_an_azure_style_script(ray_session, tmp_path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "batch_score.py").write_text(
        "import os\n"
        "def init():\n    global prefix\n    prefix = os.environ.get('PREFIX', '?')\n"
        "def run(mini_batch):\n"
        "    out = []\n"
        "    for path in mini_batch:\n"
        "        if 'bad' in os.path.basename(path):\n            raise ValueError('bad file')\n"
        "        out.append(prefix + open(path).read().strip())\n"
        "    return out\n")
    data = tmp_path / "docs"
    data.mkdir()
    for i in range(7):
        (data / f"doc{i}.txt").write_text(f"text{i}")
    (data / "doc3bad.txt").write_text("x")
    dep = write_yaml(tmp_path / "dep.yaml", code_configuration={"code": "./src", "scoring_script": "batch_score.py"},
                     mini_batch_size=3, environment_variables={"PREFIX": "p-"})
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(data), "--output", str(out)) == 0
    got = pd.read_csv(out / "predictions.csv")
    assert list(got.columns) == ["file", "prediction"]
    names = sorted(p.name for p in data.iterdir())
    assert names[4] == "doc3bad.txt"  # the second mini-batch holds the bad file: files mode fails it whole
    good = names[:3] + names[6:]
    assert [Path(f).name for f in got["file"]] == good
    assert got["prediction"].tolist() == [f"p-text{n[3]}" for n in good]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [Path(e["file"]).name for e in errors] == names[3:6]
    assert errors[0]["error"] == "ValueError: bad file"
    s = summary(out)
    assert s["input_mode"] == "files" and s["items"]["failed"] == 3


def test_bad_inputs_are_refused_with_exit_2(ray_session, models, tmp_path, capsys) -> None:
    dep = write_yaml(tmp_path / "dep.yaml", model="models:/demo-classifier@blue")
    wrong = write_x(tmp_path / "x.csv", np.arange(10))
    assert run_cli("batch", str(dep), "--input", str(wrong), "--output", str(tmp_path / "o1")) == 2
    err = capsys.readouterr().err
    assert "lack column(s) the model signature requires: mean_radius" in err
    assert not (tmp_path / "o1").exists()
    strings = tmp_path / "s.csv"
    strings.write_text("x\nabc\n")
    dep2 = write_yaml(tmp_path / "dep2.yaml", model=models["behaviour"])
    assert run_cli("batch", str(dep2), "--input", str(strings), "--output", str(tmp_path / "o2")) == 2
    assert "column 'x': the model expects number" in capsys.readouterr().err
    header_only = tmp_path / "h.csv"
    header_only.write_text("x\n")
    assert run_cli("batch", str(dep2), "--input", str(header_only), "--output", str(tmp_path / "o3")) == 2
    assert "no rows" in capsys.readouterr().err
    dep3 = write_yaml(tmp_path / "dep3.yaml", model="models:/demo-classifier/42")
    assert run_cli("batch", str(dep3), "--input", str(wrong), "--output", str(tmp_path / "o4")) == 2
    assert "version 42" in capsys.readouterr().err


def test_an_optional_signature_column_may_be_absent(ray_session, tmp_path, capsys) -> None:
    """A column the signature marks `required: false` is not asked of the inputs (MLflow's own
    enforcement lets it be absent); a required one still is."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    from tests.batch.conftest import _behaviour_model

    sig = ModelSignature(Schema([ColSpec("double", "x"), ColSpec("double", "weight", required=False)]),
                         Schema([ColSpec("double")]))
    path = tmp_path / "optional"
    mlflow.pyfunc.save_model(str(path), python_model=_behaviour_model(), signature=sig)
    dep = write_yaml(tmp_path / "dep.yaml", model=str(path))
    src = write_x(tmp_path / "x.csv", np.arange(5))
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0, capsys.readouterr().err
    assert pd.read_csv(out / "predictions.csv").iloc[:, -1].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    (tmp_path / "w.csv").write_text("weight\n1.0\n")
    assert run_cli("batch", str(dep), "--input", str(tmp_path / "w.csv"), "--output", str(tmp_path / "o2")) == 2
    assert "lack column(s) the model signature requires: x " in capsys.readouterr().err


def test_existing_output_refused_overwrite_and_finished_resume(ray_session, models, tmp_path, capsys) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(300))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100)
    out = tmp_path / "out"
    args = ["batch", str(dep), "--input", str(src), "--output", str(out)]
    assert run_cli(*args) == 0
    before = (out / "predictions.csv").read_bytes(), (out / "job_summary.json").read_bytes()
    assert run_cli(*args) == 2
    assert "holds a previous job" in capsys.readouterr().err
    assert run_cli(*args, "--resume") == 0  # finished: changes nothing
    assert ((out / "predictions.csv").read_bytes(), (out / "job_summary.json").read_bytes()) == before
    write_x(src, np.arange(301))
    assert run_cli(*args, "--resume") == 2
    assert "inputs changed: modified" in capsys.readouterr().err
    assert run_cli(*args, "--overwrite") == 0
    assert len(pd.read_csv(out / "predictions.csv")) == 301


def test_resume_refuses_a_changed_model_version(ray_session, models, tmp_path, capsys) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    name = "resume-check"
    client.create_registered_model(name)
    for _ in range(2):
        v = client.create_model_version(name, models["behaviour"])
    client.set_registered_model_alias(name, "live", "1")
    src = write_x(tmp_path / "x.csv", np.arange(300))
    dep = write_yaml(tmp_path / "dep.yaml", model=f"models:/{name}@live", mini_batch_size=100)
    out = tmp_path / "out"
    args = ["batch", str(dep), "--input", str(src), "--output", str(out)]
    assert run_cli(*args) == 0
    journal = out / ".scorer-batch" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:2]) + "\n")  # as if stopped after one mini-batch
    client.set_registered_model_alias(name, "live", v.version)
    assert run_cli(*args, "--resume") == 2
    assert "model version changed" in capsys.readouterr().err
    client.set_registered_model_alias(name, "live", "1")
    assert run_cli(*args, "--resume") == 0
    got = pd.read_csv(out / "predictions.csv")
    assert got["row"].tolist() == list(range(300))
    assert summary(out)["resumed_after_mini_batches"] == 1


def test_seed_batch_yaml_runs_as_written(ray_session, demo_registry, features, tmp_path, caplog) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        client.get_registered_model("my-model")
    except Exception:
        client.create_registered_model("my-model")
        source = client.get_model_version("demo-classifier", "1").source
        client.create_model_version("my-model", source)
    src = tmp_path / "in.csv"
    features.iloc[:200].to_csv(src, index=False)
    out = tmp_path / "out"
    code = run_cli("batch", str(REPO / "configs" / "seeds" / "batch-deployment.yaml"), "--input", str(src),
                   "--output", str(out))
    assert code == 0
    s = summary(out)
    assert s["model"]["uri"] == "models:/my-model/1"
    assert s["pool"] == {"requested": 10, "actors": 2, "replaced": 0, "nodes": 1,  # capped at the CPU count
                         "actors_by_node_ip": {"127.0.0.1": 2}}
    assert s["mini_batches"]["total"] == 10 and s["error_threshold"] == 3
    assert len(pd.read_csv(out / "predictions.csv")) == 200


def test_summary_only_writes_no_predictions(ray_session, models, tmp_path) -> None:
    src = write_x(tmp_path / "x.csv", np.arange(100))
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], output_action="summary_only")
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    assert not (out / "predictions.csv").exists()
    assert summary(out)["items"]["succeeded"] == 100
    assert pq  # parquet output is covered by the format test


def test_csv_whole_numbers_then_fractions_parse_as_the_model_wants(ray_session, models, tmp_path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("x\n" + "".join(f"{i}\n" for i in range(300_000)) + "0.5\n1.5\n")  # > 1 MB of integers first
    dep = write_yaml(tmp_path / "dep.yaml", model=models["behaviour"], mini_batch_size=100_000)
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(src), "--output", str(out)) == 0
    got = pd.read_csv(out / "predictions.csv")
    assert len(got) == 300_002 and got["prediction"].tolist()[-2:] == [1.0, 3.0]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_uri_inputs_go_through_pyarrow_filesystems(ray_session, models, features, tmp_path, fmt) -> None:
    """file:// URIs take the same path as s3:// or gs:// ones (pyarrow.fs), folder and glob alike."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    parts = {data / f"a.{fmt}": features.iloc[:200], data / "sub" / f"b.{fmt}": features.iloc[200:]}
    for p, part in parts.items():
        if fmt == "csv":
            part.to_csv(p, index=False)
        elif fmt == "parquet":
            part.reset_index(drop=True).to_parquet(p)
        else:
            part.to_json(p, orient="records", lines=True)
    dep = write_yaml(tmp_path / "dep.yaml", model="models:/demo-classifier@blue", mini_batch_size=128)
    expected = np.asarray(mlflow.pyfunc.load_model("models:/demo-classifier/1").predict(features))
    for raw in (data.as_uri(), f"{data.as_uri()}/**/*.{fmt}"):
        out = tmp_path / f"out-{len(raw)}"
        assert run_cli("batch", str(dep), "--input", raw, "--output", str(out)) == 0
        got = pd.read_csv(out / "predictions.csv")
        assert got["file"].tolist() == [f"a.{fmt}"] * 200 + [f"sub/b.{fmt}"] * (len(features) - 200)
        np.testing.assert_array_equal(got["prediction"].to_numpy(), expected)
        assert summary(out)["inputs"][0].startswith("file://")


def test_unknown_uri_scheme_is_refused_before_work(ray_session, models, tmp_path, capsys) -> None:
    dep = write_yaml(tmp_path / "dep.yaml", model="models:/demo-classifier@blue")
    assert run_cli("batch", str(dep), "--input", "nosuchfs://bucket/data", "--output", str(tmp_path / "o")) == 2
    assert "nosuchfs://bucket/data: cannot be listed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
