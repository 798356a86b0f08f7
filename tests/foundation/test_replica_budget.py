"""A replica drops work whose budget is spent: the frame header's `ms` is what was left of the
request's deadline when the router sent it, and a request still waiting for a scoring thread past
it is answered 408 without running (nobody waits for its answer any more).

The replica's real frame server on a Unix socket; the scorer is a stand-in that sleeps and counts."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

from serving import frames
from serving.protocol.mlflow import Reply
from serving.worker.config import ReplicaConfig
from serving.worker.main import ReplicaServer


class SleepyScorer:
    def __init__(self) -> None:
        self.ran: list[bytes] = []
        self.lock = threading.Lock()

    def score(self, body: bytes, content_type: str) -> Reply:
        with self.lock:
            self.ran.append(body)
        time.sleep(float(body))
        return Reply(200, b"[1]")

    def warm_up(self, example: object) -> None:
        return None


Answers = dict[int, dict[str, object]]


async def _exchange(requests: list[tuple[dict[str, object], bytes]]) -> tuple[Answers, list[bytes]]:
    scorer = SleepyScorer()
    server = ReplicaServer(scorer, ReplicaConfig(deployment="d", model_path=None, model_version="1"))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "r.sock")
        srv = await asyncio.start_unix_server(server.connection, path=path)
        reader, writer = await asyncio.open_unix_connection(path)
        for i, (header, body) in enumerate(requests, 1):
            writer.write(frames.encode({"id": i, "op": "score", "ct": "application/json", **header}, body))
        answers: Answers = {}
        async with asyncio.timeout(20):
            while len(answers) < len(requests):
                header, _ = await frames.read_frame(reader)
                answers[int(header["id"])] = header
        writer.close()
        srv.close()
        await srv.wait_closed()
    return answers, scorer.ran


def test_a_request_whose_budget_runs_out_while_it_waits_is_not_run() -> None:
    # one scoring thread: the second request waits 0.6 s behind the first, with 0.2 s of budget
    answers, ran = asyncio.run(_exchange([({"ms": 5000}, b"0.6"), ({"ms": 200}, b"0.0")]))
    assert answers[1]["status"] == 200
    assert answers[2]["status"] == 408
    assert ran == [b"0.6"]


def test_a_request_with_budget_left_is_run_and_one_without_a_budget_always_is() -> None:
    answers, ran = asyncio.run(_exchange([({"ms": 5000}, b"0.2"), ({"ms": 5000}, b"0.0"), ({}, b"0.0")]))
    assert [answers[i]["status"] for i in (1, 2, 3)] == [200, 200, 200]
    assert ran == [b"0.2", b"0.0", b"0.0"]
