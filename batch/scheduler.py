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
from typing import Any, cast

import pyarrow as pa

from batch.plan import MiniBatch
from batch.pool import Actor, Pool, Ref
from batch.worker import ActorInfo, ScoreReply
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
    first_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    unfinished: list[Result] = field(default_factory=list)  # failures of unfinished mini-batches at a stop


class Stop(Exception):
    pass


def run_schedule(plan: Iterator[MiniBatch], pool: Pool, writer: OrderedWriter, *, tabular: bool,
                 max_retries: int, timeout: float, threshold: int, failed_before: int,
                 should_stop: Callable[[], bool], on_commit: Callable[[list[Result], Counters], None],
                 counters: Counters | None = None) -> tuple[str, Counters]:
    """Returns ('done' | 'threshold' | 'interrupted', counters of this run). The counters are
    `counters` when given, so that the caller still has them if a write error ends the loop."""
    rules = _Rules(tabular, max_retries, timeout, threshold, failed_before)
    c = counters if counters is not None else Counters()
    return _Scheduler(plan, pool, writer, rules, should_stop, on_commit, c).run()


@dataclass(frozen=True)
class _Rules:
    """The job's retry settings and error threshold, as the scheduler applies them."""

    tabular: bool  # tabular pieces can be split; files-mode ones fail whole
    max_retries: int
    timeout: float  # seconds a piece may run at the head of its lane
    threshold: int  # failed items allowed (over all runs of the job); -1: no limit
    failed_before: int  # failed items committed by earlier runs (resume)


class _LookAhead:
    """Planned mini-batches not started yet, pulled from the planner only when an actor has room.
    Parquet mini-batches prefer the row group the actor decoded last, then a row group no other
    actor is on, so each row group is decoded once."""

    def __init__(self, plan: Iterator[MiniBatch]) -> None:
        self.plan = plan
        self.plan_left = True
        self.ahead: list[MiniBatch] = []
        self.last_group: dict[Actor, str | None] = {}

    def __bool__(self) -> bool:
        """Whether any mini-batch is left to start."""
        return self.plan_left or bool(self.ahead)

    def pick(self, actor: Actor) -> MiniBatch | None:
        """The next mini-batch for this actor; None when the plan is spent."""
        ahead = self.ahead
        while self.plan_left and (not ahead or (ahead[-1].group is not None and len(ahead) < LOOKAHEAD)):
            mb = next(self.plan, None)
            if mb is None:
                self.plan_left = False
            else:
                ahead.append(mb)
        if not ahead:
            return None
        i = 0
        if ahead[0].group is not None:
            mine = self.last_group.get(actor)
            claimed = {g for a, g in self.last_group.items() if a is not actor}
            same = next((k for k, m in enumerate(ahead) if m.group == mine), None)
            free = next((k for k, m in enumerate(ahead) if m.group not in claimed), None)
            i = same if same is not None else free if free is not None else 0
        mb = ahead.pop(i)
        self.last_group[actor] = mb.group
        return mb

    def forget(self, actor: Actor) -> None:
        self.last_group.pop(actor, None)


class _Scheduler:
    """One run of the driver loop: feed the lanes, wait, take results, enforce timeouts; a piece's
    outcome is recorded (done, failed rows), retried, split, or failed."""

    def __init__(self, plan: Iterator[MiniBatch], pool: Pool, writer: OrderedWriter, rules: _Rules,
                 should_stop: Callable[[], bool], on_commit: Callable[[list[Result], Counters], None],
                 counters: Counters) -> None:
        self.pool = pool
        self.writer = writer
        self.rules = rules
        self.should_stop = should_stop
        self.on_commit = on_commit
        self.c = counters
        self.todo = _LookAhead(plan)
        self.lanes: dict[Actor, deque[Ref]] = {a: deque() for a in pool.actors}  # refs in flight, in order
        self.busy: dict[Ref, tuple[Actor, _Task]] = {}
        self.head_since: dict[Ref, float] = {}  # ref at the head of its lane -> when it started running
        self.starting: dict[Ref, Actor] = {}  # ready() ref of a replacement -> the actor
        self.queue: deque[_Task] = deque()  # retries and split halves, before new mini-batches
        self.open_states: dict[int, _State] = {}  # started mini-batches, by seq

    def run(self) -> tuple[str, Counters]:
        while True:
            if self.should_stop():
                return self._stopped("interrupted")
            if self.rules.threshold >= 0 and self.rules.failed_before + self.c.failed_seen > self.rules.threshold:
                return self._stopped("threshold")
            self._feed()
            if not self.busy and not self.queue and not self.todo:
                return "done", self.c
            if not self.lanes and not self.starting:
                raise Stop("no actor is left to run the job (every replacement failed to start)")
            for ref in self._wait():
                if ref in self.starting:
                    self._started(ref)
                elif ref in self.busy:  # else its actor was replaced meanwhile
                    self._answered(ref)
            self._expire()

    # --- the loop's steps ----------------------------------------------------------------------

    def _feed(self) -> None:
        """Fill every lane up to DEPTH: retries and split halves first, then the next mini-batches."""
        for actor, lane in list(self.lanes.items()):
            while len(lane) < DEPTH and (self.queue or self.todo):
                if self.queue:
                    task = self.queue.popleft()
                else:
                    mb = self.todo.pick(actor)
                    if mb is None:
                        break
                    task = _Task(_State(mb), *(mb.start, mb.stop) if mb.fmt != "files" else (0, len(mb.files)))
                    self.open_states[mb.seq] = task.st
                ref = actor.score.remote(task.st.mb, task.lo, task.hi)
                self.busy[ref] = (actor, task)
                if not lane:
                    self.head_since[ref] = time.monotonic()
                lane.append(ref)

    def _wait(self) -> list[Ref]:
        """Whatever finished (pieces and replacement starts), waiting at most until the next deadline."""
        import ray

        now = time.monotonic()
        next_deadline = min((s + self.rules.timeout for s in self.head_since.values()), default=now + 0.5)
        wait = max(0.0, min(0.5, next_deadline - now))
        refs = list(self.busy) + list(self.starting)
        ready, _ = ray.wait(refs, num_returns=1, timeout=wait)
        if ready:  # take everything already finished, not only one
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = list({*ready, *more})
        return list(ready)

    def _started(self, ref: Ref) -> None:
        """A replacement actor answered ready(): it gets a lane, or is dropped if it failed to load."""
        import ray

        actor = self.starting.pop(ref)
        try:
            info = cast(ActorInfo, ray.get(ref))
            if info.get("error"):
                raise RuntimeError(info["error"])
            self.lanes[actor] = deque()
        except Exception as exc:
            log.error("a replacement actor failed to start: %s", str(exc).splitlines()[0])

    def _answered(self, ref: Ref) -> None:
        """A piece came back: its rows are done, or it raised (retry, split or fail); a dead actor is
        replaced."""
        import ray

        actor, task = self.busy[ref]
        try:
            res = cast(ScoreReply, ray.get(ref))
        except ray.exceptions.RayError as exc:
            self.c.actor_deaths += 1
            log.warning("actor running mini-batch %s died (%s); replacing it", task.st.mb.id, type(exc).__name__)
            self._lose_actor(actor, f"ActorDied: {str(exc).strip().splitlines()[0][:300]}", "ActorDied")
            return
        self.busy.pop(ref)
        self.head_since.pop(ref, None)
        lane = self.lanes[actor]
        lane.remove(ref)
        if lane and lane[0] not in self.head_since:
            self.head_since[lane[0]] = time.monotonic()
        if res["ok"]:
            table = res.get("table")
            if table is not None:
                task.st.pieces.append((task.lo, table))
            self._row_failures(task, res.get("row_failures"))
            task.st.done += task.hi - task.lo
            self._finish_if_done(task.st)
        else:
            log.debug("mini-batch %s rows %d-%d raised %s", task.st.mb.id, task.lo, task.hi, res["error"])
            self._retry_or(task, res["error"], res["kind"], res.get("splittable", True), res.get("row_failures"))

    def _expire(self) -> None:
        """Pieces at the head of their lane past the timeout: their actor is killed and replaced."""
        now = time.monotonic()
        for ref, since in list(self.head_since.items()):
            if ref in self.busy and now - since > self.rules.timeout:
                actor, task = self.busy[ref]
                self.c.timeouts += 1
                log.warning("mini-batch %s ran past the %.0f s timeout; replacing its actor", task.st.mb.id,
                            self.rules.timeout)
                self._lose_actor(actor, f"Timeout: ran past {self.rules.timeout:g} s", "Timeout")

    def _stopped(self, outcome: str) -> tuple[str, Counters]:
        """Failures of mini-batches that never finished are kept for errors.jsonl."""
        for st in sorted(self.open_states.values(), key=lambda s: s.mb.seq):
            if st.failures:
                self.c.unfinished.append(Result(st.mb.seq, st.mb.id, st.mb.name, st.mb.items, None,
                                                sorted(st.failures, key=lambda f: (f.start, f.files)), mb=st.mb))
        return outcome, self.c

    # --- outcomes of a piece -------------------------------------------------------------------

    def _row_failures(self, task: _Task, found: list[dict[str, Any]] | None) -> set[int]:
        """Rows of the piece that failed to parse: failed on their own, with line, column, value."""
        rows: set[int] = set()
        for f in found or []:
            task.st.failures.append(Failure(f["error"], "ParseError", f["row"], f["row"] + 1, line=f.get("line"),
                                            column=f.get("column"), value=f.get("value"), parse=True))
            rows.add(f["row"])
            self.c.first_errors.setdefault("ParseError", {"mini_batch": task.st.mb.id, "row": f["row"],
                                                          "line": f.get("line"), "error": f["error"]})
        self.c.failed_seen += len(rows)
        return rows

    def _fail(self, task: _Task, error: str, kind: str, parsed: list[dict[str, Any]] | None = None) -> None:
        mb = task.st.mb
        if mb.fmt == "files":
            task.st.failures.append(Failure(error, kind, files=mb.files[task.lo:task.hi]))
            self.c.failed_seen += task.hi - task.lo
        else:
            skip = self._row_failures(task, parsed)
            lo = task.lo
            for row in [*sorted(skip), task.hi]:  # the other rows of the piece share the error
                if row > lo:
                    task.st.failures.append(Failure(error, kind, lo, row))
                    self.c.failed_seen += row - lo
                lo = row + 1
        task.st.done += task.hi - task.lo
        self.c.first_errors.setdefault(kind, {"mini_batch": mb.id, "error": error})
        self._finish_if_done(task.st)

    def _retry_or(self, task: _Task, error: str, kind: str, splittable: bool,
                  parsed: list[dict[str, Any]] | None = None) -> None:
        """Retry a piece that raised; past its retries split it in halves (tabular), else fail it."""
        if task.attempt < self.rules.max_retries and not task.split:
            task.st.retried = True
            self.c.retries += 1
            self.queue.append(_Task(task.st, task.lo, task.hi, task.attempt + 1))
        elif splittable and self.rules.tabular and task.hi - task.lo - len(parsed or []) > 1:
            self.c.splits += 1
            mid = (task.lo + task.hi) // 2
            self.queue.appendleft(_Task(task.st, mid, task.hi, task.attempt, True))
            self.queue.appendleft(_Task(task.st, task.lo, mid, task.attempt, True))
        else:
            self._fail(task, error, kind, parsed)

    def _finish_if_done(self, st: _State) -> None:
        """A mini-batch whose every item is done goes to the writer, which commits in order."""
        if st.done < st.mb.items:
            return
        self.open_states.pop(st.mb.seq, None)
        st.pieces.sort(key=lambda p: p[0])
        tables = [t for _, t in st.pieces if t.num_rows]
        table = None
        if tables:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        st.failures.sort(key=lambda f: (f.start, f.files))
        r = Result(st.mb.seq, st.mb.id, st.mb.name, st.mb.items, table, st.failures, st.retried, st.mb,
                   st.mb.blank)
        c = self.c
        c.batches += 1
        c.blank_lines += st.mb.blank
        c.items += st.mb.items
        c.items_failed += r.failed
        c.weight_done += st.mb.weight
        c.batches_failed += 1 if r.failed else 0
        c.batches_ok += 0 if r.failed else 1
        c.batches_retried += 1 if st.retried else 0
        committed = self.writer.add(r)
        if committed:
            self.on_commit(committed, c)

    def _lose_actor(self, actor: Actor, error: str, kind: str) -> None:
        """An actor timed out or died: replace it; its running piece counts an attempt, the piece
        queued behind it is simply requeued."""
        lane = self.lanes.pop(actor, deque())
        new, rref = self.pool.replace(actor)
        self.todo.forget(actor)
        self.starting[rref] = new
        for k, ref in enumerate(lane):
            _, task = self.busy.pop(ref)
            self.head_since.pop(ref, None)
            if k == 0:
                self._retry_or(task, error, kind, False)
            else:
                self.queue.appendleft(task)
