"""What a replica process needs to start: plain data, picklable across the forkserver."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplicaConfig:
    deployment: str
    model_path: str | None  # local folder with an MLmodel file (resolved once by the router)
    model_version: str
    model_ref: str | None = None  # the model as the deployment writes it (shown; model_path never is)
    code_dir: str | None = None
    scoring_script: str | None = None
    max_concurrent: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    max_batch_size: int = 1  # adaptive batching: 1 = off
    max_batch_wait_ms: float = 2.0
