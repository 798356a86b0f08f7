"""`scorer bench TARGET`: locust over a grid of concurrency levels, against scorer and optionally
`mlflow models serve` for the same model in the same run, with a table, CSV, JSON and a plot.

Throughput counts successful answers only; a level with no success, or with more than
`--max-failure-pct` non-2xx answers (429 included), is flagged and the command exits 1."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from rich.console import Console

from scorer.bench import report
from scorer.bench.figures import DEFAULT_MAX_FAILURE_PCT, Level
from scorer.bench.grid import run_level
from scorer.bench.levels import admission_bound, default_users
from scorer.bench.processes import Server, start_mlflow, start_scorer

console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)  # messages as written


def _users(text: str | None) -> list[int] | None:
    """The --users grid as given; None when not given (the default grid then applies)."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--users: got {text!r}; expected comma-separated positive integers like 1,8,32,64")
    return values


def _example_payload(model_ref: str, out_dir: Path) -> Path:
    """The model's input example as a JSON dataframe_split, for a YAML target without --data."""
    from scorer.models import load_input_example

    example = load_input_example(model_ref)
    if example is None or not hasattr(example, "to_dict"):
        raise ValueError(f"model {model_ref} has no tabular input example; pass --data FILE")
    path = out_dir / "payload.json"
    path.write_text(json.dumps({"dataframe_split": example.to_dict(orient="split", index=False)}, default=float))
    return path


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_bench(args: argparse.Namespace) -> int:
    """Exit 0 after a full grid that can be trusted, 1 when a level is flagged or the run failed,
    2 for a bad target or option, 130 when interrupted."""
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_url = args.target.startswith(("http://", "https://"))
    try:
        given = _users(args.users)
        max_failure_pct = float(getattr(args, "max_failure_pct", DEFAULT_MAX_FAILURE_PCT))
        if not 0 <= max_failure_pct <= 100:
            raise ValueError(f"--max-failure-pct: got {max_failure_pct:g}; expected a percent from 0 to 100")
        if args.duration < 2:  # shorter levels are mostly start-up
            raise ValueError(f"--duration: got {args.duration}; expected at least 2 seconds")
        if is_url and not args.data:
            raise ValueError("a URL target needs --data FILE (CSV or JSON rows)")
        if is_url and args.compare_mlflow:
            raise ValueError("--compare-mlflow needs an endpoint YAML target (scorer starts both servers)")
    except ValueError as exc:
        console.print(f"scorer bench: {exc}")
        return 2

    signal.signal(signal.SIGTERM, _on_sigterm)
    servers: list[Server] = []
    targets: list[tuple[str, str, str, dict[str, str], str]] = []  # name, url, path, env, pinned deployment
    data = Path(args.data) if args.data else None
    users = given or default_users(None)
    meta: dict[str, object] = {"target": args.target, "duration_s": args.duration,
                               "max_failure_pct": max_failure_pct, "generator": "locust (1 process, FastHttpUser)"}
    try:
        if is_url:
            import os

            env = {"SCORER_API_KEY": os.environ.get("SCORER_API_KEY", "")}
            targets.append(("target", args.target.rstrip("/"), "/score", env, ""))
        else:
            from scorer.models import resolve
            from scorer.spec import SpecError, load_endpoint

            try:
                endpoint = load_endpoint(Path(args.target)).spec
            except SpecError as exc:
                console.print(f"scorer bench: {args.target} is not a valid endpoint:\n{exc}")
                return 2
            name = max(endpoint.traffic, key=lambda d: endpoint.traffic[d])
            dep = endpoint.deployments[name]
            if (data is None or args.compare_mlflow) and dep.model is None:
                console.print(f"scorer bench: deployment {name!r} has no MLflow model; "
                              "pass --data (and no --compare-mlflow)")
                return 2
            pinned = name if args.compare_mlflow else ""
            bound_dep, bound = admission_bound(endpoint, pinned)
            users = given or default_users(bound)
            meta.update(admission_bound=bound, admission_bound_deployment=bound_dep)
            over = [n for n in users if n > bound]
            if over:
                console.print(f"warning: {', '.join(map(str, over))} users exceed the admission bound {bound} of "
                              f"deployment {bound_dep!r} (2 x max_concurrent_requests_per_instance x "
                              "instance_count): expect 429s, and those levels flagged")
            data = data or _example_payload(dep.model or "", out_dir)
            console.print(f"starting scorer for {args.target} ...")
            server = start_scorer([args.target], out_dir)
            servers.append(server)
            server.wait_ready("/ready")
            targets.append(("scorer", server.url, "/score", server.env, pinned))
            meta["deployment"] = name
            if args.compare_mlflow:
                resolved = resolve(dep.model or "")
                console.print(f"starting mlflow models serve -w {dep.instance_count} for {resolved.uri} ...")
                mlflow = start_mlflow(resolved.local_path, dep.instance_count, out_dir)
                servers.append(mlflow)
                mlflow.wait_ready("/ping")
                targets.append(("mlflow", mlflow.url, "/invocations", {}, ""))
                meta["mlflow_workers"] = dep.instance_count
        assert data is not None
        meta["users"] = users
        levels: list[Level] = []
        for name, url, path, env, pinned in targets:  # warm-up, not reported
            run_level(url, path, data, max(users), min(5.0, args.duration), out_dir / "warmup", name, env,
                      deployment=pinned)
        for n in users:
            for name, url, path, env, pinned in targets:
                console.print(f"{name}: {n} users for {args.duration:g}s")
                levels.append(run_level(url, path, data, n, args.duration, out_dir, name, env, deployment=pinned,
                                        max_failure_rate=max_failure_pct / 100))
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        report.write(levels, out_dir, meta)
        report.show(levels)
        console.print(f"results in {out_dir}/ (results.csv, results.json, report.png, *.html)")
        flagged = [lv for lv in levels if lv.flag]
        if flagged:
            console.print(f"scorer bench: {len(flagged)} of {len(levels)} levels flagged; their figures are not "
                          "a throughput (exit 1)")
            return 1
        return 0
    except KeyboardInterrupt:
        console.print("scorer bench: interrupted; stopping servers")
        return 130
    except (RuntimeError, ValueError, OSError) as exc:
        console.print(f"scorer bench: {exc}")
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(2)
