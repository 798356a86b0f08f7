"""`scorer stop ENDPOINT --address ADDR`: remove an endpoint's replica actors from a Ray cluster.

A router that exits takes its own actors with it (Ray ends what a driver owns); this is for what a
router could not clean up (killed with SIGKILL, its node lost). Actors are found by name in the
`scorer` namespace: `scorer:{endpoint}:{deployment}:{index}:{random}`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys


def endpoint_actors(names: list[str], endpoint: str, deployment: str | None = None) -> list[str]:
    """The actor names that belong to `endpoint` (and `deployment`, if given)."""
    prefix = f"scorer:{endpoint}:" + (f"{deployment}:" if deployment else "")
    return sorted(n for n in names if n.startswith(prefix))


def run_stop(endpoint: str, address: str, deployment: str | None = None) -> int:
    """Exit 0 (also when there was nothing to stop), 1 when the cluster cannot be joined."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from serving.replicas.ray_actor import NAMESPACE

    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"scorer stop: cannot join the Ray cluster at {address}: {cause[:300]}", file=sys.stderr)
        return 1
    try:
        names = endpoint_actors(list(ray.util.list_named_actors()), endpoint, deployment)
        stopped = 0
        for name in names:
            with contextlib.suppress(ValueError):  # gone meanwhile
                ray.kill(ray.get_actor(name), no_restart=True)
                stopped += 1
        what = f"endpoint {endpoint}" + (f" deployment {deployment}" if deployment else "")
        print(f"scorer stop: {what}: stopped {stopped} replica actor(s)" if stopped else
              f"scorer stop: {what}: no replica actors on the cluster")
        return 0
    finally:
        ray.shutdown()
