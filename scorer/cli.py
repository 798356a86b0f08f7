"""`scorer` command line: one parser for the whole contract; serving and batch load lazily."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scorer", description="Serve and batch-score MLflow models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check YAML files; print the resolved spec or every error")
    v.add_argument("files", nargs="+", metavar="FILE")

    s = sub.add_parser("serve", help="serve an endpoint")
    s.add_argument("endpoint", metavar="ENDPOINT.yaml")
    s.add_argument("deployments", nargs="*", metavar="DEPLOYMENT.yaml")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--log-format", choices=["text", "json"], default="text")

    t = sub.add_parser("traffic", help="change traffic on a running server")
    t.add_argument("url")
    t.add_argument("shares", nargs="+", metavar="DEPLOYMENT=PERCENT")

    sc = sub.add_parser("scale", help="set replicas (or the floor when autoscaled)")
    sc.add_argument("url")
    sc.add_argument("deployment")
    sc.add_argument("instances", type=int)

    tok = sub.add_parser("token", help="print a signed token (needs SCORER_TOKEN_SECRET)")
    tok.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")

    b = sub.add_parser("batch", help="score files with a batch deployment on Ray")
    b.add_argument("deployment", metavar="DEPLOYMENT.yaml")
    b.add_argument("--input", action="append", required=True, metavar="PATH|GLOB")
    b.add_argument("--output", required=True, metavar="DIR")
    b.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true")
    mode.add_argument("--overwrite", action="store_true")
    b.add_argument("--keep-columns", default=None, metavar="a,b")

    bench = sub.add_parser("bench", help="load-test an endpoint with locust")
    bench.add_argument("target", metavar="ENDPOINT.yaml|URL")
    bench.add_argument("--data", default=None)
    bench.add_argument("--compare-mlflow", action="store_true")
    bench.add_argument("--users", default="1,8,32,64")
    bench.add_argument("--duration", type=float, default=20)
    bench.add_argument("--output", default="bench-results")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from scorer.environment import configure

    configure()
    if args.command == "validate":
        from scorer.validate import run_validate

        return run_validate(args.files)
    if args.command in ("serve", "traffic", "scale", "token"):
        try:
            serving_cli = importlib.import_module("serving.cli")
        except ImportError:
            print(f"scorer {args.command}: the online server is not part of this build yet", file=sys.stderr)
            return 2
        return int(getattr(serving_cli, f"run_{args.command}")(args))
    if args.command == "batch":
        try:
            batch_cli = importlib.import_module("batch.cli")
        except ImportError:
            print("scorer batch: the batch runner is not part of this build yet", file=sys.stderr)
            return 2
        return int(batch_cli.run_batch(args))
    if args.command == "bench":
        try:
            bench = importlib.import_module("scorer.bench")
        except ImportError:
            print("scorer bench: not part of this build yet", file=sys.stderr)
            return 2
        return int(bench.run_bench(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
