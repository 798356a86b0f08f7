"""Scheduled batch scoring: a CronJob (local Ray inside the pod) and a RayJob (an ephemeral RayCluster)."""

from __future__ import annotations

import shlex
from decimal import Decimal

from scorer.render.objects import CONTAINER_SECURITY, POD_SECURITY, Doc, config_volume, meta, mount
from scorer.render.options import BATCH_DIR, RenderOptions
from scorer.render.quantity import parse
from scorer.render.ray import ray_job, worker_group
from scorer.spec import BatchDeployment

EXIT_NO_RETRY = [1, 2]
"""`scorer batch` exit codes that a retry cannot fix: 1 error threshold crossed, 2 bad configuration
or input. Anything else (130 interrupted, a lost node) is retried with `--resume`."""


def command(dep: BatchDeployment, file_name: str, opts: RenderOptions, address: str | None) -> list[str]:
    cmd = ["scorer", "batch", f"{BATCH_DIR}/{file_name}", "--input", opts.batch_input,
           "--output", opts.batch_output, "--resume"]
    return [*cmd, "--address", address] if address else cmd


def _volumes(config_map_name: str, opts: RenderOptions) -> tuple[list[Doc], list[Doc]]:
    volumes = [config_volume("batch", config_map_name),
               {"name": "data", "persistentVolumeClaim": {"claimName": opts.data_claim}}]
    mounts = [mount("batch", BATCH_DIR), {"name": "data", "mountPath": "/data"}]
    return volumes, mounts


def cron_job(name: str, instance: str, dep: BatchDeployment, file_name: str, config_map_name: str,
             opts: RenderOptions) -> Doc:
    """One pod with local Ray: instance_count x max_concurrency_per_instance CPUs."""
    volumes, mounts = _volumes(config_map_name, opts)
    cpus = dep.resources.instance_count * dep.max_concurrency_per_instance
    container = {"name": "scorer", "image": opts.image, "workingDir": "/app",
                 "command": command(dep, file_name, opts, None),
                 "env": [{"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}],
                 "resources": {"requests": {"cpu": str(cpus), "memory": opts.batch_memory}},
                 "volumeMounts": mounts, "securityContext": CONTAINER_SECURITY}
    job = {"backoffLimit": 3,
           "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
               "containerName": "scorer", "operator": "In", "values": EXIT_NO_RETRY}}]},
           "template": {"spec": {"restartPolicy": "Never", "securityContext": POD_SECURITY,
                                 "containers": [container], "volumes": volumes}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(name, instance, "batch"),
            "spec": {"schedule": opts.schedule, "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": job}}}


def batch_ray_job(name: str, instance: str, dep: BatchDeployment, file_name: str, config_map_name: str,
                  opts: RenderOptions) -> Doc:
    """The same run on an ephemeral RayCluster: one worker pod per instance (`resources.instance_count`)."""
    volumes, mounts = _volumes(config_map_name, opts)
    n = dep.resources.instance_count
    req = {"cpu": Decimal(dep.max_concurrency_per_instance), "memory": parse(opts.batch_memory)}
    group = worker_group("workers", n, n, n, req, {}, opts, mounts, volumes)
    entrypoint = shlex.join(command(dep, file_name, opts, "auto"))
    return ray_job(name, instance, entrypoint, group, mounts, volumes, opts)
