"""Exact traffic shares, pinning, all-zero traffic, and the response headers."""

from __future__ import annotations

from collections import Counter

from tests.online.data import split_body


def test_unpinned_requests_follow_the_traffic_shares_exactly(client) -> None:
    seen = Counter()
    for _ in range(100):
        r = client.post("/score", json=split_body(1))
        assert r.status_code == 200, r.text
        seen[r.headers["azureml-model-deployment"]] += 1
    assert seen == {"blue": 70, "green": 30}


def test_response_headers(client) -> None:
    r = client.post("/score", json=split_body(1), headers={"x-request-id": "my-id-123"})
    assert r.headers["x-request-id"] == "my-id-123"
    assert r.headers["azureml-model-deployment"] in ("blue", "green")
    assert r.headers["x-model-version"] == {"blue": "1", "green": "2"}[r.headers["azureml-model-deployment"]]
    r2 = client.post("/score", json=split_body(1))
    assert len(r2.headers["x-request-id"]) >= 16


def test_pinning_reaches_any_deployment_including_zero_traffic(client) -> None:
    for name in ("green", "blue", "green"):
        r = client.post("/score", json=split_body(2), headers={"azureml-model-deployment": name})
        assert r.status_code == 200
        assert r.headers["azureml-model-deployment"] == name
    r = client.post("/score", json={"dataframe_split": {"columns": ["seconds"], "data": [[0.0]]}},
                    headers={"azureml-model-deployment": "sleeper"})
    assert r.status_code == 200 and r.json() == {"predictions": [0.0]}
    assert r.headers["azureml-model-deployment"] == "sleeper"


def test_unknown_deployment_is_404(client) -> None:
    r = client.post("/score", json=split_body(1), headers={"azureml-model-deployment": "purple"})
    assert r.status_code == 404
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "purple" in r.json()["message"]


def test_all_zero_traffic_is_404_but_pinning_works(token_server) -> None:
    import httpx

    from tests.online.test_auth import token

    h = {"Authorization": f"Bearer {token(60)}"}
    r = httpx.post(f"{token_server.url}/score", json=split_body(1), headers=h)
    assert r.status_code == 404
    assert "no deployment with traffic" in r.json()["message"]
    r = httpx.post(f"{token_server.url}/score", json=split_body(1), headers={**h, "azureml-model-deployment": "only"})
    assert r.status_code == 200
    assert httpx.get(f"{token_server.url}/ready").status_code == 200
