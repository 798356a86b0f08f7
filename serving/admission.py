"""Azure ML's admission per deployment: a concurrency limit, a bounded queue, a maximum queue wait.

In flight is at most `max_concurrent x ready replicas`; in flight + queued at most twice that.
Past the bound, or after `max_queue_wait_ms` in the queue, the request gets 429 (Retry-After);
with no ready replica, 503. FIFO: a freed slot goes to the oldest waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from serving.errors import ScoringError

RETRY_AFTER = "1"


class Admission:
    def __init__(self, name: str, per_replica: int, ready_replicas: Callable[[], int],
                 max_queue_wait_ms: float) -> None:
        self.name = name
        self.per_replica = per_replica
        self.ready_replicas = ready_replicas
        self.max_queue_wait = max_queue_wait_ms / 1000.0
        self.in_flight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        return self.per_replica * self.ready_replicas()

    @property
    def queued(self) -> int:
        return len(self.waiters)

    async def acquire(self) -> None:
        cap = self.capacity
        if cap <= 0:
            raise ScoringError(503, f"deployment {self.name} has no ready replica",
                               headers={"Retry-After": RETRY_AFTER})
        if self.in_flight < cap and not self.waiters:
            self.in_flight += 1
            return
        if self.in_flight + len(self.waiters) >= 2 * cap:
            raise ScoringError(429, f"deployment {self.name} is at its limit of {2 * cap} requests in flight "
                               "and queued; retry later", headers={"Retry-After": RETRY_AFTER})
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.max_queue_wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done() and not fut.cancelled():
                self.release()  # granted at the last moment: pass the slot on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ScoringError(429, f"deployment {self.name}: waited {self.max_queue_wait * 1000:.0f} ms "
                               "in the queue (max_queue_wait_ms); retry later",
                               headers={"Retry-After": RETRY_AFTER}) from None

    def refusal(self) -> ScoringError | None:
        """Why a request cannot be admitted now (429 past the bound, 503 without a ready replica), or
        None. Takes no slot: asked from a request's head, before its body is read."""
        cap = self.capacity
        if cap <= 0:
            return ScoringError(503, f"deployment {self.name} has no ready replica",
                                headers={"Retry-After": RETRY_AFTER})
        if self.in_flight + len(self.waiters) >= 2 * cap:
            return ScoringError(429, f"deployment {self.name} is at its limit of {2 * cap} requests in flight and "
                                "queued; retry later", headers={"Retry-After": RETRY_AFTER})
        return None

    def try_acquire(self) -> bool:
        """A free slot now, without queueing (mirror copies never wait behind live requests)."""
        if self.waiters or self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to waiters (also called when a replica becomes ready)."""
        cap = self.capacity
        while self.waiters and self.in_flight < cap:
            fut = self.waiters.popleft()
            if fut.done():
                continue
            self.in_flight += 1
            fut.set_result(None)
