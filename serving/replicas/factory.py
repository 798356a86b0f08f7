"""Which ReplicaHandle a deployment's replicas get: `local`, `ray`, or a third party's `python:MODULE:CALLABLE`.

Under `scorer serve --address` (`use_cluster`), `local` deployments run as Ray actors too: the
cluster is where replicas go; `ray` without a cluster is an error."""

from __future__ import annotations

import importlib

from scorer.spec.models import OnlineDeployment
from serving.replicas.handle import HandleFactory

PYTHON_PREFIX = "python:"

_cluster_secret: bytes | None = None


def use_cluster(secret: bytes | None) -> None:
    """The router joined a Ray cluster (ray.init done): place `local` and `ray` replicas there,
    authenticated with `secret`. None: back to this machine."""
    global _cluster_secret
    _cluster_secret = secret


def on_cluster(handle: str) -> bool:
    """Do this deployment's replicas run on the Ray cluster?"""
    return handle == "ray" or (handle == "local" and _cluster_secret is not None)


def runs_here(handle: str) -> bool:
    """Are this deployment's replicas processes on this machine (so the per-CPU cap applies)?"""
    return handle == "local" and _cluster_secret is None


def load_factory(spec: str, endpoint: str = "", deployment: OnlineDeployment | None = None) -> HandleFactory:
    """`local` (the default), `ray`, or `python:MODULE:CALLABLE`, the callable being a HandleFactory.
    `endpoint` and `deployment` give a Ray replica its name and resources. Raises ValueError with
    the problem named."""
    if on_cluster(spec):
        if _cluster_secret is None:
            raise ValueError("replica_handle 'ray' needs a Ray cluster: scorer serve ... --address HOST:PORT|auto")
        from serving.replicas.ray_actor import ray_factory

        return ray_factory(endpoint, deployment, _cluster_secret)
    if spec == "local":
        from serving.replicas.local import local_handle

        return local_handle
    if not spec.startswith(PYTHON_PREFIX) or spec.count(":") != 2:
        raise ValueError(f"replica_handle {spec!r}: expected 'local', 'ray' or 'python:MODULE:CALLABLE'")
    _, module, name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(f"replica_handle {spec!r}: cannot import {module}: {exc}") from None
    except AttributeError:
        raise ValueError(f"replica_handle {spec!r}: module {module} has no {name}") from None
    if not callable(factory):
        raise ValueError(f"replica_handle {spec!r}: {module}.{name} is not callable")
    return factory  # type: ignore[no-any-return]
