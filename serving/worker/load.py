"""Load what a replica serves, through the shared model runtime (`scorer.models.runtime`): an
MLflow model or an Azure scoring script, behind the scorer that speaks the serving protocol."""

from __future__ import annotations

from typing import Any

from scorer.models.runtime import MlflowRuntime, ScriptRuntime
from serving.worker.config import ReplicaConfig
from serving.worker.mlflow_scorer import MlflowScorer
from serving.worker.script_scorer import ScriptScorer


def build_scorer(cfg: ReplicaConfig) -> tuple[MlflowScorer | ScriptScorer, Any | None]:
    """(scorer, warm-up example). Raises with a one-line message when the model or script fails."""
    if cfg.scoring_script and cfg.code_dir:
        return ScriptScorer(ScriptRuntime.load(cfg.code_dir, cfg.scoring_script, cfg.model_path)), None
    if not cfg.model_path:
        raise RuntimeError("deployment has neither a model nor a scoring script")
    runtime = MlflowRuntime.load(cfg.model_path, name=cfg.model_ref or f"of deployment {cfg.deployment}",
                                 code_dir=cfg.code_dir)
    return MlflowScorer(runtime), runtime.input_example
