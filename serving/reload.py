"""Reload without downtime: re-read the same files, re-resolve aliases, swap the endpoint state.

Build, start, swap, drain. Added deployments start; a changed one (new resolved model or new
settings) gets new replicas that are all ready before it takes the old one's place; the old one,
like a removed one, drains (its admitted requests finish) and stops. Runtime traffic and mirror are
kept unless the file's own values changed. Anything that fails (invalid files, a model that cannot
be resolved or loaded) stops the reload before the swap: the old deployments keep serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from scorer.spec.models import Endpoint
from serving import admin
from serving.assemble import build_deployment, replica_config, start_deployment_extras, stop_deployments
from serving.dataplane import DataPlane
from serving.errors import ScoringError
from serving.replicas.supervisor import Timing
from serving.state import DeploymentState, EndpointState
from serving.traffic import SmoothWeighted
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.router")


def fingerprint(spec: Endpoint, name: str, cfg: ReplicaConfig) -> tuple[Any, ...]:
    """What makes a deployment the same: its settings and the model files it resolved to."""
    return (spec.deployments[name].model_dump(mode="json", exclude={"name", "endpoint_name"}), cfg)


class Reloader:
    def __init__(self, plane: DataPlane, load: Callable[[], Any], timing: Timing) -> None:
        self.plane = plane
        self.load = load  # () -> LoadedFiles (with .spec), raising SpecError
        self.timing = timing
        self.lock = asyncio.Lock()
        self.draining: dict[asyncio.Task[None], DeploymentState] = {}  # retired by a reload, not yet stopped

    async def __call__(self) -> None:
        async with self.lock:
            await self._reload()

    async def _reload(self) -> None:
        from scorer.spec import SpecError

        loop = asyncio.get_running_loop()
        try:
            spec: Endpoint = (await loop.run_in_executor(None, self.load)).spec
        except SpecError as exc:
            raise ScoringError(400, f"reload: {exc}") from None
        old = self.plane.state
        changed = await self._build(spec, old)
        results = await asyncio.gather(*(d.replicas.start() for d in changed.values()))
        errors = [e for errs in results for e in errs]
        if errors:
            await stop_deployments(list(changed.values()))
            raise ScoringError(424, f"reload: {errors[0]}; the old deployments keep serving")
        new = self._next_state(spec, old, changed)
        # the swap: one assignment, so every request sees the old state or the new, never a mix
        self.plane.state = new
        for d in changed.values():
            start_deployment_extras(d)
        retired = [old.deployments[n] for n in old.deployments if new.deployments.get(n) is not old.deployments[n]]
        log.info("reload: started %s, retired %s; traffic %s", sorted(changed) or "none",
                 sorted(d.name for d in retired) or "none", dict(new.traffic.shares))
        for d in retired:
            task = asyncio.get_running_loop().create_task(self._drain(d))
            self.draining[task] = d
            task.add_done_callback(self.draining.pop)

    async def _build(self, spec: Endpoint, old: EndpointState) -> dict[str, DeploymentState]:
        """New deployment states for the added and changed deployments (every model resolved again:
        aliases may have moved); 400 when a model does not resolve or a handle cannot be loaded."""
        loop = asyncio.get_running_loop()
        changed: dict[str, DeploymentState] = {}
        for name, d in spec.deployments.items():
            cfg, problem = await loop.run_in_executor(None, replica_config, name, d)
            if problem is not None:
                raise ScoringError(400, f"reload: deployment {name}: {problem}; nothing changed")
            current = old.deployments.get(name)
            if current is not None and fingerprint(spec, name, cfg) == fingerprint(old.spec, name, current.cfg):
                continue
            try:
                changed[name] = build_deployment(spec.name, name, d, cfg, self.timing)
            except ValueError as exc:
                raise ScoringError(400, f"reload: deployment {name}: {exc}; nothing changed") from None
        return changed

    @staticmethod
    def _next_state(spec: Endpoint, old: EndpointState, changed: dict[str, DeploymentState]) -> EndpointState:
        names = list(spec.deployments)
        traffic = dict(spec.traffic) if dict(spec.traffic) != dict(old.spec.traffic) else \
            {n: p for n, p in old.traffic.shares.items() if n in names}
        mirror = dict(spec.mirror_traffic) if dict(spec.mirror_traffic) != dict(old.spec.mirror_traffic) else \
            {n: p for n, p in old.mirror.items() if n in names}
        try:
            admin.check(admin.full_traffic(traffic, names), mirror, names)
        except ScoringError:  # runtime shares no longer fit the new deployments: the file's win
            traffic, mirror = dict(spec.traffic), dict(spec.mirror_traffic)
        deployments = {n: changed.get(n) or old.deployments[n] for n in names}
        return EndpointState(spec, deployments, SmoothWeighted(admin.full_traffic(traffic, names)),
                             {n: p for n, p in mirror.items() if p > 0})

    async def _drain(self, dep: DeploymentState) -> None:
        """Wait for the retired deployment's admitted and queued requests, then stop its replicas."""
        adm = dep.admission
        await asyncio.sleep(0.5)  # requests that picked it just before the swap reach its admission
        deadline = asyncio.get_running_loop().time() + dep.timeout_s + 5
        while (adm.in_flight or adm.queued) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await stop_deployments([dep])  # a straggler then gets 503 (no ready replica), never a 500
        log.info("reload: deployment %s (version %s) drained and stopped", dep.name, dep.version)

    async def close(self) -> list[DeploymentState]:
        """At shutdown: end the drains of retired deployments and return those not yet stopped, to
        stop with the live ones. Left alone, their supervisors outlived the server's own stop,
        restarted the replicas that the shutdown took down, and the process never exited."""
        drains = dict(self.draining)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        return list(drains.values())
