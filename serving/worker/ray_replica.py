"""A replica as a Ray actor (the child side of `serving/replicas/ray_actor.py`).

The actor is async, so the replica's frame server (`serving.worker.main.start_tcp`) runs on the
actor's event loop; scoring stays on `ReplicaServer`'s thread pool. `start` unpacks the shipped
model (and code) folder on this node, loads and warms the model, listens on this node's address
(port 0: the system picks) and reports where. The router then speaks frames to that address,
never actor calls: an actor call costs about a millisecond, a frame tens of microseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from typing import Any

from scorer.environment import settle_heap
from scorer.models.ship import Shipped, unpack
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.replica")


class RayReplica:
    """Created by the router with `ray.remote(RayReplica).options(...)`; holds the TCP server."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._keep: Any = None  # the ReplicaServer, alive as long as the actor

    async def start(self, cfg: ReplicaConfig, secret: bytes, model: Shipped | None = None,
                    code: Shipped | None = None) -> dict[str, Any]:
        """Load, warm up, listen; returns host, port, pid, node id and ip, load_s and warm_s.
        Raises (a one-line message) when the model does not load."""
        import ray

        from serving import logs
        from serving.worker.load import build_scorer
        from serving.worker.main import ReplicaServer, start_tcp

        logs.setup(os.environ.get("SCORER_LOG_FORMAT", "text"))
        started = time.perf_counter()
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model_path"] = str(await asyncio.to_thread(unpack, model))
        if code is not None:
            changes["code_dir"] = str(await asyncio.to_thread(unpack, code))
        cfg = dataclasses.replace(cfg, **changes) if changes else cfg
        try:
            scorer, example = await asyncio.to_thread(build_scorer, cfg)
        except Exception as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(line if type(exc).__name__ in line else f"{type(exc).__name__}: {line}") from None
        loaded = time.perf_counter()
        try:
            await asyncio.to_thread(scorer.warm_up, example)
        except Exception as exc:
            log.warning("deployment %s: warm-up on the input example failed: %s", cfg.deployment, exc)
        warmed = time.perf_counter()
        server = ReplicaServer(scorer, cfg)
        settle_heap()
        node_ip: Any = ray.util.get_node_ip_address  # untyped in Ray
        host = str(node_ip())
        self._server = await start_tcp(server, host, 0, secret)
        self._keep = server
        port = self._server.sockets[0].getsockname()[1]
        return {"host": host, "port": port, "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id(), "node_ip": host,
                "load_s": loaded - started, "warm_s": warmed - loaded}

    async def pid(self) -> int:
        """This actor's process id (tests and `scorer stop` use it)."""
        return os.getpid()
