"""Mini-batches already in the form MLflow's schema enforcement returns skip it (as a replica's
requests do); any other input goes through MLflow's enforcement, and the predictions are MLflow's
either way."""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from batch.worker import ScoringWorker
from scorer.models.registry import resolve
from scorer.models.runtime import load_runtime
from tests.batch.conftest import run_cli, summary, write_yaml


@pytest.fixture(scope="module")
def worker(models) -> ScoringWorker:
    w = ScoringWorker()
    w.runtime = load_runtime(model_dir=resolve("models:/demo-classifier/1").local_path, code_dir=None, script=None,
                             name="models:/demo-classifier/1")
    return w


def test_only_the_signatures_own_form_skips_the_enforcement(worker, features) -> None:
    table = pa.Table.from_pandas(features, preserve_index=False)
    assert worker.runtime is not None and worker.runtime.double_columns == tuple(features.columns)
    assert worker._enforced(table)
    assert not worker._enforced(table.select(list(reversed(table.column_names))))  # another order
    assert not worker._enforced(table.drop_columns([table.column_names[0]]))  # a column missing
    as_int = table.set_column(0, table.column_names[0], pa.array(np.arange(table.num_rows), pa.int64()))
    assert not worker._enforced(as_int)  # MLflow converts it
    as_f32 = table.set_column(0, table.column_names[0], table.column(0).cast(pa.float32()))
    assert not worker._enforced(as_f32)
    nulls = pa.array([None] + [1.0] * (table.num_rows - 1), pa.float64())
    assert not worker._enforced(table.set_column(0, table.column_names[0], nulls))


def test_a_script_never_skips_anything(tmp_path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\ndef run(mini_batch):\n    return list(mini_batch)\n")
    w = ScoringWorker()
    w.runtime = load_runtime(model_dir=None, code_dir=str(tmp_path), script="score.py", name="score.py")
    assert w.runtime.double_columns is None and not w._enforced(pa.table({"x": [1.0]}))


def test_other_input_still_meets_mlflows_enforcement(ray_session, models, features, tmp_path) -> None:
    """A Parquet file whose first column is int64 goes through MLflow's enforcement, which refuses
    it for a `double` column (as `mlflow models serve` does); the float64 one skips it and scores as
    MLflow's own predict scores it."""
    data = tmp_path / "data"
    data.mkdir()
    ints = features.copy()
    first = ints.columns[0]
    ints[first] = ints[first].round().astype("int64")
    ints.to_parquet(data / "a-ints.parquet")
    features.to_parquet(data / "b-floats.parquet")
    dep = write_yaml(tmp_path / "dep.yaml", model="models:/demo-classifier/1", mini_batch_size=200)
    out = tmp_path / "out"
    assert run_cli("batch", str(dep), "--input", str(data), "--output", str(out)) == 0
    n = len(features)
    assert summary(out)["items"] == {"total": 2 * n, "succeeded": n, "failed": n}
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["file"] for e in errors} == {"a-ints.parquet"} and len(errors) == n
    assert all(e["error"].startswith("MlflowException: Failed to enforce schema") for e in errors)
    got = pd.read_csv(out / "predictions.csv")
    assert set(got["file"]) == {"b-floats.parquet"}
    expected = np.asarray(mlflow.pyfunc.load_model("models:/demo-classifier/1").predict(features))
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected)
