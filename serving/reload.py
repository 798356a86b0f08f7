"""Reload without downtime: re-read the same files, re-resolve aliases, swap deployments.

Added deployments start; a changed one (new resolved model or new settings) gets a new
Deployment whose replicas are all ready before it takes the old one's place; the old one, like a
removed one, drains (its admitted requests finish) and stops. Runtime traffic and mirror are kept
unless the file's own values changed. Anything that fails (invalid files, a model that cannot be
resolved or loaded) stops the reload before the swap: the old deployments keep serving."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from serving.errors import ScoringError
from serving.replicas.pool import Deployment, Timing

log = logging.getLogger("scorer.router")


def fingerprint(spec_dep: Any, dep: Deployment) -> tuple[Any, ...]:
    """What makes a deployment the same: its settings and the model files it resolved to."""
    return (spec_dep.model_dump(mode="json", exclude={"name", "endpoint_name"}), dep.cfg)


class Reloader:
    def __init__(self, router: Any, load: Callable[[], Any], socket_dir: str, timing: Timing) -> None:
        self.router = router
        self.load = load  # () -> Endpoint, raising SpecError
        self.socket_dir = socket_dir
        self.timing = timing
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self) -> None:
        async with self.lock:
            await self._reload()

    async def _reload(self) -> None:
        from scorer.spec import SpecError
        from serving.server import build_deployments

        router = self.router
        loop = asyncio.get_running_loop()
        try:
            spec = (await loop.run_in_executor(None, self.load)).spec
        except SpecError as exc:
            raise ScoringError(400, f"reload: {exc}") from None
        old_spec = router.endpoint
        # resolve every deployment again (aliases may have moved) into a fresh socket folder
        sockets = tempfile.mkdtemp(prefix="reload-", dir=self.socket_dir)
        fresh, unresolved = await loop.run_in_executor(None, build_deployments, spec, sockets, self.timing)
        if unresolved:
            name, msg = next(iter(unresolved.items()))
            raise ScoringError(400, f"reload: deployment {name}: {msg}; nothing changed")
        changed = {n: d for n, d in fresh.items() if n not in router.deployments
                   or fingerprint(spec.deployments[n], d)
                   != fingerprint(old_spec.deployments[n], router.deployments[n])}
        removed = [n for n in router.deployments if n not in fresh]
        results = await asyncio.gather(*(d.start() for d in changed.values()))
        errors = [e for errs in results for e in errs]
        if errors:
            await asyncio.gather(*(d.stop() for d in changed.values()), return_exceptions=True)
            raise ScoringError(424, f"reload: {errors[0]}; the old deployments keep serving")
        traffic = dict(spec.traffic) if dict(spec.traffic) != dict(old_spec.traffic) else \
            {n: p for n, p in router.traffic.shares.items() if n in fresh}
        mirror = dict(spec.mirror_traffic) if dict(spec.mirror_traffic) != dict(old_spec.mirror_traffic) else \
            {n: p for n, p in router.mirror_traffic.items() if n in fresh}
        from serving import admin

        try:
            admin.check(admin.full_traffic(traffic, list(fresh)), mirror, list(fresh))
        except ScoringError:  # runtime shares no longer fit the new deployments: the file's win
            traffic, mirror = dict(spec.traffic), dict(spec.mirror_traffic)
        # the swap: no await from here to the end, so every request sees old or new, never a mix
        retired = [router.deployments[n] for n in changed if n in router.deployments]
        retired += [router.deployments[n] for n in removed]
        deployments = {n: changed.get(n) or router.deployments[n] for n in fresh}
        for n, d in changed.items():
            router.attach(n, d, spec.deployments[n].request_settings)
        for n in removed:
            router.admissions.pop(n, None)
            router.timeouts.pop(n, None)
        router.deployments = deployments
        router.endpoint = spec
        router.traffic.set(admin.full_traffic(traffic, list(fresh)))
        router.mirror_traffic = {n: p for n, p in mirror.items() if p > 0}
        # autoscalers watch deployment objects: the retired ones' stop, the new ones get their own
        from serving.autoscale.autoscaler import build_autoscalers

        stale = [router.autoscalers.pop(n) for n in [*changed, *removed] if n in router.autoscalers]
        scalers = build_autoscalers(spec, changed, router.admissions)
        router.autoscalers.update(scalers)
        for scaler in scalers.values():
            scaler.start()
        for scaler in stale:
            self._background(scaler.stop())
        log.info("reload: started %s, retired %s; traffic %s", sorted(changed) or "none",
                 sorted(d.name for d in retired) or "none", dict(router.traffic.shares))
        for d in retired:
            self._background(self._drain(d))
        if not changed:
            os.rmdir(sockets)

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain(self, dep: Deployment) -> None:
        """Wait for the retired deployment's admitted and queued requests, then stop its replicas."""
        adm, timeout = self.router.slots.get(dep, (None, 0.0))
        await asyncio.sleep(0.5)  # requests that picked it just before the swap reach its admission
        deadline = asyncio.get_running_loop().time() + timeout + 5
        while adm is not None and (adm.in_flight or adm.queued) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await dep.stop()  # its slot stays: a straggler then gets 503 (no ready replica), never a 500
        log.info("reload: deployment %s (version %s) drained and stopped", dep.name, dep.version)
