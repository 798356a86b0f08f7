"""`POST /admin/deployments/{name}/scale {"instances": N}` (admin key): the replica count of a
`default` deployment, or the floor of an autoscaled one, within [min_instances, max_instances]."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from scorer.spec.models import OnlineDeployment
from serving.errors import ScoringError
from serving.replicas.factory import runs_here

if TYPE_CHECKING:
    from serving.state import EndpointState


def parse_instances(body: bytes) -> int:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoringError(400, f"instances: body is not JSON ({exc}); expected {{\"instances\": N}}") from None
    if not isinstance(data, dict) or "instances" not in data:
        raise ScoringError(400, "instances: missing; expected {\"instances\": N}")
    n = data["instances"]
    if isinstance(n, bool) or not isinstance(n, int):
        raise ScoringError(400, f"instances: got {n!r}; expected a positive integer")
    if n < 1:
        raise ScoringError(400, f"instances: got {n}; expected a positive integer")
    return n


def check_bounds(n: int, spec: OnlineDeployment) -> None:
    """Within [min_instances, max_instances]; a fixed deployment without max_instances may go past
    instance_count, up to the instance limit that `scorer validate` also applies."""
    from scorer.spec.limits import MAX_INSTANCES

    s = spec.scale_settings
    lo = s.min_instances
    if s.max_instances is not None:
        hi, where = s.max_instances, "scale_settings.max_instances"
    elif s.type == "target_utilization":
        hi, where = spec.max_instances, "max_instances (scale_settings.max_instances is not set)"
    else:
        hi, where = MAX_INSTANCES.value(), f"the instance limit ({MAX_INSTANCES.env})"
    if n < lo:
        raise ScoringError(400, f"instances: {n} is below scale_settings.min_instances ({lo})")
    if n > hi:
        raise ScoringError(400, f"instances: {n} is above {where} ({hi})")


def check_local_capacity(state: EndpointState, name: str, n: int) -> None:
    """Local replicas are processes on this machine: the same per-CPU cap as `scorer serve`."""
    from scorer.spec.limits import MAX_REPLICAS_PER_CPU, usable_cpus

    cap = MAX_REPLICAS_PER_CPU.value() * usable_cpus()
    others = sum(d.replicas.active_count() for other, d in state.deployments.items()
                 if other != name and runs_here(d.spec.replica_handle))
    if others + n > cap:
        raise ScoringError(400, f"instances: {n} would make {others + n} local replicas; at most {cap} on this "
                           f"machine ({MAX_REPLICAS_PER_CPU.env} per CPU x {usable_cpus()} CPUs)")


async def apply(state: EndpointState, name: str, n: int) -> None:
    """Set the replica count (or an autoscaled deployment's floor) of deployment `name`."""
    dep = state.deployments.get(name)
    if dep is None:
        raise ScoringError(404, f"deployment {name!r} does not exist in endpoint {state.name}; "
                           f"deployments: {', '.join(sorted(state.deployments))}")
    check_bounds(n, dep.spec)
    if dep.autoscaler is not None:
        dep.autoscaler.set_floor(n)
        return
    if runs_here(dep.spec.replica_handle):  # not replicas on a Ray cluster
        check_local_capacity(state, name, n)
    before = dep.replicas.active_count()
    await dep.replicas.scale_to(n, "manual")
    dep.replicas.scale_events.append({"time": round(time.time(), 3), "from": before, "to": n, "reason": "manual",
                                      "hook": "local", "outcome": "ok"})
