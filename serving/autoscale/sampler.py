"""Time-averaged load of one deployment, sampled from its admission state.

Every `period` seconds the sampler reads in flight + queued and the ready replica count and
integrates them over time; `take()` returns the averages since the last `take()` and starts again.
Sampling is a few attribute reads on the event loop: it costs the request path nothing measurable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    load: float  # average in flight + queued
    ready: float  # average ready replicas
    seconds: float  # the span averaged over
    peak: int  # highest in flight + queued seen


class Sampler:
    def __init__(self, load: Callable[[], int], ready: Callable[[], int], period: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.load = load
        self.ready = ready
        self.period = period
        self.clock = clock
        self._reset(clock())
        self._last = (self._t0, load(), ready())

    def _reset(self, now: float) -> None:
        self._t0 = now
        self._load_area = 0.0
        self._ready_area = 0.0
        self._peak = 0

    def sample(self) -> None:
        """Integrate the last reading up to now (the reading holds until the next one), then read."""
        now = self.clock()
        t, load, ready = self._last
        dt = max(0.0, now - t)
        self._load_area += load * dt
        self._ready_area += ready * dt
        cur_load, cur_ready = self.load(), self.ready()
        self._peak = max(self._peak, load, cur_load)
        self._last = (now, cur_load, cur_ready)

    def take(self) -> Sample:
        self.sample()
        now = self.clock()
        span = now - self._t0
        if span <= 0:
            _, load, ready = self._last
            out = Sample(float(load), float(ready), 0.0, load)
        else:
            out = Sample(self._load_area / span, self._ready_area / span, span, self._peak)
        self._reset(now)
        return out

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.sample()
