"""GET /metrics: open, Prometheus text, every metric of the design with its labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.online.data import split_body

DESIGN = {
    "scorer_requests": ({"deployment", "status"}, "counter"),
    "scorer_request_duration_seconds": ({"deployment", "stage"}, "histogram"),
    "scorer_in_flight": ({"deployment"}, "gauge"),
    "scorer_queue_depth": ({"deployment"}, "gauge"),
    "scorer_replicas": ({"deployment", "state"}, "gauge"),
    "scorer_batch_size": ({"deployment"}, "histogram"),
    "scorer_replica_restarts": ({"deployment", "reason"}, "counter"),
    "scorer_mirror_requests": ({"deployment", "outcome"}, "counter"),
    "scorer_mirror_agreement": ({"deployment", "agree"}, "counter"),
    "scorer_autoscale_desired_replicas": ({"deployment"}, "gauge"),
    "scorer_autoscale_decisions": ({"deployment", "direction"}, "counter"),
}


def scrape(url: str) -> dict[str, object]:
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict, sample_name: str, **labels: str) -> float:  # type: ignore[type-arg]
    for fam in families.values():
        for s in fam.samples:  # type: ignore[attr-defined]
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_every_design_metric_with_its_labels(ops_server) -> None:
    with ops_server.client() as c:
        for i in range(6):
            assert c.post("/score", json=split_body(1, i)).status_code == 200
        c.post("/score", json={"bad": 1})
    families = scrape(ops_server.url)
    for name, (labels, kind) in DESIGN.items():
        assert name in families, name
        fam = families[name]
        assert fam.type == kind, name  # type: ignore[attr-defined]
        for s in fam.samples:  # type: ignore[attr-defined]
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    # the series the traffic above must have produced
    assert value(families, "scorer_requests_total", deployment="blue", status="200") >= 6
    assert value(families, "scorer_requests_total", deployment="blue", status="400") >= 1
    for stage in ("total", "queue", "model"):
        assert value(families, "scorer_request_duration_seconds_count", deployment="blue", stage=stage) >= 6
    assert value(families, "scorer_replicas", deployment="blue", state="ready") == 1
    assert value(families, "scorer_replicas", deployment="blue", state="failed") == 0
    assert ("scorer_in_flight", {"deployment": "green"}) in [
        (s.name, s.labels) for s in families["scorer_in_flight"].samples]  # type: ignore[attr-defined]
    assert value(families, "scorer_batch_size_count", deployment="blue") >= 6


def test_metrics_need_no_key(server) -> None:
    r = httpx.get(f"{server.url}/metrics", timeout=10)
    assert r.status_code == 200 and "scorer_requests_total" in r.text
