"""One forkserver per router with the heavy imports done once: a replica start costs the model load."""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

PRELOAD = ["serving.worker.preload"]

_ctx: BaseContext | None = None


def context() -> BaseContext:
    global _ctx
    if _ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _ctx = ctx
    return _ctx
