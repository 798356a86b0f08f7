"""From the endpoint spec to a started `EndpointState`: resolve each model once, build each
deployment's supervisor, balancer, admission and autoscaler, start them, stop them.

Both the server's bring-up and a reload use these, so neither imports the other.
"""

from __future__ import annotations

import asyncio
import logging

from scorer.spec.models import Endpoint, OnlineDeployment
from serving import metrics
from serving.admission import Admission
from serving.autoscale.autoscaler import Autoscaler
from serving.autoscale.hooks import make_hook
from serving.replicas.balancer import Balancer
from serving.replicas.factory import load_factory
from serving.replicas.supervisor import Supervisor, Timing
from serving.state import DeploymentState, EndpointState
from serving.traffic import SmoothWeighted
from serving.worker.config import ReplicaConfig

log = logging.getLogger("scorer.router")


def replica_config(name: str, d: OnlineDeployment) -> tuple[ReplicaConfig, str | None]:
    """What a replica of deployment `name` starts from, and why its model did not resolve (or None)."""
    from scorer.models import ModelNotFound, resolve

    model_path, version, problem = None, "", None
    if d.model:
        try:
            resolved = resolve(d.model)
            model_path, version = str(resolved.local_path), resolved.version
        except ModelNotFound as exc:
            problem = str(exc)
    cc = d.code_configuration
    cfg = ReplicaConfig(
        deployment=name, model_path=model_path, model_version=version or (cc.scoring_script if cc else "") or "",
        model_ref=str(d.model) if d.model else None,
        code_dir=str(cc.code) if cc else None, scoring_script=cc.scoring_script if cc else None,
        max_concurrent=d.request_settings.max_concurrent_requests_per_instance,
        environment=dict(d.environment_variables),
        max_batch_size=d.batching.max_batch_size, max_batch_wait_ms=d.batching.max_batch_wait_ms)
    return cfg, problem


def ray_bundle(d: OnlineDeployment) -> dict[str, float]:
    """One replica's resources as the Ray autoscaler names them (for the `ray` scale hook)."""
    from serving.replicas.ray_actor import DEFAULT_CPUS, ray_resources

    r = ray_resources(d.resources)
    bundle = {"CPU": float(r.get("num_cpus", DEFAULT_CPUS))}
    if "num_gpus" in r:
        bundle["GPU"] = float(r["num_gpus"])
    if "memory" in r:
        bundle["memory"] = float(r["memory"])
    return bundle


def build_deployment(endpoint: str, name: str, d: OnlineDeployment, cfg: ReplicaConfig,
                     timing: Timing) -> DeploymentState:
    """One deployment's parts, wired together, not started."""
    rs = d.request_settings
    factory = load_factory(d.replica_handle, endpoint, d)
    replicas = Supervisor(name, cfg, d.instance_count, factory, d.liveness_probe, d.readiness_probe, timing)
    admission = Admission(name, rs.max_concurrent_requests_per_instance, replicas.ready_count, rs.max_queue_wait_ms)
    replicas.on_change = admission.wake
    autoscaler = None
    if d.scale_settings.type == "target_utilization":
        hook = None
        if d.scale_settings.hook == "ray":
            hook = make_hook("ray", replicas.scale_to, ray_bundle(d))
        autoscaler = Autoscaler(endpoint, replicas, admission, d.scale_settings, d.max_instances,
                                rs.max_concurrent_requests_per_instance, hook=hook)
    return DeploymentState(name, d, cfg, replicas, Balancer(replicas, rs.kill_after_ms / 1000.0), admission,
                           rs.request_timeout_ms / 1000.0, autoscaler)


def build_state(spec: Endpoint, timing: Timing) -> tuple[EndpointState, dict[str, str]]:
    """The state to start, and the deployments whose model could not be resolved (name -> one line).
    Raises ValueError for a replica_handle that cannot be loaded."""
    deployments: dict[str, DeploymentState] = {}
    unresolved: dict[str, str] = {}
    for name, d in spec.deployments.items():
        cfg, problem = replica_config(name, d)
        if problem is not None:
            unresolved[name] = problem
        deployments[name] = build_deployment(spec.name, name, d, cfg, timing)
    return EndpointState(spec, deployments, SmoothWeighted(dict(spec.traffic)), dict(spec.mirror_traffic)), unresolved


async def start_state(state: EndpointState, unresolved: dict[str, str]) -> list[str]:
    """Start every deployment; returns fatal one-liners (deployments with traffic that fail). A
    deployment without traffic that fails is logged, and its replicas are retried."""
    live = set(state.live())
    fatal = [f"deployment {n}: {msg}" for n, msg in unresolved.items() if n in live]
    if fatal:
        return fatal
    names = [n for n in state.deployments if n not in unresolved]
    results = await asyncio.gather(*(state.deployments[n].replicas.start() for n in names))
    for n, errors in zip(names, results, strict=True):
        if errors:
            (fatal if n in live else []).append(errors[0])
            if n not in live:
                log.warning("%s (0%% traffic: serving continues; the replica is retried)", errors[0])
    for n, msg in unresolved.items():
        log.warning("deployment %s: %s (0%% traffic: serving continues without it)", n, msg)
        state.deployments[n].replicas.mark_failed(msg)
    return fatal


def start_deployment_extras(dep: DeploymentState) -> None:
    """What runs beside a started deployment: its autoscaler, and its gauges read at scrape time."""
    adm = dep.admission
    metrics.in_flight.labels(dep.name).set_function(lambda: adm.in_flight)
    metrics.queue_depth.labels(dep.name).set_function(lambda: adm.queued)
    if dep.autoscaler is not None:
        dep.autoscaler.start()


async def stop_deployments(deps: list[DeploymentState]) -> None:
    """Stop autoscalers, then replicas (callers drain admitted requests first)."""
    await asyncio.gather(*(d.autoscaler.stop() for d in deps if d.autoscaler is not None), return_exceptions=True)
    await asyncio.gather(*(d.replicas.stop() for d in deps), return_exceptions=True)
