"""Every knob of `scorer render k8s`, with its default (the CLI flags map one to one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Placement = Literal["pods", "ray"]

DESIRED_STATE_ENV = "SCORER_DESIRED_STATE"
"""Set to `files` on pods placement: the mounted ConfigMap is the desired state (see docs/scaling.md)."""
ENDPOINT_DIR = "/etc/scorer/endpoint"
"""Where the endpoint ConfigMap is mounted, as a directory (a subPath mount would never update)."""
BATCH_DIR = "/etc/scorer/batch"
HTTP_PORT = 8000
RAY_CLIENT_PORT = 10001


@dataclass(frozen=True)
class RenderOptions:
    """What the endpoint YAML does not say about a cluster; defaults fit the demo."""

    image: str = "scorer:latest"
    placement: Placement = "pods"
    generate_secrets: bool = False
    router_cpu: str = "500m"
    """The router process's own request, added to the replicas' in each pod."""
    router_memory: str = "512Mi"
    replica_cpu: str = "500m"
    """Per replica, for deployments without `resources.requests.cpu`."""
    replica_memory: str = "1Gi"
    min_pods: int = 2
    max_pods: int = 10
    target_cpu: int | None = None
    """HPA CPU target (percent); default the deployments' highest target_utilization_percentage, else 70."""
    drain_seconds: int = 10
    """preStop sleep: the Service stops sending before SIGTERM starts the router's drain."""
    schedule: str = "0 2 * * *"
    batch_input: str = "/data/input"
    batch_output: str = "/data/output"
    data_claim: str = "scoring-data"
    batch_memory: str = "4Gi"
    ray_head_cpu: str = "1"
    ray_head_memory: str = "2Gi"
