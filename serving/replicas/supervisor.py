"""A deployment's replicas kept at their desired count: start, probe, restart, retire and drain.

The supervisor sees replicas only as `ReplicaHandle`s made by a factory, so it does not know
where they run. A replica that goes away is restarted (a new handle) with exponential backoff;
one scaled away is `draining` (the balancer gives it nothing new), finishes what it has in flight,
and is closed. Liveness failures kill a replica; readiness failures take it out of the rotation
until it passes again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving import metrics
from serving.replicas.handle import HandleFactory, HandleOptions, ReplicaHandle, StartFailed
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.router")

STARTING, READY, DRAINING, STOPPED, FAILED = "starting", "ready", "draining", "stopped", "failed"
STATES = (STARTING, READY, DRAINING, STOPPED, FAILED)
REASONS = {"died": "died", "timeout": "was killed: still busy after a timed-out request",
           "liveness": "was killed: failed its liveness probe", "start": "failed to start"}


class ProbeSettings(Protocol):
    """The YAML's liveness_probe / readiness_probe (scorer.spec.models.Probe)."""

    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


@dataclass(frozen=True)
class Timing:
    start_timeout: float = 300.0  # seconds for a replica to load and warm up
    backoff_base: float = 0.2
    backoff_max: float = 30.0
    stable_after: float = 30.0  # ready this long: the backoff starts again from base

    @classmethod
    def from_env(cls) -> Timing:
        return cls(start_timeout=float(os.environ.get("SCORER_REPLICA_START_TIMEOUT_S", 300)))


@dataclass(eq=False)
class Replica:
    """The supervisor's record of one replica slot; its handle changes at each restart."""

    deployment: str
    index: int
    handle: ReplicaHandle | None = None
    generation: int = 0
    state: str = STARTING
    probe_ready: bool = True
    pid: int | None = None
    where: str = ""
    ready_at: float = 0.0
    start_seconds: float | None = None
    failures: int = 0  # consecutive, for backoff
    restarts: int = 0
    last_error: str | None = None
    kill_reason: str | None = None  # why the router killed it: timeout | liveness
    retired: bool = False  # scaled away: drains, exits and is never restarted
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        h = self.handle
        return self.state == READY and self.probe_ready and h is not None and h.alive

    @property
    def outstanding(self) -> int:
        return self.handle.outstanding if self.handle is not None else 0

    def describe(self) -> dict[str, Any]:
        doc = {"pid": self.pid, "state": self.state, "in_flight": self.outstanding,
               "ready": self.usable, "restarts": self.restarts, "start_seconds": self.start_seconds,
               "last_error": self.last_error}
        if self.where:
            doc["where"] = self.where
        return doc


class Supervisor:
    """The replicas of one deployment and their lifecycle (the balancer picks among them)."""

    def __init__(self, name: str, cfg: ReplicaConfig, instances: int, factory: HandleFactory,
                 liveness: ProbeSettings, readiness: ProbeSettings, timing: Timing | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.version = cfg.model_version
        self.desired = instances
        self.factory = factory
        self.liveness = liveness
        self.readiness = readiness
        self.timing = timing or Timing()
        self.options = HandleOptions(start_timeout_s=self.timing.start_timeout, ready_count=self.ready_count)
        self.on_change = on_change or (lambda: None)
        self.replicas = [Replica(name, i) for i in range(instances)]
        self._next_index = instances
        self.stopping = False
        self.restart_reasons: dict[str, int] = {}
        # filled by the autoscaler / scale API: [{"time", "from", "to", "reason", "hook", "outcome"}]
        self.scale_events: deque[dict[str, Any]] = deque(maxlen=50)
        self._bg: set[asyncio.Task[None]] = set()

    # -- counts -------------------------------------------------------------------------------
    def ready_count(self) -> int:
        return sum(1 for r in self.replicas if r.usable)

    def active_count(self) -> int:
        """Replicas that are not being scaled away (starting, ready, or failed and restarting)."""
        return sum(1 for r in self.replicas if not r.retired)

    def mark_failed(self, message: str) -> None:
        """Nothing to start (the model did not resolve): every replica shows why."""
        for r in self.replicas:
            r.state, r.last_error = FAILED, message

    # -- start and restart --------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Start every replica and wait for their warm-up; returns the errors of those that failed
        (they are retried with backoff)."""
        results = await asyncio.gather(*(self._start_one(r) for r in self.replicas), return_exceptions=True)
        errors = []
        for r, res in zip(self.replicas, results, strict=True):
            if isinstance(res, BaseException):
                errors.append(str(res))
                self._schedule_restart(r, "start")
        return errors

    async def _start_one(self, r: Replica) -> None:
        r.generation += 1
        r.state, r.probe_ready = STARTING, True
        handle = self.factory(self.cfg, r.index, self.options)
        handle.on_lost = lambda: self._lost(r, handle)
        r.handle = handle
        t0 = time.perf_counter()
        try:
            started = await handle.start()
        except StartFailed as exc:
            r.state, r.last_error = FAILED, str(exc)
            raise
        except Exception as exc:  # a third-party handle's bug is a failed start, not a dead supervisor
            r.state, r.last_error = FAILED, f"{type(exc).__name__}: {exc}"
            raise StartFailed(f"deployment {self.name}: {r.last_error}") from None
        r.pid, r.where = started.pid, started.where
        r.start_seconds = round(time.perf_counter() - t0, 3)
        r.state, r.ready_at, r.last_error = READY, time.monotonic(), None
        log.info("deployment %s: replica %d ready (pid %s) in %.2fs (model load %.2fs, warm-up %.3fs)",
                 self.name, r.index, r.pid, r.start_seconds, started.load_s, started.warm_s)
        self._start_probes(r, handle)
        self.on_change()
        if r.retired:  # scaled away while it started
            self._retire(r)

    def _lost(self, r: Replica, handle: ReplicaHandle) -> None:
        """The handle's replica went away (died or was killed): restart it unless it was leaving."""
        if r.handle is not handle:
            return
        for t in list(r.tasks):
            t.cancel()
        if self.stopping or r.retired:
            r.state = STOPPED
            self.on_change()
            return
        reason, r.kill_reason = r.kill_reason or "died", None
        text = REASONS.get(reason, reason)
        r.state = FAILED
        r.last_error = f"replica {text} (exit code {handle.exit_code()})"
        log.warning("deployment %s: replica %d (pid %s) %s; restarting", self.name, r.index, r.pid, text)
        self.on_change()
        self._schedule_restart(r, reason)

    def kill(self, r: Replica, reason: str) -> None:
        """Kill the replica now (it is then restarted): a stuck request, a failed liveness probe."""
        if r.handle is None:
            return
        r.kill_reason = reason
        r.handle.kill(reason)

    def _schedule_restart(self, r: Replica, reason: str) -> None:
        if self.stopping:
            return
        if r.retired:
            self._retire(r)
            return
        self.restart_reasons[reason] = self.restart_reasons.get(reason, 0) + 1
        metrics.replica_restarts_total.labels(self.name, reason).inc()
        if r.ready_at and time.monotonic() - r.ready_at > self.timing.stable_after:
            r.failures = 0
        r.ready_at = 0.0  # a stable period counts once: failed starts after it back off again
        delay = min(self.timing.backoff_base * (2 ** r.failures), self.timing.backoff_max)
        r.failures += 1
        r.restarts += 1
        self._spawn(self._restart(r, delay))

    async def _restart(self, r: Replica, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.stopping or r.retired:
            return
        if r.handle is not None:
            await r.handle.close()
        await self._start_or_retry(r)

    async def _start_or_retry(self, r: Replica) -> None:
        try:
            await self._start_one(r)
        except StartFailed as exc:
            log.error("%s; retrying", exc)
            self._schedule_restart(r, "start")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- scaling ------------------------------------------------------------------------------
    async def scale_to(self, n: int, reason: str = "") -> None:
        """Start replicas (they take requests once ready) or retire some: a retired replica is
        `draining` (no new requests), finishes its in-flight requests, then exits. Returns at once;
        scaling down never fails a request."""
        if self.stopping:
            return
        n = max(1, n)
        self.desired = n
        active = [r for r in self.replicas if not r.retired]
        if n > len(active):
            for _ in range(n - len(active)):
                r = Replica(self.name, self._next_index)
                self._next_index += 1
                self.replicas.append(r)
                self._spawn(self._start_or_retry(r))
            log.info("deployment %s: scaling up from %d to %d replicas (%s)", self.name, len(active), n,
                     reason or "requested")
        elif n < len(active):
            for r in self.scale_down_order(len(active) - n):
                r.retired = True
                self._retire(r)
            log.info("deployment %s: scaling down from %d to %d replicas (%s)", self.name, len(active), n,
                     reason or "requested")
            self.on_change()

    def scale_down_order(self, k: int) -> list[Replica]:
        """The `k` replicas to retire: those not serving first, then starting ones, then the newest
        ready ones (the oldest keep their warm caches)."""
        rank = {FAILED: 0, STOPPED: 0, STARTING: 1}
        active = [r for r in self.replicas if not r.retired]
        return sorted(active, key=lambda r: (rank.get(r.state, 2), -r.index))[:k]

    def _retire(self, r: Replica) -> None:
        """Drain a retired replica now, or leave it to the start in progress (it drains once ready)."""
        if r.state in (STARTING, DRAINING):
            return  # a start in progress sees `retired` when it ends; a drain is under way
        if r.handle is not None and r.handle.alive:
            r.state = DRAINING
            self._spawn(self._drain(r))
        else:
            self._spawn(self._exit(r))

    async def _drain(self, r: Replica) -> None:
        for t in list(r.tasks):  # no probes while draining
            t.cancel()
        h = r.handle
        while h is not None and h.alive and h.outstanding > 0:
            await asyncio.sleep(0.02)  # requests have deadlines; a stuck one gets the replica killed
        await self._exit(r)

    async def _exit(self, r: Replica) -> None:
        r.state = STOPPED
        if r.handle is not None:
            await r.handle.close()
        if r in self.replicas and not self.stopping:
            self.replicas.remove(r)
        log.info("deployment %s: replica %d (pid %s) drained and stopped", self.name, r.index, r.pid)
        self.on_change()

    # -- probes -------------------------------------------------------------------------------
    def _start_probes(self, r: Replica, handle: ReplicaHandle) -> None:
        for op, probe in (("ping", self.liveness), ("ready", self.readiness)):
            task = asyncio.get_running_loop().create_task(self._probe(r, handle, op, probe))
            r.tasks.add(task)
            task.add_done_callback(r.tasks.discard)

    async def _probe(self, r: Replica, handle: ReplicaHandle, op: str, probe: ProbeSettings) -> None:
        await asyncio.sleep(probe.initial_delay)
        fails = oks = 0
        while r.handle is handle and handle.alive:
            try:
                async with asyncio.timeout(probe.timeout):
                    ok = await handle.ping(op)
            except TimeoutError:
                ok = False
            if ok:
                fails, oks = 0, oks + 1
                if op == "ready" and not r.probe_ready and oks >= probe.success_threshold:
                    r.probe_ready = True
                    log.info("deployment %s: replica %s passes readiness again", self.name, r.pid)
                    self.on_change()
            else:
                fails, oks = fails + 1, 0
                if op == "ping" and fails >= probe.failure_threshold:
                    log.warning("deployment %s: replica %s failed liveness %d times", self.name, r.pid, fails)
                    self.kill(r, "liveness")
                    return
                if op == "ready" and r.probe_ready and fails >= probe.failure_threshold:
                    r.probe_ready = False
                    log.warning("deployment %s: replica %s failed readiness; no requests until it passes",
                                self.name, r.pid)
                    self.on_change()
            await asyncio.sleep(probe.period)

    # -- stop ---------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop every replica now (in-flight requests are abandoned: callers drain first)."""
        self.stopping = True
        for t in list(self._bg):
            t.cancel()
        for r in self.replicas:
            for t in list(r.tasks):
                t.cancel()
        await asyncio.gather(*(r.handle.close() for r in self.replicas if r.handle is not None),
                             return_exceptions=True)
        for r in self.replicas:
            r.state = STOPPED

    def describe(self) -> dict[str, Any]:
        return {"model": self.cfg.model_ref, "model_version": self.version,
                "replicas": [r.describe() for r in self.replicas], "desired_replicas": self.desired,
                "scale_events": list(self.scale_events),
                "restarts": dict(self.restart_reasons)}
