"""Ray start-up and the actor pool: sizing, start, replacement of timed-out or dead actors."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

from batch.worker import ActorInfo, ScoringWorker, WorkerConfig

log = logging.getLogger("scorer.batch")

# Ray's handles are untyped at this boundary: names for what they stand for
Actor = Any  # ray.actor.ActorHandle of a ScoringWorker
Ref = Any  # ray.ObjectRef of an actor call

ACTOR_CPUS = 0.5  # fractional, so that actors never hold every CPU (see docs/batch.md)


class PoolError(Exception):
    """The pool could not start (model or script failed to load, no room on the cluster)."""


def start_ray(address: str | None, debug: bool) -> tuple[bool, str]:
    """Connect to (or start) Ray; returns (started_here, address). Reuses an initialised Ray."""
    if not address:
        # Ray resolves 127.0.0.1 to the machine's routable address unless it believes clusters are off;
        # a local job must stay on the loopback interface.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    if not address:
        ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        return False, _address(address)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    common: dict[str, Any] = {"logging_level": logging.DEBUG if debug else logging.WARNING,
                              "log_to_driver": debug, "configure_logging": True}
    if address:
        try:
            ray.init(address=address, **common)
        except ConnectionError as exc:
            raise ConnectionError(_why_refused(address, exc)) from exc
    else:
        from batch.lean_ray import local_start

        with local_start(debug) as lean:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     _node_ip_address="127.0.0.1", **lean, **common)
    return True, _address(address)


def _why_refused(address: str, exc: BaseException) -> str:
    """Ray's own message names no reason; a token refusal is the common one on a secured cluster."""
    import ray.exceptions

    cause: BaseException | None = exc
    while cause is not None:
        # Ray wraps the refusal in a RuntimeError that carries it only as text
        if isinstance(cause, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(cause):
            return (f"the Ray cluster at {address} refused this driver's token (token authentication): give "
                    "the driver the cluster's token (RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH or "
                    "RAY_AUTH_TOKEN, as on the cluster's nodes)")
        cause = cause.__cause__ or cause.__context__
    return f"cannot join the Ray cluster at {address} (is it running, and reachable from here?)"


def _address(asked: str | None) -> str:
    import ray

    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # Ray Client (ray://) has no GCS address on this side
        return asked or "local"


def pool_size(requested: int, local: bool) -> int:
    """Locally the pool is capped at the CPU count (a laptop must not load ten model copies)."""
    if not local:
        return requested
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cpus = int(resources.get("CPU", os.cpu_count() or 1))
    cap = max(1, min(cpus, os.cpu_count() or 1))
    if requested > cap:
        log.warning("asked for %d actors (instance_count x max_concurrency_per_instance); local Ray has %d "
                    "CPUs, so the pool is capped at %d", requested, cpus, cap)
        return cap
    return requested


class Pool:
    """The actors: `launch()` starts them with the environment only (they import the model runtime
    at once), `load(cfg)` hands them the model, `start()` waits until every one can score."""

    def __init__(self, env: dict[str, str], size: int, spread: bool, inherit_env: bool = False) -> None:
        import ray

        self.env = env
        self.size = size
        self.spread = spread
        # a runtime_env of its own makes Ray start a fresh worker process for each actor; when the
        # workers Ray started with this driver already have exactly this environment, they are used
        self.inherit_env = inherit_env
        self._cls = ray.remote(ScoringWorker)
        self.cfg: WorkerConfig | None = None
        self.actors: list[Actor] = []
        self.replaced = 0
        self.infos: list[ActorInfo] = []
        self.launched_at = 0.0  # time.monotonic() when the first actor was asked for

    def _new(self) -> Actor:
        opts: dict[str, Any] = {"num_cpus": ACTOR_CPUS, "max_restarts": 0, "max_task_retries": 0}
        if not self.inherit_env:
            opts["runtime_env"] = {"env_vars": dict(self.env)}
        if self.spread:
            opts["scheduling_strategy"] = "SPREAD"
        actor: Actor = self._cls.options(**opts).remote(None, self.env)
        if self.cfg is not None:
            actor.load.remote(self.cfg)  # an actor runs its calls in order: loaded before ready()
        return actor

    def launch(self) -> None:
        """Start the actors (no model yet): idempotent."""
        if not self.actors:
            self.launched_at = time.monotonic()
        while len(self.actors) < self.size:
            self.actors.append(self._new())

    def load(self, cfg: WorkerConfig) -> None:
        """Hand the model and the job's settings to every actor (started now if not yet)."""
        from batch.ship import attach, wanted

        # on a cluster, actors may run where the driver's model cache does not exist: ship the folders
        self.cfg = attach(cfg) if wanted(on_cluster=self.spread) else cfg
        for a in self.actors:
            a.load.remote(self.cfg)
        self.launch()

    def start(self, timeout: float) -> list[Actor]:
        """Wait until every actor has loaded the model; PoolError when one cannot."""
        import ray

        assert self.cfg is not None, "load() first"
        refs = {a.ready.remote(): a for a in self.actors}
        deadline = time.monotonic() + timeout
        pending = list(refs)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill_all()
                raise PoolError(f"{len(pending)} of {self.size} actors did not start within {timeout:.0f} s "
                                "(does the cluster have room for them?)")
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=min(left, 1.0))
            for ref in done:
                try:
                    info: ActorInfo = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    self.kill_all()
                    raise PoolError(f"an actor died while starting: {str(exc).splitlines()[0]}") from None
                if info["error"]:
                    self.kill_all()
                    raise PoolError(f"the model or scoring script failed to load: {info['error']}")
                self.infos.append(info)
        return list(self.actors)

    def replace(self, actor: Actor) -> tuple[Actor, Ref]:
        """Kill an actor and start another; returns (new actor, its ready() ref)."""
        import ray

        with contextlib.suppress(Exception):  # already gone
            ray.kill(actor, no_restart=True)
        if actor in self.actors:
            self.actors.remove(actor)
        new = self._new()  # loads the model: self.cfg is set once the pool has started
        self.actors.append(new)
        self.replaced += 1
        return new, new.ready.remote()

    def kill_all(self) -> None:
        import ray

        for a in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
        self.actors = []
