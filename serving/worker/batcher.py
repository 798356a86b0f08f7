"""Adaptive batching in a replica: concurrent tabular requests merged into one predict call.

A request is parsed and checked on arrival (a malformed one is answered at once and never joins
a batch). The first waiting request opens a batch that closes when it holds `max_batch_size`
requests or `max_batch_wait_ms` after that request arrived; requests that queued while the
previous predict ran are therefore merged at once.

The wait is adaptive: a request that finds the replica empty goes at once when the previous
predict had no company either (low load: a lone client never pays the wait). As soon as one
predict merges two requests, the replica expects company again and waits, until a predict goes out
alone. Skipping the wait only on "the replica is empty" was measured before and cost a quarter of
the throughput at 8 connections: clients answered by one batch come back a few microseconds apart,
and the first of them would leave alone, splitting every batch in two.
Only requests with the same columns are merged; rows the fast reader took (`FastRows`) are
stacked with numpy into one frame for the batch, with no frame of their own. The merged result is
split back by row offsets; if the merged predict raises (or returns the wrong number of rows), each
request is scored on its own so that only the guilty one fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from scorer.models.loading import required_columns
from serving.errors import ScoringError, clip, error_body
from serving.protocol.mlflow import Reply, check_media_type
from serving.worker.mlflow_scorer import FastRows

log = logging.getLogger("scorer.replica")


@dataclass
class Item:
    rid: int
    data: Any  # FastRows, or a frame from MLflow's parser
    arrived: float
    future: asyncio.Future[tuple[Reply, int]] = field(repr=False)
    expires: float | None = None  # time.monotonic() after which nobody waits for the answer
    key: tuple[str, ...] = ()  # the frame's column names: only frames with the same ones merge


def _rows(result: Any) -> int | None:
    try:
        return len(result)
    except TypeError:
        return None


def _slice(result: Any, start: int, stop: int) -> Any:
    if hasattr(result, "iloc"):
        return result.iloc[start:stop].reset_index(drop=True) if hasattr(result, "reset_index") \
            else result.iloc[start:stop]
    return result[start:stop]


def _frame(data: Any) -> Any:
    return data.frame() if isinstance(data, FastRows) else data


def _merged(items: list[Any]) -> Any:
    """One frame of a batch, in order: the fast reader's rows stacked, or (mixed with frames from
    MLflow's parser) every request's frame concatenated."""
    if all(isinstance(i, FastRows) for i in items):
        return FastRows.merge(items)
    import pandas as pd

    return pd.concat([_frame(i) for i in items], ignore_index=True)


def spent() -> Reply:
    """The answer to a request whose deadline passed before it started (the router has answered 408)."""
    return Reply(408, error_body("REQUEST_TIMEOUT", "dropped by the replica: the request's budget was spent "
                                 "before it started"))


class Batcher:
    def __init__(self, scorer: Any, pool: Executor, max_size: int, max_wait_ms: float, deployment: str) -> None:
        self.scorer = scorer
        self.pool = pool
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000.0
        self.deployment = deployment
        self.required = set(required_columns(scorer.schema))
        self.queue: deque[Item] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.company = False  # whether the last predict merged more than one request

    def admit(self, rid: int, body: bytes, content_type: str,
              expires: float | None = None) -> asyncio.Future[tuple[Reply, int]] | None:
        """Parse and check now; a batchable frame joins the queue (its future answers it), anything
        else (params, non-frame input) returns None and is scored on its own by the caller."""
        mime = check_media_type(content_type)
        # raises ScoringError for a malformed request; the fast reader's rows become one frame a batch
        data, params = self.scorer.parse(body, mime, rows=True)
        if isinstance(data, FastRows):
            key = data.split.columns
        elif params or not hasattr(data, "columns") or not hasattr(data, "iloc"):
            return None
        else:  # a frame from MLflow's parser
            key = tuple(map(str, data.columns))
        missing = self.required.difference(key)
        if missing:
            raise ScoringError(400, "input does not match the model signature: Model is missing inputs "
                               f"{sorted(missing)}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Reply, int]] = loop.create_future()
        self.queue.append(Item(rid, data, time.monotonic(), fut, expires, key))
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
        return fut

    def cancel(self, rid: int) -> bool:
        """Drop a request that has not joined a predict yet (the router gave up on it)."""
        for item in self.queue:
            if item.rid == rid:
                self.queue.remove(item)
                if not item.future.done():
                    item.future.cancel()
                return True
        return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            first = self.queue[0]
            deadline = first.arrived + self.max_wait
            alone = len(self.queue) == 1 and not self.company  # low load: nobody to wait for
            while not alone and len(self._same(first)) < self.max_size and time.monotonic() < deadline:
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break
            self._drop_expired()
            if not self.queue:
                return
            batch = self._same(self.queue[0])[: self.max_size]
            for item in batch:
                self.queue.remove(item)
            self.company = len(batch) > 1
            replies = await loop.run_in_executor(self.pool, self._score_batch, [i.data for i in batch])
            for item, reply in zip(batch, replies, strict=True):
                if not item.future.done():
                    item.future.set_result(reply)

    def _drop_expired(self) -> None:
        """Requests whose budget is spent are answered 408 without joining a predict."""
        now = time.monotonic()
        for item in [i for i in self.queue if i.expires is not None and i.expires <= now]:
            self.queue.remove(item)
            if not item.future.done():
                item.future.set_result((spent(), 0))

    def _same(self, first: Item) -> list[Item]:
        key = first.key
        return [i for i in self.queue if i.key == key]

    # -- in the scoring thread ------------------------------------------------------------------
    def _score_batch(self, items: list[Any]) -> list[tuple[Reply, int]]:
        if len(items) == 1:
            return [(self._score_one(items[0]), 1)]
        sizes = [len(f) for f in items]
        try:
            result = self.scorer.predict(_merged(items), None)
            if _rows(result) != sum(sizes):
                raise ValueError(f"merged predict returned {_rows(result)} rows for {sum(sizes)}")
            out, start = [], 0
            for n in sizes:
                out.append((self._encode(_slice(result, start, start + n)), len(items)))
                start += n
            return out
        except Exception as exc:  # one of them is guilty, or the model does not split by rows
            log.info("deployment %s: merged predict of %d requests failed (%s); scoring them one by one",
                     self.deployment, len(items), str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return [(self._score_one(f), 1) for f in items]

    def _score_one(self, data: Any) -> Reply:
        try:
            return self._encode(self.scorer.predict(_frame(data), None))
        except ScoringError as err:
            return Reply(err.status, error_body(err.code, err.message), headers=err.headers)
        except Exception as exc:
            log.exception("deployment %s: unexpected error while scoring", self.deployment)
            return Reply(500, error_body("INTERNAL_ERROR", clip(f"{type(exc).__name__}: {exc}")))

    def _encode(self, raw: Any) -> Reply:
        try:
            return Reply(200, self.scorer.encode(raw))
        except Exception as exc:
            return Reply(424, error_body("MODEL_ERROR", clip(f"the model's output cannot be encoded as JSON: {exc}")))
