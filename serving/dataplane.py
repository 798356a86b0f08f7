"""The one path every scoring request takes, whatever its protocol: choose a deployment, admit,
keep to the deadline, forward to a replica, record, mirror.

`/score`, `/invocations` and V2 `infer` call these steps and only translate bodies and answers;
the gate (`serving/gate.py`) asks the same questions of a request head before its body is read.
It never runs model code; bodies travel to replicas as bytes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from serving import admin, desired_state, logs, metrics
from serving.auth import Auth
from serving.errors import ScoringError
from serving.mirror import MirrorShare, send_copy
from serving.replicas.handle import Header
from serving.state import DeploymentState, EndpointState
from serving.stats import InferStats

log = logging.getLogger("scorer.router")

PIN_HEADER = "azureml-model-deployment"

Reloader = Callable[[], Awaitable[None]]


class DataPlane:
    def __init__(self, state: EndpointState, auth: Auth) -> None:
        self.state = state  # swapped whole by reloads and admin changes, never edited in place
        self.auth = auth
        self.stats = InferStats()  # for Triton's statistics extension
        self.mirror_share = MirrorShare()
        self.draining = False  # set on SIGTERM: readiness fails, in-flight requests finish
        self.interrupted = False  # stopped by SIGINT: `scorer serve` exits 130 after draining
        self.state_owner = desired_state.ROUTER  # or FILES: admin changes answer 409
        self.reloader: Reloader | None = None  # set by the server when it was started from files

    @property
    def name(self) -> str:
        return self.state.name

    # -- choose and admit ---------------------------------------------------------------------
    def choose(self, pinned: str | None, state: EndpointState | None = None) -> DeploymentState:
        """The pinned deployment (404 if there is none of that name), else one by traffic."""
        state = state or self.state
        if pinned is not None:
            dep = state.deployments.get(pinned)
            if dep is None:
                raise ScoringError(404, f"deployment {pinned!r} does not exist in endpoint {state.name}; "
                                   f"deployments: {', '.join(sorted(state.deployments))}")
            return dep
        name = state.traffic.pick()
        if name is None:
            raise ScoringError(404, f"endpoint {state.name} has no deployment with traffic; pin one with the "
                               f"{PIN_HEADER} header")
        return state.deployments[name]

    def retired(self, dep: DeploymentState) -> bool:
        """Whether a reload swapped `dep` out since it was chosen. A retired deployment stops once
        the requests it admitted are done, so a request whose body was still arriving must choose
        again; asked with no await before `forward`, so the request is admitted (and the drain
        waits for it) before another swap can happen."""
        return self.state.deployments.get(dep.name) is not dep

    def current(self, dep: DeploymentState, pinned: str | None) -> DeploymentState:
        """`dep`, or the deployment chosen again when it was retired while the body was read."""
        return self.choose(pinned) if self.retired(dep) else dep

    @staticmethod
    def check_room(dep: DeploymentState) -> None:
        """429 / 503 now, before the body is read, when the deployment cannot take the request."""
        full = dep.admission.refusal()
        if full is not None:
            raise full

    async def forward(self, dep: DeploymentState, body: bytes, content_type: str,
                      started: float) -> tuple[Header, bytes]:
        """Admit within the deployment's budget (counted from `started`, the request's arrival, in
        time.monotonic()), then score on a replica; 408 when the budget runs out."""
        admission = dep.admission
        loop = asyncio.get_running_loop()
        deadline = loop.time() + dep.timeout_s - (time.monotonic() - started)
        admitted = False
        try:
            async with asyncio.timeout_at(deadline):
                queued = time.monotonic()
                await admission.acquire()
                admitted = True
                waited = time.monotonic() - queued
                metrics.series(dep.name).queue.observe(waited)
                self.stats.queued(dep.name, waited)
                return await dep.balancer.call({"op": "score", "ct": content_type}, body, deadline)
        except TimeoutError:
            raise ScoringError(408, f"deployment {dep.name}: no answer within request_timeout_ms="
                               f"{dep.timeout_s * 1000:.0f}") from None
        finally:
            if admitted:
                admission.release()

    # -- record and mirror --------------------------------------------------------------------
    def record(self, rid: str, out: Mapping[str, str], status: int, started: float, headers: Mapping[str, str],
               reply: Header | None = None, note: str | None = None) -> None:
        """Metrics and the access-log line of one answered request (`note`: why it ended, last)."""
        seconds = time.monotonic() - started
        dep = out.get(PIN_HEADER, "")
        if dep:
            self.stats.answered(dep, status, seconds, reply.get("t") if reply is not None else None)
            series = metrics.series(dep)
            series.answered(status).inc()
            series.total.observe(seconds)
            if reply is not None and "t" in reply:
                series.model.observe(reply["t"])
            if reply is not None and "b" in reply:
                series.batch.observe(reply["b"])
        if logs.access_enabled():
            fields: dict[str, Any] = {"request_id": rid, "deployment": dep or "-",
                                      "model_version": out.get("x-model-version", "-"), "status": status,
                                      "ms": round(seconds * 1000, 3)}
            tp = headers.get("traceparent")
            if tp:
                fields["traceparent"] = tp[:128]
            if note:
                fields["note"] = note
            logs.access(fields)

    def mirror(self, body: bytes, content_type: str, status: int,
               payload: bytes) -> Callable[[], Awaitable[None]] | None:
        """The copy of this live request for the mirror deployment, to run after the answer is sent."""
        state = self.state
        for name, pct in state.mirror.items():
            dep = state.deployments.get(name)
            if dep is not None and pct > 0 and self.mirror_share.take(pct):
                # a partial of the coroutine function, so that Starlette's BackgroundTask awaits it
                return functools.partial(send_copy, dep, body, content_type, status, payload)
        return None

    # -- health, description, admin -----------------------------------------------------------
    def ready(self) -> tuple[bool, dict[str, int]]:
        state = self.state
        counts = {name: dep.replicas.ready_count() for name, dep in state.deployments.items()}
        return not self.draining and all(counts.get(n, 0) > 0 for n in state.live()), counts

    def describe(self) -> dict[str, Any]:
        state = self.state
        return {"name": state.name, "auth_mode": state.spec.auth_mode, "traffic": dict(state.traffic.shares),
                "mirror_traffic": dict(state.mirror),
                "deployments": {n: d.replicas.describe() for n, d in state.deployments.items()}}

    def set_traffic(self, body: bytes) -> None:
        """Validate like the YAML, then swap in a new state (no await between check and swap)."""
        state = self.state
        names = list(state.deployments)
        traffic = admin.full_traffic(admin.parse_shares(body, "traffic", names), names)
        admin.check(traffic, dict(state.mirror), names)
        self.state = state.with_traffic(traffic)
        log.info("traffic set to %s", traffic)

    def set_mirror(self, body: bytes) -> None:
        state = self.state
        names = list(state.deployments)
        mirror = admin.parse_shares(body, "mirror_traffic", names)
        admin.check(dict(state.traffic.shares), mirror, names)
        self.state = state.with_mirror(mirror)
        log.info("mirror traffic set to %s", dict(self.state.mirror) or "none")

    def refresh_gauges(self) -> None:
        """Replica counts by state, computed when /metrics is scraped."""
        state = self.state
        for name, dep in state.deployments.items():
            counts = dict.fromkeys(("starting", "ready", "draining", "stopped", "failed"), 0)
            for r in dep.replicas.replicas:
                counts[r.state] = counts.get(r.state, 0) + 1
            for st, n in counts.items():
                metrics.replicas.labels(name, st).set(n)
        metrics.set_deployments({n: (d.cfg.model_ref or d.cfg.scoring_script or "", d.version)
                                 for n, d in state.deployments.items()})
