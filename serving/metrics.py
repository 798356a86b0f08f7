"""The design's Prometheus metrics, on the default registry so that `GET /metrics` shows them all.

Defined here once so that every module (router, mirror, autoscaler) counts into the same series."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

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

STAGES = ("total", "queue", "model")


def render() -> tuple[bytes, str]:
    """The exposition text of the default registry and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
