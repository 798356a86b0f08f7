"""The driver loop: feed idle actors, enforce per-mini-batch timeouts, retry, split, count failures.

At most two mini-batches (or pieces of one) are in flight per actor, so in-flight work is
bounded by the pool (backpressure: the planner is pulled only when an actor has room), and an
actor never waits for the driver between two pieces. The timeout clock of a piece starts when it
reaches the head of its actor's lane, not when it was submitted. A piece that raises is
retried up to `max_retries` times, then split in halves, recursively, down to single rows, so that
only rows that fail on their own are failed. Rows that fail to parse come back failed with their
line, column and value from the actor, which read the rest: they are never split. A piece that
runs past the timeout has its actor killed and replaced, and is retried; after its retries it
fails whole (no splitting).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from batch.plan import MiniBatch
from batch.pool import Pool
from batch.writer import Failure, OrderedWriter, Result

log = logging.getLogger("scorer.batch")

DEPTH = 2  # pieces in flight per actor: the next one is already there when the last one ends
LOOKAHEAD = 2048  # planned mini-batches held ahead (small objects: where to read, not data)


@dataclass
class _State:
    mb: MiniBatch
    pieces: list[tuple[int, pa.Table]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    done: int = 0
    retried: bool = False


@dataclass
class _Task:
    st: _State
    lo: int
    hi: int
    attempt: int = 0
    split: bool = False


@dataclass
class Counters:
    batches: int = 0
    batches_ok: int = 0
    batches_failed: int = 0
    batches_retried: int = 0
    items: int = 0
    items_failed: int = 0
    weight_done: int = 0
    retries: int = 0
    timeouts: int = 0
    actor_deaths: int = 0
    splits: int = 0
    blank_lines: int = 0
    failed_seen: int = 0  # failed items, including those of mini-batches not finished yet
    first_errors: dict[str, dict] = field(default_factory=dict)
    unfinished: list[Result] = field(default_factory=list)  # failures of unfinished mini-batches at a stop


class Stop(Exception):
    pass


def run_schedule(plan: Iterator[MiniBatch], pool: Pool, writer: OrderedWriter, *, tabular: bool,
                 max_retries: int, timeout: float, threshold: int, failed_before: int,
                 should_stop: Callable[[], bool], on_commit: Callable[[list[Result], Counters], None],
                 counters: Counters | None = None) -> tuple[str, Counters]:
    """Returns ('done' | 'threshold' | 'interrupted', counters of this run). The counters are
    `counters` when given, so that the caller still has them if a write error ends the loop."""
    import ray

    c = counters if counters is not None else Counters()
    lanes: dict[Any, deque[Any]] = {a: deque() for a in pool.actors}  # actor -> refs in flight, in order
    busy: dict[Any, tuple[Any, _Task]] = {}  # ref -> (actor, task)
    head_since: dict[Any, float] = {}  # ref at the head of its lane -> when it started running
    starting: dict[Any, Any] = {}  # ready ref -> actor
    queue: deque[_Task] = deque()
    plan_left = True
    open_states: dict[int, _State] = {}

    ahead: list[MiniBatch] = []  # planned, not started: a bounded look-ahead for row-group affinity
    last_group: dict[Any, str | None] = {}

    def pick(actor: Any) -> MiniBatch | None:
        """The next mini-batch for this actor. Parquet mini-batches prefer the row group the actor
        decoded last, then a row group no other actor is on, so each row group is decoded once."""
        nonlocal plan_left
        while plan_left and (not ahead or (ahead[-1].group is not None and len(ahead) < LOOKAHEAD)):
            mb = next(plan, None)
            if mb is None:
                plan_left = False
            else:
                ahead.append(mb)
        if not ahead:
            return None
        i = 0
        if ahead[0].group is not None:
            mine = last_group.get(actor)
            claimed = {g for a, g in last_group.items() if a is not actor}
            same = next((k for k, m in enumerate(ahead) if m.group == mine), None)
            free = next((k for k, m in enumerate(ahead) if m.group not in claimed), None)
            i = same if same is not None else free if free is not None else 0
        mb = ahead.pop(i)
        last_group[actor] = mb.group
        return mb

    def row_failures(task: _Task, found: list[dict] | None) -> set[int]:
        """Rows of the piece that failed to parse: failed on their own, with line, column, value."""
        rows: set[int] = set()
        for f in found or []:
            task.st.failures.append(Failure(f["error"], "ParseError", f["row"], f["row"] + 1, line=f.get("line"),
                                            column=f.get("column"), value=f.get("value"), parse=True))
            rows.add(f["row"])
            c.first_errors.setdefault("ParseError", {"mini_batch": task.st.mb.id, "row": f["row"],
                                                     "line": f.get("line"), "error": f["error"]})
        c.failed_seen += len(rows)
        return rows

    def fail(task: _Task, error: str, kind: str, parsed: list[dict] | None = None) -> None:
        mb = task.st.mb
        if mb.fmt == "files":
            task.st.failures.append(Failure(error, kind, files=mb.files[task.lo:task.hi]))
            c.failed_seen += task.hi - task.lo
        else:
            skip = row_failures(task, parsed)
            lo = task.lo
            for row in [*sorted(skip), task.hi]:  # the other rows of the piece share the error
                if row > lo:
                    task.st.failures.append(Failure(error, kind, lo, row))
                    c.failed_seen += row - lo
                lo = row + 1
        task.st.done += task.hi - task.lo
        c.first_errors.setdefault(kind, {"mini_batch": mb.id, "error": error})
        finish_if_done(task.st)

    def retry_or(task: _Task, error: str, kind: str, splittable: bool, parsed: list[dict] | None = None) -> None:
        if task.attempt < max_retries and not task.split:
            task.st.retried = True
            c.retries += 1
            queue.append(_Task(task.st, task.lo, task.hi, task.attempt + 1))
        elif splittable and tabular and task.hi - task.lo - len(parsed or []) > 1:
            c.splits += 1
            mid = (task.lo + task.hi) // 2
            queue.appendleft(_Task(task.st, mid, task.hi, task.attempt, True))
            queue.appendleft(_Task(task.st, task.lo, mid, task.attempt, True))
        else:
            fail(task, error, kind, parsed)

    def finish_if_done(st: _State) -> None:
        if st.done < st.mb.items:
            return
        open_states.pop(st.mb.seq, None)
        st.pieces.sort(key=lambda p: p[0])
        tables = [t for _, t in st.pieces if t.num_rows]
        table = None
        if tables:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        st.failures.sort(key=lambda f: (f.start, f.files))
        r = Result(st.mb.seq, st.mb.id, st.mb.name, st.mb.items, table, st.failures, st.retried, st.mb,
                   st.mb.blank)
        c.batches += 1
        c.blank_lines += st.mb.blank
        c.items += st.mb.items
        c.items_failed += r.failed
        c.weight_done += st.mb.weight
        c.batches_failed += 1 if r.failed else 0
        c.batches_ok += 0 if r.failed else 1
        c.batches_retried += 1 if st.retried else 0
        committed = writer.add(r)
        if committed:
            on_commit(committed, c)

    def stopped(outcome: str) -> tuple[str, Counters]:
        for st in sorted(open_states.values(), key=lambda s: s.mb.seq):
            if st.failures:
                c.unfinished.append(Result(st.mb.seq, st.mb.id, st.mb.name, st.mb.items, None,
                                           sorted(st.failures, key=lambda f: (f.start, f.files)), mb=st.mb))
        return outcome, c

    def lose_actor(actor: Any, error: str, kind: str) -> None:
        """An actor timed out or died: replace it; its running piece counts an attempt, the piece
        queued behind it is simply requeued."""
        lane = lanes.pop(actor, deque())
        new, rref = pool.replace(actor)
        last_group.pop(actor, None)
        starting[rref] = new
        for k, ref in enumerate(lane):
            _, task = busy.pop(ref)
            head_since.pop(ref, None)
            if k == 0:
                retry_or(task, error, kind, False)
            else:
                queue.appendleft(task)

    while True:
        if should_stop():
            return stopped("interrupted")
        if threshold >= 0 and failed_before + c.failed_seen > threshold:
            return stopped("threshold")
        for actor, lane in list(lanes.items()):
            while len(lane) < DEPTH and (queue or plan_left or ahead):
                if queue:
                    task = queue.popleft()
                else:
                    mb = pick(actor)
                    if mb is None:
                        break
                    task = _Task(_State(mb), *(mb.start, mb.stop) if mb.fmt != "files" else (0, len(mb.files)))
                    open_states[mb.seq] = task.st
                ref = actor.score.remote(task.st.mb, task.lo, task.hi)
                busy[ref] = (actor, task)
                if not lane:
                    head_since[ref] = time.monotonic()
                lane.append(ref)
        if not busy and not queue and not plan_left and not ahead:
            return "done", c
        if not lanes and not starting:
            raise Stop("no actor is left to run the job (every replacement failed to start)")
        now = time.monotonic()
        next_deadline = min((s + timeout for s in head_since.values()), default=now + 0.5)
        wait = max(0.0, min(0.5, next_deadline - now))
        refs = list(busy) + list(starting)
        ready, _ = ray.wait(refs, num_returns=1, timeout=wait)
        if ready:  # take everything already finished, not only one
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = list({*ready, *more})
        for ref in ready:
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    info = ray.get(ref)
                    if info.get("error"):
                        raise RuntimeError(info["error"])
                    lanes[actor] = deque()
                except Exception as exc:
                    log.error("a replacement actor failed to start: %s", str(exc).splitlines()[0])
                continue
            if ref not in busy:
                continue  # its actor was replaced meanwhile
            actor, task = busy[ref]
            try:
                res = ray.get(ref)
            except ray.exceptions.RayError as exc:
                c.actor_deaths += 1
                log.warning("actor running mini-batch %s died (%s); replacing it", task.st.mb.id,
                            type(exc).__name__)
                lose_actor(actor, f"ActorDied: {str(exc).strip().splitlines()[0][:300]}", "ActorDied")
                continue
            busy.pop(ref)
            head_since.pop(ref, None)
            lane = lanes[actor]
            lane.remove(ref)
            if lane and lane[0] not in head_since:
                head_since[lane[0]] = time.monotonic()
            if res["ok"]:
                if res["table"] is not None:
                    task.st.pieces.append((task.lo, res["table"]))
                row_failures(task, res.get("row_failures"))
                task.st.done += task.hi - task.lo
                finish_if_done(task.st)
            else:
                log.debug("mini-batch %s rows %d-%d raised %s", task.st.mb.id, task.lo, task.hi, res["error"])
                retry_or(task, res["error"], res["kind"], res.get("splittable", True), res.get("row_failures"))
        now = time.monotonic()
        for ref, since in list(head_since.items()):
            if ref in busy and now - since > timeout:
                actor, task = busy[ref]
                c.timeouts += 1
                log.warning("mini-batch %s ran past the %.0f s timeout; replacing its actor", task.st.mb.id, timeout)
                lose_actor(actor, f"Timeout: ran past {timeout:g} s", "Timeout")
