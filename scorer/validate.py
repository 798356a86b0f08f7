"""`scorer validate FILE...`: every problem, one per line, or a short summary of what will run."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from scorer.spec import BatchDeployment, Endpoint, Loaded, OnlineDeployment, SpecError, load_any


def _deployment_lines(dep: OnlineDeployment, indent: str) -> list[str]:
    s, r, b = dep.scale_settings, dep.request_settings, dep.batching
    lines = []
    if dep.model:
        lines.append(f"{indent}model: {dep.model}")
    if dep.code_configuration:
        cc = dep.code_configuration
        lines.append(f"{indent}code: {cc.code}" + (f" (script {cc.scoring_script})" if cc.scoring_script else ""))
    if s.type == "target_utilization":
        lines.append(f"{indent}replicas: {dep.instance_count} (autoscaled {s.min_instances}..{dep.max_instances} "
                     f"at {s.target_utilization_percentage}% utilization, every {s.polling_interval:g}s, "
                     f"scale-down delay {s.scale_down_delay:g}s, hook {s.hook})")
    else:
        lines.append(f"{indent}replicas: {dep.instance_count} (fixed)")
    lines.append(f"{indent}requests: timeout {r.request_timeout_ms} ms, {r.max_concurrent_requests_per_instance} "
                 f"concurrent per replica, queue wait {r.max_queue_wait_ms} ms")
    lines.append(f"{indent}batching: " + ("off" if b.max_batch_size == 1 else
                                          f"up to {b.max_batch_size} rows, wait {b.max_batch_wait_ms:g} ms"))
    if dep.environment_variables:
        lines.append(f"{indent}environment: {', '.join(sorted(dep.environment_variables))}")
    return lines


def _batch_lines(dep: BatchDeployment) -> list[str]:
    size = dep.mini_batch_size if isinstance(dep.mini_batch_size, str) else dep.mini_batch_rows
    unit = "" if isinstance(size, str) else (" rows" if dep.effective_input_mode == "tabular" else " files")
    lines = [f"  model: {dep.model}"] if dep.model else []
    if dep.code_configuration:
        cc = dep.code_configuration
        lines.append(f"  code: {cc.code}" + (f" (script {cc.scoring_script})" if cc.scoring_script else ""))
    r = dep.retry_settings
    lines += [
        f"  input mode: {dep.effective_input_mode}, mini-batch {size}{unit}",
        f"  workers: {dep.resources.instance_count} instance(s) x {dep.max_concurrency_per_instance}",
        f"  output: {dep.output_action}" + (f" to {dep.output_file_name}" if dep.output_action == "append_row" else ""),
        f"  retries: {r.max_retries}, timeout {r.timeout:g}s; error threshold "
        + ("none (-1)" if dep.error_threshold == -1 else str(dep.error_threshold)),
        f"  logging: {dep.logging_level}",
    ]
    return lines


def summary(loaded: Loaded) -> list[str]:
    spec = loaded.spec
    if isinstance(spec, Endpoint):
        lines = [f"endpoint {spec.name!r}: auth {spec.auth_mode}"]
        lines.append("  traffic: " + ", ".join(f"{k} {v}%" for k, v in spec.traffic.items()))
        if spec.mirror_traffic:
            lines.append("  mirror: " + ", ".join(f"{k} {v}%" for k, v in spec.mirror_traffic.items()))
        for name, dep in spec.deployments.items():
            lines.append(f"  deployment {name!r}:")
            lines += _deployment_lines(dep, "    ")
    elif isinstance(spec, OnlineDeployment):
        lines = [f"online deployment {spec.name!r} of endpoint {spec.endpoint_name!r}"]
        lines += _deployment_lines(spec, "  ")
    else:
        of = f" of endpoint {spec.endpoint_name!r}" if spec.endpoint_name else ""
        lines = [f"batch deployment {spec.name!r}{of}"]
        lines += _batch_lines(spec)
    lines += [f"  note: {n}" for n in loaded.notes]
    return lines


def run_validate(files: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit 0 when every file is valid, 2 otherwise; never a traceback."""
    status = 0
    for name in files:
        try:
            loaded = load_any(Path(name), check_paths=False)
        except SpecError as exc:
            status = 2
            print(f"{name}: invalid ({len(exc.problems)} problem{'s' * (len(exc.problems) != 1)})", file=err)
            for p in sorted(exc.problems, key=lambda p: (p.line or 0)):
                print(f"  {p}", file=err)
            continue
        print(f"{name}: ok, {loaded.kind.replace('_', ' ')}", file=out)
        for line in summary(loaded):
            print(f"  {line}", file=out)
        for w in sorted(loaded.warnings, key=lambda p: (p.line or 0)):
            print(f"  {w}", file=out)
    return status
