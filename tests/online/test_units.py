"""Traffic policy and admission on their own (no server)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest

from serving.admission import Admission
from serving.errors import ScoringError
from serving.traffic import SmoothWeighted


def test_smooth_weighted_round_robin_is_exact_in_every_window() -> None:
    rr = SmoothWeighted({"blue": 90, "green": 10, "dark": 0})
    picks = [rr.pick() for _ in range(1000)]
    for start in range(0, 990):
        window = Counter(picks[start:start + 10])
        assert window == {"blue": 9, "green": 1}
    assert "dark" not in picks
    three = SmoothWeighted({"a": 50, "b": 30, "c": 20})
    assert Counter(three.pick() for _ in range(10)) == {"a": 5, "b": 3, "c": 2}
    assert SmoothWeighted({"a": 0, "b": 0}).pick() is None


def test_admission_bound_queue_wait_and_fifo() -> None:
    async def scenario() -> None:
        ready = [1]
        adm = Admission("d", per_replica=2, ready_replicas=lambda: ready[0], max_queue_wait_ms=200)
        await adm.acquire()
        await adm.acquire()  # 2 in flight = capacity
        order: list[int] = []

        async def queued(i: int) -> None:
            await adm.acquire()
            order.append(i)

        t1 = asyncio.create_task(queued(1))
        t2 = asyncio.create_task(queued(2))
        await asyncio.sleep(0.01)
        assert adm.queued == 2
        with pytest.raises(ScoringError) as over:  # 2 in flight + 2 queued = 2 x capacity
            await adm.acquire()
        assert over.value.status == 429 and over.value.headers["Retry-After"] == "1"
        adm.release()
        adm.release()
        await asyncio.gather(t1, t2)
        assert order == [1, 2] and adm.in_flight == 2
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(ScoringError) as waited:
            await adm.acquire()
        assert waited.value.status == 429 and "max_queue_wait_ms" in waited.value.message
        assert asyncio.get_running_loop().time() - t0 >= 0.19
        assert adm.queued == 0
        ready[0] = 0
        with pytest.raises(ScoringError) as none:
            await adm.acquire()
        assert none.value.status == 503

    asyncio.run(scenario())


def test_scoring_posts_skip_starlettes_stack_but_keep_its_answers() -> None:
    """ScorerApp takes POST /score and V2 infer itself: their path parameters are Starlette's, a bug
    still answers a 500 in the route's shape (MLflow's or V2's), other methods still get 405."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from serving.app import ScorerApp

    async def broken(request: Request) -> JSONResponse:
        raise RuntimeError("a bug")

    async def infer(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.path_params))

    app = ScorerApp(routes=[Route("/score", broken, methods=["POST"])], fast={"/score": broken}, v2_infer=infer)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/score", content=b"{}")
        assert r.status_code == 500 and r.json()["error_code"] == "INTERNAL_ERROR" and "message" in r.json()
        assert client.get("/score").status_code == 405
        assert client.post("/v2/models/m/infer").json() == {"name": "m"}
        assert client.post("/v2/models/m/versions/3/infer").json() == {"name": "m", "version": "3"}
        assert client.post("/v2/models//infer").status_code == 404
    v2 = ScorerApp(routes=[], v2_infer=broken)
    with TestClient(v2, raise_server_exceptions=False) as client:
        r = client.post("/v2/models/m/infer")
        assert r.status_code == 500 and r.json()["error"].startswith("internal error")  # V2: {"error": ...}


def test_request_ids_are_unique_within_a_process_and_across_a_fork() -> None:
    from serving.limits import new_request_id

    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked router (or a test's child) must not repeat its parent's ids
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 32 and child[:16] != new_request_id()[:16]
