"""Adaptive batching: concurrent requests merged into one predict, each answered with exactly its
own rows; a bad request fails alone; the batch-size histogram shows the merging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.online.data import split_body
from tests.online.test_metrics import scrape, value

PICKY = {"azureml-model-deployment": "picky"}


def _picky(server, xs: list[float]) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}}
    return httpx.post(f"{server.url}/score", json=body, headers={**server.headers, **PICKY}, timeout=30)


def test_concurrent_requests_get_exactly_their_rows(ops_server) -> None:
    before = scrape(ops_server.url)
    inputs = [[float(i * 10 + j) for j in range(i % 3 + 1)] for i in range(24)]  # 1-3 rows each
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda xs: _picky(ops_server, xs), inputs))
    for xs, r in zip(inputs, answers, strict=True):
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": [x * 2 for x in xs]}
    after = scrape(ops_server.url)
    count = value(after, "scorer_batch_size_count", deployment="picky") - \
        value(before, "scorer_batch_size_count", deployment="picky")
    total = value(after, "scorer_batch_size_sum", deployment="picky") - \
        value(before, "scorer_batch_size_sum", deployment="picky")
    assert count == 24
    assert total > count  # some requests shared a predict call


def test_fast_and_mlflow_parsed_requests_merge_in_order(ops_server) -> None:
    """All-number `dataframe_split` bodies take the fast reader (values stacked, one frame a batch);
    `dataframe_records` bodies go through MLflow's parser. Both have the same columns, so they may
    share a predict call, and each still gets exactly its own rows."""
    def post(i: int) -> httpx.Response:
        xs = [float(i), float(i) + 0.25]
        body = ({"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}} if i % 2 else
                {"dataframe_records": [{"x": x} for x in xs]})
        return httpx.post(f"{ops_server.url}/score", json=body, headers={**ops_server.headers, **PICKY}, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": [i * 2.0, i * 2.0 + 0.5]}


def test_a_bad_request_fails_alone(ops_server) -> None:
    inputs = [[float(i), float(i) + 0.5] for i in range(16)]
    inputs[5] = [1.0, -1.0]  # the model raises on this one
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda xs: _picky(ops_server, xs), inputs))
    for i, (xs, r) in enumerate(zip(inputs, answers, strict=True)):
        if i == 5:
            assert r.status_code == 424 and "x must not be negative" in r.json()["message"]
        else:
            assert r.status_code == 200 and r.json() == {"predictions": [x * 2 for x in xs]}, r.text


def test_malformed_requests_never_join_a_batch(ops_server) -> None:
    bodies = [{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}},
              {"dataframe_split": {"columns": ["y"], "data": [[1.0]]}},
              {"dataframe_split": {"columns": ["x"], "data": [[1.0, 2.0]]}}] * 4

    def post(body: dict) -> httpx.Response:  # type: ignore[type-arg]
        return httpx.post(f"{ops_server.url}/score", json=body, headers={**ops_server.headers, **PICKY}, timeout=30)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, bodies))
    assert [r.status_code for r in answers] == [200, 400, 400] * 4
    assert all(r.json() == {"predictions": [2.0]} for r in answers[::3])


def test_batched_lr_matches_one_by_one(ops_server) -> None:
    with ops_server.client() as c:
        alone = [c.post("/score", json=split_body(1, i)).json() for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda i: httpx.post(f"{ops_server.url}/score", json=split_body(1, i),
                                                      headers=ops_server.headers, timeout=30).json(), range(16)))
    assert together == alone


def test_a_lone_client_does_not_wait_for_company(ops_server) -> None:
    """picky waits up to 50 ms for company; a client alone is answered without paying that wait
    (every request was held 50 ms before the batcher became adaptive). The replica's own time per
    request (the `model` stage: wait, predict, encode) shows it, whatever the load on the router."""
    def fast() -> float:  # model-stage observations under 50 ms so far
        return value(scrape(ops_server.url), "scorer_request_duration_seconds_bucket", deployment="picky",
                     stage="model", le="0.05")

    before = fast()
    with ops_server.client() as c:
        for i in range(9):
            r = c.post("/score", json={"dataframe_split": {"columns": ["x"], "data": [[float(i)]]}},
                       headers=PICKY)
            assert r.status_code == 200 and r.json() == {"predictions": [2.0 * i]}, r.text
    assert fast() - before >= 5  # most of them; the first may still expect company from a burst
