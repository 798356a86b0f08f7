"""The router tier: Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler."""

from __future__ import annotations

import math
from typing import Any

from scorer.render.objects import CONTAINER_SECURITY, POD_SECURITY, Doc, meta, selector
from scorer.render.options import HTTP_PORT, RenderOptions
from scorer.spec import Endpoint, Probe


def _probe(path: str, probes: list[Probe], liveness: bool) -> Doc:
    """The strictest reading of the deployments' probes (a router is ready when all of them are)."""
    p = probes or [Probe()]
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": math.ceil(max(x.initial_delay for x in p)),
        "periodSeconds": max(1, math.floor(min(x.period for x in p))),
        "timeoutSeconds": max(1, math.ceil(max(x.timeout for x in p))),
        "successThreshold": 1 if liveness else max(x.success_threshold for x in p),
        "failureThreshold": max(x.failure_threshold for x in p),
    }


def grace_seconds(ep: Endpoint, opts: RenderOptions) -> int:
    """preStop sleep + the longest request timeout + 5 s: in-flight requests finish before SIGKILL."""
    longest = max((d.request_settings.request_timeout_ms for d in ep.deployments.values()), default=5000)
    return opts.drain_seconds + math.ceil(longest / 1000) + 5


def deployment(name: str, instance: str, ep: Endpoint, container: Doc, volumes: list[Doc],
               opts: RenderOptions) -> Doc:
    """No `replicas`: the HPA owns the pod count, and re-applying must not reset it."""
    container = {
        **container,
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "readinessProbe": _probe("/ready", [d.readiness_probe for d in ep.deployments.values()], False),
        "livenessProbe": _probe("/health", [d.liveness_probe for d in ep.deployments.values()], True),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(opts.drain_seconds)]}}},
        "securityContext": CONTAINER_SECURITY,
    }
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                   "prometheus.io/path": "/metrics"}
    template: Doc = {
        "metadata": {"labels": meta(name, instance, "router")["labels"], "annotations": annotations},
        "spec": {"terminationGracePeriodSeconds": grace_seconds(ep, opts), "securityContext": POD_SECURITY,
                 "containers": [container], "volumes": volumes},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, instance, "router"),
            "spec": {"selector": {"matchLabels": selector(instance, "router")}, "template": template}}


def service(name: str, instance: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, instance, "router"),
            "spec": {"selector": selector(instance, "router"),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def pdb(name: str, instance: str) -> Doc:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name, instance, "router"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(instance, "router")}}}


def hpa(name: str, instance: str, ep: Endpoint, opts: RenderOptions) -> Doc:
    """CPU target: `--target-cpu`, else the highest target_utilization_percentage, else 70; the
    scale-down window is the longest scale_down_delay, as the in-pod autoscaler waits."""
    autoscaled = [d.scale_settings for d in ep.deployments.values() if d.scale_settings.type == "target_utilization"]
    target = opts.target_cpu or max((s.target_utilization_percentage for s in autoscaled), default=70)
    window = max((math.ceil(d.scale_settings.scale_down_delay) for d in ep.deployments.values()), default=300)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": opts.min_pods,
        "maxReplicas": max(opts.min_pods, opts.max_pods),
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": min(window, 3600)}},
    }
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(name, instance, "router"), "spec": spec}
