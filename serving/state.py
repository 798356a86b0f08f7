"""What the router serves, as one value: the endpoint's deployments, traffic and mirror.

The data plane reads `EndpointState` once per request and never sees a mix of two: a reload or an
admin change builds a new state and swaps it in whole, with no await in between. A deployment's
replicas, admission and autoscaler live in its `DeploymentState`; a request that picked a
deployment finishes on that deployment's objects even if a reload has replaced it meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from scorer.spec.models import Endpoint, OnlineDeployment
from serving.admission import Admission
from serving.autoscale.autoscaler import Autoscaler
from serving.replicas.balancer import Balancer
from serving.replicas.supervisor import Supervisor
from serving.traffic import SmoothWeighted
from serving.worker.config import ReplicaConfig


@dataclass(frozen=True, eq=False)
class DeploymentState:
    name: str
    spec: OnlineDeployment
    cfg: ReplicaConfig
    replicas: Supervisor
    balancer: Balancer
    admission: Admission
    timeout_s: float  # request_timeout_ms, the whole budget of a request from its first byte
    autoscaler: Autoscaler | None = None

    @property
    def version(self) -> str:
        return self.cfg.model_version


@dataclass(frozen=True, eq=False)
class EndpointState:
    spec: Endpoint
    deployments: Mapping[str, DeploymentState]
    traffic: SmoothWeighted
    mirror: Mapping[str, int]  # deployment -> percent of unpinned live requests copied to it

    @property
    def name(self) -> str:
        return self.spec.name

    def with_traffic(self, shares: Mapping[str, int]) -> EndpointState:
        return dataclasses.replace(self, traffic=SmoothWeighted(dict(shares)))

    def with_mirror(self, shares: Mapping[str, int]) -> EndpointState:
        return dataclasses.replace(self, mirror={n: p for n, p in shares.items() if p > 0})

    def live(self) -> list[str]:
        """Deployments with live traffic."""
        return [n for n, pct in self.traffic.shares.items() if pct > 0]
