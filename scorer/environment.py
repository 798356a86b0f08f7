"""Process-wide defaults: telemetry off, embedded MLflow registry under `.scorer/`.

Every entry point (CLI, replicas, Ray actors, tests) calls `configure()` first so that the
same defaults hold in every process scorer starts.
"""

from __future__ import annotations

import os
from pathlib import Path

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def state_dir(cwd: Path | None = None) -> Path:
    """The `.scorer/` folder of the working directory; `SCORER_STATE_DIR` moves it (tests do)."""
    override = os.environ.get("SCORER_STATE_DIR")
    if override and cwd is None:
        return Path(override)
    return (cwd or Path.cwd()) / ".scorer"


def default_tracking_uri(cwd: Path | None = None) -> str:
    return f"sqlite:///{(state_dir(cwd) / 'mlflow.db').resolve()}"


def default_artifact_root(cwd: Path | None = None) -> Path:
    return (state_dir(cwd) / "artifacts").resolve()


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the embedded SQLite registry."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def configure() -> str:
    """Turn telemetry off and point MLflow at the registry; returns the tracking URI.

    Sets environment variables (not only MLflow globals) so that child processes inherit them.
    """
    for key, value in TELEMETRY_OFF.items():
        os.environ[key] = value
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_REGISTRY_URI", uri)
    return uri


def settle_heap() -> None:
    """Move what start-up left alive (MLflow, pandas, the model, the endpoint state) out of the
    garbage collector's reach, once a server is about to serve. A full collection walks every
    object: about 80 ms in a router on the dev machine, a stall every request in flight pays (the
    p99 at 64 connections). Frozen objects are never scanned or freed; what later requests
    allocate is collected as usual."""
    import gc

    gc.collect()
    gc.freeze()
