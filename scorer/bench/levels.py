"""Which concurrency levels to run: for an endpoint YAML, none past what its admission admits.

Past its admission bound (in flight + queued per deployment: 2 x
`max_concurrent_requests_per_instance` x replicas) a deployment answers 429, so a level above it
measures rejections, not scoring.
"""

from __future__ import annotations

from scorer.spec.models import Endpoint, OnlineDeployment

DEFAULT_USERS = (1, 8, 32, 64)


def deployment_bound(dep: OnlineDeployment) -> int:
    """The bound with the replicas the deployment starts with (`instance_count`)."""
    return 2 * dep.request_settings.max_concurrent_requests_per_instance * dep.instance_count


def admission_bound(endpoint: Endpoint, pinned: str = "") -> tuple[str, int]:
    """(deployment, bound) that limits the users a run can have without 429s.

    A pinned deployment gets every request. Unpinned, traffic picks a deployment per request, so
    all users can land on any deployment with traffic: the smallest of their bounds is the one
    that holds."""
    if pinned:
        return pinned, deployment_bound(endpoint.deployments[pinned])
    live = [n for n, pct in endpoint.traffic.items() if pct > 0 and n in endpoint.deployments]
    live = live or list(endpoint.deployments)
    name = min(live, key=lambda n: deployment_bound(endpoint.deployments[n]))
    return name, deployment_bound(endpoint.deployments[name])


def default_users(bound: int | None) -> list[int]:
    """1, 8, 32, 64 users, each capped at the admission bound (when known)."""
    if bound is None:
        return list(DEFAULT_USERS)
    return sorted({min(u, bound) for u in DEFAULT_USERS})
