"""Container resources from the deployments' Azure Kubernetes form `resources: {requests, limits}`."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from scorer.render.quantity import fmt, parse
from scorer.spec import OnlineDeployment

PLAIN = frozenset({"cpu", "memory", "ephemeral-storage"})
"""Resources that may be overcommitted; any other (nvidia.com/gpu) is an extended resource whose
request must equal its limit, so both are set to the larger of the two."""

Amounts = dict[str, Decimal]


class ResourceError(ValueError):
    """A quantity that Kubernetes would refuse; `loc` says where in the endpoint YAML."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _parse_all(name: str, part: str, values: dict[str, str | int | float]) -> Amounts:
    out: Amounts = {}
    for key, value in values.items():
        try:
            out[key] = parse(value)
        except ValueError as exc:
            raise ResourceError(("deployments", name, "resources", part, key), str(exc)) from exc
    return out


def per_replica(name: str, dep: OnlineDeployment, default_cpu: str, default_memory: str) -> tuple[Amounts, Amounts]:
    """One replica's (requests, limits), as Kubernetes would default them: a missing request is
    the limit when one is given, else the render default (cpu and memory only)."""
    res = dep.resources
    requests = _parse_all(name, "requests", dict(res.requests)) if res else {}
    limits = _parse_all(name, "limits", dict(res.limits)) if res else {}
    for key, amount in limits.items():
        requests.setdefault(key, amount)
    requests.setdefault("cpu", parse(default_cpu))
    requests.setdefault("memory", parse(default_memory))
    for key in [k for k in set(requests) | set(limits) if k not in PLAIN]:  # extended: request == limit
        requests[key] = limits[key] = max(requests.get(key, Decimal(0)), limits.get(key, Decimal(0)))
    return requests, limits


def total(parts: Iterable[tuple[int, Amounts, Amounts]], base: Amounts) -> dict[str, dict[str, str]]:
    """Sum of `count` x (requests, limits) over `parts`, plus `base` (the router). A cpu or memory
    limit is set only when every part has one: a partial sum would cap the pod below its needs."""
    parts = list(parts)
    requests: Amounts = dict(base)
    limits: Amounts = {}
    limited = set.intersection(*(set(lim) for _, _, lim in parts)) if parts else set()
    for count, req, lim in parts:
        for key, amount in req.items():
            requests[key] = requests.get(key, Decimal(0)) + count * amount
        for key, amount in lim.items():
            if key in limited or key not in PLAIN:
                limits[key] = limits.get(key, Decimal(0)) + count * amount
    for key, amount in base.items():
        if key in limits:
            limits[key] += amount
    out: dict[str, dict[str, str]] = {"requests": {k: fmt(k, v) for k, v in sorted(requests.items())}}
    if limits:
        out["limits"] = {k: fmt(k, v) for k, v in sorted(limits.items())}
    return out
