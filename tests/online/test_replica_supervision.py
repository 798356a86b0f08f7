"""The supervisor and the balancer against a scripted in-process ReplicaHandle (no processes):
restart with backoff, start failures, drain on scale-down, scale-down order, liveness and
readiness probes, kill after a deadline, retry on a lost replica and the budget header.

The fake keeps the Protocol's bookkeeping for real (outstanding, abandoned requests, alive,
exit code, `on_lost` called soon after the replica goes away, never on `close()`), so these tests
hold for any handle that keeps the contract. The whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest

from serving.errors import ScoringError
from serving.replicas.balancer import Balancer
from serving.replicas.handle import HandleOptions, Header, ReplicaGone, Started, StartFailed
from serving.replicas.supervisor import DRAINING, FAILED, READY, STARTING, Replica, Supervisor, Timing
from serving.worker.config import ReplicaConfig

CFG = ReplicaConfig(deployment="d", model_path=None, model_version="1")
SCORE: Header = {"op": "score", "ct": "application/json"}


@dataclass
class Probe:
    """The YAML's liveness_probe / readiness_probe, in seconds."""

    initial_delay: float = 0.0
    period: float = 0.02
    timeout: float = 0.1
    success_threshold: int = 1
    failure_threshold: int = 3


QUIET = Probe(initial_delay=3600)  # a probe that never runs within a test


class FakeReplica:
    """A ReplicaHandle whose replica is a script: how it starts, answers calls and probes, dies."""

    def __init__(self, index: int, serial: int, start_mode: str) -> None:
        self.index, self.serial = index, serial
        self.start_mode = start_mode  # ok | fail (StartFailed) | crash (a handle's bug) | hang
        self.call_mode = "answer"  # answer | hang (until finish() or the replica goes) | gone
        self.probe = {"ping": "ok", "ready": "ok"}  # ok | fail | hang
        self.on_lost: Callable[[], None] = lambda: None
        self.unblock = asyncio.Event()  # ends a hanging start
        self.started_at: float | None = None
        self.calls: list[Header] = []
        self.pings: list[tuple[str, bool | None]] = []  # (op, answer; None while it hangs)
        self.kills: list[tuple[str, float]] = []
        self.abandoned_at: list[float] = []  # when the router gave up on a request (loop time)
        self.closed_with: int | None = None  # requests outstanding when close() was called
        self._alive = False
        self._exit: int | None = None
        self._pending: dict[int, asyncio.Future[tuple[Header, bytes]]] = {}
        self._abandoned: dict[int, float] = {}
        self._ids = itertools.count(1)

    # -- the Protocol ---------------------------------------------------------------------------
    async def start(self) -> Started:
        if self.start_mode == "hang":
            await self.unblock.wait()
        if self.start_mode == "fail":
            self._exit = 1
            raise StartFailed(f"deployment d: replica {self.index}: model did not load")
        if self.start_mode == "crash":
            raise RuntimeError("the handle has a bug")
        self._alive = True
        self.started_at = asyncio.get_running_loop().time()
        return Started(pid=1000 + self.serial, where=f"fake-{self.serial}")

    async def call(self, header: Header, body: bytes = b"") -> tuple[Header, bytes]:
        if not self._alive:
            raise ReplicaGone("not running")
        self.calls.append(dict(header))
        if self.call_mode == "gone":
            self._go(1)
            raise ReplicaGone("connection closed")
        loop = asyncio.get_running_loop()
        rid = next(self._ids)
        fut: asyncio.Future[tuple[Header, bytes]] = loop.create_future()
        self._pending[rid] = fut
        if self.call_mode == "answer":
            fut.set_result(({"status": 200, "replica": self.serial}, body))
        try:
            return await fut
        except asyncio.CancelledError:
            if self._pending.pop(rid, None) is not None:
                self._abandoned[rid] = loop.time()  # the replica goes on running it
                self.abandoned_at.append(loop.time())
            raise
        finally:
            self._pending.pop(rid, None)

    async def ping(self, op: str) -> bool:
        if not self._alive:
            return False
        mode = self.probe[op]
        if mode == "hang":
            self.pings.append((op, None))
            await asyncio.Event().wait()
        self.pings.append((op, mode == "ok"))
        return mode == "ok"

    def kill(self, reason: str) -> None:
        self.kills.append((reason, asyncio.get_running_loop().time()))
        self._go(-9)

    async def close(self) -> None:
        self.closed_with = self.outstanding
        self._alive = False
        if self._exit is None:
            self._exit = 0
        self._fail_pending()

    @property
    def outstanding(self) -> int:
        return len(self._pending) + len(self._abandoned)

    @property
    def alive(self) -> bool:
        return self._alive

    def still_running(self, since: float) -> bool:
        return any(t <= since for t in self._abandoned.values())

    def exit_code(self) -> int | None:
        return self._exit

    # -- the script -----------------------------------------------------------------------------
    def finish(self) -> None:
        """The replica answers everything it is running (too late for abandoned requests)."""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(({"status": 200, "replica": self.serial}, b"late"))
        self._pending.clear()
        self._abandoned.clear()

    def die(self) -> None:
        """The process exits on its own (exit code 1)."""
        self._go(1)

    def ready_pings(self, since: int = 0) -> list[bool | None]:
        return [ok for op, ok in self.pings[since:] if op == "ready"]

    def _go(self, code: int) -> None:
        if not self._alive:
            return
        self._alive, self._exit = False, code
        self._fail_pending()
        self._abandoned.clear()
        asyncio.get_running_loop().call_soon(self.on_lost)  # like a connection's reader noticing EOF

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ReplicaGone("replica connection closed"))
        self._pending.clear()


class Fleet:
    """The HandleFactory: `starts[index]` scripts the successive starts of a replica (then `ok`)."""

    def __init__(self, starts: dict[int, list[str]] | None = None,
                 setup: Callable[[FakeReplica], None] | None = None) -> None:
        self.starts = starts or {}
        self.setup = setup or (lambda h: None)
        self.handles: list[FakeReplica] = []
        self.options: list[HandleOptions] = []

    def __call__(self, cfg: ReplicaConfig, index: int, options: HandleOptions) -> FakeReplica:
        plan = self.starts.get(index, [])
        handle = FakeReplica(index, len(self.handles), plan.pop(0) if plan else "ok")
        self.setup(handle)
        self.handles.append(handle)
        self.options.append(options)
        return handle


class Recorded(Supervisor):
    """The supervisor, noting the backoff delay of each restart it schedules."""

    delays: list[float]

    async def _restart(self, r: Replica, delay: float) -> None:
        self.delays.append(delay)
        await super()._restart(r, delay)


def supervisor(fleet: Fleet, n: int = 1, timing: Timing | None = None, liveness: Probe = QUIET,
               readiness: Probe = QUIET) -> Recorded:
    sup = Recorded("d", CFG, n, fleet, liveness, readiness, timing or Timing(backoff_base=0.01, backoff_max=0.08))
    sup.delays = []
    return sup


def fake(r: Replica) -> FakeReplica:
    assert isinstance(r.handle, FakeReplica)
    return r.handle


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.003)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


# -- restart and backoff --------------------------------------------------------------------------
def test_lost_replica_restarts_with_backoff_doubling_up_to_the_cap() -> None:
    async def scenario() -> None:
        fleet = Fleet()
        sup = supervisor(fleet, timing=Timing(backoff_base=0.02, backoff_max=0.08, stable_after=60))
        assert await sup.start() == []
        r = sup.replicas[0]
        loop = asyncio.get_running_loop()
        for i in range(5):
            old = fake(r)
            lost_at = loop.time()
            old.die()
            await until(lambda: r.state == FAILED)  # noqa: B023
            assert "exit code 1" in (r.last_error or "") and sup.ready_count() == 0
            await until(lambda: r.state == READY and r.handle is not old)  # noqa: B023
            assert old.closed_with == 0, "the lost handle is closed before its replacement starts"
            started = fake(r).started_at
            assert started is not None and started - lost_at >= sup.delays[i] * 0.9
        assert sup.delays == pytest.approx([0.02, 0.04, 0.08, 0.08, 0.08])
        assert sup.restart_reasons == {"died": 5} and r.restarts == 5
        assert sup.describe()["replicas"][0]["restarts"] == 5 and r.last_error is None
        await sup.stop()

    run(scenario)


def test_backoff_starts_again_from_base_after_a_stable_period() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), timing=Timing(backoff_base=0.02, backoff_max=1.0, stable_after=0.5))
        await sup.start()
        r = sup.replicas[0]
        for _ in range(2):  # dies right after each start: the backoff grows
            old = fake(r)
            old.die()
            await until(lambda: r.state == READY and r.handle is not old)  # noqa: B023
        await asyncio.sleep(0.6)  # ready longer than stable_after
        old = fake(r)
        old.die()
        await until(lambda: r.state == READY and r.handle is not old)
        assert sup.delays == pytest.approx([0.02, 0.04, 0.02])
        await sup.stop()

    run(scenario)


def test_backoff_grows_when_restarts_keep_failing_after_a_stable_period() -> None:
    async def scenario() -> None:
        fleet = Fleet()
        sup = supervisor(fleet, timing=Timing(backoff_base=0.02, backoff_max=1.0, stable_after=0.2))
        await sup.start()
        r = sup.replicas[0]
        await asyncio.sleep(0.3)  # stable
        fleet.starts[0] = ["fail", "fail", "fail"]  # e.g. the model's store went away
        fake(r).die()
        await until(lambda: len(fleet.handles) == 5 and r.state == READY, timeout=10)
        assert sup.delays == pytest.approx([0.02, 0.04, 0.08, 0.16])
        await sup.stop()

    run(scenario)


def test_start_failure_is_retried_until_the_replica_comes_up() -> None:
    async def scenario() -> None:
        fleet = Fleet({0: ["fail", "fail"]})
        timing = Timing(start_timeout=12.5, backoff_base=0.01, backoff_max=1.0)
        sup = supervisor(fleet, 2, timing)
        errors = await sup.start()
        assert len(errors) == 1 and "replica 0: model did not load" in errors[0]
        r0, r1 = sup.replicas
        assert r1.state == READY and sup.ready_count() == 1
        await until(lambda: r0.state == READY)
        assert len(fleet.handles) == 4 and sup.ready_count() == 2 and r0.last_error is None
        assert sup.restart_reasons == {"start": 2} and sup.delays == pytest.approx([0.01, 0.02])
        assert [h.closed_with for h in fleet.handles if h.index == 0] == [0, 0, None], "failed handles closed"
        assert {o.start_timeout_s for o in fleet.options} == {12.5}
        await sup.stop()

    run(scenario)


def test_a_handle_raising_anything_on_start_is_a_failed_start_not_a_dead_supervisor() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet({0: ["crash"]}))
        errors = await sup.start()
        assert errors == ["deployment d: RuntimeError: the handle has a bug"]
        assert sup.replicas[0].last_error == "RuntimeError: the handle has a bug"
        await until(lambda: sup.ready_count() == 1)
        assert sup.restart_reasons == {"start": 1}
        await sup.stop()

    run(scenario)


# -- scaling down ---------------------------------------------------------------------------------
def test_scale_down_drains_the_retired_replica_and_fails_no_request() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), 2)
        await sup.start()
        bal = Balancer(sup)
        r0, r1 = sup.replicas
        h0, h1 = fake(r0), fake(r1)
        h0.call_mode = h1.call_mode = "hang"
        first = asyncio.create_task(bal.call(SCORE, b"a"))
        await until(lambda: len(h0.calls) == 1)
        second = asyncio.create_task(bal.call(SCORE, b"b"))
        await until(lambda: len(h1.calls) == 1)

        await sup.scale_to(1, "test")
        assert r1.state == DRAINING and sup.ready_count() == 1 and sup.active_count() == 1
        later = [asyncio.create_task(bal.call(SCORE, b"c")) for _ in range(3)]
        await until(lambda: len(h0.calls) == 4)
        await asyncio.sleep(0.05)
        assert len(h1.calls) == 1, "a draining replica gets no new request"
        assert h1.closed_with is None, "not closed while a request is in flight"

        h1.finish()
        assert (await second)[0] == {"status": 200, "replica": h1.serial}
        await until(lambda: r1 not in sup.replicas)
        assert h1.closed_with == 0 and h1.kills == []
        h0.finish()
        for task in (first, *later):
            assert (await task)[0]["status"] == 200
        assert sup.restart_reasons == {} and [r.index for r in sup.replicas] == [0]
        await sup.stop()

    run(scenario)


def test_scale_down_order_failed_then_starting_then_newest_ready() -> None:
    async def scenario() -> None:
        fleet = Fleet({2: ["fail"], 3: ["hang"]})
        sup = supervisor(fleet, 3, Timing(backoff_base=60))  # replica 2 stays failed
        assert len(await sup.start()) == 1
        await sup.scale_to(5)
        await until(lambda: sup.replicas[4].state == READY)
        assert [r.state for r in sup.replicas] == [READY, READY, FAILED, STARTING, READY]
        assert [r.index for r in sup.scale_down_order(5)] == [2, 3, 4, 1, 0]

        await sup.scale_to(2)
        await until(lambda: [r.index for r in sup.replicas] == [0, 1, 3])  # 3 still starting
        assert sup.active_count() == 2 and sup.ready_count() == 2 and sup.desired == 2
        starting = fake(sup.replicas[2])
        starting.unblock.set()  # its start ends: retired, it is closed without taking a request
        await until(lambda: [r.index for r in sup.replicas] == [0, 1])
        assert starting.closed_with == 0 and starting.calls == []
        await sup.stop()

    run(scenario)


# -- probes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["fail", "hang"])
def test_liveness_failures_kill_the_replica_which_is_restarted(answer: str) -> None:
    def setup(h: FakeReplica) -> None:
        if h.serial == 0:
            h.probe["ping"] = answer

    async def scenario() -> None:
        fleet = Fleet(setup=setup)
        sup = supervisor(fleet, liveness=Probe(period=0.02, timeout=0.05, failure_threshold=3))
        await sup.start()
        r = sup.replicas[0]
        first = fake(r)
        await until(lambda: first.kills)
        assert [k for k, _ in first.kills] == ["liveness"]
        assert len([p for p in first.pings if p[0] == "ping"]) == 3, "killed at the third failure, not before"
        await until(lambda: r.state == FAILED)
        assert "failed its liveness probe" in (r.last_error or "")
        await until(lambda: r.state == READY and r.handle is not first)
        await asyncio.sleep(0.1)  # the new one passes its probes
        assert fake(r).kills == [] and sup.restart_reasons == {"liveness": 1}
        await sup.stop()

    run(scenario)


def test_readiness_failures_take_the_replica_out_of_rotation_until_it_passes_again() -> None:
    async def scenario() -> None:
        readiness = Probe(period=0.02, timeout=0.1, success_threshold=3, failure_threshold=2)
        sup = supervisor(Fleet(), 2, readiness=readiness)
        await sup.start()
        bal = Balancer(sup)
        r0, _ = sup.replicas
        h0 = fake(r0)
        seen: list[tuple[int, list[bool | None]]] = []
        mark = [0]
        sup.on_change = lambda: seen.append((sup.ready_count(), h0.ready_pings(mark[0])))

        mark[0] = len(h0.pings)
        h0.probe["ready"] = "fail"
        await until(lambda: sup.ready_count() == 1)
        assert seen == [(1, [False, False])], "out of rotation at failure_threshold"
        for _ in range(5):
            assert (await bal.call(SCORE, b""))[0]["replica"] != h0.serial
        assert h0.calls == [] and h0.kills == [] and r0.state == READY and sup.restart_reasons == {}
        assert sup.describe()["replicas"][0]["ready"] is False

        seen.clear()
        mark[0] = len(h0.pings)
        h0.probe["ready"] = "ok"
        await until(lambda: sup.ready_count() == 2)
        assert seen == [(2, [True, True, True])], "back after success_threshold passes"
        await sup.stop()

    run(scenario)


# -- the balancer ---------------------------------------------------------------------------------
def test_replica_still_running_a_timed_out_request_is_killed_after_kill_after_s() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), timing=Timing(backoff_base=0.05))
        await sup.start()
        bal = Balancer(sup, kill_after_s=0.1)
        r = sup.replicas[0]
        stuck = fake(r)
        stuck.call_mode = "hang"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bal.call(SCORE, b""), 0.05)
        assert stuck.outstanding == 1 and stuck.kills == []
        await until(lambda: stuck.kills)
        (reason, at), = stuck.kills
        (gave_up,) = stuck.abandoned_at
        assert reason == "timeout" and at - gave_up >= 0.099
        await until(lambda: r.state == FAILED)
        assert "still busy after a timed-out request" in (r.last_error or "")
        await until(lambda: r.state == READY and r.handle is not stuck)
        assert sup.restart_reasons == {"timeout": 1}
        assert (await bal.call(SCORE, b"x")) == ({"status": 200, "replica": 1}, b"x")
        await sup.stop()

    run(scenario)


def test_timed_out_request_answered_before_kill_after_s_kills_nothing() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet())
        await sup.start()
        bal = Balancer(sup, kill_after_s=0.2)
        h = fake(sup.replicas[0])
        h.call_mode = "hang"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bal.call(SCORE, b""), 0.05)
        h.finish()  # the replica answers, late for the caller but within kill_after_s
        await asyncio.sleep(0.35)
        assert h.kills == [] and sup.restart_reasons == {} and h.outstanding == 0 and sup.ready_count() == 1
        await sup.stop()

    run(scenario)


@pytest.mark.parametrize("how", ["dies mid-request", "connection refused"])
def test_request_on_a_lost_replica_is_retried_once_on_another(how: str) -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), 2)
        await sup.start()
        bal = Balancer(sup)
        h0, h1 = (fake(r) for r in sup.replicas)
        if how == "dies mid-request":
            h0.call_mode = "hang"
            task = asyncio.create_task(bal.call(SCORE, b"body"))
            await until(lambda: h0.calls)
            h0.die()
            answer = await task
        else:
            h0.call_mode = "gone"
            answer = await bal.call(SCORE, b"body")
        assert answer == ({"status": 200, "replica": h1.serial}, b"body")
        assert len(h0.calls) == 1 and len(h1.calls) == 1 and h1.calls[0]["op"] == "score"
        await until(lambda: sup.restart_reasons == {"died": 1})
        await sup.stop()

    run(scenario)


def test_503_when_no_replica_is_left_to_retry_on() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), 1, Timing(backoff_base=60))
        await sup.start()
        bal = Balancer(sup)
        fake(sup.replicas[0]).call_mode = "gone"
        with pytest.raises(ScoringError) as died:
            await bal.call(SCORE, b"")
        assert died.value.status == 503 and "died" in died.value.message
        assert died.value.headers.get("Retry-After") == "1"
        await until(lambda: sup.replicas[0].state == FAILED)  # restart is 60 s away
        with pytest.raises(ScoringError) as none_ready:
            await bal.call(SCORE, b"")
        assert none_ready.value.status == 503 and "no ready replica" in none_ready.value.message
        await sup.stop()

    run(scenario)


def test_a_request_is_retried_once_only() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), 3, Timing(backoff_base=60))
        await sup.start()
        h0, h1, h2 = (fake(r) for r in sup.replicas)
        h0.call_mode = h1.call_mode = "gone"
        with pytest.raises(ScoringError) as exc:
            await Balancer(sup).call(SCORE, b"")
        assert exc.value.status == 503
        assert (len(h0.calls), len(h1.calls), len(h2.calls)) == (1, 1, 0)
        await sup.stop()

    run(scenario)


def test_budget_header_carries_the_time_left_before_the_deadline() -> None:
    async def scenario() -> None:
        sup = supervisor(Fleet(), 2)
        await sup.start()
        bal = Balancer(sup)
        h0, h1 = (fake(r) for r in sup.replicas)
        loop = asyncio.get_running_loop()
        header = dict(SCORE)

        await bal.call(header, b"")
        assert "ms" not in h0.calls[-1], "no deadline, no budget"
        await bal.call(header, b"", deadline=loop.time() + 2.0)
        assert 1500 < h0.calls[-1]["ms"] <= 2000
        deadline = loop.time() + 1.0
        await bal.call(header, b"", deadline=deadline)
        first = h0.calls[-1]["ms"]
        await asyncio.sleep(0.2)
        await bal.call(header, b"", deadline=deadline)
        assert h0.calls[-1]["ms"] <= first - 190, "the budget shrinks as the deadline nears"
        await bal.call(header, b"", deadline=loop.time() - 1)
        assert h0.calls[-1]["ms"] == 1, "a spent budget is still a positive number"
        assert header == SCORE, "the caller's header is not changed"

        h0.call_mode = "hang"  # the retry gets what is left, not the first attempt's budget
        task = asyncio.create_task(bal.call(header, b"", deadline=loop.time() + 1.0))
        await until(lambda: len(h0.calls) == 6)
        await asyncio.sleep(0.2)
        h0.die()
        await task
        assert h1.calls[-1]["ms"] <= h0.calls[-1]["ms"] - 190
        await sup.stop()

    run(scenario)
