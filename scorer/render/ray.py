"""KubeRay kinds: the RayCluster that hosts replicas (`--placement ray`) and the batch RayJob."""

from __future__ import annotations

import math
from decimal import Decimal
from importlib import metadata
from typing import Any

from scorer.render.objects import CONTAINER_SECURITY, POD_SECURITY, Doc, meta
from scorer.render.options import RenderOptions
from scorer.render.resources import Amounts, total


def ray_version() -> str:
    """The Ray in the image is the one pinned here (constraints.txt); KubeRay wants to know it."""
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:  # pragma: no cover - ray is a dependency
        return "2.40.0"


def _pod(container: Doc, volumes: list[Doc]) -> Doc:
    spec: Doc = {"securityContext": POD_SECURITY, "containers": [container]}
    if volumes:
        spec["volumes"] = volumes
    return {"spec": spec}


def _container(name: str, image: str, resources: dict[str, dict[str, str]], mounts: list[Doc],
               env: list[Doc]) -> Doc:
    c: Doc = {"name": name, "image": image, "workingDir": "/app", "resources": resources,
              "securityContext": CONTAINER_SECURITY}
    if env:
        c["env"] = env
    if mounts:
        c["volumeMounts"] = mounts
    return c


def head_group(opts: RenderOptions, mounts: list[Doc], volumes: list[Doc]) -> Doc:
    """`num-cpus: 0`: nothing is scheduled on the head; it runs the GCS, the dashboard and Ray Client."""
    resources = {"requests": {"cpu": opts.ray_head_cpu, "memory": opts.ray_head_memory}}
    return {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _pod(_container("ray-head", opts.image, resources, mounts, []), volumes)}


def worker_group(group: str, replicas: int, lowest: int, highest: int, req: Amounts, lim: Amounts,
                 opts: RenderOptions, mounts: list[Doc], volumes: list[Doc]) -> Doc:
    """One worker pod per replica of a deployment, sized like one replica; `num-cpus` is given
    (at least 1) so that a fractional request such as 500m still hosts one replica actor."""
    resources = total([(1, req, lim)], {})
    cpus = max(1, math.ceil(req.get("cpu", Decimal(1))))
    return {"groupName": group, "replicas": replicas, "minReplicas": lowest, "maxReplicas": max(highest, replicas),
            "rayStartParams": {"num-cpus": str(cpus)},
            "template": _pod(_container("ray-worker", opts.image, resources, mounts, []), volumes)}


def ray_cluster(name: str, instance: str, groups: list[Doc], autoscale: bool, opts: RenderOptions) -> Doc:
    spec: dict[str, Any] = {"rayVersion": ray_version(), "enableInTreeAutoscaling": autoscale,
                            "headGroupSpec": head_group(opts, [], []), "workerGroupSpecs": groups}
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": meta(name, instance, "ray"), "spec": spec}


def ray_job(name: str, instance: str, entrypoint: str, group: Doc, mounts: list[Doc], volumes: list[Doc],
            opts: RenderOptions) -> Doc:
    """An ephemeral cluster per run, deleted when the job ends; a retry (`backoffLimit`) runs with
    `--resume`, so it continues where the last one stopped."""
    cluster = {"rayVersion": ray_version(), "headGroupSpec": head_group(opts, mounts, volumes),
               "workerGroupSpecs": [group]}
    spec: dict[str, Any] = {"entrypoint": entrypoint, "shutdownAfterJobFinishes": True,
                            "ttlSecondsAfterFinished": 3600, "backoffLimit": 3, "rayClusterSpec": cluster}
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": meta(name, instance, "batch"), "spec": spec}
