"""The Ray ReplicaHandle: a replica as a Ray actor somewhere on a cluster, reached over TCP.

Ray places, supervises the process of, and kills the replica; requests travel as scorer's frames
over TCP (`ReplicaConnection.open_tcp`: the HMAC handshake on the endpoint's secret, then frames,
with a heartbeat that takes a silent replica as gone), never as actor calls. The actor
(`serving/worker/ray_replica.py`) listens on its node's address and reports host and port.

The router resolved the model; its folder (and a scoring script's code folder) travels through
Ray's object store (`scorer.models.ship`), so no node needs the router's disk or registry. Every
Ray call here is blocking or awaited as an ObjectRef: none blocks the router's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from scorer.environment import TELEMETRY_OFF
from scorer.models.ship import DEFAULT_MAX_BYTES, Shipped, put_folder
from scorer.render.quantity import parse
from scorer.spec.models import KubernetesResources, OnlineDeployment
from serving.handshake import HandshakeFailed
from serving.replicas.connection import FramedHandle, ReplicaConnection
from serving.replicas.handle import HandleFactory, HandleOptions, Started, StartFailed
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.router")

NAMESPACE = "scorer"  # the Ray namespace of every replica actor (`scorer stop` finds them by name)
SHIP_MAX_BYTES_ENV = "SCORER_SERVE_SHIP_MAX_BYTES"  # a larger model folder is not shipped (default 2 GiB)
DEFAULT_CPUS = 1.0  # a deployment without a cpu request: one CPU per replica (one scoring thread)
GPU = "nvidia.com/gpu"
REPLICA_ENV = ("SCORER_REPLICA_THREADS", "SCORER_LOG_FORMAT", "SCORER_MAX_JSON_DEPTH")  # passed on to actors

Actor = Any  # ray.actor.ActorHandle of a RayReplica: untyped at this boundary


@dataclasses.dataclass(frozen=True)
class Placement:
    """What every replica of one deployment asks of the cluster, and how the router talks to it."""

    endpoint: str
    secret: bytes = dataclasses.field(repr=False)  # never logged
    unresponsive_s: float = 1.0
    num_cpus: float = DEFAULT_CPUS
    memory: int | None = None  # bytes
    num_gpus: float | None = None
    strategy: str = "SPREAD"

    def actor_options(self) -> dict[str, Any]:
        """Ray's resource and scheduling options for one actor."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "scheduling_strategy": self.strategy}
        if self.memory:
            opts["memory"] = self.memory
        if self.num_gpus:
            opts["num_gpus"] = self.num_gpus
        return opts


def ray_resources(res: KubernetesResources | None) -> dict[str, float | int]:
    """A deployment's `resources: {requests, limits}` as Ray's num_cpus, memory (bytes), num_gpus.
    A request wins over a limit (Kubernetes takes the limit as the request when only it is set).
    Raises ValueError naming the field."""
    out: dict[str, float | int] = {}
    if res is None:
        return out
    for key, ray_key in (("cpu", "num_cpus"), ("memory", "memory"), (GPU, "num_gpus")):
        where = "requests" if key in res.requests else "limits"
        value = res.requests.get(key, res.limits.get(key))
        if value is None:
            continue
        try:
            amount: Decimal = parse(value)
        except ValueError as exc:
            raise ValueError(f"resources.{where}.{key}: {exc}") from None
        if amount <= 0:
            raise ValueError(f"resources.{where}.{key}: got {value!r}; expected a positive quantity")
        out[ray_key] = int(amount) if ray_key == "memory" else float(amount)
    return out


def placement_for(endpoint: str, d: OnlineDeployment | None, secret: bytes) -> Placement:
    """The deployment's Placement; ValueError for a resource that is not a quantity."""
    if d is None:
        return Placement(endpoint, secret)
    r = ray_resources(d.resources)
    return Placement(endpoint, secret, d.replica_unresponsive_ms / 1000.0,
                     float(r.get("num_cpus", DEFAULT_CPUS)), int(r["memory"]) if "memory" in r else None,
                     float(r["num_gpus"]) if "num_gpus" in r else None)


# -- shipping, once per folder and content --------------------------------------------------------
_shipped: dict[tuple[str, str, tuple[int, int, int]], Shipped | None] = {}
_ship_lock = threading.Lock()


def _stamp(folder: Path) -> tuple[int, int, int]:
    """Files, bytes and the newest change under `folder`: a folder edited in place (a scoring
    script's code before a reload) is shipped again."""
    files = [p.stat() for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(f.st_size for f in files), max((f.st_mtime_ns for f in files), default=0)


def _ship(path: str | None, version: str) -> Shipped | None:
    """The folder in the object store, put there once per content (the router owns the object)."""
    if not path:
        return None
    with _ship_lock:
        key = (path, version, _stamp(Path(path)))
        if key not in _shipped:
            limit = int(os.environ.get(SHIP_MAX_BYTES_ENV, str(DEFAULT_MAX_BYTES)))
            _shipped[key] = put_folder(Path(path), limit, SHIP_MAX_BYTES_ENV)
        return _shipped[key]


_actor_class: Any = None


def _remote_class() -> Any:
    global _actor_class
    if _actor_class is None:
        import ray

        from serving.worker.ray_replica import RayReplica

        _actor_class = ray.remote(RayReplica)
    return _actor_class


def _kill(actor: Actor) -> None:
    import ray

    with contextlib.suppress(Exception):  # already gone
        ray.kill(actor, no_restart=True)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the actor's own exception
    src = cause if isinstance(cause, BaseException) else exc
    text = str(src).strip()
    return text.splitlines()[0][:500] if text else type(src).__name__


class RayActorReplica(FramedHandle):
    """One replica as a Ray actor. `where` is the node's IP address."""

    def __init__(self, cfg: ReplicaConfig, index: int, options: HandleOptions, placement: Placement) -> None:
        self.cfg = cfg
        self.index = index
        self.options = options
        self.placement = placement
        self.on_lost: Callable[[], None] = lambda: None
        self.name = f"scorer:{placement.endpoint}:{cfg.deployment}:{index}:{uuid.uuid4().hex[:8]}"
        self._actor: Actor = None
        self._conn: ReplicaConnection | None = None
        self._closing = False

    # -- ReplicaHandle ------------------------------------------------------------------------
    async def start(self) -> Started:
        loop = asyncio.get_running_loop()
        cfg, what = self.cfg, f"deployment {self.cfg.deployment}"
        try:
            model = await loop.run_in_executor(None, _ship, cfg.model_path, cfg.model_version)
            code = await loop.run_in_executor(None, _ship, cfg.code_dir, cfg.model_version)
            self._actor = await loop.run_in_executor(None, self._create)
        except Exception as exc:
            raise StartFailed(f"{what}: cannot place a replica on the Ray cluster: {_one_line(exc)}") from None
        timeout = self.options.start_timeout_s
        try:
            async with asyncio.timeout(timeout):
                info: dict[str, Any] = await self._actor.start.remote(cfg, self.placement.secret, model, code)
        except TimeoutError:
            await self._end_actor()
            raise StartFailed(f"{what}: replica not ready after {timeout:.0f}s (does the Ray cluster have room "
                              f"for {self.placement.actor_options()}?)") from None
        except Exception as exc:
            await self._end_actor()
            raise StartFailed(f"{what}: {_one_line(exc)}") from None
        try:
            options = self.options
            self._conn = await ReplicaConnection.open_tcp(
                info["host"], info["port"], self._closed, self.placement.secret, self.placement.unresponsive_s,
                others_ready=lambda: options.ready_count() > 1)
        except (OSError, TimeoutError, HandshakeFailed) as exc:
            await self._end_actor()
            raise StartFailed(f"{what}: the router cannot reach its replica at {info['host']}:{info['port']} "
                              f"({type(exc).__name__}: {exc}); the router must reach the nodes' addresses") from None
        return Started(info.get("pid"), info.get("load_s", 0.0), info.get("warm_s", 0.0), where=str(info["node_ip"]))

    def kill(self, reason: str) -> None:
        """Kill through Ray (the replica may be hung or on a host we cannot reach), and give up on the
        connection now: its requests fail over and the supervisor places a replacement."""
        actor = self._actor
        if actor is not None:
            asyncio.get_running_loop().run_in_executor(None, _kill, actor)
        if self._conn is not None and not self._conn.closed:
            self._conn.lost(reason)

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            self._conn.close()
        await self._end_actor()

    def exit_code(self) -> int | None:
        return None  # Ray does not report an actor process's exit code

    # -- actor ----------------------------------------------------------------------------------
    def _create(self) -> Actor:
        # what a local replica would inherit from the router's environment (never keys or secrets)
        inherited = {k: v for k, v in os.environ.items() if k in REPLICA_ENV}
        env = {**TELEMETRY_OFF, **inherited, **self.cfg.environment}
        opts = {"name": self.name, "namespace": NAMESPACE, "max_restarts": 0, "max_task_retries": 0,
                "runtime_env": {"env_vars": env}, **self.placement.actor_options()}
        return _remote_class().options(**opts).remote()

    async def _end_actor(self) -> None:
        actor, self._actor = self._actor, None
        if actor is not None:
            await asyncio.get_running_loop().run_in_executor(None, _kill, actor)

    def _closed(self) -> None:
        if not self._closing:
            self.on_lost()


def ray_factory(endpoint: str, deployment: OnlineDeployment | None, secret: bytes) -> HandleFactory:
    """The HandleFactory of one deployment placed on the Ray cluster the router joined."""
    placement = placement_for(endpoint, deployment, secret)

    def make(cfg: ReplicaConfig, index: int, options: HandleOptions) -> RayActorReplica:
        return RayActorReplica(cfg, index, options, placement)

    return make
