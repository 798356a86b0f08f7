"""The autoscaler loop of one deployment (`scale_settings.type: target_utilization`).

Every `polling_interval` seconds: average the load the sampler saw, decide (policy.decide), record
and log the decision, and when the count changes hand it to the hook in a task of its own. A hook
that fails is logged, its outcome recorded, and it is called again at the next interval until one
call succeeds; requests never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scorer.spec.models import ScaleSettings
from serving import metrics
from serving.admission import Admission
from serving.autoscale.hooks import Hook, ScaleRequest, call_with_retries, make_hook
from serving.autoscale.policy import HOLD, UP, Decision, Inputs, PolicyConfig, PolicyState, decide
from serving.autoscale.sampler import Sampler

if TYPE_CHECKING:
    from serving.replicas.supervisor import Supervisor

log = logging.getLogger("scorer.autoscale")


def _hook_timeout() -> float:
    return float(os.environ.get("SCORER_HOOK_TIMEOUT_S", 10))


class Autoscaler:
    def __init__(self, endpoint: str, deployment: Supervisor, admission: Admission, settings: ScaleSettings,
                 max_instances: int,
                 per_replica: int, clock: Callable[[], float] = time.monotonic, hook: Hook | None = None) -> None:
        self.endpoint = endpoint
        self.dep = deployment
        self.name = deployment.name
        self.settings = settings
        self.cfg = PolicyConfig(settings.min_instances, max_instances, settings.target_utilization_percentage / 100,
                                settings.scale_down_delay)
        self.per_replica = per_replica
        self.interval = float(settings.polling_interval)
        self.hook_spec: str = settings.hook
        self.hook = hook or make_hook(settings.hook, deployment.scale_to)
        self.clock = clock
        self.sampler = Sampler(lambda: int(admission.in_flight) + int(admission.queued), deployment.ready_count,
                               period=min(0.05, self.interval / 10), clock=clock)
        self.state = PolicyState()
        self.current = int(deployment.desired)
        self.applied = self.current  # the count the hook last confirmed
        self.floor = 0
        self.last: Decision | None = None
        self._event: dict[str, Any] | None = None  # the scale event the next hook call reports on
        self._utilization = 0.0
        self._hook_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.hook_timeout = _hook_timeout()
        metrics.autoscale_desired_replicas.labels(self.name).set(self.current)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.sampler.take()  # forget the start-up period
        self._tasks = [loop.create_task(self.sampler.run()), loop.create_task(self._loop())]
        log.info("deployment %s: autoscaling %d..%d replicas at %d%% utilization, every %gs, scale-down delay "
                 "%gs, hook %s", self.name, self.cfg.min_instances, self.cfg.max_instances,
                 self.settings.target_utilization_percentage, self.interval, self.cfg.scale_down_delay,
                 self.hook_spec)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._hook_task] if self._hook_task else [])]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.tick()
            except Exception:  # the loop must outlive any bug in one tick
                log.exception("deployment %s: autoscaler tick failed", self.name)

    # -- one interval ------------------------------------------------------------------------
    def tick(self) -> Decision:
        sample = self.sampler.take()
        inputs = Inputs(current=self.current, ready=sample.ready, load=sample.load, per_replica=self.per_replica,
                        floor=self.floor)
        decision, self.state = decide(inputs, self.cfg, self.state, self.clock())
        self.last = decision
        facts = (f"load {sample.load:.2f} (peak {sample.peak}) over {sample.seconds:.1f}s, ready {sample.ready:.2f} "
                 f"x {self.per_replica}")
        if decision.direction == HOLD:
            log.debug("deployment %s: autoscale hold at %d: %s; %s", self.name, self.current, decision.reason, facts)
        else:
            log.info("deployment %s: autoscale %s %d -> %d: %s; %s", self.name, decision.direction, self.current,
                     decision.desired, decision.reason, facts)
            self._change(decision.desired, decision.direction, decision.reason, decision.utilization)
        self._maybe_call_hook()
        return decision

    def set_floor(self, n: int) -> None:
        """A manual floor (`POST /admin/deployments/{name}/scale`): applies upwards at once; a lower
        floor lets the policy scale down after the usual delay."""
        self.floor = n
        if n > self.current:
            log.info("deployment %s: manual floor %d: up %d -> %d", self.name, n, self.current, n)
            self._change(n, UP, f"manual floor {n}", self.last.utilization if self.last else 0.0)
            self._maybe_call_hook()

    def _change(self, desired: int, direction: str, reason: str, utilization: float) -> None:
        event = {"time": round(time.time(), 3), "from": self.current, "to": desired, "reason": reason,
                 "hook": self.hook_spec, "outcome": "pending",
                 "utilization": None if math.isinf(utilization) else round(utilization, 4)}
        self.dep.scale_events.append(event)
        metrics.autoscale_decisions_total.labels(self.name, direction).inc()
        metrics.autoscale_desired_replicas.labels(self.name).set(desired)
        self.current = desired
        if self.hook_spec != "local":
            self.dep.desired = desired  # local: scale_to sets it when it acts
        self._event = event
        self._utilization = utilization

    def _maybe_call_hook(self) -> None:
        if self.current == self.applied or (self._hook_task is not None and not self._hook_task.done()):
            return
        req = ScaleRequest(endpoint=self.endpoint, deployment=self.name, current=self.applied, desired=self.current,
                           utilization=self._utilization,
                           reason=(self._event or {}).get("reason", ""), timestamp=round(time.time(), 3))
        self._hook_task = asyncio.get_running_loop().create_task(self._call_hook(req, self._event))

    async def _call_hook(self, req: ScaleRequest, event: dict[str, Any] | None) -> None:
        ok, outcome = await call_with_retries(self.hook, req, timeout=self.hook_timeout)
        if ok:
            self.applied = req.desired
            log.info("deployment %s: scale hook %s done: %d -> %d (%s)", self.name, self.hook_spec, req.current,
                     req.desired, outcome)
        else:
            log.error("deployment %s: scale hook %s %s; calling it again at the next interval; serving continues",
                      self.name, self.hook_spec, outcome)
        if event is not None:
            calls = event.get("calls", 0) + 1
            event["calls"] = calls
            event["outcome"] = "ok" if ok else outcome
            if ok and calls > 1:
                event["outcome"] = f"ok after {calls} calls"

    def describe(self) -> dict[str, Any]:
        d = self.last
        return {"desired": self.current, "applied": self.applied, "floor": self.floor,
                "utilization": None if d is None or math.isinf(d.utilization) else round(d.utilization, 4),
                "hook": self.hook_spec}
