"""Batch test ground: one local Ray for the session (on 127.0.0.1), real MLflow models saved in
the session (the demo ones plus a test model whose behaviour the deployment's environment
variables switch on: poison rows, one-time sleeps, one-time kill -9, per-mini-batch delays)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

# Ray turns 127.0.0.1 into the machine's routable address unless told that clusters are off.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


@pytest.fixture(scope="session")
def ray_session() -> str:
    """One local Ray for the session's in-process jobs, started as a job starts its own."""
    import ray

    from batch.pool import start_ray

    _, address = start_ray(None, debug=False)
    yield address
    ray.shutdown()


def _behaviour_model():
    """Defined inside a function so that cloudpickle stores the class by value (actors import no tests)."""
    import mlflow.pyfunc

    class Behaviour(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import os
            import random
            import signal
            import time
            from pathlib import Path

            x = model_input["x"].to_numpy(dtype=float)
            delay = float(os.environ.get("TEST_DELAY_MAX", "0") or 0)
            if delay:
                time.sleep(random.uniform(0, delay))
            fixed = float(os.environ.get("TEST_DELAY", "0") or 0)
            if fixed:
                time.sleep(fixed)
            marker = os.environ.get("TEST_MARKER_DIR", "")
            sleep_on = os.environ.get("TEST_SLEEP_ON")
            if sleep_on and float(sleep_on) in x and marker:
                m = Path(marker) / "slept"
                if not m.exists():
                    m.touch()
                    time.sleep(60)
            kill_on = os.environ.get("TEST_KILL_ON")
            if kill_on and float(kill_on) in x and marker:
                m = Path(marker) / "killed"
                if not m.exists():
                    m.touch()
                    os.kill(os.getpid(), signal.SIGKILL)
            if os.environ.get("TEST_POISON") and (x < 0).any():
                raise ValueError(f"poison row: x={float(x[x < 0][0])}")
            return x * 2

    return Behaviour()


@pytest.fixture(scope="session")
def features() -> pd.DataFrame:
    """The breast-cancer features the demo models were trained on, with the signature's column names."""
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    df.columns = [c.replace(" ", "_") for c in df.columns]
    return df


@pytest.fixture(scope="session")
def models(demo_registry: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("models")
    frame = pd.DataFrame({"x": np.arange(5, dtype=float)})
    sig = infer_signature(frame, np.arange(5, dtype=float))
    path = root / "behaviour"
    mlflow.pyfunc.save_model(str(path), python_model=_behaviour_model(), signature=sig)
    return {"behaviour": str(path), "demo": demo_registry}


def write_yaml(path: Path, **fields) -> Path:
    doc = {"name": "t", "type": "batch", "retry_settings": {"max_retries": 2, "timeout": 30},
           "error_threshold": -1, "logging_level": "info"}
    doc.update(fields)
    path.write_text(yaml.safe_dump(doc))
    return path


def write_x(path: Path, values, fmt: str | None = None) -> Path:
    df = pd.DataFrame({"x": np.asarray(values, dtype=float)})
    fmt = fmt or path.suffix.lstrip(".")
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


def run_cli(*args: str) -> int:
    from scorer.cli import main

    return main(list(args))


def summary(out: Path) -> dict:
    return json.loads((out / "job_summary.json").read_text())


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "scorer.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(REPO))


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def commits(out: Path) -> int:
    j = out / ".scorer-batch" / "journal.jsonl"
    if not j.exists():
        return 0
    return sum(1 for line in j.read_text().splitlines() if '"commit"' in line)
