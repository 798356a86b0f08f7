"""Bounds on the work a config file can cause, each with a default and an environment knob.

A YAML file is user input: a few hundred bytes of aliases can stand for billions of nodes, and a
typo in `instance_count` can ask for a million processes. Every bound lives here so that
docs/endpoint-yaml.md ("Limits of the YAML reader") and the code cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorer.spec.problems import Problem, SpecError

if TYPE_CHECKING:
    from scorer.spec.models import Endpoint


@dataclass(frozen=True)
class Limit:
    """One bound: the environment variable that overrides it and its default."""

    env: str
    default: int

    def value(self) -> int:
        """The bound in force; a malformed knob is a configuration error, never a traceback."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise SpecError([Problem((), f"environment {self.env}={raw!r}: expected a positive integer "
                                     f"(default {self.default})")])
        return value


YAML_MAX_BYTES = Limit("SCORER_YAML_MAX_BYTES", 16 * 1024 * 1024)
YAML_MAX_NODES = Limit("SCORER_YAML_MAX_NODES", 10_000)
YAML_MAX_DEPTH = Limit("SCORER_YAML_MAX_DEPTH", 100)
MAX_INSTANCES = Limit("SCORER_MAX_INSTANCES", 1024)
MAX_REPLICAS_PER_CPU = Limit("SCORER_MAX_REPLICAS_PER_CPU", 8)


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, as a container sees it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def peak_replicas(ep: Endpoint, on_cluster: bool = False) -> dict[str, int]:
    """The most local replica processes each deployment may run: max_instances when the local hook
    autoscales it (other hooks act elsewhere: this machine keeps the starting count). Replicas on a
    Ray cluster (`replica_handle: ray`, or `local` under `--address`) are not on this machine."""
    peaks = {}
    for name, dep in ep.deployments.items():
        if dep.replica_handle == "ray" or (on_cluster and dep.replica_handle == "local"):
            continue
        s = dep.scale_settings
        local_auto = s.type == "target_utilization" and s.hook == "local"
        peaks[name] = dep.max_instances if local_auto else max(dep.instance_count, s.min_instances)
    return peaks


def local_replica_problem(ep: Endpoint, cpus: int | None = None, on_cluster: bool = False) -> str | None:
    """Why `serve` should refuse to start this many local replica processes, or None.

    Each replica is a process holding a model; past a few per CPU they only compete for memory
    and cores, and a typo (`instance_count: 1000`) would fork the machine to a halt."""
    try:
        per_cpu = MAX_REPLICAS_PER_CPU.value()
    except SpecError as exc:
        return str(exc.problems[0].message)
    cpus = cpus if cpus is not None else usable_cpus()
    peaks = peak_replicas(ep, on_cluster)
    total, cap = sum(peaks.values()), per_cpu * cpus
    if total <= cap:
        return None
    each = ", ".join(f"{name} {n}" for name, n in peaks.items())
    return (f"{total} local replicas requested ({each}); at most {cap} on this machine "
            f"({per_cpu} per CPU x {cpus} CPUs, {MAX_REPLICAS_PER_CPU.env}); lower instance_count or "
            f"scale_settings.max_instances, or raise {MAX_REPLICAS_PER_CPU.env}")
