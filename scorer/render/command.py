"""`scorer render k8s ...`: load the files as `serve` and `batch` do, render, write; exit 2 on any
mistake in the files or the arguments, in one line when there is one problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from scorer.render.k8s import PLACEHOLDER_SECRET, render_k8s, write_manifests
from scorer.render.options import ENDPOINT_DIR, RenderOptions
from scorer.render.resources import ResourceError
from scorer.spec import SpecError, load_batch, load_endpoint
from scorer.spec.loader import detect_kind
from scorer.spec.yamlfile import read_yaml
from scorer.validate import _print_problems


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `render` command and its `k8s` target, with every knob of RenderOptions."""
    d = RenderOptions()
    r = sub.add_parser("render", help="write deployment manifests from an endpoint YAML")
    targets = r.add_subparsers(dest="target", required=True, metavar="TARGET")
    k = targets.add_parser("k8s", help="Kubernetes manifests (docs/scaling.md)")
    k.add_argument("endpoint", metavar="ENDPOINT.yaml")
    k.add_argument("files", nargs="*", metavar="DEPLOYMENT.yaml",
                   help="online deployment files, and batch deployment files (CronJob, RayJob)")
    k.add_argument("--out", required=True, metavar="DIR")
    k.add_argument("--image", default=d.image, help=f"default {d.image} (the repository's Dockerfile)")
    k.add_argument("--placement", choices=["pods", "ray"], default=d.placement)
    k.add_argument("--generate-secrets", action="store_true",
                   help="write secret.yaml with random keys (never commit it); default: an empty template")
    k.add_argument("--router-cpu", default=d.router_cpu)
    k.add_argument("--router-memory", default=d.router_memory)
    k.add_argument("--replica-cpu", default=d.replica_cpu, help="per replica, when a deployment sets none")
    k.add_argument("--replica-memory", default=d.replica_memory)
    k.add_argument("--min-pods", type=int, default=d.min_pods)
    k.add_argument("--max-pods", type=int, default=d.max_pods)
    k.add_argument("--target-cpu", type=int, default=d.target_cpu, metavar="PERCENT")
    k.add_argument("--drain-seconds", type=int, default=d.drain_seconds)
    k.add_argument("--schedule", default=d.schedule, help="batch CronJob schedule")
    k.add_argument("--batch-input", default=d.batch_input)
    k.add_argument("--batch-output", default=d.batch_output)
    k.add_argument("--data-claim", default=d.data_claim, help="PersistentVolumeClaim mounted at /data")
    k.add_argument("--batch-memory", default=d.batch_memory)


def _options(args: argparse.Namespace) -> RenderOptions:
    return RenderOptions(
        image=args.image, placement=args.placement, generate_secrets=args.generate_secrets,
        router_cpu=args.router_cpu, router_memory=args.router_memory, replica_cpu=args.replica_cpu,
        replica_memory=args.replica_memory, min_pods=args.min_pods, max_pods=args.max_pods,
        target_cpu=args.target_cpu, drain_seconds=args.drain_seconds, schedule=args.schedule,
        batch_input=args.batch_input, batch_output=args.batch_output, data_claim=args.data_claim,
        batch_memory=args.batch_memory)


def _check_args(args: argparse.Namespace) -> str | None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {args.out}: is a file; expected a folder (created if missing)"
    if args.min_pods < 1 or args.max_pods < 1:
        return f"--min-pods {args.min_pods} --max-pods {args.max_pods}: expected at least 1"
    if args.target_cpu is not None and not 0 < args.target_cpu <= 100:
        return f"--target-cpu {args.target_cpu}: expected a percent from 1 to 100"
    if args.drain_seconds < 0:
        return f"--drain-seconds {args.drain_seconds}: expected 0 or more"
    return None


def run_render(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0 when written; 2 for a bad file or argument, never a traceback. The streams default to the
    process's current ones, looked up per call (pytest swaps them between tests)."""
    out, err = out or sys.stdout, err or sys.stderr
    problem = _check_args(args)
    if problem:
        print(f"scorer render: {problem}", file=err)
        return 2
    online, batch = [], []
    for name in args.files:
        try:
            kind = detect_kind(read_yaml(Path(name)).data)
        except SpecError as exc:
            _print_problems(name, exc.problems, err)
            return 2
        if kind == "batch_deployment":
            batch.append(name)
        elif kind == "online_deployment":
            online.append(name)
        else:
            print(f"{name}: error: a {kind.replace('_', ' ')} file; expected online or batch deployment files "
                  "after the endpoint", file=err)
            return 2
    current = args.endpoint
    try:
        endpoint = load_endpoint(Path(args.endpoint), [Path(f) for f in online], check_paths=False)
        batches = []
        for name in batch:
            current = name
            batches.append(load_batch(Path(name), check_paths=False))
        rendered = render_k8s(endpoint, batches, _options(args))
    except SpecError as exc:
        _print_problems(current, exc.problems, err)
        return 2
    except ResourceError as exc:
        print(f"{args.endpoint}: error: {'.'.join(exc.loc)}: {exc}", file=err)
        return 2
    except ValueError as exc:
        print(f"scorer render: {exc}", file=err)
        return 2
    for dep_name, dep in endpoint.spec.deployments.items():
        if dep.code_configuration:
            print(f"warning: deployments.{dep_name}.code_configuration: the code is not in the ConfigMap; "
                  f"the image must hold it where the YAML points (paths resolve under {ENDPOINT_DIR})", file=err)
    written = write_manifests(rendered, Path(args.out))
    secret_note = ("secret.yaml holds generated keys: do not commit it" if args.generate_secrets else
                   f"{PLACEHOLDER_SECRET} is an empty template: create the Secret with kubectl (docs/scaling.md)")
    print(f"wrote {len(written)} manifests to {args.out} ({args.placement} placement); {secret_note}", file=out)
    return 0
