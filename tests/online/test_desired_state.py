"""`SCORER_DESIRED_STATE=files` (pods that mount the endpoint from a Kubernetes ConfigMap): the
router reloads when the mounted files change, keeps its last good state when they are invalid, and
refuses runtime admin changes with 409. The volume is laid out as the kubelet lays it out (files
are symlinks through a `..data` link swapped atomically), so the file's own path never changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.kubelet import project
from tests.online.conftest import ADMIN_KEY, Server, admin, admin_put, start_server, stop_server, wait_for
from tests.online.data import split_body


def _endpoint(registry: str, traffic: str) -> str:
    return f"""
name: mounted
auth_mode: none
traffic: {traffic}
deployments:
  blue:
    model: models:/{registry}/1
  green:
    model: models:/{registry}/1
"""


@pytest.fixture(scope="module")
def mounted(work_dir: Path, demo_registry: str) -> Iterator[tuple[Server, Path]]:
    volume = work_dir / "configmap"
    project(volume, {"endpoint.yaml": _endpoint(demo_registry, "{blue: 100, green: 0}")})
    srv = start_server(volume / "endpoint.yaml", work_dir, {
        "SCORER_ADMIN_KEY": ADMIN_KEY, "SCORER_DESIRED_STATE": "files", "SCORER_FILES_POLL_S": "0.2"})
    yield srv, volume
    stop_server(srv)


def test_runtime_changes_answer_409(mounted: tuple[Server, Path]) -> None:
    srv, _ = mounted
    for path, body in (("/admin/traffic", {"blue": 0, "green": 100}), ("/admin/mirror", {"green": 10})):
        r = admin_put(srv, path, body)
        assert r.status_code == 409, r.text
        assert r.json()["error_code"] == "RESOURCE_CONFLICT" and "ConfigMap" in r.json()["message"]
    r = httpx.post(f"{srv.url}/admin/deployments/blue/scale", json={"instances": 2},
                   headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert r.status_code == 409, r.text
    assert admin(srv)["traffic"] == {"blue": 100, "green": 0}


def test_a_changed_configmap_is_served_and_a_bad_one_keeps_the_last_good(mounted: tuple[Server, Path],
                                                                         demo_registry: str) -> None:
    srv, volume = mounted
    project(volume, {"endpoint.yaml": _endpoint(demo_registry, "{blue: 0, green: 100}")})
    wait_for(lambda: admin(srv)["traffic"] == {"blue": 0, "green": 100}, timeout=60)
    with srv.client() as c:
        r = c.post("/score", json=split_body(1, 0))
        assert r.status_code == 200 and r.headers["azureml-model-deployment"] == "green", r.text
    project(volume, {"endpoint.yaml": "name: mounted\ntraffic: {blue: 70}\n"})
    wait_for(lambda: "reload failed, the last good state keeps serving" in srv.logs(), timeout=30)
    assert admin(srv)["traffic"] == {"blue": 0, "green": 100}
    with srv.client() as c:
        assert c.post("/score", json=split_body(1, 1)).status_code == 200
    assert srv.proc.poll() is None
