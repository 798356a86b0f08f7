"""Which replica answers a request, and what happens when it cannot.

Least outstanding requests among usable replicas. A replica lost mid-request: the request is
retried once on another. A request whose deadline passes is abandoned; a replica still running it
`kill_after_s` later is killed (the supervisor restarts it), so one stuck request cannot hold a
replica for good. The deadline travels in the frame header as the remaining budget in ms, so
the replica itself drops work that can no longer be answered in time.
"""

from __future__ import annotations

import asyncio
import logging

from serving.errors import ScoringError
from serving.replicas.handle import Header, ReplicaGone, ReplicaHandle
from serving.replicas.supervisor import Replica, Supervisor

log = logging.getLogger("scorer.router")


class Balancer:
    def __init__(self, supervisor: Supervisor, kill_after_s: float = 1.0) -> None:
        self.supervisor = supervisor
        self.name = supervisor.name
        self.kill_after_s = kill_after_s

    def pick(self, exclude: set[int] | None = None) -> Replica | None:
        """Least outstanding requests among usable replicas; ties go to the lowest index, so that at
        low load one replica stays hot in cache (measured: alternating costs ~0.7 ms a request)."""
        best: Replica | None = None
        for r in self.supervisor.replicas:
            if not r.usable or (exclude and r.index in exclude):
                continue
            if best is None or r.outstanding < best.outstanding:
                best = r
                if best.outstanding == 0:
                    break
        return best

    async def call(self, header: Header, body: bytes, deadline: float | None = None) -> tuple[Header, bytes]:
        """Score on one replica; if it goes away mid-request, retry once on another; else 503.
        `deadline` is in event-loop time; the replica gets what is left of it."""
        tried: set[int] = set()
        loop = asyncio.get_running_loop()
        for _attempt in range(2):
            r = self.pick(tried)
            if r is None:
                break
            handle = r.handle
            assert handle is not None
            sent = dict(header)
            if deadline is not None:
                sent["ms"] = max(1, int((deadline - loop.time()) * 1000))
            try:
                return await handle.call(sent, body)
            except ReplicaGone:
                tried.add(r.index)
                log.warning("deployment %s: replica %s died during a request; retrying on another",
                            self.name, r.pid)
            except asyncio.CancelledError:
                self._watch_abandoned(r, handle)
                raise
        if tried:
            raise ScoringError(503, f"deployment {self.name}: the replica serving this request died "
                               "and no other replica could take it", headers={"Retry-After": "1"})
        raise ScoringError(503, f"deployment {self.name} has no ready replica", headers={"Retry-After": "1"})

    def _watch_abandoned(self, r: Replica, handle: ReplicaHandle) -> None:
        """After the deadline: kill the replica if it is still running this request kill_after_s later."""
        loop = asyncio.get_running_loop()
        since = loop.time()

        def check() -> None:
            if r.handle is handle and handle.alive and handle.still_running(since):
                log.warning("deployment %s: replica %s still busy %.1fs after a request's deadline; killing it",
                            self.name, r.pid, self.kill_after_s)
                self.supervisor.kill(r, "timeout")

        loop.call_later(self.kill_after_s, check)
