"""`scorer` command line: one parser for the whole contract; each command imports its side."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scorer", description="Serve and batch-score MLflow models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check YAML files; print the resolved spec or every error")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--offline", action="store_true", help="check the files only; do not look models up")

    s = sub.add_parser("serve", help="serve an endpoint")
    s.add_argument("endpoint", metavar="ENDPOINT.yaml")
    s.add_argument("deployments", nargs="*", metavar="DEPLOYMENT.yaml")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--log-format", choices=["text", "json"], default="text")
    s.add_argument("--ssl-certfile", default=None, help="serve HTTPS: PEM certificate (with --ssl-keyfile)")
    s.add_argument("--ssl-keyfile", default=None, help="serve HTTPS: PEM private key (with --ssl-certfile)")
    s.add_argument("--address", default=None, metavar="HOST:PORT|auto",
                   help="place replicas as actors on this Ray cluster (the router must reach its nodes)")

    st = sub.add_parser("stop", help="remove an endpoint's replica actors from a Ray cluster")
    st.add_argument("endpoint", metavar="ENDPOINT", help="the endpoint's name (or its YAML file)")
    st.add_argument("--address", required=True, metavar="HOST:PORT|auto")
    st.add_argument("--deployment", default=None, help="only this deployment's actors")

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
    b.add_argument("files", nargs="+", metavar="[BATCH_ENDPOINT.yaml] DEPLOYMENT.yaml",
                   help="the batch deployment, optionally after Azure's batch endpoint file")
    b.add_argument("--input", action="append", required=True, metavar="PATH|GLOB")
    b.add_argument("--output", required=True, metavar="DIR")
    b.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true")
    mode.add_argument("--overwrite", action="store_true")
    b.add_argument("--keep-columns", default=None, metavar="a,b")

    from scorer.render.command import add_parser as add_render

    add_render(sub)

    bench = sub.add_parser("bench", help="load-test an endpoint with locust")
    bench.add_argument("target", metavar="ENDPOINT.yaml|URL")
    bench.add_argument("--data", default=None)
    bench.add_argument("--compare-mlflow", action="store_true")
    bench.add_argument("--users", default=None,
                       help="default 1,8,32,64, each capped at a YAML target's admission bound")
    bench.add_argument("--duration", type=float, default=20)
    bench.add_argument("--max-failure-pct", type=float, default=1.0,
                       help="flag a level (exit 1) above this percent of non-2xx answers, 429 included")
    bench.add_argument("--output", default="bench-results")
    return p


def _endpoint_name(given: str) -> str:
    """An endpoint's name, or the name inside the endpoint YAML file given instead."""
    if given.endswith((".yaml", ".yml")):
        from scorer.spec import SpecError, load_endpoint

        try:
            return str(load_endpoint(Path(given), []).spec.name)
        except SpecError as exc:
            print(f"scorer stop: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return given


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from scorer.environment import configure

    configure()
    if args.command == "validate":
        from scorer.validate import run_validate

        return run_validate(args.files, offline=args.offline)
    # Imported here, not at the top, so that `scorer validate` does not pay for Starlette or Ray.
    # A missing dependency underneath is a real error and surfaces as one.
    if args.command in ("serve", "traffic", "scale", "token"):
        import serving.cli

        return int(getattr(serving.cli, f"run_{args.command}")(args))
    if args.command == "stop":
        import serving.stop

        return serving.stop.run_stop(_endpoint_name(args.endpoint), args.address, args.deployment)
    if args.command == "batch":
        import batch.cli

        return int(batch.cli.run_batch(args))
    if args.command == "render":
        from scorer.render.command import run_render

        return run_render(args)
    if args.command == "bench":
        import scorer.bench

        return int(scorer.bench.run_bench(args))
    return 2


def entry() -> NoReturn:
    """The `scorer` command. A batch job has closed its output, journal and summary and shut its Ray
    down when `run` returns; the interpreter's own teardown of the Ray, gRPC, Arrow and MLflow
    modules would still take 0.7 s of a 2-core machine, so the process ends once the exit handlers
    have run and the streams are flushed."""
    args = _parser().parse_args()
    code = run(args)
    if args.command != "batch":
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
