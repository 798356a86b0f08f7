"""`POST /admin/deployments/{name}/scale {"instances": N}` (admin key): the replica count of a
`default` deployment, or the floor of an autoscaled one, within [min_instances, max_instances]."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from serving.desired_state import refuse_runtime_change
from serving.errors import ScoringError
from serving.responses import error_response


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


def check_bounds(n: int, spec: Any) -> None:
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


def check_local_capacity(router: Any, name: str, n: int) -> None:
    """Local replicas are processes on this machine: the same per-CPU cap as `scorer serve`."""
    from scorer.spec.limits import MAX_REPLICAS_PER_CPU, usable_cpus

    cap = MAX_REPLICAS_PER_CPU.value() * usable_cpus()
    others = sum(d.active_count() for other, d in router.deployments.items() if other != name)
    if others + n > cap:
        raise ScoringError(400, f"instances: {n} would make {others + n} local replicas; at most {cap} on this "
                           f"machine ({MAX_REPLICAS_PER_CPU.env} per CPU x {usable_cpus()} CPUs)")


async def apply(router: Any, name: str, n: int) -> None:
    if name not in router.deployments:
        raise ScoringError(404, f"deployment {name!r} does not exist in endpoint {router.name}; "
                           f"deployments: {', '.join(sorted(router.deployments))}")
    spec = router.endpoint.deployments[name]
    check_bounds(n, spec)
    scaler = getattr(router, "autoscalers", {}).get(name)
    if scaler is not None:
        scaler.set_floor(n)
        return
    check_local_capacity(router, name, n)
    dep = router.deployments[name]
    before = dep.active_count()
    await dep.scale_to(n, "manual")
    dep.scale_events.append({"time": round(time.time(), 3), "from": before, "to": n, "reason": "manual",
                             "hook": "local", "outcome": "ok"})


def scale_handler(router: Any) -> Any:
    async def scale(request: Request) -> Response:
        try:
            router.auth.check_admin(request.headers.get("authorization"))
            refuse_runtime_change(router.state_owner, f"POST {request.url.path}")
            n = parse_instances(await router.read_body(request))
            await apply(router, request.path_params["name"], n)
        except ScoringError as err:
            return error_response(err)
        return Response(orjson.dumps(router.describe()), media_type="application/json")

    return scale
