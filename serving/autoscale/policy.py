"""The scaling decision as a pure function (no clock, no I/O), so that it can be tested alone.

utilization = average (in flight + queued) / (ready replicas x max_concurrent_requests_per_instance)
desired     = ceil(replicas x utilization / target), clamped to [floor, max]
Up at once; down only after utilization stayed low for `scale_down_delay` seconds, counted again
after each step; one step never more than doubles or halves the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

UP, DOWN, HOLD = "up", "down", "hold"
_EPS = 1e-9


@dataclass(frozen=True)
class PolicyConfig:
    min_instances: int
    max_instances: int
    target_utilization: float  # a fraction: 0.7 for 70 %
    scale_down_delay: float  # seconds


@dataclass(frozen=True)
class Inputs:
    current: int  # the count decided last (what the hook was asked for)
    ready: float  # ready replicas, averaged over the interval
    load: float  # in flight + queued, averaged over the interval
    per_replica: int  # max_concurrent_requests_per_instance
    floor: int = 0  # a manual floor (`scorer scale` on an autoscaled deployment); 0: none


@dataclass(frozen=True)
class PolicyState:
    low_since: float | None = None  # when the wanted count first fell below the current one


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    wanted: int  # the clamped target before the step limits and the scale-down delay
    utilization: float  # a fraction; inf when there is load and no ready replica
    direction: str  # up | down | hold
    reason: str


def utilization(load: float, ready: float, per_replica: int) -> float:
    capacity = ready * per_replica
    if capacity <= _EPS:
        return math.inf if load > _EPS else 0.0
    return load / capacity


def decide(inputs: Inputs, cfg: PolicyConfig, state: PolicyState, now: float) -> tuple[Decision, PolicyState]:
    """The next count and the new state; `now` is any monotonic clock in seconds."""
    cur = max(1, inputs.current)
    util = utilization(inputs.load, inputs.ready, inputs.per_replica)
    lo = max(cfg.min_instances, min(inputs.floor, cfg.max_instances))
    hi = max(cfg.max_instances, lo)
    # ceil(replicas x utilization / target); with load and no ready replica: as if saturated
    raw = 2 * cur if math.isinf(util) else math.ceil(inputs.ready * util / cfg.target_utilization - _EPS)
    wanted = min(max(raw, lo), hi)
    pct = "inf" if math.isinf(util) else f"{util * 100:.0f}%"
    facts = f"utilization {pct} of target {cfg.target_utilization * 100:.0f}%"

    def result(desired: int, direction: str, reason: str, new: PolicyState) -> tuple[Decision, PolicyState]:
        return Decision(inputs.current, desired, wanted, util, direction, reason), new

    if wanted > cur:
        desired = min(wanted, max(2 * cur, lo))  # a raised floor applies at once
        limited = "" if desired >= wanted else f" (at most double; wants {wanted})"
        why = f"{facts}: up to {desired}{limited}"
        if cur < lo and wanted == lo:
            why = f"below the floor of {lo}: up to {desired}"
        return result(desired, UP, why, replace(state, low_since=None))
    if wanted < cur:
        if cur > hi:  # max lowered under us: no delay needed
            desired = max(wanted, math.ceil(cur / 2))
            return result(desired, DOWN, f"above max_instances {hi}: down to {desired}", replace(state, low_since=now))
        since = state.low_since if state.low_since is not None else now
        waited = now - since
        if waited + _EPS < cfg.scale_down_delay:
            return result(cur, HOLD, f"{facts}: wants {wanted}, low for {waited:.1f}s of "
                          f"scale_down_delay {cfg.scale_down_delay:g}s", PolicyState(low_since=since))
        desired = max(wanted, math.ceil(cur / 2))
        half = "" if desired == wanted else f" (at most half; wants {wanted})"
        return result(desired, DOWN, f"{facts} for {waited:.1f}s: down to {desired}{half}",
                      PolicyState(low_since=now))  # the delay counts again after each step
    return result(cur, HOLD, f"{facts}: keep {cur}", PolicyState(low_since=None))
