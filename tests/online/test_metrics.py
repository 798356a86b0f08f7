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


def info_series(url: str) -> dict[str, tuple[str, str]]:
    """scorer_deployment_info: deployment -> (model, model_version)."""
    fams = scrape(url)
    return {s.labels["deployment"]: (s.labels["model"], s.labels["model_version"])  # type: ignore[attr-defined]
            for s in fams["scorer_deployment_info"].samples if s.value == 1}  # type: ignore[attr-defined]


def test_deployment_info_joins_on_the_model(ops_server, demo_registry: str, picky_model) -> None:
    info = info_series(ops_server.url)
    assert info["blue"] == (f"models:/{demo_registry}@blue", "1")
    assert info["picky"][0] == str(picky_model) and len(info["picky"][1]) == 12
    assert all("/.scorer/" not in v for _, v in info.values())


def test_metrics_content_negotiation(ops_server) -> None:
    """Prometheus's default Accept gets OpenMetrics (with _created inside the counter family); plain
    text has no `*_created` families."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families

    prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," \
           "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    with ops_server.client() as c:
        assert c.post("/score", json=split_body(1)).status_code == 200
    r = httpx.get(f"{ops_server.url}/metrics", headers={"Accept": prom}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    assert r.text.rstrip().endswith("# EOF")
    fams = {f.name: f for f in om_families(r.text)}
    assert fams["scorer_requests"].type == "counter" and "scorer_requests_created" not in fams
    plain = httpx.get(f"{ops_server.url}/metrics", timeout=10)
    assert plain.headers["content-type"].startswith("text/plain")
    assert "_created" not in plain.text
    assert all(not f.name.endswith("_created") for f in text_string_to_metric_families(plain.text))
