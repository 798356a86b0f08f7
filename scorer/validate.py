"""`scorer validate FILE...`: every problem, one per line, or a short summary of what will run."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from scorer.spec import BatchDeployment, Endpoint, Loaded, OnlineDeployment, SpecError
from scorer.spec.loader import detect_kind, load_doc
from scorer.spec.models import BatchEndpoint
from scorer.spec.problems import Problem
from scorer.spec.yamlfile import YamlDoc, read_yaml


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
    if dep.replica_handle != "local":
        lines.append(f"{indent}replicas run through: {dep.replica_handle}")
    return lines


def handle_problems(spec: object) -> list[str]:
    """`replica_handle: python:MODULE:CALLABLE` that cannot be imported or is not callable, one line each
    (found here, not at `scorer serve`)."""
    import importlib

    deployments = getattr(spec, "deployments", None)
    items = deployments.items() if isinstance(deployments, dict) else \
        [(getattr(spec, "name", None) or "-", spec)] if isinstance(spec, OnlineDeployment) else []
    problems = []
    for name, dep in items:
        value = dep.replica_handle
        if not value.startswith("python:"):
            continue
        _, module, attr = value.split(":")
        where = f"deployments.{name}.replica_handle {value!r}"
        try:
            target = getattr(importlib.import_module(module), attr, None)
        except Exception as exc:
            problems.append(f"{where}: cannot import {module}: {type(exc).__name__}: {exc}")
            continue
        if target is None or not callable(target):
            problems.append(f"{where}: module {module} has no callable {attr}")
    return problems


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
    if isinstance(spec, BatchEndpoint):
        default = spec.defaults.deployment_name
        lines = [f"batch endpoint {spec.name!r}: auth {spec.auth_mode}"
                 + (f", default deployment {default!r}" if default else "")]
    elif isinstance(spec, Endpoint):
        lines = [f"endpoint {spec.name!r}: auth {spec.auth_mode}"]
        if spec.deployments:
            lines.append("  traffic: " + ", ".join(f"{k} {v}%" for k, v in spec.traffic.items()))
        else:
            lines.append("  no deployments given: give its deployment files with it to check traffic")
        if spec.mirror_traffic:
            lines.append("  mirror: " + ", ".join(f"{k} {v}%" for k, v in spec.mirror_traffic.items()))
        for name, dep in spec.deployments.items():
            lines.append(f"  deployment {name!r}:")
            lines += _deployment_lines(dep, "    ")
    elif isinstance(spec, OnlineDeployment):
        of = f"of endpoint {spec.endpoint_name!r}" if spec.endpoint_name else "(its endpoint is the one served with it)"
        lines = [f"online deployment {spec.name!r} {of}"]
        lines += _deployment_lines(spec, "  ")
    else:
        of = f" of endpoint {spec.endpoint_name!r}" if spec.endpoint_name else ""
        lines = [f"batch deployment {spec.name!r}{of}"]
        lines += _batch_lines(spec)
    lines += [f"  note: {n}" for n in loaded.notes]
    return lines


def _groups(docs: dict[str, YamlDoc]) -> list[tuple[str, list[str]]]:
    """Files as `serve` reads them: an online deployment file joins the endpoint given with it that
    its `endpoint_name` names (or the only endpoint given); every other file stands alone."""
    kinds = {name: detect_kind(doc.data) for name, doc in docs.items()}
    endpoints = [name for name, kind in kinds.items() if kind == "endpoint"]
    by_name: dict[str, str] = {}
    for name in endpoints:
        if isinstance(docs[name].data.get("name"), str):
            by_name.setdefault(docs[name].data["name"], name)
    joined: dict[str, list[str]] = {name: [] for name in endpoints}
    members: set[str] = set()
    for name, kind in kinds.items():
        if kind != "online_deployment":
            continue
        target = docs[name].data.get("endpoint_name", docs[name].data.get("endpoint"))
        owner = by_name.get(target) if isinstance(target, str) else endpoints[0] if len(endpoints) == 1 else None
        if owner is not None:
            joined[owner].append(name)
            members.add(name)
    return [(name, joined.get(name, [])) for name in docs if name not in members]


def _print_problems(name: str, problems: list[Problem], err: TextIO) -> None:
    if len(problems) == 1:  # one line, naming the file (and the line when known)
        p = problems[0]
        print(p if p.file else f"{name}: {p.severity}: {p.message}", file=err)
        return
    print(f"{name}: invalid ({len(problems)} problems)", file=err)
    for p in sorted(problems, key=lambda p: (str(p.file or ""), p.line or 0)):
        print(f"  {p}", file=err)


def run_validate(files: Sequence[str], out: TextIO | None = None, err: TextIO | None = None, *,
                 offline: bool = False) -> int:
    """Exit 0 when every file is valid, 2 otherwise; never a traceback. `offline` skips the registry.
    The streams default to the process's current ones, looked up per call."""
    out, err = out or sys.stdout, err or sys.stderr
    status = 0
    docs: dict[str, YamlDoc] = {}
    for name in dict.fromkeys(files):
        try:
            docs[name] = read_yaml(Path(name))  # each file parsed once
        except SpecError as exc:
            status = 2
            _print_problems(name, exc.problems, err)
    for name, members in _groups(docs):
        try:
            loaded = load_doc(docs[name], check_paths=False, deployments=[docs[m] for m in members])
        except SpecError as exc:
            status = 2
            _print_problems(name, exc.problems, err)
            for m in members:
                print(f"{m}: read with {name}, above", file=err)
            continue
        if not offline:  # every model must resolve (names, versions, aliases; did-you-mean on a miss)
            from scorer.models import reference_problems

            missing = reference_problems(Path(name), loaded.spec)
            if missing:
                status = 2
                head = [] if len(missing) == 1 else [f"{name}: invalid ({len(missing)} problems)"]
                print("\n".join(head + [("  " if head else "") + str(p) for p in missing]), file=err)
                continue
        bad_handles = handle_problems(loaded.spec)
        if bad_handles:
            status = 2
            head = [] if len(bad_handles) == 1 else [f"{name}: invalid ({len(bad_handles)} problems)"]
            print("\n".join(head + [("  " if head else f"{name}: ") + p for p in bad_handles]), file=err)
            continue
        with_files = f" (with {', '.join(members)})" if members else ""
        print(f"{name}: ok, {loaded.kind.replace('_', ' ')}{with_files}", file=out)
        for line in summary(loaded):
            print(f"  {line}", file=out)
        for w in sorted(loaded.warnings, key=lambda p: (str(p.file or ""), p.line or 0)):
            print(f"  {w}", file=out)
        for m in members:
            print(f"{m}: ok, online deployment, read with {name}", file=out)
    return status
