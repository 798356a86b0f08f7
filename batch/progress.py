"""Progress: a rich bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("scorer.batch")


class Progress:
    def __init__(self, total_weight: int, every: float = 5.0, tty: bool | None = None) -> None:
        self.total = max(1, total_weight)
        self.every = every
        self.t0 = time.monotonic()
        self._last = 0.0
        self._bar: Any = None
        self._task: Any = None
        use_tty = sys.stderr.isatty() if tty is None else tty
        if use_tty:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("scoring"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                     TextColumn("{task.fields[items]:,} items, {task.fields[failed]:,} failed, "
                                                "{task.fields[rate]:,.0f}/s"),
                                     TimeElapsedColumn(), transient=False)
            self._task = self._bar.add_task("scoring", total=self.total, items=0, failed=0, rate=0.0)
            self._bar.start()

    def update(self, weight: int, items: int, failed: int, batches: int) -> None:
        now = time.monotonic()
        rate = items / max(now - self.t0, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=min(weight, self.total), items=items, failed=failed, rate=rate)
        elif now - self._last >= self.every:
            self._last = now
            log.info("progress: %d%% (%d mini-batches, %d items, %d failed, %.0f items/s)",
                     min(100, 100 * weight // self.total), batches, items, failed, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
