"""A replica's batch path in-process, without HTTP: `Batcher.admit` of N one-request bodies, then the
merged predict and the per-request encode, as a replica does for one batch. It times scorer's own
work around the model, which wrk at 64 connections cannot separate from this machine's noise.

    python benchmarks/replica_batch.py --batch 17              # this checkout
    python benchmarks/replica_batch.py --tree /tmp/old          # another checkout (git archive)

Prints microseconds per request (min of --repeat rounds). The model is the demo LR
(`models:/demo-classifier/1`, from `make train`); the body is one all-number `dataframe_split` row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import timeit
from pathlib import Path

for _k, _v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", default=str(REPO), help="the checkout whose serving code is timed")
    p.add_argument("--model", default="models:/demo-classifier/1")
    p.add_argument("--batch", type=int, default=17, help="requests per batch (17: the mean at 64 connections)")
    p.add_argument("--number", type=int, default=200, help="batches per round")
    p.add_argument("--repeat", type=int, default=5, help="rounds (the minimum is printed)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.tree).resolve()))
    os.environ.setdefault("SCORER_STATE_DIR", str(REPO / ".scorer"))  # the registry `make train` filled
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import orjson

    from scorer.models import resolve
    from scorer.models.runtime import MlflowRuntime, load_runtime
    from serving.worker.batcher import Batcher
    from serving.worker.mlflow_scorer import MlflowScorer

    resolved = resolve(args.model)
    runtime = load_runtime(model_dir=resolved.local_path, code_dir=None, script=None, name=args.model)
    assert isinstance(runtime, MlflowRuntime)
    scorer = MlflowScorer(runtime)
    columns = list(runtime.double_columns or ())
    if not columns:
        print(f"{args.model}: the fast reader needs an all-double signature", file=sys.stderr)
        return 2
    body = orjson.dumps({"dataframe_split": {"columns": columns, "data": [[0.1 * i for i in range(len(columns))]]}})
    batcher = Batcher(scorer, ThreadPoolExecutor(1), max(64, args.batch), 2, "bench")

    def one_batch() -> None:
        for rid in range(args.batch):
            batcher.admit(rid, body, "application/json")
        items = [item.data for item in batcher.queue]
        batcher.queue.clear()
        replies = batcher._score_batch(items)
        assert all(reply.status == 200 for reply, _ in replies), replies[0]

    for _ in range(20):  # warm: the model's first calls, pandas' caches
        one_batch()
    best = min(timeit.repeat(one_batch, number=args.number, repeat=args.repeat)) / args.number
    if batcher.task is not None:
        batcher.task.cancel()
    print(f"{args.tree}: batch of {args.batch}: {best * 1e6:.0f} us a batch, "
          f"{best * 1e6 / args.batch:.0f} us a request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
