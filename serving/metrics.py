"""The design's Prometheus metrics, on the default registry so that `GET /metrics` shows them all.

Defined here once so that every module (router, mirror, autoscaler) counts into the same series."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

requests_total = Counter("scorer_requests_total", "Scoring requests answered, by deployment and HTTP status.",
                         ["deployment", "status"])
request_duration_seconds = Histogram(
    "scorer_request_duration_seconds", "Request latency: total in the router, queue (admission wait), model "
    "(predict in the replica).", ["deployment", "stage"], buckets=_LATENCY_BUCKETS)
in_flight = Gauge("scorer_in_flight", "Requests admitted and not yet answered.", ["deployment"])
queue_depth = Gauge("scorer_queue_depth", "Requests waiting for admission.", ["deployment"])
replicas = Gauge("scorer_replicas", "Replicas by state.", ["deployment", "state"])
batch_size = Histogram("scorer_batch_size", "Requests merged into one predict call by adaptive batching.",
                       ["deployment"], buckets=_BATCH_BUCKETS)
replica_restarts_total = Counter("scorer_replica_restarts_total", "Replica restarts, by reason.",
                                 ["deployment", "reason"])
mirror_requests_total = Counter("scorer_mirror_requests_total", "Mirrored copies, by outcome "
                                "(ok | error | dropped).", ["deployment", "outcome"])
mirror_agreement_total = Counter("scorer_mirror_agreement_total", "Mirrored predictions equal to the live one.",
                                 ["deployment", "agree"])
autoscale_desired_replicas = Gauge("scorer_autoscale_desired_replicas", "Replicas the autoscaler wants.",
                                   ["deployment"])
autoscale_decisions_total = Counter("scorer_autoscale_decisions_total", "Autoscaler decisions, by direction.",
                                    ["deployment", "direction"])

connections = Gauge("scorer_connections", "Open client connections.")
buffered_request_bytes = Gauge("scorer_buffered_request_bytes", "Request bytes held at once: bodies being read "
                               "or scored (max_buffered_bytes caps it).")
connections_closed_total = Counter("scorer_connections_closed_total", "Client connections closed by a limit, by "
                                   "reason (idle | head_timeout | body_timeout | evicted | header_limit | "
                                   "buffered_limit).", ["reason"])

deployment_info = Gauge("scorer_deployment_info", "1 for each live deployment: the model as written in the "
                        "deployment and its version (join on deployment).", ["deployment", "model", "model_version"])

STAGES = ("total", "queue", "model")


class DeploymentSeries:
    """One deployment's per-request series, looked up once: `labels()` builds its key and takes a lock
    on every call, five times a request."""

    __slots__ = ("name", "total", "queue", "model", "batch", "_answered")

    def __init__(self, deployment: str) -> None:
        self.name = deployment
        self.total = request_duration_seconds.labels(deployment, "total")
        self.queue = request_duration_seconds.labels(deployment, "queue")
        self.model = request_duration_seconds.labels(deployment, "model")
        self.batch = batch_size.labels(deployment)
        self._answered: dict[int, Counter] = {}

    def answered(self, status: int) -> Counter:
        """`scorer_requests_total` of this deployment and status."""
        child = self._answered.get(status)
        if child is None:
            child = self._answered[status] = requests_total.labels(self.name, str(status))
        return child


_series: dict[str, DeploymentSeries] = {}


def series(deployment: str) -> DeploymentSeries:
    """The series of a deployment of the config (the names are bounded by it)."""
    found = _series.get(deployment)
    if found is None:
        found = _series[deployment] = DeploymentSeries(deployment)
    return found


class _WithoutCreated:
    """The registry without `*_created` samples: the text format (0.0.4) has no place for them and would
    show each as an extra gauge family; OpenMetrics keeps them inside their counter/histogram family."""

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if samples or not family.samples:
                family.samples = samples
                yield family


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of the default registry in the format `Accept` asks for (prometheus_client's own
    negotiation: OpenMetrics when asked for, else the text format) and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    registry: Any = REGISTRY if "openmetrics" in content_type else _WithoutCreated()
    return encoder(registry), content_type


def set_deployments(current: dict[str, tuple[str, str]]) -> None:
    """scorer_deployment_info for exactly these deployments (name -> (model, version)): series of
    deployments removed by a reload go."""
    deployment_info.clear()
    for name, (model, version) in current.items():
        deployment_info.labels(name, model, version).set(1)
