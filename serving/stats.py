"""Scoring requests answered by each deployment, from every route: success, failure, queue and
model time, as Triton's statistics extension reports them (`/v2/models/{name}/stats`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Counts:
    success: int = 0
    success_ns: int = 0
    fail: int = 0
    fail_ns: int = 0
    queue: int = 0
    queue_ns: int = 0
    compute: int = 0
    compute_ns: int = 0
    last_ms: int = 0


@dataclass
class InferStats:
    """Scoring requests answered by each deployment (every route), for Triton's statistics extension."""

    by_deployment: dict[str, _Counts] = field(default_factory=dict)

    def answered(self, deployment: str, status: int, seconds: float, model_seconds: float | None) -> None:
        c = self.by_deployment.setdefault(deployment, _Counts())
        ns = int(seconds * 1e9)
        if status == 200:
            c.success, c.success_ns = c.success + 1, c.success_ns + ns
        else:
            c.fail, c.fail_ns = c.fail + 1, c.fail_ns + ns
        if model_seconds is not None:
            c.compute, c.compute_ns = c.compute + 1, c.compute_ns + int(model_seconds * 1e9)
        c.last_ms = int(time.time() * 1000)

    def queued(self, deployment: str, seconds: float) -> None:
        c = self.by_deployment.setdefault(deployment, _Counts())
        c.queue, c.queue_ns = c.queue + 1, c.queue_ns + int(seconds * 1e9)

    def model_stats(self, name: str, version: str, deployments: list[str]) -> dict[str, Any]:
        """Triton's per-model statistics for V2 model `name`, summed over `deployments`."""
        total = _Counts()
        for d in deployments:
            c = self.by_deployment.get(d)
            if c is None:
                continue
            for f in ("success", "success_ns", "fail", "fail_ns", "queue", "queue_ns", "compute", "compute_ns"):
                setattr(total, f, getattr(total, f) + getattr(c, f))
            total.last_ms = max(total.last_ms, c.last_ms)

        def pair(count: int, ns: int) -> dict[str, int]:
            return {"count": count, "ns": ns}

        return {"name": name, "version": version, "last_inference": total.last_ms,
                "inference_count": total.success, "execution_count": total.success,
                "inference_stats": {
                    "success": pair(total.success, total.success_ns), "fail": pair(total.fail, total.fail_ns),
                    "queue": pair(total.queue, total.queue_ns), "compute_input": pair(total.compute, 0),
                    "compute_infer": pair(total.compute, total.compute_ns), "compute_output": pair(total.compute, 0),
                    "cache_hit": pair(0, 0), "cache_miss": pair(0, 0)},
                "batch_stats": []}
