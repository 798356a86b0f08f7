"""Load what a replica serves: an MLflow model or an Azure scoring script, with its warm-up example."""

from __future__ import annotations

import logging
from typing import Any

from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.replica")


def build_scorer(cfg: ReplicaConfig) -> tuple[Any, Any]:
    """(scorer, warm-up example). Raises with a one-line message when the model or script fails."""
    if cfg.scoring_script and cfg.code_dir:
        from scorer.scoring_script import load_scoring_script
        from serving.worker.script_scorer import ScriptScorer

        script = load_scoring_script(cfg.code_dir, cfg.scoring_script,  # type: ignore[arg-type]
                                     cfg.model_path)  # type: ignore[arg-type]
        return ScriptScorer(script), None
    if cfg.code_dir:
        from scorer.scoring_script import add_code_path

        add_code_path(cfg.code_dir)  # type: ignore[arg-type]
    if not cfg.model_path:
        raise RuntimeError("deployment has neither a model nor a scoring script")
    import mlflow.pyfunc

    from serving.worker.mlflow_scorer import MlflowScorer

    pyfunc = mlflow.pyfunc.load_model(cfg.model_path)
    example = None
    try:
        example = pyfunc.metadata.load_input_example(cfg.model_path)
    except Exception as exc:
        log.warning("deployment %s: input example not loaded (%s); no warm-up", cfg.deployment, exc)
    return MlflowScorer(pyfunc), example
