"""Session-wide test ground: a private `.scorer/` state folder and a real SQLite MLflow registry
holding the demo models, trained once per session by the real training script."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Set before any test module imports mlflow or ray, and inherited by every process tests start.
_STATE = Path(tempfile.mkdtemp(prefix="scorer-tests-"))
os.environ.update({
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "SCORER_STATE_DIR": str(_STATE / ".scorer"),
    "MLFLOW_TRACKING_URI": f"sqlite:///{_STATE / '.scorer' / 'mlflow.db'}",
    "MLFLOW_REGISTRY_URI": f"sqlite:///{_STATE / '.scorer' / 'mlflow.db'}",
    "GIT_PYTHON_REFRESH": "quiet",
})
(_STATE / ".scorer").mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def state_dir() -> Path:
    """The session's `.scorer/` folder (registry, artifacts, model cache, keys)."""
    return _STATE / ".scorer"


@pytest.fixture(scope="session")
def demo_registry(state_dir: Path) -> str:
    """Train and register demo-classifier v1 (LR, alias blue) and v2 (RF, alias green) once.

    Returns the registered model name."""
    sys.path.insert(0, str(REPO / "examples" / "training"))
    try:
        import train
    finally:
        sys.path.pop(0)
    assert train.main([]) == 0
    return train.MODEL_NAME
