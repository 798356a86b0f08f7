"""Mirror traffic: a share of unpinned requests copied to the mirror deployment after the live
answer; the live answer and its latency do not change; outcome and agreement go to metrics."""

from __future__ import annotations

import asyncio
import statistics
import time
from types import SimpleNamespace

from serving import metrics
from serving.admission import Admission
from serving.mirror import MirrorShare, send_copy
from tests.online.conftest import admin_put, wait_for
from tests.online.data import split_body
from tests.online.test_metrics import scrape, value


def _mirror_counts(url: str) -> tuple[float, float, float]:
    """(copies answered by any outcome, agreement counts, green's live 200s), once no copy is in flight."""
    wait_for(lambda: value(scrape(url), "scorer_in_flight", deployment="green") == 0, timeout=10)
    f = scrape(url)
    copies = sum(value(f, "scorer_mirror_requests_total", deployment="green", outcome=o)
                 for o in ("ok", "error", "dropped"))
    agree = sum(value(f, "scorer_mirror_agreement_total", deployment="green", agree=a) for a in ("true", "false"))
    return copies, agree, value(f, "scorer_requests_total", deployment="green", status="200")


def test_mirror_copies_its_share_and_counts_outcome_and_agreement(ops_server) -> None:
    ok0, agree0, green0 = _mirror_counts(ops_server.url)
    with ops_server.client() as c:
        pinned = [c.post("/score", json=split_body(2, i), headers={"azureml-model-deployment": "blue"}).json()
                  for i in range(10)]
        for i in range(40):
            r = c.post("/score", json=split_body(2, i % 10))
            assert r.status_code == 200 and r.headers["azureml-model-deployment"] == "blue"
            assert r.json() == pinned[i % 10]  # the live answer is blue's, untouched
    wait_for(lambda: _mirror_counts(ops_server.url)[0] - ok0 >= 20, timeout=10)
    ok, agree, green = _mirror_counts(ops_server.url)
    assert ok - ok0 == 20  # exactly 50% of the 40 unpinned requests; pinned ones are never copied
    assert agree - agree0 == 20  # sequential requests: the mirror is never saturated, every copy is ok
    assert green == green0  # copies are not counted as green's live requests


def test_mirror_adds_no_latency_beyond_noise(ops_server) -> None:
    def median_ms(n: int = 60) -> float:
        times = []
        with ops_server.client() as c:
            for i in range(n):
                t0 = time.perf_counter()
                assert c.post("/score", json=split_body(1, i % 20)).status_code == 200
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    try:
        assert admin_put(ops_server, "/admin/mirror", {}).status_code == 200
        median_ms(10)
        off = median_ms()
        assert admin_put(ops_server, "/admin/mirror", {"green": 50}).status_code == 200
        on = median_ms()
    finally:
        admin_put(ops_server, "/admin/mirror", {"green": 50})
    assert on < off * 1.5 + 2.0, (off, on)


def test_share_is_exact() -> None:
    share = MirrorShare()
    assert sum(share.take(20) for _ in range(100)) == 20
    assert sum(share.take(50) for _ in range(10)) == 5


def test_a_saturated_mirror_drops_the_copy_without_waiting() -> None:
    async def scenario() -> None:
        adm = Admission("m", 1, lambda: 1, 500)
        await adm.acquire()  # the only slot is busy

        async def never(*a: object) -> tuple[dict[str, int], bytes]:
            raise AssertionError("a saturated mirror must not be called")

        dep = SimpleNamespace(name="m", balancer=SimpleNamespace(call=never), admission=adm, timeout_s=1.0)
        before = metrics.mirror_requests_total.labels("m", "dropped")._value.get()
        t0 = time.perf_counter()
        await send_copy(dep, b"{}", "application/json", 200, b"{}")  # type: ignore[arg-type]
        assert time.perf_counter() - t0 < 0.05
        assert metrics.mirror_requests_total.labels("m", "dropped")._value.get() == before + 1
        assert adm.in_flight == 1 and adm.queued == 0

    asyncio.run(scenario())
