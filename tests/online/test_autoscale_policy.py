"""The autoscaler's pure parts without a server: policy, sampler, hooks' retry, signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math

import pytest

from serving.autoscale.hooks import HookFailed, ScaleRequest, call_with_retries, make_hook, sign
from serving.autoscale.policy import DOWN, HOLD, UP, Inputs, PolicyConfig, PolicyState, decide, utilization
from serving.autoscale.sampler import Sampler

CFG = PolicyConfig(min_instances=1, max_instances=8, target_utilization=0.5, scale_down_delay=10)


def run(current: int, load: float, ready: float | None = None, per: int = 1, cfg: PolicyConfig = CFG,
        state: PolicyState | None = None, now: float = 0.0, floor: int = 0):  # type: ignore[no-untyped-def]
    inputs = Inputs(current=current, ready=current if ready is None else ready, load=load, per_replica=per,
                    floor=floor)
    return decide(inputs, cfg, state or PolicyState(), now)


def test_utilization() -> None:
    assert utilization(2, 2, 2) == 0.5
    assert utilization(0, 0, 1) == 0.0
    assert math.isinf(utilization(1, 0, 1))


def test_formula_ceil_of_replicas_times_utilization_over_target() -> None:
    d, _ = run(current=2, load=1.0)  # u = 50 % of 2 replicas at target 50 %: keep 2
    assert (d.desired, d.direction, d.wanted) == (2, HOLD, 2)
    d, _ = run(current=2, load=1.2)  # u = 60 %: ceil(2 * 0.6 / 0.5) = ceil(2.4) = 3
    assert (d.desired, d.direction) == (3, UP)
    d, _ = run(current=2, load=4.0, per=2)  # u = 100 %: 4
    assert d.desired == 4


def test_exact_fit_does_not_round_up() -> None:
    cfg = PolicyConfig(1, 10, 0.7, 10)
    d, _ = run(current=3, load=2.1, cfg=cfg)  # u = 70 % exactly: keep 3 despite float error
    assert d.desired == 3 and d.direction == HOLD


def test_up_is_immediate_but_at_most_double() -> None:
    d, _ = run(current=1, load=10)
    assert (d.desired, d.wanted, d.direction) == (2, 8, UP)
    assert "at most double" in d.reason
    d, _ = run(current=2, load=10)
    assert d.desired == 4
    d, _ = run(current=4, load=10)
    assert d.desired == 8


def test_clamped_to_max_and_min() -> None:
    cfg = PolicyConfig(2, 3, 0.5, 0)
    d, _ = run(current=2, load=100, cfg=cfg)
    assert d.desired == 3
    d, _ = run(current=3, load=100, cfg=cfg)
    assert (d.desired, d.direction) == (3, HOLD)
    d, st = run(current=3, load=0, cfg=cfg)
    assert d.desired == 2 and d.direction == DOWN  # delay 0: at once, never below min
    d, _ = run(current=2, load=0, cfg=cfg, state=st)
    assert (d.desired, d.direction) == (2, HOLD)


def test_no_ready_replica_with_load_counts_as_saturated() -> None:
    d, _ = run(current=2, load=3, ready=0)
    assert math.isinf(d.utilization) and d.desired == 4
    d, _ = run(current=2, load=0, ready=0)
    assert d.utilization == 0.0 and d.direction == HOLD  # low, but the delay has not passed


def test_down_waits_for_scale_down_delay_then_halves_and_counts_again() -> None:
    state = PolicyState()
    for t in (0, 3, 6, 9.9):
        d, state = run(current=8, load=0, state=state, now=t)
        assert (d.desired, d.direction) == (8, HOLD), t
        assert "low for" in d.reason
    assert state.low_since == 0
    d, state = run(current=8, load=0, state=state, now=10)
    assert (d.desired, d.direction) == (4, DOWN)  # at most half
    assert "at most half" in d.reason
    d, state = run(current=4, load=0, state=state, now=15)
    assert d.direction == HOLD  # the delay counts again after the step
    d, state = run(current=4, load=0, state=state, now=20)
    assert d.desired == 2
    d, state = run(current=2, load=0, state=state, now=30)
    assert d.desired == 1
    d, state = run(current=1, load=0, state=state, now=40)
    assert (d.desired, d.direction) == (1, HOLD) and state.low_since is None


def test_a_busy_interval_resets_the_scale_down_clock() -> None:
    d, state = run(current=4, load=0, now=0)
    assert state.low_since == 0
    d, state = run(current=4, load=2, now=5)  # u = 50 % = target: back to normal
    assert d.direction == HOLD and state.low_since is None
    d, state = run(current=4, load=0, state=state, now=12)
    assert d.direction == HOLD and state.low_since == 12
    d, state = run(current=4, load=0, state=state, now=22)
    assert (d.desired, d.direction) == (2, DOWN)


def test_scale_up_clears_low_clock() -> None:
    _, state = run(current=4, load=0, now=0)
    d, state = run(current=4, load=10, state=state, now=1)
    assert d.direction == UP and state.low_since is None


def test_down_straight_to_wanted_when_within_half() -> None:
    cfg = PolicyConfig(1, 8, 0.5, 0)
    d, _ = run(current=4, load=1.4, cfg=cfg)  # wants ceil(2.8) = 3
    assert (d.desired, d.direction) == (3, DOWN)


def test_manual_floor_applies_at_once_even_beyond_double() -> None:
    d, _ = run(current=1, load=0, floor=5)
    assert (d.desired, d.direction) == (5, UP)
    d, _ = run(current=5, load=0, floor=5, now=100)
    assert d.direction == HOLD
    d, _ = run(current=2, load=0, floor=50)  # a floor over max is capped at max
    assert d.desired == 8


def test_current_above_max_comes_down_without_delay() -> None:
    cfg = PolicyConfig(1, 2, 0.5, 300)
    d, _ = run(current=6, load=100, cfg=cfg)
    assert (d.desired, d.direction) == (3, DOWN)


def test_sampler_time_average() -> None:
    now = [0.0]
    load = [0]
    s = Sampler(lambda: load[0], lambda: 2, clock=lambda: now[0])
    load[0] = 4
    s.sample()  # reads 4 at t=0
    now[0] = 1.0
    load[0] = 0
    s.sample()  # 4 for 1 s, then 0
    now[0] = 3.0
    out = s.take()  # 0 for 2 s: average 4/3 over 3 s
    assert out.seconds == 3.0 and out.load == pytest.approx(4 / 3) and out.ready == 2 and out.peak == 4
    now[0] = 4.0
    out = s.take()
    assert out.load == 0 and out.seconds == 1.0


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"desired": 3}'
    assert sign(body, "s3cret") == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


REQ = ScaleRequest("ep", "dep", 1, 2, 0.9, "test", 0.0)


def test_retries_with_backoff_then_reports_failure() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    class Failing:
        kind = "python"

        async def __call__(self, req: ScaleRequest) -> str:
            calls.append(req.desired)
            raise HookFailed("nope")

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    ok, outcome = asyncio.run(call_with_retries(Failing(), REQ, timeout=1, attempts=3, backoff=0.5, sleep=fake_sleep))
    assert not ok and outcome == "failed: nope" and calls == [2, 2, 2] and sleeps == [0.5, 1.0]


def test_retry_succeeds_and_timeout_counts_as_failure() -> None:
    n = [0]

    class Flaky:
        kind = "python"

        async def __call__(self, req: ScaleRequest) -> str:
            n[0] += 1
            if n[0] == 1:
                await asyncio.sleep(5)
            return "done"

    async def no_sleep(s: float) -> None:
        return None

    ok, outcome = asyncio.run(call_with_retries(Flaky(), REQ, timeout=0.05, attempts=2, sleep=no_sleep))
    assert ok and outcome == "done (attempt 2)"


def test_command_and_python_hooks(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "env.txt"
    hook = make_hook(f"command:echo $SCORER_DEPLOYMENT $SCORER_CURRENT $SCORER_DESIRED > {out}", _never)
    ok, _ = asyncio.run(call_with_retries(hook, REQ, timeout=5, attempts=1))
    assert ok and out.read_text().split() == ["dep", "1", "2"]
    bad = make_hook("command:echo oops; exit 3", _never)
    ok, outcome = asyncio.run(call_with_retries(bad, REQ, timeout=5, attempts=1))
    assert not ok and "exited with 3" in outcome and "oops" in outcome
    (tmp_path / "myhooks.py").write_text("seen = []\ndef scale(d):\n    seen.append((d.deployment, d.desired))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = make_hook("python:myhooks:scale", _never)
    ok, _ = asyncio.run(call_with_retries(hook, REQ, timeout=5, attempts=1))
    import myhooks  # type: ignore[import-not-found]

    assert ok and myhooks.seen == [("dep", 2)]
    ok, outcome = asyncio.run(call_with_retries(make_hook("python:nosuchmod:f", _never), REQ, timeout=5,
                                                attempts=1))
    assert not ok and "cannot load" in outcome


async def _never(n: int, reason: str) -> None:
    raise AssertionError("local hook called")
